/**
 * `mastosync verify <job..> [--sample PERCENT] [--acl] [--repair] [--json]`: checks, without writing anything, that the
 * destination holds every object the database owns with the source's size, Content-Type, Cache-Control and (where
 * both are MD5s) ETag. One line per problem (a JSON line each with --json), then a summary. Exit 1 when anything
 * is off. With --repair, each object found missing or different is copied again as `run` copies it (ACL, storage
 * class, retries, copy on the provider), one line each; exit 0 when every one of them was.
 */
import type { Logger } from '../../log.js';
import { UsageError } from '../../errors.js';
import { coversEveryRow, type Scope } from '../../db/scope.js';
import type { ObjectStore } from '../../storage/types.js';
import { limitStoreRates } from '../../sync/rateLimit.js';
import type { CopyContext } from '../../sync/copy.js';
import { countOwnedUpTo, emptySummary, verifyJobs, type Problem, type Repair, type VerifyJobSummary } from '../../sync/verify.js';
import { settleHeapForWork } from '../heap.js';
import { EXIT, stoppedExit, type Output } from '../exit.js';
import { startMetrics, type MetricsFlags } from '../flags.js';
import { countBeside, stdoutBeside, type ProgressDisplay } from '../progress.js';
import { describeScope } from '../scope.js';
import { sourceDoubt } from '../summary.js';
import { openSession, openSessionUnlessStopped, parseJobs, readConfig, runPatienceMs } from '../setup.js';
import type { Config } from '../config.js';
import { PART_SIZE, createStore, samePlace } from '../../storage/index.js';
import { AccessUnsupportedError } from '../../storage/errors.js';
import { planJob } from '../../sync/plan.js';
import { ProgressTally } from '../../sync/progress.js';
import { ListingOrderError } from '../../sync/listingJoin.js';
import { checkStores, serverCopier, warnTo } from '../stores.js';
import { formatCount } from '../summary.js';
import { withSignals, unlessStopped, type RunSignals } from '../interrupt.js';

interface VerifyFlags extends MetricsFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly concurrency?: number;
  /** Undefined: every object by HEAD, none by HEAD when listing. */
  readonly samplePercent?: number;
  /** Forced: by HEAD (`--by-head`), by listing (`--by-listing`); undefined decides by size. */
  readonly method?: 'head' | 'listing';
  readonly maxRps?: number;
  readonly json: boolean;
  readonly scope: Scope;
  /** Copy again what is found missing or different. */
  readonly repair: boolean;
  /** Compare each object's ACL (who may read it) with what a run writes for it: a request per object. */
  readonly acl: boolean;
  /** Read and hash both sides where no MD5 compares the bytes (by HEAD). */
  readonly checksum?: boolean;
}

/** `progress`, when given, shows the objects checked (started once the jobs are known) and carries the log lines. */
export async function verifyCommand(flags: VerifyFlags, log: Logger, out: Output, progress?: ProgressDisplay): Promise<number> {
  settleHeapForWork();
  parseJobs(flags.jobs);
  const config = readConfig(flags, log);
  const concurrency = flags.concurrency ?? config.sync.concurrency;
  const shared = flags.repair ? samePlace(config.source, config.destination) : undefined;
  if (shared !== undefined) {
    throw new UsageError(`[source] and [destination] are the same place, ${shared} (${config.origin}): point [destination] at the new bucket or folder`);
  }
  const acl = flags.acl ? comparedAcl(config.destination) : undefined;
  return withSignals(log, 'before anything was checked', (signals) => verifyWithSignals(flags, config, concurrency, acl, signals, log, out, progress));
}

async function verifyWithSignals(
  flags: VerifyFlags,
  config: Config,
  concurrency: number,
  acl: string | undefined,
  signals: RunSignals,
  log: Logger,
  out: Output,
  progress: ProgressDisplay | undefined,
): Promise<number> {
  const { stop } = signals;
  const metrics = await startMetrics('verify', flags.metrics, log);
  const session = await openSessionUnlessStopped(config, flags.jobs, log, stop.signal).catch(async (error: unknown) => {
    await metrics?.close();
    throw error;
  });
  const stores: ObjectStore[] = [];
  try {
    const source = createStore(config.source, { role: 'source', concurrency, warn: warnTo(log) });
    stores.push(source);
    const destination = createStore(config.destination, { role: 'destination', concurrency, uploadCutoff: config.sync.uploadCutoff, warn: warnTo(log) });
    stores.push(destination);
    // Every request counts against --max-rps, the bucket checks too.
    limitStoreRates(stores, flags.maxRps ?? config.sync.maxRps);
    await unlessStopped(checkStores([source, destination], log, stop.signal), stop.signal);
    // A store without per-object ACLs is known before any object is checked: one line, not one per object.
    if (acl !== undefined) {
      await destination.access?.probe().catch((error: unknown) => {
        throw error instanceof AccessUnsupportedError ? new UsageError(`--acl: ${error.message}: verify --acl cannot check them; verify without --acl`) : error;
      });
    }
    const observedSource = metrics ? metrics.observeStore(source, 'source') : source;
    const observedDestination = metrics ? metrics.observeStore(destination, 'destination') : destination;
    // What `run` gives the copy (src/cli/commands/run.ts), so a repaired object is written exactly as a run writes it.
    const repair: CopyContext | undefined = flags.repair
      ? {
          source: observedSource,
          destination: observedDestination,
          acl: config.destination.acl,
          storageClass: config.destination.storageClass,
          retries: config.sync.retries,
          serverCopy: serverCopier(config.sync.copyMode, source, destination),
        }
      : undefined;

    const method = await unlessStopped(chooseMethod(flags, session, source, destination, config.database.batchSize), stop.signal);
    const samplePercent = flags.samplePercent ?? (method === 'listing' ? 0 : 100);

    // From here a signal stops verify after the checks in flight, with the summary of what was checked.
    signals.startCopying();
    try {
      log.info(
        {
          jobs: session.jobs,
          source: source.description,
          destination: destination.description,
          sample: samplePercent,
          method,
          scope: describeScope(flags.scope),
          repair: flags.repair,
          acl: flags.acl,
          checksum: flags.checksum === true,
        },
        'verify started',
      );
      const tally = new ProgressTally(session.jobs);
      progress?.start(tally);
      if (progress) {
        const options = { partSize: PART_SIZE, multipartAbove: config.sync.uploadCutoff };
        countBeside(tally, session.jobs, async (job) => (await planJob(session.db, session.schema, job, flags.scope, options)).objects, log);
      }
      const print = stdoutBeside(progress, out);
      const { jobs, stoppedBy } = await verifyJobs({
        jobs: session.jobs,
        db: session.db,
        schema: session.schema,
        source: observedSource,
        destination: observedDestination,
        batchSize: config.database.batchSize,
        concurrency,
        retries: config.sync.retries,
        samplePercent,
        method,
        scope: flags.scope,
        onProblem: (problem) => print(flags.json ? JSON.stringify(problem) : describeProblem(problem)),
        onSettled: progress && ((job) => tally.result(job, 0)),
        repair,
        acl,
        checksum: flags.checksum,
        onRepair: (done) => print(flags.json ? JSON.stringify(done) : describeRepair(done)),
        stop: stop.signal,
        storePatienceMs: runPatienceMs(),
        observe: metrics && ((jobs) => metrics.observeVerify(jobs)),
        log,
      }).catch((error: unknown) => {
        throw error instanceof ListingOrderError ? error.withFix('verify with --by-head instead') : error;
      });
      progress?.stop(!stop.signal.aborted && stoppedBy === undefined);
      const total = totals(jobs);
      const stopped = stoppedBy === undefined ? undefined : asVerifyFix(stoppedBy.message);
      if (flags.json) out.stdout(JSON.stringify({ jobs, total, sample: samplePercent, method, interrupted: stop.signal.aborted, stopped }));
      else {
        // A folder keeps no MD5, so with one on either side a listing compares presence and size only.
        const md5Compared = config.source.type !== 'fs' && config.destination.type !== 'fs';
        const listing = method === 'listing' ? { attributesPercent: samplePercent, md5Compared } : undefined;
        const cutShort = stopped !== undefined ? 'stopped' : stop.signal.aborted ? 'interrupted' : undefined;
        const text = summaryText(jobs, total, method === 'listing' ? 100 : samplePercent, flags.repair, listing, cutShort, flags.acl);
        out.stdout(withBytesCompared(text, total, whyNoMd5(config)));
      }
      // As run says it: the summary of what was checked, then one line naming the cause and what to do, exit 1.
      if (stopped !== undefined) {
        out.stderr(`mastosync: stopped: ${stopped}`);
        return stoppedExit(stoppedBy);
      }
      if (stop.signal.aborted) return EXIT.interrupted;
      // Nothing to compare is no match: most of the objects not at the source says the source is the wrong one.
      // Under --since (a migration's delta, docs/migration.md), what the destination alone holds is what Mastodon stored
      // there after the switch: no sign of a wrong source. Without it, a full destination and an empty source still are.
      const expected = flags.scope.since === undefined ? 0 : total.missingAtSourceHeld;
      const doubt = sourceDoubt(total.checked - total.missingAtSource, total.missingAtSource - expected, observedSource.description, 'verify again');
      if (doubt !== undefined) {
        out.stderr(`mastosync: ${doubt}`);
        return EXIT.failures;
      }
      // Repaired, an object found off is off no more: what still fails is what could not be checked or copied.
      if (flags.repair) return total.errors + total.unrepaired > 0 ? EXIT.failures : EXIT.ok;
      return total.missing + total.mismatched + total.errors > 0 ? EXIT.failures : EXIT.ok;
    } finally {
      progress?.stop(false); // stopped already unless the check failed
    }
  } finally {
    for (const store of stores) store.close();
    await session.db.close();
    // As run: a verify a signal ended holds no metrics (--metrics-hold) after its summary.
    await metrics?.close(signals.received === undefined ? flags.metricsHoldMs : 0);
  }
}

/** `--acl`: the ACL to compare with, or a usage error where the destination keeps none (nothing written yet). */
function comparedAcl(destination: Config['destination']): string {
  if (destination.type === 'azure' || destination.type === 'swift') {
    throw new UsageError(
      `--acl: a ${destination.type === 'azure' ? 'Azure container' : 'Swift container'} has no per-object ACL (who may read belongs to the container): verify without --acl`,
    );
  }
  const { acl } = destination;
  if (acl === '') throw new UsageError('--acl: [destination] acl = "" sends no ACL, so there is none to compare: verify without --acl');
  return acl;
}

/**
 * Above this many owned objects, verify lists by default: a listing answers about 1000 objects a request where
 * HEAD answers one, and a small verify is not worth listing a whole bucket for.
 */
const LISTING_ABOVE = 2000;

/**
 * `--by-head` and `--by-listing` decide; else listing when both stores can, the scope takes every row (a narrower
 * one would list whole folders for a part of them) and it owns more than LISTING_ABOVE objects.
 */
async function chooseMethod(
  flags: VerifyFlags,
  session: Awaited<ReturnType<typeof openSession>>,
  source: ObjectStore,
  destination: ObjectStore,
  batchSize: number,
): Promise<'head' | 'listing'> {
  const lists = source.list !== undefined && destination.list !== undefined;
  if (flags.method === 'listing' && !lists) throw new UsageError('--by-listing: the source or the destination cannot be listed; use --by-head');
  if (flags.method !== undefined) return flags.method;
  // Each object is read whole at both stores anyway: a HEAD first costs little beside it.
  if (flags.checksum === true) return 'head';
  if (!lists || !coversEveryRow(flags.scope)) return 'head';
  const owned = await countOwnedUpTo({ db: session.db, schema: session.schema, jobs: session.jobs, scope: flags.scope, batchSize }, LISTING_ABOVE + 1);
  return owned > LISTING_ABOVE ? 'listing' : 'head';
}

function describeProblem(problem: Problem): string {
  const where = `${problem.key} (${problem.job} ${problem.id})`;
  switch (problem.problem) {
    case 'missing':
      return `${'missing'.padEnd(20)} ${where}: not at the destination (the source has ${problem.source})`;
    case 'error':
      return `${'unchecked'.padEnd(20)} ${where}: ${problem.error}`;
    case 'acl':
      return `${'acl differs'.padEnd(20)} ${where}: Mastodon makes it ${problem.expected}, at the destination it is ${problem.actual}`;
    default:
      return `${`${problem.problem} differs`.padEnd(20)} ${where}: ${problem.expected} at the source, ${problem.actual} at the destination`;
  }
}

function describeRepair(repair: Repair): string {
  const where = `${repair.key} (${repair.job} ${repair.id})`;
  switch (repair.repair) {
    case 'copied':
      return `${'repaired'.padEnd(20)} ${where}: copied again from the source${repair.from === undefined ? '' : ` (${repair.from})`}`;
    case 'acl':
      return `${'repaired'.padEnd(20)} ${where}: ACL set`;
    case 'missing':
      return `${'not repaired'.padEnd(20)} ${where}: no longer at the source`;
    default:
      return `${'not repaired'.padEnd(20)} ${where}: ${repair.error}`;
  }
}

function totals(jobs: readonly VerifyJobSummary[]): Omit<VerifyJobSummary, 'job'> {
  const { job: _job, ...total } = emptySummary('media_attachments');
  for (const job of jobs) for (const field of Object.keys(total) as (keyof typeof total)[]) total[field] += job[field];
  return total;
}

function summaryText(
  jobs: readonly VerifyJobSummary[],
  total: Omit<VerifyJobSummary, 'job'>,
  samplePercent: number,
  repair: boolean,
  /** By listing: the share whose Content-Type and Cache-Control were HEADed, and whether both listings carry MD5s. */
  listing: { attributesPercent: number; md5Compared: boolean } | undefined,
  /** Ended before every object was checked: by SIGINT or SIGTERM, or stopped by the database lost for good. */
  cutShort: 'interrupted' | 'stopped' | undefined,
  /** ACLs compared (--acl). */
  acl: boolean,
): string {
  const columns = ['objects', 'checked', 'ok', 'missing', 'mismatched', 'missingAtSource', 'errors', ...(repair ? (['repaired'] as const) : [])] as const;
  const header = ['job', ...columns.map((column) => (column === 'missingAtSource' ? 'missing at source' : column))];
  const rows = [
    header,
    ...jobs.map((job) => [job.job, ...columns.map((column) => formatCount(job[column]))]),
    ['total', ...columns.map((column) => formatCount(total[column]))],
  ];
  const widths = header.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  const table = rows.map((row) => row.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join('  '));
  const problems = total.missing + total.mismatched + total.errors;
  const sampled = samplePercent < 100 ? ` (a ${samplePercent}% sample)` : '';
  const differences = [
    [total.sizeDiffers, 'size'],
    [total.contentTypeDiffers, 'Content-Type'],
    [total.cacheControlDiffers, 'Cache-Control'],
    [total.md5Differs, 'MD5'],
    [total.aclDiffers, 'ACL'],
  ].flatMap(([count, what]) => (count === 0 ? [] : [`${count} ${what}`]));
  const different = differences.length === 0 ? [] : [`mismatched: ${differences.join(', ')} (an object may differ in several)`];
  const missingAtSource =
    total.missingAtSource === 0
      ? []
      : [
          `missing at source: ${total.missingAtSource} ${total.missingAtSource === 1 ? 'object' : 'objects'} the source lacks: not a fault of the copy (a run records them as missing), and nothing to compare`,
        ];
  // Every byte right, only ACLs off: said as such, since the fix copies nothing.
  const aclsOnly = total.missing + total.sizeDiffers + total.contentTypeDiffers + total.cacheControlDiffers + total.md5Differs + total.errors === 0;
  const verdict = cutShort
    ? `verify: ${cutShort} after checking ${total.checked} objects${sampled}, ${problems === 0 ? 'none' : problems} of them off${
        problems === 0 || repair ? '' : ' (the lines above)'
      }: the others were not checked${cutShort === 'stopped' ? '' : '; run verify again to check them all'}`
    : problems === 0
      ? `verify: all ${total.checked - total.missingAtSource} checked objects the source has match it${sampled}`
      : aclsOnly
        ? `verify: all ${total.checked - total.missingAtSource} checked objects the source has are present and whole${sampled}; ${aclVerdict(total, repair)}`
        : `verify: ${problems} of ${total.checked} checked objects are off${sampled}: ${repair ? repairVerdict(total) : offVerdict(total)}`;
  const compared = `${listing?.md5Compared === false ? 'presence and size of every object (a folder keeps no MD5)' : 'presence, size and MD5 of every object'}${
    acl ? ', and the ACL of each the destination holds' : ''
  }`;
  const attributes =
    listing === undefined
      ? []
      : listing.attributesPercent === 0
        ? [`by listing: ${compared}; Content-Type and Cache-Control not checked (--sample PERCENT checks them by HEAD)`]
        : [`by listing: ${compared}; Content-Type and Cache-Control by HEAD on a ${listing.attributesPercent}% sample`];
  return [...table, ...different, ...missingAtSource, ...attributes, verdict].join('\n');
}

/** Why some objects' bytes have no MD5 to compare, as the summary says it. */
function whyNoMd5(config: Config): string {
  const folder = config.source.type === 'fs' ? 'the source' : config.destination.type === 'fs' ? 'the destination' : undefined;
  return folder === undefined ? 'their ETags are no MD5 of the bytes (multipart uploads, encrypted objects)' : `${folder} is a folder, which keeps no MD5`;
}

/**
 * Before the verdict, a line on the objects whose bytes were compared by size only (so that "match" is not taken for
 * more than it is), or read and hashed under --checksum.
 */
function withBytesCompared(text: string, total: Omit<VerifyJobSummary, 'job'>, why: string): string {
  const lines = text.split('\n');
  const said = [
    ...(total.checksummed === 0 ? [] : [`checksum: ${total.checksummed} ${plural(total.checksummed)} read and hashed at both stores (no MD5 to compare)`]),
    ...(total.sizeOnly === 0
      ? []
      : [
          `size only: ${total.sizeOnly} ${plural(total.sizeOnly)} compared by presence and size, not their bytes: ${why}; ` +
            'verify --checksum reads and hashes both sides of those',
        ]),
  ];
  return [...lines.slice(0, -1), ...said, lines.at(-1)!].join('\n');
}

function plural(count: number): string {
  return count === 1 ? 'object' : 'objects';
}

/** Without --repair: copy again what is missing or different; what could not be checked is checked again first. */
function offVerdict(total: Omit<VerifyJobSummary, 'job'>): string {
  const repair = 'copy exactly those again with mastosync verify <the same jobs and scope> --repair, or see the lines above';
  if (total.errors === 0) return repair;
  const unchecked = `${total.errors} could not be checked (unchecked, above): run verify again`;
  return total.missing + total.mismatched === 0 ? unchecked : `${repair}; ${unchecked}`;
}

function repairVerdict(total: Omit<VerifyJobSummary, 'job'>): string {
  const unchecked = total.errors === 0 ? '' : `; ${total.errors} could not be checked (unchecked, above): run verify again`;
  const copied = total.repaired - total.aclsSet;
  const done = total.aclsSet === 0 ? `${copied} copied again` : `${copied} copied again and the ACL of ${total.aclsSet} set`;
  if (total.unrepaired === 0) {
    return `all ${total.repaired} missing or different were ${total.aclsSet === 0 ? 'copied again' : `repaired: ${done}`}${unchecked}`;
  }
  return `${done}, ${total.unrepaired} not (not repaired, above)${unchecked}`;
}

/** Only ACLs off: how many, which way, and what --repair does (or did) about them. */
function aclVerdict(total: Omit<VerifyJobSummary, 'job'>, repair: boolean): string {
  const exposed = total.aclPrivateReadable;
  const hidden = total.aclDiffers - exposed;
  const ways = [
    ...(exposed === 0 ? [] : [`${exposed} Mastodon makes private ${exposed === 1 ? 'is' : 'are'} readable by others`]),
    ...(hidden === 0 ? [] : [`${hidden} Mastodon makes public ${hidden === 1 ? 'is' : 'are'} not`]),
  ].join(', ');
  const wrong = `${total.aclDiffers} ${total.aclDiffers === 1 ? 'has' : 'have'} the wrong ACL (${ways})`;
  if (!repair) return `${wrong}: mastosync verify <the same jobs and scope> --acl --repair sets those ACLs, copying no bytes`;
  const wrongBefore = wrong.replace(/ (has|have) /, ' had ');
  if (total.unrepaired === 0) return `${wrongBefore}: all ${total.aclsSet} set`;
  return `${wrongBefore}: ${total.aclsSet} set, ${total.unrepaired} not (not repaired, above)`;
}

/**
 * A store's stop says how to go on after a run ("…, then run again with --resume"); verify takes no --resume: the
 * admin runs the same verify again (a review found `verify --repair --resume` refused, exit 2).
 */
function asVerifyFix(line: string): string {
  return line.replaceAll('run again with --resume', 'run the same verify again');
}
