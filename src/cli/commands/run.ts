/** `mastosync run <job..>`: copy what the database owns, or list it with --dry-run. */
import { existsSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { Logger } from '../../log.js';
import { type JobName } from '../../mastodon/tables.js';
import { UnavailableError, UsageError } from '../../errors.js';
import {
  CheckpointWriter,
  EMPTY_RESUME_STATE,
  assertIsCheckpoint,
  checkpointProgress,
  compactCheckpoint,
  loadCheckpoint,
  type ResumeState,
} from '../../sync/checkpoint.js';
import { CheckpointLock } from '../../sync/lock.js';
import { databaseNow } from '../../db/clock.js';
import type { Config } from '../config.js';
import { CheckpointWriteError, MISSING_WARNINGS, runJobs } from '../../sync/run.js';
import { planJob } from '../../sync/plan.js';
import { ProgressTally } from '../../sync/progress.js';
import { ListingOrderError } from '../../sync/listingJoin.js';
import { checkpointForShard } from '../../sync/shard.js';
import { earlierCheckpointOf, moveEarlierCheckpoint } from '../earlierCheckpoint.js';
import { coversEveryRow, type Scope } from '../../db/scope.js';
import { PART_SIZE, createStore, samePlace } from '../../storage/index.js';
import type { ObjectStore } from '../../storage/types.js';
import { limitStoreRates } from '../../sync/rateLimit.js';
import { openSession, parseJobs, readConfig, runPatienceMs, secondLookMs } from '../setup.js';
import { checkDestination, copiedBefore } from '../../sync/destinationCheck.js';
import type { Database } from '../../db/connection.js';
import type { Schema } from '../../db/schema.js';
import { checkStores, serverCopier, warnTo } from '../stores.js';
import { countBeside, type ProgressDisplay } from '../progress.js';
import { REMOTE_CACHE_WARNING, describeScope, scopeFlags } from '../scope.js';
import { isoSeconds, reportJson, reportText, sourceDoubt } from '../summary.js';
import { settleHeapForWork } from '../heap.js';
import { EXIT, stoppedExit, type Output } from '../exit.js';
import type { Metrics } from '../metrics.js';
import { startMetrics, type MetricsFlags } from '../flags.js';
import { RunSignals, unlessStopped } from '../interrupt.js';

/**
 * What the run is told: the one list of the run's flags (src/cli/commandLine.ts makes the arguments it parses and
 * passes on from it).
 */
export interface RunFlags extends MetricsFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly concurrency?: number;
  readonly resume: boolean;
  /** Only the objects the checkpoint records as failed. */
  readonly retryFailed: boolean;
  /** Start over even when the checkpoint records progress (replacing it). */
  readonly fresh: boolean;
  /** List both stores and copy only what the destination lacks or holds otherwise. */
  readonly skipExisting: boolean;
  readonly dryRun: boolean;
  readonly limit?: number;
  readonly checkpoint?: string;
  readonly json: boolean;
  readonly scope: Scope;
  readonly maxRps?: number;
}

/** `progress`, when given, shows the run live (started once the jobs are known) and carries the log lines. */
export async function runCommand(flags: RunFlags, log: Logger, out: Output, progress?: ProgressDisplay): Promise<number> {
  settleHeapForWork();
  parseJobs(flags.jobs);
  const config = readConfig(flags, log);
  const concurrency = flags.concurrency ?? config.sync.concurrency;
  // Shards sharing a folder keep apart: each derives its own file from the configured name (--checkpoint is taken as is).
  let checkpointPath = flags.checkpoint ?? checkpointForShard(config.sync.checkpoint, flags.scope.shard);
  // A cron job set up before the default checkpoint was named after the config file goes on with the one it has.
  const earlier = flags.checkpoint === undefined ? earlierCheckpointOf(config, checkpointPath, flags.scope.shard, log) : undefined;
  // First: a checkpoint this user cannot reach is no "no checkpoint", and a file that is not one is left untouched.
  assertIsCheckpoint(earlier ?? checkpointPath);
  if (flags.retryFailed && !existsSync(earlier ?? checkpointPath)) {
    throw new UsageError(
      `--retry-failed reruns what a checkpoint records as failed or missing, and there is no checkpoint at ${checkpointPath}: pass --checkpoint FILE`,
    );
  }
  const shared = samePlace(config.source, config.destination);
  if (shared !== undefined) {
    throw new UsageError(`[source] and [destination] are the same place, ${shared} (${config.origin}): point [destination] at the new bucket or folder`);
  }
  // Before the lock is taken: a signal at any moment after it must release it (src/cli/interrupt.ts).
  const signals = new RunSignals(log, undefined, config.sync.stopGraceMs);
  let lock: CheckpointLock | undefined;
  let metrics: Metrics | undefined;
  try {
    // Before anything else is read or opened: an overlapping cron run leaves at once, saying so (rather than what the
    // checkpoint the other run writes records), and nothing it would write is written.
    lock = flags.dryRun ? undefined : CheckpointLock.acquire(checkpointPath);
    // A dry run writes nothing: it reads the earlier file where it is.
    if (earlier !== undefined && flags.dryRun) checkpointPath = earlier;
    else if (earlier !== undefined) moveEarlierCheckpoint(earlier, checkpointPath, config, (line) => out.stderr(`mastosync: warning: ${line}`));
    // Starting over a checkpoint that records days of copying (a --resume forgotten once) would copy it all again.
    if (!flags.resume && !flags.retryFailed && !flags.fresh && !flags.dryRun) await refuseToStartOver(checkpointPath);
    metrics = await startMetrics('run', flags.metrics, log);
    return await runLocked(flags, config, concurrency, checkpointPath, log, out, signals, progress, metrics);
  } finally {
    lock?.release();
    // The metrics' hold (--metrics-hold) ends on a signal of its own. A run a signal ended holds nothing: the stop
    // (Kubernetes, systemd) waits for the process, and would end in a SIGKILL after its grace period.
    signals.remove();
    await metrics?.close(signals.received === undefined ? flags.metricsHoldMs : 0);
  }
}

async function runLocked(
  flags: RunFlags,
  config: Config,
  concurrency: number,
  checkpointPath: string,
  log: Logger,
  out: Output,
  signals: RunSignals,
  progress?: ProgressDisplay,
  metrics?: Metrics,
): Promise<number> {
  // A signal while the checkpoint was read for progress, or the metrics port opened: nothing was opened yet.
  signals.stop.signal.throwIfAborted();
  const started = new Date();
  const stores: ObjectStore[] = [];
  const source = createStore(config.source, { role: 'source', concurrency, warn: warnTo(log) });
  stores.push(source);
  const destination = createStore(config.destination, { role: 'destination', concurrency, uploadCutoff: config.sync.uploadCutoff, warn: warnTo(log) });
  stores.push(destination);
  if (flags.skipExisting && (source.list === undefined || destination.list === undefined)) {
    for (const store of stores) store.close();
    throw new UsageError('--skip-existing lists both stores, and the source or the destination cannot be listed: leave it out');
  }
  const { stop, abort } = signals;
  // Every request of the run counts against --max-rps, the bucket checks too; the hard stop ends the waits.
  limitStoreRates(stores, flags.maxRps ?? config.sync.maxRps, abort.signal);
  // The buckets are checked while the database session opens: the first copy waits for the slower, not both.
  // Whichever side fails for good first ends the other's wait, and is the error reported: a database refused at once
  // does not leave the process probing a silent store (and logging) for the patience after its last line, nor does
  // a missing bucket wait for a database that does not answer.
  // A signal ends the start as such a failure does.
  const failedStart = new AbortController();
  stop.signal.addEventListener('abort', () => failedStart.abort(stop.signal.reason), { once: true });
  const checked = unlessStopped(checkStores([source, destination], log, failedStart.signal), stop.signal);
  checked.catch((error: unknown) => {
    if (!(error instanceof UnavailableError)) failedStart.abort(error);
  });
  const opening = openSession(config, flags.jobs, log, failedStart.signal);
  const session = await unlessStopped(opening, stop.signal, (late) => late.db.close()).catch((error: unknown) => {
    if (!failedStart.signal.aborted) failedStart.abort(error);
    for (const store of stores) store.close();
    throw error;
  });
  try {
    await checked;
    const serverCopy = serverCopier(config.sync.copyMode, source, destination);

    const identity = { source: source.description, destination: destination.description, scope: describeScope(flags.scope) ?? 'the whole database' };
    // Cron runs --resume from the first night on, so a missing checkpoint is no error, nor news for cron's mail; but a
    // mistyped path must not pass unnoticed as a fresh start: the summary says so.
    const hasCheckpoint = existsSync(checkpointPath) && statSync(checkpointPath).size > 0;
    const noCheckpoint =
      flags.resume && !hasCheckpoint ? `no checkpoint at ${resolvePath(checkpointPath)} to resume from: started from the beginning` : undefined;
    if (noCheckpoint !== undefined) log.info({ checkpoint: resolvePath(checkpointPath) }, 'no checkpoint to resume from there: starting from the beginning');
    // Cron's first night finds an empty destination. One that already holds objects means the checkpoint was deleted,
    // moved or mistyped, and this run copies everything again (days of egress on a large instance): cron mails that.
    // Not for part of the database (a delta pass with --since, a shard): its first run over a full destination is usual.
    if (noCheckpoint !== undefined && !flags.skipExisting && !flags.dryRun && coversEveryRow(flags.scope)) {
      const held = await unlessStopped(firstKeyHeld(destination, stop.signal), stop.signal);
      if (held !== undefined)
        out.stderr(
          `mastosync: warning: no checkpoint at ${resolvePath(checkpointPath)} to resume from, and the destination ${destination.description} already holds objects ` +
            `(e.g. ${held}): this run copies every object again. If the checkpoint was moved, pass it with --checkpoint; to skip what is already there, add --skip-existing`,
        );
    }
    const changes = { changeMarginMs: config.sync.changeMarginMs };
    const resume =
      flags.resume || flags.retryFailed
        ? await loadCheckpoint(checkpointPath, identity, { ...changes, onDamage: (message) => out.stderr(`mastosync: warning: ${message}`) })
        : EMPTY_RESUME_STATE;
    // Resuming from nothing (cron's first night) starts a checkpoint as a plain run does.
    const mode = flags.retryFailed ? 'retry-failed' : flags.resume && hasCheckpoint ? 'resume' : 'fresh';
    // Before anything is written: does the destination still hold what the checkpoint says was copied?
    // A signal ends the look as it ends the start's other waits (src/cli/interrupt.ts): a HEAD that hangs, tried again
    // for minutes, must not outlast a pod's grace period and leave the lock behind (review1 L7).
    const { lacking, unanswered } =
      mode === 'fresh'
        ? { lacking: undefined, unanswered: undefined }
        : await unlessStopped(checkDestinationHolds(flags, session, destination, resume, config.sync.retries, log, stop.signal), stop.signal);
    if (lacking !== undefined && lacking.all && !flags.skipExisting && !flags.dryRun) {
      out.stderr(`mastosync: stopped: ${lacking.describe('Nothing was copied')}`);
      return EXIT.failures;
    }
    // Without --skip-existing this run will not copy them again: said now (cron mails it), and the exit code says it.
    if (lacking !== undefined && (!flags.skipExisting || flags.dryRun))
      out.stderr(`mastosync: warning: ${lacking.describe(flags.dryRun ? 'A dry run copies nothing' : '--resume does not copy them again')}`);
    const unrepaired = new Set(lacking?.keys);
    // The database's clock, not ours: the next run compares it with the *_updated_at Mastodon wrote.
    const startedAt = await databaseNow(session.db);
    // A signal that came while the checkpoint was read ends the start here, before its header is written.
    signals.startCopying();
    const checkpoint = flags.dryRun ? undefined : CheckpointWriter.open(checkpointPath, { run: started.toISOString(), mode, ...identity, started: startedAt });
    try {
      // A destination that may not be asked (write-only credentials, say) is said once per checkpoint, not every hour.
      if (mode !== 'fresh' && (unanswered === undefined) !== (resume.destinationUnanswered === undefined)) checkpoint?.destinationCheck(unanswered);
      log.info(
        {
          jobs: session.jobs,
          source: source.description,
          destination: destination.description,
          database: session.db.description,
          dryRun: flags.dryRun,
          scope: describeScope(flags.scope),
          checkpoint: flags.dryRun ? undefined : checkpointPath,
          copy: serverCopy ? `on the provider (${PROVIDER_COPY[config.destination.type]})` : 'streamed (GET, PUT)',
        },
        'run started',
      );
      for (const note of session.notes) log.info(note);
      // Said loudly once, when the checkpoint starts; a cron run that resumes it has heard it (and would mail it nightly).
      if (flags.scope.skipRemoteCache !== undefined) log[mode === 'resume' ? 'info' : 'warn'](REMOTE_CACHE_WARNING);
      const tally = new ProgressTally(session.jobs);
      progress?.start(tally);
      // The totals are counted beside the copy, on their own connection: the first copy never waits for them.
      // (--retry-failed takes only the checkpoint's failures, which a count of the database cannot tell.)
      if ((progress || metrics) && !flags.retryFailed) {
        const options = { limit: flags.limit, partSize: PART_SIZE, multipartAbove: config.sync.uploadCutoff };
        const count = async (job: JobName) =>
          // --skip-existing goes through every row (the destination may have lost what the checkpoint calls done).
          (await planJob(session.db, session.schema, job, flags.scope, { ...options, afterId: flags.skipExisting ? undefined : resume.watermark(job) }))
            .objects;
        countBeside(tally, session.jobs, count, log);
      }
      const summary = await runJobs({
        jobs: session.jobs,
        db: session.db,
        schema: session.schema,
        source: metrics ? metrics.observeStore(source, 'source') : source,
        destination: metrics ? metrics.observeStore(destination, 'destination') : destination,
        batchSize: config.database.batchSize,
        concurrency,
        limit: flags.limit,
        scope: flags.scope,
        acl: config.destination.acl,
        storageClass: config.destination.storageClass,
        serverCopy,
        retries: config.sync.retries,
        resume,
        startedAt,
        changeMarginMs: config.sync.changeMarginMs,
        retryFailedOnly: flags.retryFailed,
        skipExisting: flags.skipExisting,
        // A first run has none: its own copies are the known-good ones.
        findKnownGood: mode === 'fresh' ? undefined : () => copiedBefore({ ...session, scope: flags.scope, resume, destination }),
        checkpoint,
        dryRun: flags.dryRun,
        onPlan: (object, from, to) => {
          out.stdout(flags.json ? JSON.stringify({ job: object.job, id: object.id, source: from, destination: to }) : `${from} -> ${to}`);
          // Nobody reads the list any more (`| head`): stop reading rows, as on Ctrl-C.
          if (!stop.signal.aborted && out.readerGone?.()) {
            log.debug('stdout was closed: the dry run stops listing');
            stop.abort();
          }
        },
        onResult: (job, object, result) => {
          if (progress || metrics) tally.result(job, result.bytes);
          if (unrepaired.size > 0 && (result.status === 'copied' || result.status === 'relocated')) unrepaired.delete(destination.locate(object.key));
        },
        onStream: progress || metrics ? (job, bytesSoFar) => tally.streaming(job, bytesSoFar) : undefined,
        onSkipped: (progress || metrics) && ((job, objects) => tally.skipped(job, objects)),
        onRevisited: (progress || metrics) && ((job, objects) => tally.revisited(job, objects)),
        observe: metrics && ((view) => metrics.observeRun(view, tally)),
        storePatienceMs: runPatienceMs(),
        stop: stop.signal,
        abort: abort.signal,
        log,
      }).catch((error: unknown) => {
        throw error instanceof ListingOrderError
          ? error.withFix('run without --skip-existing (add --resume to keep what this run recorded in its checkpoint)')
          : error;
      });
      progress?.stop(!summary.interrupted);
      if (!summary.interrupted) tally.finish();
      checkpoint?.close();
      // A cron checkpoint would grow by every run's lines: keep only what the next run reads. An interrupted run
      // leaves that to the next one, which is already waited for.
      if (checkpoint && !summary.interrupted && !(summary.stoppedBy instanceof CheckpointWriteError)) {
        await compactCheckpoint(checkpointPath, changes).catch((error: unknown) =>
          log.warn({ checkpoint: checkpointPath, err: error }, 'could not compact the checkpoint; it stays as it is, and the next run tries again'),
        );
      }
      // Rows below a job's watermark are not read again, so they appear in no column: say so, or a resumed run looks empty.
      const resumed = session.jobs.flatMap((job) => {
        const mark = resume.watermark(job);
        // --skip-existing lists and counts them (skipped) instead.
        return mark === undefined || flags.skipExisting
          ? []
          : [
              `${job}: rows up to id ${mark} were finished by an earlier run (the checkpoint): read again only where their files changed, or objects failed or were missing`,
            ];
      });
      const stopped = summary.stoppedBy?.message;
      const { missing } = summary.firstLooks;
      const unlogged =
        missing > MISSING_WARNINGS
          ? [
              `${missing} objects were newly missing at the source: the first ${MISSING_WARNINGS} were logged at warn, the others at info; the checkpoint records them all`,
            ]
          : [];
      const { atDestination } = summary.firstLooks;
      const heldAlready =
        atDestination > 0
          ? [
              `${atDestination} objects missing at the source are at the destination already (Mastodon stored them there after the switch: expected in a --since pass)`,
            ]
          : [];
      const doubt =
        stopped === undefined && !summary.interrupted
          ? sourceDoubt(summary.firstLooks.found, missing, source.description, 'run again with --resume (missing objects are looked for again)')
          : undefined;
      const report = {
        jobs: summary.jobs,
        interrupted: summary.interrupted,
        dryRun: flags.dryRun,
        skipExisting: flags.skipExisting,
        ...(serverCopy && { providerCopy: PROVIDER_COPY[config.destination.type] }),
        notes: [
          ...(noCheckpoint === undefined ? [] : [noCheckpoint]),
          ...session.notes,
          ...resumed,
          ...unlogged,
          ...heldAlready,
          ...failedWhere(summary.failedAt),
        ],
        started: isoSeconds(started),
        finished: isoSeconds(new Date()),
        ...(stopped !== undefined && { stopped }),
      };
      out.stdout(flags.json ? reportJson(report) : reportText(report));
      // What no retry could fix: one line naming it and the fix, as for any error, and exit 1 (cron mails it); 2 for
      // a broken installation.
      if (stopped !== undefined) {
        out.stderr(`mastosync: stopped: ${stopped}`);
        return stoppedExit(summary.stoppedBy);
      }
      // Most of what was looked for is not at the source: worth a cron mail, once (what is missing now is not
      // counted again by the next runs). An empty source stops the run at once (SourceLooksEmptyError).
      if (doubt !== undefined) {
        out.stderr(`mastosync: ${doubt}`);
        return EXIT.failures;
      }
      // A dry run whose reader went away (`| head`) stopped because its list was no longer wanted: not an interruption.
      if (summary.interrupted) return flags.dryRun && out.readerGone?.() ? EXIT.ok : EXIT.interrupted;
      // The destination lacked objects the checkpoint calls copied, and this run did not copy them all again.
      if (lacking !== undefined && !flags.dryRun && unrepaired.size > 0) {
        if (flags.skipExisting) out.stderr(`mastosync: ${lacking.describe('this run did not copy them all again')}`);
        return EXIT.failures;
      }
      return summary.jobs.some((job) => job.failed > 0) ? EXIT.failures : EXIT.ok;
    } finally {
      progress?.stop(false);
      checkpoint?.close();
    }
  } finally {
    for (const store of stores) store.close();
    await session.db.close();
  }
}

/** Where the copies failed, as a note under the summary: which side to look at first. */
function failedWhere(failedAt: ReadonlyMap<string, number>): string[] {
  if (failedAt.size === 0) return [];
  const counts = [...failedAt].sort((a, b) => b[1] - a[1]).map(([where, count]) => `${count.toLocaleString('en')} at the ${where}`);
  return [`where copies failed: ${counts.join(', ')} (each object's error is in the log and the checkpoint)`];
}

/** The destination lacks objects the checkpoint records as copied: `keys` of the sample, and how to say so. */
interface Lacking {
  readonly keys: readonly string[];
  /** All of the sample (at least two): the destination was emptied, or is another place. */
  readonly all: boolean;
  /** The line's text, with what this run does about it (`consequence`) and the commands that copy them again. */
  describe(consequence: string): string;
}

/**
 * A resumed run's look at the destination (src/sync/destinationCheck.ts): `lacking` undefined when it holds the
 * sample, or could not be asked (`unanswered`). That is no reason to stop a run (a destination without HEAD rights
 * must not stop every cron run), and is said at warn once per checkpoint: runs while it lasts say it at info, as the
 * checkpoint records it (written by the caller), and cron mails it once, not at every run.
 */
async function checkDestinationHolds(
  flags: RunFlags,
  session: { readonly db: Database; readonly schema: Schema; readonly jobs: readonly JobName[] },
  destination: ObjectStore,
  resume: ResumeState,
  retries: number,
  log: Logger,
  signal: AbortSignal,
): Promise<{ readonly lacking?: Lacking; readonly unanswered?: string }> {
  const check = await checkDestination({ ...session, scope: flags.scope, resume, destination, retries, log, signal, secondLookMs: secondLookMs() });
  const { unanswered } = check;
  if (unanswered !== undefined) {
    const said = resume.destinationUnanswered !== undefined;
    log[said ? 'info' : 'warn'](
      { destination: destination.description, error: unanswered },
      'could not ask the destination whether it still holds what the checkpoint records as copied: going on without that check. ' +
        (check.headRefused
          ? 'To have it, let the destination credentials read objects (HEAD; on S3 s3:GetObject, and s3:ListBucket for a 404 rather than a 403). '
          : '') +
        (said ? 'Said at warn once, when it began' : 'Said once for this checkpoint: later runs log it at info until the destination answers again'),
    );
  }
  if (check.missing.length === 0) return { unanswered };
  const { sampled, missing } = check;
  const all = missing.length === sampled && sampled >= 2;
  const jobs = flags.jobs.join(' ');
  // The run's own config, checkpoint and scope (a shard's, a delta pass's), from any folder: cron's is $HOME.
  const config = flags.config ? ['--config', resolvePath(flags.config)] : [];
  const checkpoint = flags.checkpoint !== undefined ? ['--checkpoint', resolvePath(flags.checkpoint)] : [];
  const run = `mastosync run ${jobs}${shellWords([...config, ...checkpoint, ...scopeFlags(flags.scope)])} --resume --skip-existing`;
  // verify reads no checkpoint.
  const verify = `mastosync verify ${jobs}${shellWords([...config, ...scopeFlags(flags.scope)])} --repair`;
  const lacking: Lacking = {
    keys: missing,
    all,
    describe: (consequence) =>
      `the destination ${destination.description} lacks ${all ? 'all ' : ''}${missing.length} of the ${sampled} objects asked for that the checkpoint records as copied ` +
      `(e.g. ${missing[0]})${all ? ': it was emptied, or [destination] now names another bucket or prefix' : ''}. ${consequence}. ` +
      `To copy what it lacks: ${run} (or ${verify})${all ? '; if [destination] is wrong, fix it' : ''}`,
  };
  return { lacking, unanswered };
}

/**
 * The first key the destination lists, if any; undefined too for a store that cannot list, or whose listing fails
 * (the run goes on: this only decides whether to warn).
 */
async function firstKeyHeld(destination: ObjectStore, signal: AbortSignal): Promise<string | undefined> {
  if (destination.list === undefined) return undefined;
  try {
    for await (const listed of destination.list('', { signal })) return listed.key;
  } catch {
    // Unanswered: the copy will meet the same store, and say so if it matters.
  }
  return undefined;
}

/** `words` as a shell reads them back, each after a space: quoted when it holds anything but plain characters. */
function shellWords(words: readonly string[]): string {
  return words.map((word) => ' ' + (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`)).join('');
}

/** What the destination's provider calls its own copy, for the start line. */
const PROVIDER_COPY: Record<Config['destination']['type'], string> = { s3: 'CopyObject', azure: 'Copy Blob', swift: 'X-Copy-From', fs: 'none' };

/** Refuses (exit 2, nothing written) a run without --resume or --fresh over a checkpoint that records progress. */
async function refuseToStartOver(checkpointPath: string): Promise<void> {
  const progress = await checkpointProgress(checkpointPath);
  if (progress === undefined) return;
  const { header, lastSynced, watermarks, done } = progress;
  const finished = [
    ...[...watermarks].map(([job, mark]) => `${job} rows up to id ${mark}`),
    ...(done > 0 ? [`${done} objects ${watermarks.size > 0 ? 'above those' : 'done'}`] : []),
  ].join(', ');
  // The header is the first run's (compaction keeps no other): the latest sync time says when the last run began.
  const when = lastSynced !== undefined ? `, the last run to finish a job started ${lastSynced}` : header === undefined ? '' : `, started ${header.run}`;
  const by = header === undefined ? '' : ` (a run from ${header.source} to ${header.destination}${when})`;
  throw new UsageError(
    `checkpoint ${checkpointPath} records progress${by}: ${finished}. Pass --resume to continue it, or --fresh to start over and replace it (or --checkpoint with another file); nothing was written`,
  );
}
