/**
 * The copy run: rows → keys → copy jobs → results. Each job's table is read page by page; each row's owned
 * objects go into one bounded pool shared by all jobs (so the pool stays full across table boundaries); each
 * result goes to the checkpoint and the job's tally. A graceful stop stops reading and lets in-flight copies
 * finish; the hard stop aborts them.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../log.js';
import { DatabaseLostError, type Database } from '../db/connection.js';
import { movedColumn, readRowPages, readRowsById, stampOf as stampOfAttachment } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { WHOLE_DATABASE, coversEveryRow, inTimeWindow, ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName, Row } from '../mastodon/tables.js';
import type { ListedObject, ObjectStore } from '../storage/types.js';
import { md5FromEtag, type FatalStoreError } from '../storage/errors.js';
import { joinWithBothStores } from './listingJoin.js';
import { withRetries } from './retry.js';
import { givePresentAccess, reapplyAccess } from './access.js';
import { findAtSource, lookForNewest } from './source.js';
import { describeError } from '../errors.js';
import { lessMargin, type CheckpointWriter, type ObjectLine, type ResumeState } from './checkpoint.js';
import { copyOwnedObject, type CopyContext, type CopyResult, type ServerCopy } from './copy.js';
import { BoundedPool } from './pool.js';
import { RowTracker } from './watermark.js';
import { STORE_PATIENCE_MS, StoreUnreachableError, StoreWatch } from './storeWatch.js';
import { FailureStreaks, checkStreakObjects, describeFailedAt, describeFailure, streakObjects, type StoreFailsEveryObjectError } from './failureStreak.js';

export interface RunOptions {
  readonly jobs: readonly JobName[];
  readonly db: Database;
  readonly schema: Schema;
  readonly source: ObjectStore;
  readonly destination: ObjectStore;
  readonly batchSize: number;
  readonly concurrency: number;
  /** Rows at most per job. */
  readonly limit?: number;
  /** Only these rows and objects (--since, --shard, --skip-remote-cache, …); default: everything. */
  readonly scope?: Scope;
  readonly acl: string;
  readonly storageClass?: string;
  /** Copy on the provider instead of streaming (src/cli/stores.ts decides from [sync] copy_mode). */
  readonly serverCopy?: ServerCopy;
  readonly retries: number;
  readonly resume: ResumeState;
  /** The database's clock at the run's start (ISO UTC): a job that reads all it must records it as its sync time. */
  readonly startedAt?: string;
  /** How far before a sync time a change may carry its timestamp yet commit after it ([sync] change_margin). */
  readonly changeMarginMs?: number;
  /**
   * List both stores and copy only what the destination lacks or holds otherwise than the source (size, and MD5
   * where both listings carry one); the others are recorded `present` (--skip-existing). Rows are read per folder
   * in key order (listingJoin.ts), so the watermark moves once, when the job is done.
   */
  readonly skipExisting?: boolean;
  /** Copy only the objects the checkpoint records as failed or missing (--retry-failed); read no other rows. */
  readonly retryFailedOnly?: boolean;
  /**
   * Objects an earlier run copied (src/sync/destinationCheck.ts copiedBefore): what a streak of failures is checked
   * with (failureStreak.ts) before this run has copied one of its own. Asked for at the first such streak only.
   */
  readonly findKnownGood?: () => Promise<readonly OwnedObject[]>;
  /** Absent on a dry run: nothing is written. */
  readonly checkpoint?: CheckpointWriter;
  readonly dryRun: boolean;
  /** Each planned copy of a dry run. */
  readonly onPlan?: (object: OwnedObject, sourceKey: string, destinationKey: string) => void;
  /** Each finished object (progress display). */
  readonly onResult?: (job: JobName, object: OwnedObject, result: CopyResult) => void;
  /** Each body that streams, while it streams (progress display: see CopyContext.onStream). */
  readonly onStream?: CopyContext['onStream'];
  /** Objects of a row that an earlier run finished (resume), so not copied again (progress display). */
  readonly onSkipped?: (job: JobName, objects: number) => void;
  /** Objects below the watermark a resumed run takes on again, outside the count above it (progress display). */
  readonly onRevisited?: (job: JobName, objects: number) => void;
  /** Given, once, a live view of the run for readers that look now and then (metrics): cheap to keep, read on demand. */
  readonly observe?: (view: RunView) => void;
  /**
   * Tests shorten how long a store may answer nothing before the run stops (src/sync/storeWatch.ts), and fail every
   * object of a clear run of them (src/sync/failureStreak.ts); nothing else should.
   */
  readonly storePatienceMs?: number;
  /** Stop reading rows; in-flight copies finish. */
  readonly stop: AbortSignal;
  /** Abort in-flight copies too. */
  readonly abort: AbortSignal;
  readonly log: Logger;
}

/** The run as it goes: the summaries fill as the jobs run (the same objects runJobs returns). */
export interface RunView {
  readonly jobs: ReadonlyArray<Readonly<JobSummary>>;
  /** The job's watermark now: every row up to this id is finished. */
  watermark(job: JobName): string | undefined;
  /** Copies running now (not those queued). */
  readonly copiesInFlight: number;
  /** Copies allowed at once now: below --concurrency while the provider throttles. */
  readonly concurrency: number;
}

export interface JobSummary {
  job: JobName;
  rows: number;
  /** Rows at or below the watermark whose files changed since an earlier run copied them (resume). */
  changed: number;
  objects: number;
  copied: number;
  relocated: number;
  /** At the destination already, as at the source (--skip-existing): not copied. */
  present: number;
  missing: number;
  failed: number;
  /** Finished by an earlier run (resume). */
  skipped: number;
  /**
   * Rows read whose objects were not all finished, a stop having cut them short or come before they began (a page of
   * rows is read at once): the next --resume copies the rest.
   */
  unfinishedRows: number;
  /** Of `present`, the private ones (backups, media of suspended accounts) whose ACL was set to private (--skip-existing). */
  presentMadePrivate: number;
  /** Objects copied before whose access was set again: their account was (un)suspended or their status discarded since. */
  aclsReapplied: number;
  /**
   * Objects the checkpoint records as finished that the destination no longer lists, or lists otherwise than the
   * source (--resume --skip-existing: the listing wins): copied again, and counted in copied or relocated too.
   */
  recopied: number;
  /** Of those copied or relocated, the ones the provider copied (CopyObject, Copy Blob, X-Copy-From): not in `bytes`. */
  copiedOnProvider: number;
  /** The bytes that passed through the run (streamed): a copy on the provider passes none. */
  bytes: number;
  ms: number;
}

export interface RunSummary {
  readonly jobs: JobSummary[];
  readonly interrupted: boolean;
  /** What stopped the run because no retry could fix it (a bucket gone, a full disk), naming the fix. */
  readonly stoppedBy?: RunStop;
  /**
   * The objects this run looked for at the source for the first time (not those missing before), and how many of
   * them it did not find: an empty or wrong source (an unmounted folder, another bucket) shows as most of them.
   */
  readonly firstLooks: { readonly found: number; readonly missing: number; readonly atDestination: number };
  /** Copies failed, by where (`destination PUT`, `source GET`…; a fatal one by its side), for the summary's note. */
  readonly failedAt: ReadonlyMap<string, number>;
}

/** What stops a run that no retry can fix: a store's answer, the checkpoint's disk, the database gone for good. */
type RunStop = FatalStoreError | CheckpointWriteError | DatabaseLostError | SourceLooksEmptyError;

/**
 * How many objects looked for at the source, none found, make a run look for the newest rows' objects, and stop it if
 * none of those is there either: an unmounted folder or a wrong bucket would record every object of the database
 * missing. An old instance may well have lost its oldest files (the first rows a bulk run reads), not its newest.
 */
const EMPTY_SOURCE_LOOKS = 100;

/** Not one of the first EMPTY_SOURCE_LOOKS objects looked for is at the source: it is empty, or not Mastodon's. */
class SourceLooksEmptyError extends Error {
  override readonly name = 'SourceLooksEmptyError';
  constructor(source: string, looked: number, newest: number) {
    super(
      `none of the ${looked} objects looked for is at the source ${source}, nor any of the ${newest} newest rows' objects: is it Mastodon's bucket or folder (mounted, right bucket, right key_prefix)? Fix [source], then run again with --resume`,
    );
  }
}

/** Objects newly missing at the source logged one by one at warn; the rest at info, counted in the summary. */
export const MISSING_WARNINGS = 20;

/** The checkpoint could not be written (a full disk where it lives): the run stops, as for a fatal store error. */
export class CheckpointWriteError extends Error {
  override readonly name = 'CheckpointWriteError';
  constructor(options: { cause: unknown }) {
    super(
      `cannot write the checkpoint (${describeError(options.cause)}): free space where it lives (or pass --checkpoint elsewhere), then run again with --resume`,
      options,
    );
  }
}

const WATERMARK_EVERY_MS = 1000;

export async function runJobs(options: RunOptions): Promise<RunSummary> {
  const { log } = options;
  // The first error no retry can fix stops the run as a graceful stop does: queued copies never start.
  let stoppedBy: RunStop | undefined;
  const halt = new AbortController();
  const stop = AbortSignal.any([options.stop, halt.signal]);
  const stopFor = (cause: RunStop) => {
    if (stoppedBy !== undefined) return;
    stoppedBy = cause;
    // The CLI says the cause and the fix in one line at the end; here only that the stop began, for JSON logs.
    log.info({ cause: cause.message }, 'stopping: no retry can fix this; no new copies, finishing those in flight');
    halt.abort(cause);
  };
  const writeCheckpoint = (write: (checkpoint: CheckpointWriter) => void) => {
    if (options.checkpoint === undefined) return;
    try {
      write(options.checkpoint);
    } catch (error) {
      stopFor(new CheckpointWriteError({ cause: error }));
    }
  };
  const pool = new BoundedPool(options.concurrency);
  const throttle = new Throttle(pool, options.concurrency, log);
  // A store that answers nothing is waited for, and stops the run once it has for the patience.
  const watch = new StoreWatch('finished objects are in the checkpoint; once it answers again, run again with --resume', log, options.storePatienceMs);
  const source = watch.watch(options.source, 'source');
  const destination = watch.watch(options.destination, 'destination');
  // A store that answers yet fails every object stops the run too: once an object known good fails again as well, or
  // with none to try, after as long as a silent one.
  let knownGood: OwnedObject | undefined;
  // Undefined until looked for; emptied as they turn out gone from the source.
  let earlierGood: OwnedObject[] | undefined;
  const streaks = new FailureStreaks({
    objects: streakObjects(options.concurrency),
    ms: options.storePatienceMs ?? STORE_PATIENCE_MS,
    where: { source: options.source.description, destination: options.destination.description },
    canCheck: () => knownGood !== undefined || (options.findKnownGood !== undefined && (earlierGood === undefined || earlierGood.length > 0)),
    checkAfter: checkStreakObjects(options.concurrency),
  });
  /** While a known-good object is copied again, no other copy starts: the verdict decides whether any does. */
  let checking: Promise<void> | undefined;
  const context: CopyContext = {
    source,
    destination,
    acl: options.acl,
    storageClass: options.storageClass,
    retries: options.retries,
    onThrottle: () => throttle.slowDown(),
    signal: options.abort,
    serverCopy: options.serverCopy,
    onStream: options.onStream,
  };
  /** The checkpoint records `object` as copied, for the file `row` names now (a rewrite at the same key is not). */
  const doneBefore = (row: Row, object: OwnedObject) => options.resume.isDone(options.destination.locate(object.key), stampOf(row, object));
  const summaries: JobSummary[] = [];
  const trackers = new Map<JobName, RowTracker>();
  options.observe?.({
    jobs: summaries,
    watermark: (job) => trackers.get(job)?.watermark,
    get copiesInFlight() {
      return pool.active;
    },
    get concurrency() {
      return pool.concurrency;
    },
  });
  const scope = options.scope ?? WHOLE_DATABASE;
  const wholeScope = coversEveryRow(scope);
  // Of those missing, the ones a --since pass found at the destination: after a switch Mastodon stores new media there
  // only, so they say nothing about the source (docs/migration.md step 4).
  const firstLooks = { found: 0, missing: 0, atDestination: 0 };
  const failedAt = new Map<string, number>();
  const finishing: Promise<void>[] = [];

  try {
    for (const job of options.jobs) {
      if (stop.aborted) break;
      await runJob(job);
    }
  } catch (error) {
    // Reconnecting gave up, or a store listed answered nothing for the patience: what was copied is recorded, so the
    // run ends with its summary, like a store's fatal error.
    if (error instanceof DatabaseLostError) stopFor(error.withFix('finished objects are in the checkpoint; once the cause is fixed, run again with --resume'));
    else if (error instanceof StoreUnreachableError) stopFor(error);
    else throw error;
  } finally {
    // Even when reading fails, the copies already started finish and are recorded before the error surfaces.
    await pool.drain();
  }
  await Promise.all(finishing);
  return { jobs: summaries, interrupted: options.stop.aborted, ...(stoppedBy !== undefined && { stoppedBy }), firstLooks, failedAt };

  /**
   * A streak of failures (`streakStop`): copy again the last object this run copied, else one an earlier run did. If
   * it copies, both stores work and the failures are the objects' own: the run goes on. If it fails too, it stops.
   */
  async function checkStreak(streakStop: StoreFailsEveryObjectError): Promise<void> {
    if (knownGood === undefined && earlierGood === undefined) {
      try {
        earlierGood = [...((await options.findKnownGood?.()) ?? [])];
      } catch (error) {
        log.warn({ error: describeError(error) }, 'could not read objects copied before, to tell a store failing every object from objects failing alone');
        earlierGood = [];
      }
    }
    const checkStarted = performance.now();
    for (;;) {
      const object = knownGood ?? earlierGood?.[0];
      if (object === undefined || stop.aborted) return streaks.checked(false);
      const result = await copyOwnedObject(object, context);
      const key = options.destination.locate(object.key);
      if (result.status === 'copied' || result.status === 'relocated') {
        log.info(
          { failedInARow: streakStop.problem, knownGood: key },
          'copies failed in a row, and an object copied before copies again: they fail each for its own reason; going on',
        );
        return streaks.checked(true);
      }
      if (result.fatal !== undefined) return stopFor(result.fatal);
      if (result.status === 'failed') {
        if (options.abort.aborted) return streaks.checked(false);
        // A store restarting (MinIO, Ceph, a wave of SlowDown) fails for a minute or so: copies stay paused and the
        // object is tried again until RECHECK_WINDOW_MS (at most the patience) has passed, and only then called broken.
        const waited = performance.now() - checkStarted;
        const window = Math.min(RECHECK_WINDOW_MS, options.storePatienceMs ?? STORE_PATIENCE_MS);
        if (waited < window && !stop.aborted) {
          const pause = Math.min(RECHECK_PAUSE_MS, window - waited);
          log.warn(
            { knownGood: key, error: result.error, retryInMs: Math.round(pause) },
            'copies failed in a row, and an object copied before fails too: copies wait, and it is tried again before the run stops',
          );
          // A signal ends the wait (not the run's bookkeeping), as retry.ts's backoff does.
          await sleep(pause, undefined, { signal: stop }).catch(() => undefined);
          continue;
        }
        return stopFor(streaks.checkFailed(key, result));
      }
      // No longer at the source: known good no more.
      if (object === knownGood) knownGood = undefined;
      else earlierGood?.shift();
    }
  }

  /** `missing`, marked atDestination when the destination holds the object; a HEAD that fails says nothing. */
  async function heldAtDestination(object: OwnedObject, missing: CopyResult): Promise<CopyResult> {
    const held = await destination.head(object.key).then(
      (info) => info !== undefined,
      () => false,
    );
    return held ? { ...missing, atDestination: true } : missing;
  }

  /** After EMPTY_SOURCE_LOOKS misses in a row: the run goes on only if the newest rows' objects are at the source. */
  async function lookAtNewest(): Promise<void> {
    let newest: { looked: string[]; found: number };
    try {
      newest = await lookForNewest(options.db, options.schema, options.source);
    } catch (error) {
      log.warn({ error: describeError(error) }, 'could not look for the newest objects at the source');
      newest = { looked: [], found: 0 };
    }
    if (newest.found === 0) {
      stopFor(new SourceLooksEmptyError(options.source.description, EMPTY_SOURCE_LOOKS, newest.looked.length));
      return;
    }
    log.info(
      { missing: EMPTY_SOURCE_LOOKS, newestFound: newest.found, newestLooked: newest.looked.length },
      'the first objects looked for are missing at the source but the newest are there (old files lost): going on',
    );
  }

  async function runJob(job: JobName): Promise<void> {
    const summary: JobSummary = { job, ...noCounts(), ms: 0 };
    summaries.push(summary);
    const started = performance.now();
    const tracker = new RowTracker(options.resume.watermark(job));
    trackers.set(job, tracker);
    const changesFrom = options.retryFailedOnly ? undefined : options.resume.changesFrom(job);
    // Attachments changed this recently may be read again by the next run's changed-rows pass: their lines say when
    // they changed, so that pass knows they are copied already and sends no request for them.
    const recentFrom =
      options.resume.recentFrom(job) ?? (options.startedAt === undefined ? undefined : lessMargin(options.startedAt, options.changeMarginMs ?? 0));
    let readEverything = false;
    // Row id → its objects not recorded yet, in every pass: what a stop leaves unfinished, for the summary.
    const unsettled = new Map<string, number>();
    const expect = (id: string, objects: number) => unsettled.set(id, (unsettled.get(id) ?? 0) + objects);
    const settled = (id: string) => {
      const left = (unsettled.get(id) ?? 1) - 1;
      if (left > 0) unsettled.set(id, left);
      else unsettled.delete(id);
    };
    // Rows of a page read before a stop that were never begun and own objects not finished: still to do, as much as
    // rows cut short are (they were counted in `rows` when their page was read).
    let notBegun = 0;
    // --resume --skip-existing: keys the checkpoint called finished that the destination lacks, until recorded again.
    const gone = new Set<string>();
    let lastMarkWrite = performance.now();
    let outstanding = 0;
    let readingDone = false;
    let finished!: () => void;
    finishing.push(new Promise<void>((resolve) => (finished = resolve)));
    // --skip-existing reads rows out of id order: the job's last row is the watermark once everything is settled,
    // and only if the join read every row: a read that failed partway (the database lost for good) left rows below
    // the last one read unread, and a resume from past them would never copy their objects.
    let lastRow: string | undefined;
    /** Rows read by id to try their objects again: counted once in `rows`, though the join or the changed-rows pass reads them again. */
    const retriedRows = new Set<string>();
    let joinedEveryRow = false;
    const finishIfDone = () => {
      if (!readingDone || outstanding > 0) return;
      // The join reads rows below the watermark too (--resume --skip-existing): the watermark only ever moves up.
      if (lastRow !== undefined && joinedEveryRow && !stop.aborted && (tracker.watermark === undefined || BigInt(lastRow) > BigInt(tracker.watermark)))
        tracker.begin(lastRow, 0);
      summary.ms = Math.round(performance.now() - started);
      summary.unfinishedRows = unsettled.size + notBegun;
      if (tracker.watermark !== undefined) writeCheckpoint((checkpoint) => checkpoint.watermark(job, tracker.watermark!));
      // Every row below the watermark is now as the database had it at the run's start, or newer.
      if (readEverything && !stop.aborted && options.startedAt !== undefined) writeCheckpoint((checkpoint) => checkpoint.synced(job, options.startedAt!));
      finished();
    };

    // Per object: one async function (this), one closure (the pool's task), no other promise.
    const copy = async (object: OwnedObject, retry: boolean, tracked: boolean, updated: string | undefined, known?: () => Promise<CopyResult | undefined>) => {
      try {
        const found = known === undefined ? undefined : await known();
        if (found === undefined && checking !== undefined) await checking;
        // Stopped while this copy waited in the queue: it never started, and stays to do (its row is not settled).
        if (stop.aborted) return;
        const result = found ?? (await copyOwnedObject(object, context));
        record(object, retry, tracked, updated, result.status === 'missing' && scope.since !== undefined ? await heldAtDestination(object, result) : result);
      } catch (error) {
        // Only the bookkeeping can throw (a checkpoint write on a full disk): say so, and never leave the job waiting.
        log.error({ job, id: object.id, key: object.key, err: error }, 'could not record a copy');
        throw error;
      } finally {
        outstanding -= 1;
        finishIfDone();
      }
    };

    const record = (object: OwnedObject, retry: boolean, tracked: boolean, updated: string | undefined, result: CopyResult) => {
      if (result.fatal !== undefined) stopFor(result.fatal);
      // Cut short by the hard stop, or by a store gone: not a failure of the object, and not done either; the next
      // run copies it.
      if (result.status === 'failed' && (options.abort.aborted || result.fatal instanceof StoreUnreachableError)) {
        log.debug({ job, id: object.id, key: object.key, error: result.error }, 'copy aborted by the stop');
        return;
      }
      if (result.status !== 'failed') throttle.succeeded();
      const key = options.destination.locate(object.key);
      // Under --retry-failed every object failed before: exempted, they would leave that run no stop at all (review2)
      // when no object known good checks a streak.
      const failing = streaks.record(result, key, result.status === 'failed' && !options.retryFailedOnly && options.resume.wasFailed(key));
      if (failing?.check) {
        checking = checkStreak(failing).finally(() => (checking = undefined));
        finishing.push(checking);
      } else if (failing !== undefined) stopFor(failing);
      if (result.status === 'copied' || result.status === 'relocated') knownGood = object;
      // Which side failed, in the checkpoint and the log line alike.
      const where = result.failedAt === undefined ? result.fatal?.side : describeFailedAt(result.failedAt);
      if (where !== undefined) failedAt.set(where, (failedAt.get(where) ?? 0) + 1);
      const error = describeFailure(result);
      if (options.checkpoint !== undefined) {
        // The line's optional fields stay undefined when absent: the line builder leaves those out.
        const line: ObjectLine = {
          job,
          id: object.id,
          key,
          status: result.status,
          bytes: result.bytes,
          ms: result.ms,
          from: result.from,
          error,
          retry: retry || undefined,
          updated,
        };
        writeCheckpoint((checkpoint) => checkpoint.record(line));
      }
      summary[result.status] += 1;
      if (result.aclSet) summary.presentMadePrivate += 1;
      summary.bytes += result.bytes;
      if (gone.size > 0 && gone.delete(key) && (result.status === 'copied' || result.status === 'relocated')) summary.recopied += 1;
      if (result.onProvider) summary.copiedOnProvider += 1;
      settled(object.id);
      if (result.atDestination) firstLooks.atDestination += 1;
      else if (!retry && result.status !== 'failed') {
        if (result.status === 'missing') firstLooks.missing += 1;
        else firstLooks.found += 1;
        if (firstLooks.found === 0 && firstLooks.missing === EMPTY_SOURCE_LOOKS) finishing.push(lookAtNewest());
      }
      logResult(log, job, object.id, result.status === 'missing' ? object.key : key, result, error, retry, firstLooks.missing > MISSING_WARNINGS);
      options.onResult?.(job, object, result);
      if (tracked && tracker.settle(object.id) && performance.now() - lastMarkWrite >= WATERMARK_EVERY_MS) {
        lastMarkWrite = performance.now();
        writeCheckpoint((checkpoint) => checkpoint.watermark(job, tracker.watermark!));
      }
    };

    /**
     * `known`: what --skip-existing found out first (present, missing), else undefined to copy. A promise only when
     * the caller must wait (the pool is full, or a dry run looks something up): the row loop awaits nothing per object
     * otherwise.
     */
    const submit = (row: Row, object: OwnedObject, retry: boolean, tracked: boolean, known?: () => Promise<CopyResult | undefined>) => {
      // A graceful stop starts no new copy, not even the rest of a row's styles.
      if (stop.aborted) return undefined;
      if (options.dryRun) return plan(object, tracked, known);
      outstanding += 1;
      const updated = recentChange(row, object);
      return pool.submit(() => copy(object, retry, tracked, updated, known));
    };

    const plan = async (object: OwnedObject, tracked: boolean, known?: () => Promise<CopyResult | undefined>) => {
      // --skip-existing: nothing to plan for an object found present or missing, but the summary counts it, so that
      // the plan's few lines are seen against all the destination already holds.
      const found = known === undefined ? undefined : await known();
      if (found !== undefined) {
        summary[found.status] += 1;
        settled(object.id);
        return;
      }
      options.onPlan?.(object, options.source.locate(object.key), options.destination.locate(object.key));
      if (tracked) tracker.settle(object.id);
      settled(object.id);
    };

    /**
     * --skip-existing: an object both stores list alike is recorded present at once, with no copy to queue; a private
     * one once its ACL is set (givePresentAccess), in the pool.
     */
    const recordPresent = (row: Row, object: OwnedObject, retry: boolean) => {
      if (options.dryRun) {
        summary.present += 1;
        settled(object.id);
      } else if (object.visibility !== 'default' && destination.access !== undefined)
        return submit(row, object, retry, false, () => withAccess(object, PRESENT));
      else record(object, retry, false, recentChange(row, object), PRESENT);
      return undefined;
    };
    const withAccess = (object: OwnedObject, found: CopyResult) =>
      options.dryRun
        ? Promise.resolve(found)
        : givePresentAccess(object, found, { destination, acl: options.acl, retries: options.retries, signal: options.abort });

    /** Every object the row owns was finished by an earlier run (resume). */
    const finishedAlready = (row: Row) => ownedInScope(job, row, scope).every((object) => doneBefore(row, object));

    /** When the object's attachment changed, if that is recent enough for the checkpoint line to say so. */
    const recentChange = (row: Row, object: OwnedObject): string | undefined => {
      const updated = stampOf(row, object);
      return updated !== undefined && recentFrom !== undefined && updated >= recentFrom ? updated : undefined;
    };

    /**
     * --skip-existing: the job's owned objects joined with both listings, each under its folder, in one read of the
     * rows. An object both list alike is present; one the source does not list at its exact key is looked for under
     * its legacy keys by HEAD (no GET for an object the source lacks); the others are copied.
     */
    const copyWhatDiffers = async (minId: string | undefined, retried: ReadonlySet<string>) => {
      const after = { ...scope, ...(minId !== undefined && { minId }) };
      const joined = joinWithBothStores(
        {
          db: options.db,
          schema: options.schema,
          job,
          scope: after,
          batchSize: options.batchSize,
          // Rows as a plain run counts them: every row read, those that own no file too.
          onRead: (rows) => (summary.rows += rows),
          onRow: (row) => {
            // Read by id already to be tried again, and counted there.
            if (retriedRows.delete(String(row.id))) summary.rows -= 1;
            if (lastRow === undefined || BigInt(String(row.id)) > BigInt(lastRow)) lastRow = String(row.id);
          },
        },
        { source, destination },
        options.retries,
        stop,
      );
      for await (const batch of joined) {
        for (const {
          owned: { object, row },
          listed: [atDestinationNow, atSource],
        } of batch) {
          if (stop.aborted) return;
          const key = destination.locate(object.key);
          // Tried again by the first pass (failed or missing before), and counted there.
          if (retried.has(key)) continue;
          summary.objects += 1;
          // The listing wins over the checkpoint: what an earlier run finished is skipped only if the destination
          // still lists it as the source does (an emptied bucket is filled again).
          if (copiedAsOf(options.resume, job, row, object, key)) {
            if (atDestinationNow !== undefined && (atSource === undefined || sameListed(atSource, atDestinationNow))) {
              summary.skipped += 1;
              options.onSkipped?.(job, 1);
              continue;
            }
            gone.add(key);
          }
          expect(object.id, 1);
          const retry = options.resume.wasOutstanding(key);
          if (atSource !== undefined) {
            if (atDestinationNow !== undefined && sameListed(atSource, atDestinationNow)) await recordPresent(row, object, retry);
            else await submit(row, object, retry, false);
            continue;
          }
          await submit(row, object, retry, false, async () => {
            const found = await findAtSource(object, (sourceKey) =>
              withRetries([source], () => source.head(sourceKey), { retries: options.retries, signal: options.abort }),
            );
            if (found === undefined) return MISSING;
            if (atDestinationNow === undefined || found.found.contentLength !== atDestinationNow.size) return undefined;
            const md5 = md5FromEtag(found.found.etag);
            return md5 === undefined || atDestinationNow.md5 === undefined || md5 === atDestinationNow.md5
              ? withAccess(object, { ...PRESENT, from: found.from })
              : undefined;
          });
        }
      }
    };

    try {
      // Objects that failed or were missing in rows not read again (below the watermark; with --retry-failed, all):
      // fetch those rows by id and try them again. Those failing again feed the failure stop only where an object
      // known good is copied again to check it (failureStreak.ts): tried first, a few hundred objects a lost disk or
      // an archive tier refuses would otherwise stop every run here, before its first new row.
      const before = options.retryFailedOnly ? options.resume.outstanding(job) : options.resume.outstandingBelowWatermark(job);
      const retried = new Set<string>();
      for (let start = 0; start < before.length && !stop.aborted; start += options.batchSize) {
        const batch = before.slice(start, start + options.batchSize);
        const keys = new Map(batch.map((entry) => [entry.key, entry.id]));
        const rows = await readRowsById(options.db, options.schema, job, [...new Set(batch.map((entry) => entry.id))], scope);
        summary.rows += rows.length;
        for (const row of rows) {
          retriedRows.add(String(row.id));
          for (const object of ownedInScope(job, row, scope)) {
            const key = options.destination.locate(object.key);
            if (!keys.delete(key)) continue;
            retried.add(key);
            summary.objects += 1;
            // --skip-existing's count covers every row; otherwise only those above the watermark.
            if (!options.skipExisting) options.onRevisited?.(job, 1);
            expect(object.id, 1);
            await submit(row, object, true, false);
          }
        }
        // A row deleted since, or whose file changed or was removed (tootctl media remove): the database no longer
        // owns what failed or was missing. Said in the checkpoint, so that it is not looked for again.
        for (const [key, id] of keys) {
          log.info({ job, id, key }, 'failed or missing before, but no longer owned (or out of scope): not tried again');
          if (wholeScope && !options.dryRun)
            writeCheckpoint((checkpoint) => checkpoint.record({ job, id, key, status: 'disowned', bytes: 0, ms: 0, retry: true }));
        }
      }
      if (options.retryFailedOnly) return;

      // Rows at or below the watermark whose files changed since the last run that read them all: copy what changed.
      const watermark = tracker.watermark;
      // --skip-existing compares every row's objects with both listings below: a changed file is a key the destination lacks.
      if (changesFrom !== undefined && watermark !== undefined && !options.skipExisting) {
        const below = { ...scope, maxId: scope.maxId !== undefined && BigInt(scope.maxId) < BigInt(watermark) ? scope.maxId : watermark };
        const changedPages = readRowPages(options.db, options.schema, job, { batchSize: options.batchSize, scope: below, changedSince: changesFrom });
        for await (const rows of changedPages) {
          if (stop.aborted) break;
          for (const row of rows) {
            // Objects tried again above are counted there.
            const owned = ownedInScope(job, row, scope).filter((object) => !retried.has(options.destination.locate(object.key)));
            const changed = owned.filter((object) => row[`${object.attachment}_changed`] === true);
            // Saved since with a version that puts it under cache/ (src/db/rows.ts): perhaps moved there by `tootctl
            // upgrade storage-schema`, perhaps only refreshed. The destination is asked; a key it holds is not copied.
            const moved = owned.filter(
              (object) =>
                row[`${object.attachment}_changed`] !== true && row[movedColumn(object.attachment)] === true && object.underCache && !doneBefore(row, object),
            );
            if (changed.length === 0 && moved.length === 0) continue;
            // A row changed just before the last run's start shows up again: its objects are copied already.
            const pending = changed.filter((object) => !doneBefore(row, object));
            if (!retriedRows.has(String(row.id))) summary.rows += 1;
            options.onRevisited?.(job, changed.length + moved.length);
            summary.objects += changed.length + moved.length;
            summary.skipped += changed.length - pending.length;
            if (pending.length < changed.length) options.onSkipped?.(job, changed.length - pending.length);
            if (pending.length + moved.length === 0) continue;
            if (pending.length > 0) summary.changed += 1;
            expect(String(row.id), pending.length + moved.length);
            for (const object of pending) await submit(row, object, options.resume.wasOutstanding(options.destination.locate(object.key)), false);
            for (const object of moved) {
              await submit(row, object, options.resume.wasOutstanding(options.destination.locate(object.key)), false, async () =>
                (await withRetries([destination], () => destination.head(object.key), { retries: options.retries, signal: options.abort })) === undefined
                  ? undefined
                  : PRESENT,
              );
            }
          }
        }
      }

      // Accounts (un)suspended and statuses discarded since the last sync, or since --since (a migration's delta pass):
      // Mastodon changed the access of their objects, not their rows. Every object of such an owner, not only those
      // whose attachment changed in the window.
      let accessFailed = false;
      // Every row, not only those up to the watermark: an interrupted run finished objects above it, which this run
      // skips as done (review H3).
      const accessSince = changesFrom !== undefined && watermark !== undefined ? { since: changesFrom, maxId: scope.maxId ?? MAX_ID } : sinceOnly(scope);
      // Not for a look at a few rows (--limit), which must not walk every account changed since the last run.
      if (accessSince !== undefined && !options.dryRun && options.limit === undefined && !stop.aborted) {
        // The copies submitted above (failed before, changed) write their objects first: one of them may be the
        // account's probe, which must not be asked before it is written (review M1).
        await pool.drain();
        const whole = { ...scope, since: undefined, until: undefined };
        // Rows above the watermark not done are copied below, with the access of now (a --since run's first has none);
        // not with --skip-existing, which leaves an object the destination holds as it is (review1 L8). Only those the
        // copy reads: the pass reads `whole`, the copy `scope`, which is `whole` and the window. Outside it, above a
        // delta pass's watermark (nearly every row), nothing else gives the object its access (review1 MED-1).
        const copiedLater = (object: OwnedObject, row: Row) =>
          !options.skipExisting &&
          watermark !== undefined &&
          BigInt(object.id) > BigInt(watermark) &&
          inTimeWindow(scope, stampOf(row, object)) &&
          !doneBefore(row, object);
        const access = await reapplyAccess({ ...options, destination, job, ...accessSince, scope: whole, stop, copiedLater, streaks });
        summary.aclsReapplied += access.reapplied;
        summary.failed += access.failed;
        accessFailed = access.failed > 0;
        if (access.fatal !== undefined) stopFor(access.fatal);
      }

      if (options.skipExisting) {
        // Every row, those below the watermark too: the destination may have lost what the checkpoint calls done.
        await copyWhatDiffers(scope.minId, retried);
        joinedEveryRow = true;
        readEverything = !stop.aborted && wholeScope && !accessFailed;
        return;
      }

      const pages = readRowPages(options.db, options.schema, job, {
        batchSize: options.batchSize,
        afterId: tracker.watermark,
        limit: options.limit,
        scope,
        // Rows that own no file are counted but never read (src/db/rows.ts).
        onRead: (rows) => (summary.rows += rows),
      });
      reading: for await (const rows of pages) {
        for (let index = 0; index < rows.length; index += 1) {
          const row = rows[index]!;
          if (stop.aborted) {
            notBegun += rows.slice(index).filter((left) => !finishedAlready(left)).length;
            break reading;
          }
          const owned = ownedInScope(job, row, scope);
          const pending = owned.filter((object) => !doneBefore(row, object));
          summary.objects += owned.length;
          summary.skipped += owned.length - pending.length;
          if (pending.length < owned.length) options.onSkipped?.(job, owned.length - pending.length);
          const id = String(row.id);
          tracker.begin(id, pending.length);
          if (pending.length > 0) expect(id, pending.length);
          for (const object of pending) {
            // Awaited only when the pool is full: most objects of a row are queued without a promise in between.
            const full = submit(row, object, options.resume.wasOutstanding(options.destination.locate(object.key)), true);
            if (full !== undefined) await full;
          }
        }
      }
      readEverything = !stop.aborted && options.limit === undefined && wholeScope && !accessFailed;
    } finally {
      readingDone = true;
      finishIfDone();
    }
  }
}

const PRESENT: CopyResult = { status: 'present', bytes: 0, ms: 0, attempts: 0 };
const MISSING: CopyResult = { status: 'missing', bytes: 0, ms: 0, attempts: 0 };

/** Listed alike at the source and the destination: the same size, and the same MD5 where both listings carry one. */
function sameListed(source: ListedObject, destination: ListedObject): boolean {
  return source.size === destination.size && (source.md5 === undefined || destination.md5 === undefined || source.md5 === destination.md5);
}

/** A --since run's window for the access pass: every row up to --max-id. */
/** A job summary's counts, all zero: where a job's summary starts, and where totals of several add up. */
export function noCounts(): Omit<JobSummary, 'job' | 'ms'> {
  return {
    rows: 0,
    changed: 0,
    objects: 0,
    copied: 0,
    relocated: 0,
    present: 0,
    missing: 0,
    failed: 0,
    skipped: 0,
    unfinishedRows: 0,
    presentMadePrivate: 0,
    aclsReapplied: 0,
    recopied: 0,
    copiedOnProvider: 0,
    bytes: 0,
  };
}

/** PostgreSQL's largest bigint: no row's id is above it. */
const MAX_ID = '9223372036854775807';

function sinceOnly(scope: Scope): { since: string; maxId: string } | undefined {
  return scope.since === undefined ? undefined : { since: scope.since, maxId: scope.maxId ?? MAX_ID };
}

/** The row's `*_updated_at` of the object's attachment (ISO UTC), undefined when it has none: which file the row names. */
function stampOf(row: Row, object: OwnedObject): string | undefined {
  return stampOfAttachment(row, object.attachment);
}

/**
 * Whether the checkpoint records `object` (`key` at the destination) as copied, for the file `row` names now: done
 * above the watermark or recently, or in a row at or below it whose attachment did not change since the last sync and
 * was not failed or missing there. What --resume --skip-existing trusts while the destination lists it, and what a
 * resumed run asks the destination for (src/sync/destinationCheck.ts).
 */
export function copiedAsOf(resume: ResumeState, job: JobName, row: Row, object: OwnedObject, key: string): boolean {
  const updated = stampOf(row, object);
  if (resume.isDone(key, updated)) return true;
  const watermark = resume.watermark(job);
  if (watermark === undefined || BigInt(object.id) > BigInt(watermark) || resume.wasOutstanding(key)) return false;
  const changesFrom = resume.changesFrom(job);
  // Saved since with a cache/ version: perhaps moved by `tootctl upgrade storage-schema` (src/db/rows.ts).
  if (object.underCache && row[movedColumn(object.attachment)] === true) return false;
  return changesFrom === undefined || updated === undefined || updated < changesFrom;
}

/**
 * `again`: the object was failed or missing before; one still missing is news only the first time (cron mails).
 * `key`: the destination's, or for one missing at the source Mastodon's own key, which the admin looks for there.
 * `manyMissing`: MISSING_WARNINGS were said already; the rest go at info, and the summary counts them.
 */
function logResult(
  log: Logger,
  job: JobName,
  id: string,
  key: string,
  result: CopyResult,
  error: string | undefined,
  again: boolean,
  manyMissing: boolean,
): void {
  // A copy that met the run's fatal cause is said once, by the run's stop line, not once per copy in flight.
  if (result.status === 'failed') log[result.fatal ? 'info' : 'warn']({ job, id, key, error, attempts: result.attempts }, 'copy failed');
  else if (result.status === 'missing' && result.atDestination) log.info({ job, id, key }, 'missing at the source, at the destination already');
  else if (result.status === 'missing')
    log[again || manyMissing ? 'info' : 'warn']({ job, id, key }, again ? 'still missing at the source' : 'missing at the source');
  else if (log.isLevelEnabled('debug')) log.debug({ job, id, key, status: result.status, bytes: result.bytes, ms: result.ms, from: result.from }, 'copied');
}

/**
 * AIMD on throttling (503 SlowDown, 429): halve the copies in flight at most once a second, then add one back
 * after each run of successes as long as the configured concurrency, so a provider's limit is found and kept.
 * Each change is logged once.
 */
class Throttle {
  private lastDecrease = Number.NEGATIVE_INFINITY;
  private successes = 0;

  constructor(
    private readonly pool: BoundedPool,
    private readonly ceiling: number,
    private readonly log: Logger,
  ) {}

  slowDown(): void {
    const now = performance.now();
    if (now - this.lastDecrease < 1000 || this.pool.concurrency <= 1) return;
    this.lastDecrease = now;
    this.successes = 0;
    this.pool.concurrency = Math.max(1, Math.floor(this.pool.concurrency / 2));
    this.log.warn({ concurrency: this.pool.concurrency }, 'provider is throttling; fewer copies in flight');
  }

  succeeded(): void {
    if (this.pool.concurrency >= this.ceiling) return;
    if (++this.successes < this.pool.concurrency * 4) return;
    this.successes = 0;
    this.pool.concurrency += 1;
    const back = this.pool.concurrency === this.ceiling;
    this.log.info({ concurrency: this.pool.concurrency }, back ? 'throttling over; back to full concurrency' : 'provider recovering; one more copy in flight');
  }
}

/** How long a failing known-good object is tried again before the run calls a store broken (at most the patience). */
const RECHECK_WINDOW_MS = 60_000;
const RECHECK_PAUSE_MS = 10_000;
