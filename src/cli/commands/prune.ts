/**
 * `mastosync prune <job..> [--delete] [--max-delete N|P%] [--manifest PATH] [--json]`: lists the destination under
 * the folders Mastodon writes for the jobs and reports, one line each, the objects no row owns, with their size.
 * Dry by default (exit 0). With --delete it removes them, unless there are more than --max-delete (by default 10%
 * of what it listed): then it deletes nothing, says so and exits 2. Each key deleted is written to the manifest.
 */
import { accessSync, constants, existsSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../../log.js';
import { UsageError } from '../../errors.js';
import { DatabaseLostError } from '../../db/connection.js';
import { JOB_NAMES } from '../../mastodon/tables.js';
import { createStore } from '../../storage/index.js';
import type { ObjectStore } from '../../storage/types.js';
import { limitStoreRates } from '../../sync/rateLimit.js';
import { StoreUnreachableError } from '../../sync/storeWatch.js';
import { ProgressTally } from '../../sync/progress.js';
import { emptyPruneSummary, pruneJobs, type DeleteLimit, type Orphan, type OrphanReason, type PruneJobSummary, type PruneResult } from '../../sync/prune.js';
import { settleHeapForWork } from '../heap.js';
import { EXIT, type Output } from '../exit.js';
import { stdoutBeside, type ProgressDisplay } from '../progress.js';
import { openSessionUnlessStopped, parseJobs, readConfig } from '../setup.js';
import type { Config } from '../config.js';
import { checkStores, warnTo } from '../stores.js';
import { formatBytes, formatCount } from '../summary.js';
import { withSignals, unlessStopped, type RunSignals } from '../interrupt.js';

interface PruneFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly delete: boolean;
  readonly limit: DeleteLimit;
  readonly limitText: string;
  readonly manifest?: string;
  readonly maxRps?: number;
  readonly json: boolean;
}

const REASONS: Readonly<Record<OrphanReason, string>> = {
  'no-table': 'this Mastodon version has no such table',
  shape: 'no row can own a key of this shape',
  'no-row': 'no row has this id',
  'not-owned': 'the row owns other keys',
  duplicate: 'a second copy: the object is also where the row says',
};

/** `progress`, when given, shows the objects listed (started once the jobs are known) and carries the log lines. */
export async function pruneCommand(flags: PruneFlags, log: Logger, out: Output, progress?: ProgressDisplay): Promise<number> {
  settleHeapForWork();
  const { all } = parseJobs(flags.jobs);
  const config = readConfig(flags, log);
  // By default beside the config, as the checkpoint is: cron starts in $HOME, a container in a folder it may not write.
  const named = `mastosync-prune-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`;
  const manifest = flags.delete ? resolve(flags.manifest ?? join(config.file === undefined ? '.' : dirname(config.file), named)) : undefined;
  if (manifest !== undefined) refuseUnwritableManifest(manifest);
  return withSignals(log, 'before anything was listed: nothing was deleted', (signals) =>
    pruneWithSignals(signals, { flags, all, config, manifest, log, out, progress }),
  );
}

/** prune's inputs once read, and where it reports. */
interface PruneRun {
  readonly flags: PruneFlags;
  readonly all: boolean;
  readonly config: Config;
  readonly manifest: string | undefined;
  readonly log: Logger;
  readonly out: Output;
  readonly progress: ProgressDisplay | undefined;
}

/** What prune does once its signals are handled (withSignals). */
async function pruneWithSignals(signals: RunSignals, { flags, all, config, manifest, log, out, progress }: PruneRun): Promise<number> {
  const { stop } = signals;
  // Files of attachments mastosync does not know would pass for orphans: a dry run lists (with the warning), --delete refuses.
  const refusing = flags.delete ? { unknownAttachments: 'prune --delete refused' } : undefined;
  const session = await openSessionUnlessStopped(config, flags.jobs, log, stop.signal, refusing);
  let destination: ObjectStore | undefined;
  try {
    const store = (destination = createStore(config.destination, { role: 'destination', concurrency: config.sync.concurrency, warn: warnTo(log) }));
    if (store.list === undefined) throw new UsageError(`the destination (${store.description}) cannot list its objects, which prune needs`);
    if (flags.delete && destination.delete === undefined) throw new UsageError(`the destination (${destination.description}) cannot delete objects`);
    limitStoreRates([destination], flags.maxRps ?? config.sync.maxRps);
    await unlessStopped(checkStores([destination], log, stop.signal), stop.signal);
    // Under `all`, the folders of a table this version dropped (imports, v4.4) hold nothing any row owns.
    const tablelessJobs = all ? JOB_NAMES.filter((job) => !session.jobs.includes(job)) : [];
    // From here a signal stops prune after the requests in flight, with the summary of what was listed and deleted.
    signals.startCopying();
    try {
      log.info({ jobs: session.jobs, tablelessJobs, destination: destination.description, delete: flags.delete, maxDelete: flags.limitText }, 'prune started');
      const tally = new ProgressTally([...session.jobs, ...tablelessJobs]);
      progress?.start(tally);
      const print = stdoutBeside(progress, out);
      const result = await pruneJobs({
        jobs: session.jobs,
        tablelessJobs,
        db: session.db,
        schema: session.schema,
        destination,
        delete: flags.delete,
        limit: flags.limit,
        manifest,
        // A page's lines in one write: a pipe takes a system call a write, and millions of orphans are possible.
        onListed: progress && ((job, size) => tally.result(job, size)),
        onOrphans: (orphans) =>
          print(
            orphans
              .map((orphan) =>
                flags.json
                  ? JSON.stringify({ orphan: store.locate(orphan.key), job: orphan.job, size: orphan.size, reason: orphan.reason })
                  : describeOrphan(orphan, store.locate(orphan.key)),
              )
              .join('\n'),
          ),
        onDeleteFailure: (failure) =>
          print(
            flags.json
              ? JSON.stringify({ notDeleted: store.locate(failure.key), job: failure.job, error: failure.error })
              : `not deleted  ${store.locate(failure.key)}: ${failure.error}`,
          ),
        stop: stop.signal,
        retries: config.sync.retries,
        log,
      });
      progress?.stop(!result.interrupted && result.stoppedBy === undefined);
      const total = totals(result.jobs);
      const verdict = result.stoppedBy
        ? stoppedVerdict(result.stoppedBy, total, manifest)
        : verdictOf(flags, result.limit, result.refused, result.interrupted, total, manifest);
      if (flags.json)
        out.stdout(
          JSON.stringify({
            jobs: result.jobs,
            total,
            limit: result.limit,
            refused: result.refused,
            interrupted: result.interrupted,
            stopped: result.stoppedBy?.message,
            manifest: total.deleted > 0 ? manifest : undefined,
          }),
        );
      // A refusal is the one line on stderr (exit 2), after the table that shows what was found.
      else out.stdout([...table(result.jobs, total, flags.delete), ...(result.refused ? [] : [verdict])].join('\n'));
      if (result.refused) out.stderr(`mastosync: ${verdict}`);
      // As run says it: one line naming the cause and the fix, exit 1.
      if (result.stoppedBy) {
        out.stderr(`mastosync: stopped: ${result.stoppedBy.message}`);
        return EXIT.failures;
      }
      if (result.interrupted) return EXIT.interrupted;
      if (result.refused) return EXIT.usage;
      return total.failed > 0 ? EXIT.failures : EXIT.ok;
    } finally {
      progress?.stop(false); // stopped already unless prune failed
    }
  } finally {
    destination?.close();
    await session.db.close();
  }
}

/**
 * The manifest is the record of what was deleted, so its file must be new and its folder writable before anything is
 * listed: found out only at the first deletion, a wrong path ended a long listing with a bare ENOENT and exit 1.
 */
function refuseUnwritableManifest(manifest: string): void {
  if (existsSync(manifest)) throw new UsageError(`--manifest ${manifest} exists: pass a new file name`);
  const folder = dirname(manifest);
  let stats: Stats | undefined;
  try {
    stats = statSync(folder, { throwIfNoEntry: false });
  } catch (error) {
    // A folder on a path this user may not enter (EACCES): the raw error ended the command with exit 1.
    throw new UsageError(
      `--manifest ${manifest}: the folder ${folder} cannot be reached by this user (${(error as NodeJS.ErrnoException).code}): name a file in another folder`,
    );
  }
  if (stats === undefined) throw new UsageError(`--manifest ${manifest}: the folder ${folder} does not exist: create it, or name a file in another folder`);
  if (!stats.isDirectory()) throw new UsageError(`--manifest ${manifest}: ${folder} is not a folder`);
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw new UsageError(`--manifest ${manifest}: the folder ${folder} is not writable by this user: name a file in another folder`);
  }
}

/** `key`: the orphan's key as its bucket or folder names it (key_prefix included). */
function describeOrphan(orphan: Orphan, key: string): string {
  return `orphan  ${String(orphan.size).padStart(12)}  ${key}  (${orphan.job}: ${REASONS[orphan.reason]})`;
}

function totals(jobs: readonly PruneJobSummary[]): Omit<PruneJobSummary, 'job'> {
  const { job: _job, ...total } = emptyPruneSummary('media_attachments');
  for (const job of jobs) for (const field of Object.keys(total) as (keyof typeof total)[]) total[field] += job[field];
  return total;
}

function table(jobs: readonly PruneJobSummary[], total: Omit<PruneJobSummary, 'job'>, deleting: boolean): string[] {
  const columns = [
    'listed',
    'listedBytes',
    'orphans',
    'orphanBytes',
    ...(deleting ? (['deleted', 'deletedBytes', 'keptOnRecheck', 'failed'] as const) : []),
  ] as const;
  const names: Record<string, string> = { listedBytes: 'bytes', orphanBytes: 'orphan bytes', deletedBytes: 'deleted bytes', keptOnRecheck: 'kept on recheck' };
  const header = ['job', ...columns.map((column) => names[column] ?? column)];
  const cell = (summary: Omit<PruneJobSummary, 'job'>, column: (typeof columns)[number]) =>
    column.endsWith('Bytes') ? formatBytes(summary[column]) : formatCount(summary[column]);
  const rows = [
    header,
    ...jobs.map((job) => [job.job, ...columns.map((column) => cell(job, column))]),
    ['total', ...columns.map((column) => cell(total, column))],
  ];
  const widths = header.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  return rows.map((row) => row.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join('  '));
}

/**
 * A stop no retry fixes: what was deleted before it (the manifest names those), or, the database or the destination
 * lost before any delete, what was listed and found so far.
 */
function stoppedVerdict(stop: NonNullable<PruneResult['stoppedBy']>, total: Omit<PruneJobSummary, 'job'>, manifest: string | undefined): string {
  if ((stop instanceof DatabaseLostError || stop instanceof StoreUnreachableError) && total.deleted === 0) {
    return `prune: stopped after listing ${total.listed} objects, ${total.orphans} of them found owned by no row; nothing deleted: ${stop.message}`;
  }
  return `prune: stopped after deleting ${total.deleted} objects (${formatBytes(total.deletedBytes)}${total.deleted > 0 ? `; the manifest is ${manifest}` : ''}): ${stop.message}`;
}

function verdictOf(
  flags: PruneFlags,
  limit: number,
  refused: boolean,
  interrupted: boolean,
  total: Omit<PruneJobSummary, 'job'>,
  manifest: string | undefined,
): string {
  const orphans = `${total.orphans} of ${total.listed} listed objects (${formatBytes(total.orphanBytes)}) are owned by no row`;
  // The limit as given, and what a percentage came to.
  const allowed = 'count' in flags.limit ? `${limit}` : `${limit}, ${flags.limitText} of those listed`;
  if (refused) {
    return `prune: ${orphans}, more than --max-delete allows (${allowed}): nothing deleted; check the list (mastosync prune without --delete) and pass --max-delete ${total.orphans} to delete them`;
  }
  if (interrupted) {
    const deleted = !flags.delete
      ? 'nothing deleted (dry run)'
      : total.deleted === 0
        ? 'nothing deleted'
        : `${total.deleted} deleted (${formatBytes(total.deletedBytes)}; the manifest is ${manifest}), the others not`;
    return `prune: interrupted after listing ${total.listed} objects, ${total.orphans} of them owned by no row so far; ${deleted}: run prune again to finish`;
  }
  if (!flags.delete) {
    if (total.orphans === 0) return `prune: every one of the ${total.listed} listed objects is owned by a row`;
    const over = total.orphans > limit ? `; more than --max-delete allows (${allowed}), so pass --max-delete ${total.orphans} with it` : '';
    return `prune: ${orphans}; nothing deleted (dry run): delete them with --delete${over}`;
  }
  if (total.orphans === 0) return `prune: every one of the ${total.listed} listed objects is owned by a row: nothing to delete`;
  const kept = total.keptOnRecheck === 0 ? '' : `; ${total.keptOnRecheck} kept, owned by a row when checked again`;
  const failed = total.failed === 0 ? '' : `; ${total.failed} could not be deleted (not deleted, above): run prune --delete again`;
  // The manifest is written at the first deletion: none when every orphan was kept or refused.
  const written = total.deleted === 0 ? '' : `; the manifest is ${manifest}`;
  return `prune: deleted ${total.deleted} objects (${formatBytes(total.deletedBytes)}) no row owns${kept}${failed}${written}`;
}
