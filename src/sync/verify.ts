/**
 * `verify`: compares what the database owns with what the destination holds, writing nothing anywhere unless
 * asked to repair. By HEAD, each owned key is HEADed at the destination and at the source (the exact key, else a
 * legacy alternate, as a run reads it). By listing, both stores are listed under the folders Mastodon writes and
 * joined with the rows in key order (listingJoin.ts): size and MD5 ETag for every owned object at about one request
 * per thousand, a HEAD only for an object the source lists not at its exact key, and Content-Type and
 * Cache-Control (which listings do not carry) by HEAD on the --sample share. A key absent at the destination, or whose size, Content-Type, Cache-Control or
 * MD5 ETag differs from the source object's, is a problem. Objects the source lacks are counted apart, not
 * reported: a run records them as missing, and there is nothing to compare with. With `acl`, each object the
 * destination holds is also asked who may read it (ObjectAccess: S3's GetObjectAcl, a folder's file mode), against
 * the ACL a run writes for it now: a suspended account's media readable at the destination is a privacy incident.
 * With `repair`, each object found missing or different is copied again, by the copy a run uses; one whose ACL
 * alone differs gets its ACL set, as the ACL pass of a run sets it.
 */
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';
import { DatabaseLostError, type Database } from '../db/connection.js';
import { readRowPages } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { WHOLE_DATABASE, ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName } from '../mastodon/tables.js';
import { typeToWrite, type AccessCompared, type ListedObject, type ObjectInfo, type ObjectStore } from '../storage/types.js';
import { describeError } from '../errors.js';
import { MASTODON_CACHE_CONTROL, aclFor, contentTypeFromRow, ownerAclFor, copyOwnedObject, type CopyContext } from './copy.js';
import { FailureStreaks, describeFailure, streakObjects } from './failureStreak.js';
import { AccessRefusedError, AccessUnsupportedError, FatalStoreError, IntegrityError, md5FromEtag } from '../storage/errors.js';
import { BoundedPool } from './pool.js';
import { withRetries } from './retry.js';
import { findAtSource } from './source.js';
import { joinWithBothStores } from './listingJoin.js';
import { STORE_PATIENCE_MS, StoreUnreachableError, StoreWatch } from './storeWatch.js';

type ProblemKind = 'missing' | 'size' | 'content-type' | 'cache-control' | 'etag' | 'checksum' | 'acl' | 'error';

export interface Problem {
  readonly job: JobName;
  readonly id: string;
  /** The destination key, as an admin would look for it. */
  readonly key: string;
  readonly problem: ProblemKind;
  /** Where the source object is (for `missing`). */
  readonly source?: string;
  /** The source's value and the destination's. */
  readonly expected?: string | number;
  readonly actual?: string | number;
  readonly error?: string;
}

export interface VerifyJobSummary {
  job: JobName;
  rows: number;
  objects: number;
  /** Objects HEADed (all of them, or the --sample). */
  checked: number;
  ok: number;
  /** At the source but not at the destination. */
  missing: number;
  /** At both, but different. */
  mismatched: number;
  /** Of the mismatched, those whose size, Content-Type, Cache-Control or MD5 differs (an object may count in several). */
  sizeDiffers: number;
  contentTypeDiffers: number;
  cacheControlDiffers: number;
  md5Differs: number;
  /** Of the mismatched, those whose ACL (who may read them) is not what a run writes for them now (with `acl`). */
  aclDiffers: number;
  /** Of those, the ones Mastodon makes private that others can read (a privacy incident); the rest are public ones others cannot. */
  aclPrivateReadable: number;
  /** Not at the source (whether the destination has it or not): nothing to compare, not a fault of the copy. */
  missingAtSource: number;
  /** Of those, the ones the destination holds: Mastodon stored them there after a switch (expected in a --since check). */
  missingAtSourceHeld: number;
  /** Could not be checked (the store kept failing). */
  errors: number;
  /**
   * At both with the same size, whose bytes nothing compared: no plain MD5 on one side or both (a folder keeps none; a
   * multipart or encrypted object's ETag is none), and no --checksum. A same-size corruption of these goes unseen.
   */
  sizeOnly: number;
  /** With --checksum: of those, the objects read and hashed on both sides (a difference counts in md5Differs). */
  checksummed: number;
  /** With repair: objects missing or different that were copied again (or their ACL set), and those that could not be. */
  repaired: number;
  /** Of the repaired, those whose ACL alone differed, and was set. */
  aclsSet: number;
  unrepaired: number;
}

/** What a repair did to one object found missing or different. */
export interface Repair {
  readonly job: JobName;
  readonly id: string;
  readonly key: string;
  /**
   * `copied`: the destination now has the source's object; `acl`: its ACL was set (the object matched otherwise);
   * `missing`: the source no longer has it; `failed`: see error.
   */
  readonly repair: 'copied' | 'acl' | 'missing' | 'failed';
  /** Where the source object was, when not at the exact key. */
  readonly from?: string;
  readonly error?: string;
}

export interface VerifyResult {
  /** The summaries of the jobs begun: those of a stopped verify count what was checked before the stop. */
  readonly jobs: VerifyJobSummary[];
  /**
   * The database was lost for good, or a store answered nothing for the patience: the objects not yet read were not
   * checked (a verify keeps no record: run it again).
   */
  readonly stoppedBy?: DatabaseLostError | VerifyStop;
}

export interface VerifyOptions {
  readonly jobs: readonly JobName[];
  readonly db: Database;
  readonly schema: Schema;
  readonly source: ObjectStore;
  readonly destination: ObjectStore;
  readonly batchSize: number;
  readonly concurrency: number;
  /** Attempts after the first for each HEAD answered with a transient error. */
  readonly retries: number;
  /**
   * By HEAD: the percentage of the owned objects to check, chosen at random, (0, 100]. By listing, every object is
   * checked and this share is also HEADed, for Content-Type and Cache-Control: [0, 100].
   */
  readonly samplePercent: number;
  /**
   * The configured ACL (`[destination] acl`, a canned ACL): given, the access of each object the destination holds
   * is compared with what a run writes for it (aclFor: `private` for Mastodon's private objects). One request per
   * object, by listing too. Needs the destination's ObjectAccess.
   */
  readonly acl?: string;
  /**
   * Read and hash both sides of each object found the same size where no plain MD5 compares its bytes (a folder; a
   * multipart ETag), as streams: no object is held in memory. By HEAD only.
   */
  readonly checksum?: boolean;
  /** `listing` needs both stores to list. Default: `head`. */
  readonly method?: 'head' | 'listing';
  readonly scope?: Scope;
  readonly onProblem: (problem: Problem) => void;
  /**
   * Called once per object in scope when it is settled, whatever was found, or at once when the sample leaves it out
   * (for a progress display: so the count reaches the objects in scope).
   */
  readonly onSettled?: (job: JobName) => void;
  /** Copy again each object found missing or different, with this context (the one a run gives copyOwnedObject). */
  readonly repair?: CopyContext;
  readonly onRepair?: (repair: Repair) => void;
  readonly stop?: AbortSignal;
  readonly random?: () => number;
  /** Given, once, the summaries as they fill (the same objects verifyJobs returns), for metrics. */
  readonly observe?: (jobs: ReadonlyArray<Readonly<VerifyJobSummary>>) => void;
  /** Told when a store falls silent and answers again. */
  readonly log?: Logger;
  /** Tests shorten how long a store may answer nothing before verify stops (src/sync/storeWatch.ts); nothing else should. */
  readonly storePatienceMs?: number;
}

/** The options as verifying goes: the stores watched, the stop that a store gone sets too. */
interface Verifying extends VerifyOptions {
  readonly stop: AbortSignal;
  /** A store answered nothing for the patience, or the destination cannot read or set ACLs: check no more. */
  halt(cause: VerifyStop): void;
  /** An ACL request succeeded: the credentials may, and a refusal is then one object's (as in access.ts). */
  aclPermitted: boolean;
  /** Objects Mastodon makes public read otherwise, before one read as it should (noteAccess); undefined once one has. */
  publicReadWrong: number | undefined;
  /** With repair: the failure stop a run has (failureStreak.ts), over the repairs. */
  readonly streaks?: FailureStreaks;
}

/** What stops verify before every object is checked (besides the database lost). */
type VerifyStop = StoreUnreachableError | FatalStoreError;

export async function verifyJobs(options: VerifyOptions): Promise<VerifyResult> {
  const summaries: VerifyJobSummary[] = [];
  options.observe?.(summaries);
  // A store that answers nothing is waited for, and stops verify once it has for the patience.
  const watch = new StoreWatch('once it answers again, run verify again', options.log, options.storePatienceMs);
  const source = watch.watch(options.source, 'source');
  const destination = watch.watch(options.destination, 'destination');
  let gone: VerifyStop | undefined;
  const halted = new AbortController();
  const verifying: Verifying = {
    ...options,
    source,
    destination,
    repair: options.repair && { ...options.repair, source, destination },
    stop: options.stop === undefined ? halted.signal : AbortSignal.any([options.stop, halted.signal]),
    halt: (cause) => {
      gone ??= cause;
      halted.abort(cause);
    },
    aclPermitted: false,
    publicReadWrong: 0,
    // A destination that fails every repair stops verify as it stops a run, not after every object found off.
    ...(options.repair !== undefined && {
      streaks: new FailureStreaks({
        objects: streakObjects(options.concurrency),
        ms: options.storePatienceMs ?? STORE_PATIENCE_MS,
        where: { source: options.source.description, destination: options.destination.description },
        again: (requests) => `once ${requests} go through again, run verify --repair again`,
      }),
    }),
  };
  try {
    await (options.method === 'listing' ? verifyByListing(verifying, summaries) : verifyByHead(verifying, summaries));
  } catch (error) {
    // What was checked is worth its summary; the objects still unread stay unchecked.
    if (error instanceof DatabaseLostError)
      return { jobs: summaries, stoppedBy: error.withFix('once the cause is fixed, run verify again: it checks every object from the start') };
    // A listing that met a store gone.
    if (!(error instanceof StoreUnreachableError)) throw error;
    verifying.halt(error);
  }
  return { jobs: summaries, ...(gone !== undefined && { stoppedBy: gone }) };
}

/** Each owned object (or the sample) HEADed at both stores; `summaries` fill as the jobs go. */
async function verifyByHead(options: Verifying, summaries: VerifyJobSummary[]): Promise<void> {
  const pool = new BoundedPool(options.concurrency);
  const random = options.random ?? Math.random;
  const scope = options.scope ?? WHOLE_DATABASE;
  try {
    for (const job of options.jobs) {
      if (options.stop?.aborted) break;
      const summary = emptySummary(job);
      summaries.push(summary);
      // Rows as run counts them: every row read, those that own no file too.
      const onRead = (rows: number) => (summary.rows += rows);
      reading: for await (const rows of readRowPages(options.db, options.schema, job, { batchSize: options.batchSize, scope, onRead })) {
        for (const row of rows) {
          if (options.stop?.aborted) break reading;
          for (const object of ownedInScope(job, row, scope)) {
            summary.objects += 1;
            if (random() * 100 >= options.samplePercent) {
              options.onSettled?.(job);
              continue;
            }
            summary.checked += 1;
            await pool.submit(async () => {
              const outcome = await verifyObject(object, options, summary);
              tally(summary, outcome, options);
              if (options.repair !== undefined && Array.isArray(outcome) && outcome.length > 0 && outcome[0]!.problem !== 'error') {
                countRepair(summary, await repairObject(object, outcome, options.repair, options), options);
              }
            });
          }
        }
      }
    }
  } finally {
    await pool.drain();
  }
}

/**
 * Every owned object of each job checked against both listings, in one read of the job's rows (listingJoin.ts):
 * each object against its folder's listings, in key order. The objects that need a request of their own (the sample, and those the source does not list at their exact key) go through the
 * pool; the others are decided on the spot.
 */
async function verifyByListing(options: Verifying, summaries: VerifyJobSummary[]): Promise<void> {
  const { source, destination } = options;
  if (source.list === undefined || destination.list === undefined) throw new Error('verify by listing needs two stores that list');
  const pool = new BoundedPool(options.concurrency);
  const random = options.random ?? Math.random;
  const scope = options.scope ?? WHOLE_DATABASE;
  // Returns a promise only when there is a repair to wait for: most objects are settled without one.
  const settle = (summary: VerifyJobSummary, object: OwnedObject, outcome: Outcome): Promise<void> | undefined => {
    tally(summary, outcome, options);
    if (options.repair === undefined || !Array.isArray(outcome) || outcome.length === 0 || outcome[0]!.problem === 'error') return undefined;
    return repairObject(object, outcome, options.repair, options).then((repair) => countRepair(summary, repair, options));
  };
  try {
    for (const job of options.jobs) {
      if (options.stop?.aborted) break;
      const summary = emptySummary(job);
      summaries.push(summary);
      const joined = joinWithBothStores(
        { db: options.db, schema: options.schema, job, scope, batchSize: options.batchSize, onRead: (rows) => (summary.rows += rows) },
        { source, destination },
        options.retries,
        options.stop,
      );
      for await (const batch of joined) {
        for (const {
          owned: { object },
          listed: [listedAtDestination, listedAtSource],
        } of batch) {
          if (options.stop?.aborted) break;
          summary.objects += 1;
          summary.checked += 1;
          if (listedAtSource !== undefined && random() * 100 >= options.samplePercent) {
            const listed = compareListed(object, listedAtSource, object.key, listedAtDestination, options, summary);
            // The ACL is no listing's: a request of its own, for each object the destination holds.
            if (options.acl !== undefined && listedAtDestination !== undefined) {
              await pool.submit(async () => settle(summary, object, await withAccess(object, listed, options)));
              continue;
            }
            const repairing = settle(summary, object, listed);
            if (repairing !== undefined) await repairing;
            continue;
          }
          await pool.submit(async () => {
            // The sample is checked as by HEAD, attributes included; an object not listed at its exact key at the
            // source may be under a legacy alternate there, which a HEAD finds as a run would.
            const outcome =
              listedAtSource !== undefined
                ? await verifyObject(object, options, summary)
                : await verifyAtAlternate(object, listedAtDestination, options, summary).catch((error: unknown) => failedCheck(object, error, options));
            await settle(summary, object, outcome);
          });
        }
        if (options.stop?.aborted) break;
      }
    }
  } finally {
    await pool.drain();
  }
}

/** A check that could not be made: a problem of the object, or, when a store is gone, the stop of verify. */
function failedCheck(object: OwnedObject, error: unknown, options: Verifying): Outcome {
  // Cut short by the stop (a signal, or verify halted): not checked, rather than a line of its own.
  if (options.stop.aborted && !(error instanceof StoreUnreachableError)) return 'unchecked';
  if (!(error instanceof StoreUnreachableError)) return [problemOf(object, options.destination, 'error', { error: describeError(error) })];
  options.halt(error);
  return 'unchecked';
}

async function verifyAtAlternate(
  object: OwnedObject,
  atDestination: ListedObject | undefined,
  options: Verifying,
  summary: VerifyJobSummary,
): Promise<Outcome> {
  const found = await findAtSource(object, (key) => headWithRetries(options.source, key, options.retries));
  if (found === undefined) return atDestination === undefined ? 'missing-at-source' : 'held-at-destination';
  const md5 = md5FromEtag(found.found.etag);
  const problems = compareListed(
    object,
    { key: found.from, size: found.found.contentLength ?? -1, ...(md5 !== undefined && { md5 }) },
    found.from,
    atDestination,
    options,
    summary,
  );
  return atDestination === undefined ? problems : withAccess(object, problems, options);
}

/**
 * `problems` of an object the destination holds, and, with `acl`, whether readers see it as a run would write it
 * now: a request per object (GetObjectAcl, a folder's lstat). An object gone since it was found adds nothing.
 */
async function withAccess(object: OwnedObject, problems: Problem[], options: Verifying): Promise<Outcome> {
  const access = options.destination.access;
  const acl = options.acl === undefined ? undefined : aclFor(object, options.acl);
  if (access === undefined || acl === undefined) return problems;
  let compared: AccessCompared | undefined;
  try {
    compared = await withRetries([options.destination], () => access.compare(object.key, acl, options.stop, ownerAclFor(object, options.acl)), {
      retries: options.retries,
      signal: options.stop,
    });
  } catch (error) {
    if (accessUnsupported(object, error, 'check', options)) return 'unchecked';
    const failed = failedCheck(object, error, options);
    // What was found off stays off; the ACL's failure is a line of its own.
    return Array.isArray(failed) && problems.length > 0 ? [...problems, ...failed] : failed;
  }
  options.aclPermitted = true;
  if (compared === undefined) return problems;
  const expected = compared.expected ?? acl;
  noteAccess(object, expected, compared, options);
  if (compared.matches) return problems;
  return [...problems, problemOf(object, options.destination, 'acl', { expected, actual: compared.found })];
}

/**
 * A store that keeps no per-object ACL yet answers GetObjectAcl (MinIO; a bucket whose ACLs were disabled since the
 * copy) reads every object alike, so each one Mastodon makes public differs. Once the first streakObjects of those
 * all read otherwise, and not one as it should, the rest would say the same: verify stops, with one line. Not under
 * --repair, whose first write tells: such a store refuses it (accessUnsupported), one that keeps ACLs takes it.
 */
function noteAccess(object: OwnedObject, expected: string, compared: AccessCompared, options: Verifying): void {
  if (options.repair !== undefined || expected === 'private' || options.publicReadWrong === undefined) return;
  if (compared.matches) {
    options.publicReadWrong = undefined;
    return;
  }
  options.publicReadWrong += 1;
  if (options.publicReadWrong < streakObjects(options.concurrency)) return;
  const { description } = options.destination;
  options.halt(
    new FatalStoreError(
      'destination',
      options.destination.locate(object.key),
      `the destination ${description} reads each of the first ${options.publicReadWrong} objects Mastodon makes ${expected} as ${compared.found}, and not one as ${expected}`,
      'it keeps no per-object ACL (as MinIO, or a bucket whose Object Ownership is "bucket owner enforced"), or every object there was written without one: where it keeps ACLs, verify --acl --repair sets them; else verify without --acl',
      { cause: undefined },
    ),
  );
}

/**
 * Whether `error` says the destination cannot read or set ACLs at all (a provider without them, or credentials that
 * may not, before any ACL request succeeded): then verify stops, with one line, rather than fail every object alike.
 */
function accessUnsupported(object: OwnedObject, error: unknown, doing: 'check' | 'set', options: Verifying): boolean {
  if (!(error instanceof AccessUnsupportedError) || (error instanceof AccessRefusedError && options.aclPermitted)) return false;
  const cannot = doing === 'check' ? 'verify --acl cannot check them' : 'verify --acl --repair cannot set them';
  const fix = `${cannot}: ${error instanceof AccessRefusedError ? 'let the credentials read and set ACLs, or ' : ''}verify without --acl`;
  options.halt(new FatalStoreError('destination', options.destination.locate(object.key), error.message, fix, { cause: error }));
  return true;
}

/** Presence, size and MD5 (where both listings carry one) of one object, from the listings alone. */
function compareListed(
  object: OwnedObject,
  atSource: ListedObject,
  from: string,
  atDestination: ListedObject | undefined,
  options: VerifyOptions,
  summary: VerifyJobSummary,
): Problem[] {
  const problem = (kind: ProblemKind, fields: Partial<Problem> = {}) => problemOf(object, options.destination, kind, fields);
  if (atDestination === undefined) return [problem('missing', { source: options.source.locate(from) })];
  const problems: Problem[] = [];
  if (atSource.size !== atDestination.size) problems.push(problem('size', { expected: atSource.size, actual: atDestination.size }));
  else if (atSource.md5 === undefined || atDestination.md5 === undefined) summary.sizeOnly += 1;
  if (atSource.md5 !== undefined && atDestination.md5 !== undefined && atSource.md5 !== atDestination.md5) {
    problems.push(problem('etag', { expected: atSource.md5, actual: atDestination.md5 }));
  }
  return problems;
}

function problemOf(object: OwnedObject, destination: ObjectStore, kind: ProblemKind, fields: Partial<Problem> = {}): Problem {
  return { job: object.job, id: object.id, key: destination.locate(object.key), problem: kind, ...fields };
}

/** The objects `jobs` own in scope, counted up to `limit` (reading only as many rows as that takes). */
export async function countOwnedUpTo(
  options: { readonly db: Database; readonly schema: Schema; readonly jobs: readonly JobName[]; readonly scope: Scope; readonly batchSize: number },
  limit: number,
): Promise<number> {
  let owned = 0;
  for (const job of options.jobs) {
    for await (const rows of readRowPages(options.db, options.schema, job, { batchSize: Math.min(options.batchSize, limit), scope: options.scope })) {
      for (const row of rows) owned += ownedInScope(job, row, options.scope).length;
      if (owned >= limit) return owned;
    }
  }
  return owned;
}

export function emptySummary(job: JobName): VerifyJobSummary {
  return {
    job,
    rows: 0,
    objects: 0,
    checked: 0,
    ok: 0,
    missing: 0,
    mismatched: 0,
    sizeDiffers: 0,
    contentTypeDiffers: 0,
    cacheControlDiffers: 0,
    md5Differs: 0,
    aclDiffers: 0,
    aclPrivateReadable: 0,
    missingAtSource: 0,
    missingAtSourceHeld: 0,
    errors: 0,
    sizeOnly: 0,
    checksummed: 0,
    repaired: 0,
    aclsSet: 0,
    unrepaired: 0,
  };
}

/** The problems of one object (none: it matches), or that the source lacks it, or that a store gone left it unchecked. */
/** `held-at-destination`: missing at the source, and the destination holds it. */
type Outcome = Problem[] | 'missing-at-source' | 'held-at-destination' | 'unchecked';

const DIFFERS: Partial<Record<ProblemKind, 'sizeDiffers' | 'contentTypeDiffers' | 'cacheControlDiffers' | 'md5Differs' | 'aclDiffers'>> = {
  size: 'sizeDiffers',
  'content-type': 'contentTypeDiffers',
  'cache-control': 'cacheControlDiffers',
  etag: 'md5Differs',
  checksum: 'md5Differs',
  acl: 'aclDiffers',
};

async function repairObject(object: OwnedObject, problems: readonly Problem[], context: CopyContext, options: Verifying): Promise<RepairDone> {
  // Verify stopped while this object was checked: no new write starts.
  if (options.stop.aborted) return 'stopped';
  const key = problems[0]!.key;
  // Only the ACL off: set it, as a run's ACL pass does, rather than copy the bytes again.
  if (problems.every((problem) => problem.problem === 'acl')) return setAccess(object, key, problems[0]!.expected as string, context, options);
  const result = await copyOwnedObject(object, context);
  if (result.fatal instanceof StoreUnreachableError) return result.fatal;
  // No retry fixes it, and every other repair would fail the same way.
  if (result.fatal !== undefined) {
    options.halt(result.fatal);
    return 'stopped';
  }
  // Only the destination's failures count (as failed before: neither counting nor breaking a run of them). What verify
  // repairs are the objects a run could not copy, often because the source cannot serve them (a lost disk answering
  // 500): a hundred of those stopped every verify --repair before the readable ones after them (review2). A source
  // that is down is the store watch's to stop.
  const failing = options.streaks?.record(result, key, result.failedAt?.side === 'source');
  if (failing !== undefined) options.halt(failing);
  const repair = result.status === 'copied' || result.status === 'relocated' || result.status === 'present' ? 'copied' : result.status;
  return {
    job: object.job,
    id: object.id,
    key,
    repair,
    ...(result.from !== undefined && { from: result.from }),
    ...(result.error !== undefined && { error: describeFailure(result) }),
  };
}

async function setAccess(object: OwnedObject, key: string, acl: string, context: CopyContext, options: Verifying): Promise<RepairDone> {
  const repair = { job: object.job, id: object.id, key };
  try {
    const set = await withRetries(
      [context.destination],
      () => context.destination.access!.set(object.key, acl, options.stop, ownerAclFor(object, options.acl)),
      {
        retries: context.retries,
        signal: options.stop,
      },
    );
    options.aclPermitted = true;
    options.streaks?.succeeded();
    return set ? { ...repair, repair: 'acl' } : { ...repair, repair: 'failed', error: 'no longer at the destination' };
  } catch (error) {
    if (error instanceof StoreUnreachableError) return error;
    if (accessUnsupported(object, error, 'set', options)) return 'stopped';
    if (options.stop.aborted) return 'stopped';
    if (error instanceof FatalStoreError) {
      options.halt(error);
      return 'stopped';
    }
    const failed: Repair = { ...repair, repair: 'failed', error: `destination ACL: ${describeError(error)}` };
    const failing = options.streaks?.record({ status: 'failed', failedAt: { side: 'destination', operation: 'ACL' }, error: describeError(error) }, key);
    if (failing !== undefined) options.halt(failing);
    return failed;
  }
}

/** A repair, or why there was none: a store gone, or verify stopped (halted already). */
type RepairDone = Repair | StoreUnreachableError | 'stopped';

function countRepair(summary: VerifyJobSummary, repair: RepairDone, options: Verifying): void {
  if (repair === 'stopped') return;
  // Cut short by a store gone: not repaired, nor unrepairable; the next verify finds it again.
  if (repair instanceof StoreUnreachableError) return options.halt(repair);
  if (repair.repair === 'copied' || repair.repair === 'acl') summary.repaired += 1;
  else summary.unrepaired += 1;
  if (repair.repair === 'acl') summary.aclsSet += 1;
  options.onRepair?.(repair);
}

function tally(summary: VerifyJobSummary, outcome: Outcome, options: Pick<Verifying, 'onProblem' | 'onSettled' | 'streaks'>): void {
  // Checked by no one: a store gone stopped verify.
  if (outcome === 'unchecked') {
    summary.checked -= 1;
    return;
  }
  options.onSettled?.(summary.job);
  if (outcome === 'missing-at-source' || outcome === 'held-at-destination') {
    summary.missingAtSource += 1;
    if (outcome === 'held-at-destination') summary.missingAtSourceHeld += 1;
    return;
  }
  const [first] = outcome;
  if (first === undefined) {
    summary.ok += 1;
    // An object found whole: the destination answers as it should. Only a clear run of failed repairs with none
    // found whole between stops verify; the objects a destination refuses alone (a body over a proxy's limit) come
    // among whole ones, and stopped every verify --repair before it checked the rest (review2).
    options.streaks?.succeeded();
  } else if (first.problem === 'missing') summary.missing += 1;
  else if (first.problem === 'error') summary.errors += 1;
  else summary.mismatched += 1;
  for (const problem of outcome) {
    const differs = DIFFERS[problem.problem];
    if (differs !== undefined) summary[differs] += 1;
    if (problem.problem === 'acl' && problem.expected === 'private') summary.aclPrivateReadable += 1;
    options.onProblem(problem);
  }
}

async function verifyObject(object: OwnedObject, options: Verifying, summary: VerifyJobSummary): Promise<Outcome> {
  const problem = (kind: ProblemKind, fields: Partial<Problem> = {}) => problemOf(object, options.destination, kind, fields);
  let atSource: { found: ObjectInfo; from: string } | undefined;
  let atDestination: ObjectInfo | undefined;
  try {
    [atSource, atDestination] = await Promise.all([
      findAtSource(object, (key) => headWithRetries(options.source, key, options.retries)),
      headWithRetries(options.destination, object.key, options.retries),
    ]);
  } catch (error) {
    return failedCheck(object, error, options);
  }
  // At the destination only, the source lost it since the copy: nothing to compare with, so no match either.
  if (atSource === undefined) return atDestination === undefined ? 'missing-at-source' : 'held-at-destination';
  if (atDestination === undefined) return [problem('missing', { source: options.source.locate(atSource.from) })];

  const problems: Problem[] = [];
  const source = atSource.found;
  if (source.contentLength !== atDestination.contentLength) {
    problems.push(problem('size', { expected: source.contentLength, actual: atDestination.contentLength }));
  }
  // A folder keeps no Content-Type, and a type that says nothing is no type: a run then writes the row's (a folder
  // destination stores none).
  const contentType = typeToWrite(source.contentType, contentTypeFromRow(object));
  if (contentType !== undefined && atDestination.contentType !== undefined && contentType !== atDestination.contentType) {
    problems.push(problem('content-type', { expected: contentType, actual: atDestination.contentType }));
  }
  // A run writes the source's Cache-Control, and Mastodon's where the source keeps none (a folder), streamed or copied
  // on the provider alike. A store that keeps no Content-Type (a folder) keeps no Cache-Control either: nothing to
  // compare there.
  const cacheControl = atDestination.cacheControl;
  const cacheControlRight = cacheControl === (source.cacheControl ?? MASTODON_CACHE_CONTROL);
  if (atDestination.contentType !== undefined && !cacheControlRight) {
    problems.push(problem('cache-control', { expected: source.cacheControl ?? MASTODON_CACHE_CONTROL, actual: cacheControl ?? 'none' }));
  }
  // Two plain-MD5 ETags are digests of the bytes: a same-size corruption shows here.
  const sourceMd5 = md5FromEtag(source.etag);
  const destinationMd5 = md5FromEtag(atDestination.etag);
  if (sourceMd5 !== undefined && destinationMd5 !== undefined && sourceMd5 !== destinationMd5) {
    problems.push(problem('etag', { expected: sourceMd5, actual: destinationMd5 }));
  }
  // The same size and no two MD5s: nothing compared the bytes. --checksum reads both sides and hashes them.
  if (source.contentLength === atDestination.contentLength && (sourceMd5 === undefined || destinationMd5 === undefined)) {
    if (options.checksum !== true) summary.sizeOnly += 1;
    else {
      let md5s: [string | undefined, string | undefined];
      try {
        md5s = await Promise.all([md5Of(options.source, atSource.from, options), md5Of(options.destination, object.key, options)]);
      } catch (error) {
        return failedCheck(object, error, options);
      }
      const [atSourceMd5, atDestinationMd5] = md5s;
      // Gone from either side since the HEAD: what the next verify finds.
      if (atSourceMd5 === undefined) return 'missing-at-source';
      if (atDestinationMd5 === undefined) return [problem('missing', { source: options.source.locate(atSource.from) })];
      summary.checksummed += 1;
      if (atSourceMd5 !== atDestinationMd5) problems.push(problem('checksum', { expected: atSourceMd5, actual: atDestinationMd5 }));
    }
  }
  return withAccess(object, problems, options);
}

/** The MD5 of `key`'s bytes, read as they stream (a chunk at a time in memory); undefined when it is not there. */
function md5Of(store: ObjectStore, key: string, options: Verifying): Promise<string | undefined> {
  return withRetries(
    [store],
    async () => {
      const read = await store.read(key, options.stop);
      if (read === undefined) return undefined;
      const hash = createHash('md5');
      let bytes = 0;
      for await (const chunk of read.body as AsyncIterable<Buffer>) {
        hash.update(chunk);
        bytes += chunk.length;
      }
      // A body that ended early without an error (a length it announced and did not send) is no digest of the object.
      if (read.contentLength !== undefined && bytes !== read.contentLength) {
        throw new IntegrityError(`read ${bytes} of the ${read.contentLength} bytes of ${store.locate(key)}`);
      }
      return hash.digest('hex');
    },
    { retries: options.retries, signal: options.stop },
  );
}

function headWithRetries(store: ObjectStore, key: string, retries: number): Promise<ObjectInfo | undefined> {
  return withRetries([store], () => store.head(key), { retries });
}
