/**
 * `verify`: compares what the database owns with what the destination holds, writing nothing anywhere. Each
 * owned key is HEADed at the destination and at the source (the exact key, else a legacy alternate, as a run
 * reads it). A key absent at the destination, or whose size, Content-Type or MD5 ETag differs from the source
 * object's, is a problem. Objects the source lacks too are counted, not reported: a run records them as missing.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/connection.js';
import { readRowPages } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { WHOLE_DATABASE, ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName } from '../mastodon/tables.js';
import type { ObjectInfo, ObjectStore } from '../storage/types.js';
import { describeError } from '../errors.js';
import { contentTypeFromRow } from './copy.js';
import { md5FromEtag } from './integrity.js';
import { BoundedPool } from './pool.js';
import { backoffMs, isRetryable } from './retry.js';

export type ProblemKind = 'missing' | 'size' | 'content-type' | 'etag' | 'error';

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
  /** At neither: a run records these as missing, not as failures. */
  missingAtSource: number;
  /** Could not be checked (the store kept failing). */
  errors: number;
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
  /** Percentage of the owned objects to check, chosen at random: (0, 100]. */
  readonly samplePercent: number;
  readonly scope?: Scope;
  readonly onProblem: (problem: Problem) => void;
  readonly stop?: AbortSignal;
  readonly random?: () => number;
}

export async function verifyJobs(options: VerifyOptions): Promise<VerifyJobSummary[]> {
  const pool = new BoundedPool(options.concurrency);
  const random = options.random ?? Math.random;
  const scope = options.scope ?? WHOLE_DATABASE;
  const summaries: VerifyJobSummary[] = [];
  try {
    for (const job of options.jobs) {
      if (options.stop?.aborted) break;
      const summary: VerifyJobSummary = { job, rows: 0, objects: 0, checked: 0, ok: 0, missing: 0, mismatched: 0, missingAtSource: 0, errors: 0 };
      summaries.push(summary);
      reading: for await (const rows of readRowPages(options.db, options.schema, job, { batchSize: options.batchSize, scope })) {
        for (const row of rows) {
          if (options.stop?.aborted) break reading;
          summary.rows += 1;
          for (const object of ownedInScope(job, row, scope)) {
            summary.objects += 1;
            if (random() * 100 >= options.samplePercent) continue;
            summary.checked += 1;
            await pool.submit(async () => tally(summary, await verifyObject(object, options), options.onProblem));
          }
        }
      }
    }
  } finally {
    await pool.drain();
  }
  return summaries;
}

/** The problems of one object (none: it matches), or that neither store has it. */
type Outcome = Problem[] | 'missing-at-source';

function tally(summary: VerifyJobSummary, outcome: Outcome, onProblem: (problem: Problem) => void): void {
  if (outcome === 'missing-at-source') {
    summary.missingAtSource += 1;
    return;
  }
  const [first] = outcome;
  if (first === undefined) summary.ok += 1;
  else if (first.problem === 'missing') summary.missing += 1;
  else if (first.problem === 'error') summary.errors += 1;
  else summary.mismatched += 1;
  for (const problem of outcome) onProblem(problem);
}

async function verifyObject(object: OwnedObject, options: VerifyOptions): Promise<Outcome> {
  const key = options.destination.locate(object.key);
  const problem = (kind: ProblemKind, fields: Partial<Problem> = {}): Problem => ({ job: object.job, id: object.id, key, problem: kind, ...fields });
  let atSource: { info: ObjectInfo; from: string } | undefined;
  let atDestination: ObjectInfo | undefined;
  try {
    [atSource, atDestination] = await Promise.all([
      findAtSource(object, options),
      headWithRetries(options.destination, object.key, options.retries),
    ]);
  } catch (error) {
    return [problem('error', { error: describeError(error) })];
  }
  // At the destination only: nothing to compare it with (the source lost it since the copy).
  if (atSource === undefined) return atDestination === undefined ? 'missing-at-source' : [];
  if (atDestination === undefined) return [problem('missing', { source: atSource.from })];

  const problems: Problem[] = [];
  const source = atSource.info;
  if (source.contentLength !== atDestination.contentLength) {
    problems.push(problem('size', { expected: source.contentLength, actual: atDestination.contentLength }));
  }
  // A folder keeps no Content-Type: a run derives it from the row, and a folder destination stores none.
  const contentType = source.contentType ?? contentTypeFromRow(object);
  if (contentType !== undefined && atDestination.contentType !== undefined && contentType !== atDestination.contentType) {
    problems.push(problem('content-type', { expected: contentType, actual: atDestination.contentType }));
  }
  // Two plain-MD5 ETags are digests of the bytes: a same-size corruption shows here.
  const sourceMd5 = md5FromEtag(source.etag);
  const destinationMd5 = md5FromEtag(atDestination.etag);
  if (sourceMd5 !== undefined && destinationMd5 !== undefined && sourceMd5 !== destinationMd5) {
    problems.push(problem('etag', { expected: sourceMd5, actual: destinationMd5 }));
  }
  return problems;
}

async function findAtSource(object: OwnedObject, options: VerifyOptions): Promise<{ info: ObjectInfo; from: string } | undefined> {
  for (const key of [object.key, ...object.alternates]) {
    const info = await headWithRetries(options.source, key, options.retries);
    if (info !== undefined) return { info, from: options.source.locate(key) };
  }
  return undefined;
}

async function headWithRetries(store: ObjectStore, key: string, retries: number): Promise<ObjectInfo | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await store.head(key);
    } catch (error) {
      if (attempt >= retries || !isRetryable(error)) throw error;
      await sleep(backoffMs(attempt, error));
    }
  }
}
