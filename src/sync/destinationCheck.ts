/**
 * Before a resumed run trusts its checkpoint, a look at the destination: does it still hold a few of the objects
 * the checkpoint records as copied? A bucket emptied since the last run (a recursive delete, a lifecycle rule, a
 * provider's incident, or [destination] now naming another bucket or prefix) is otherwise invisible to --resume,
 * which reads only what changed: every later run would copy nothing and exit 0.
 *
 * The sample is a handful of objects whatever the checkpoint's size: per job the newest rows at or below its
 * watermark, rows at random points below it, and the last objects finished above it. Only objects the checkpoint
 * has reason to call copied are asked for: rows that still exist and own them (a row deleted since, or a file
 * replaced, is not the destination's loss), no attachment changed since the last sync (its new file may not be
 * copied yet), nothing recorded failed or missing at the source. The objects were written an earlier run ago, so
 * a store that is strongly consistent or eventually so answers for them alike.
 */
import type { Database } from '../db/connection.js';
import { readRowsById, readSampleRows } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName, Row } from '../mastodon/tables.js';
import type { ObjectStore } from '../storage/types.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ResumeState } from './checkpoint.js';
import { copiedAsOf } from './run.js';
import { withRetries } from './retry.js';

/** Objects asked for at most per run, over all jobs: the check's whole cost, a few requests. */
export const SAMPLE_SIZE = 12;
/** Per job: rows just below the watermark, rows at random points below it, objects finished above it. */
const NEWEST = 2;
const SPREAD = 2;
const ABOVE = 2;
/** HEADs in flight at once. */
const PARALLEL = 4;
/**
 * Before an object is called missing it is asked for again after this pause: a store that is only eventually
 * consistent (Swift, some S3-compatible servers) may not show a write of a moment ago everywhere yet.
 */
const SECOND_LOOK_MS = 2000;

export interface DestinationCheckOptions {
  readonly db: Database;
  readonly schema: Schema;
  readonly jobs: readonly JobName[];
  readonly scope: Scope;
  readonly resume: ResumeState;
  readonly destination: ObjectStore;
  readonly retries: number;
  readonly signal?: AbortSignal;
  readonly log: Logger;
  /** Default SECOND_LOOK_MS; the integration tests shorten it (src/cli/setup.ts). */
  readonly secondLookMs?: number;
}

export interface DestinationCheck {
  /** How many objects the destination was asked for. */
  readonly sampled: number;
  /** Of those, the ones it does not hold: their keys as the checkpoint names them (destination.locate). */
  readonly missing: readonly string[];
  /** Why the destination could not be asked (HEAD refused, say): the check said nothing. */
  readonly unanswered?: string;
  /** Whether the destination refused or failed the HEADs (else: the rows to sample could not be read). */
  readonly headRefused?: boolean;
}

/** Asks the destination for a sample of what the checkpoint records as copied (see above). */
export async function checkDestination(options: DestinationCheckOptions): Promise<DestinationCheck> {
  let sample: OwnedObject[];
  try {
    sample = await sampleCopied(options);
  } catch (error) {
    return { sampled: 0, missing: [], unanswered: `could not read the rows to sample (${describeError(error)})` };
  }
  const { destination } = options;
  let unanswered: string | undefined;
  /** The objects of `objects` the destination does not hold, asked for PARALLEL at a time. */
  const absent = async (objects: readonly OwnedObject[]): Promise<OwnedObject[]> => {
    const missing: OwnedObject[] = [];
    let next = 0;
    const ask = async () => {
      while (next < objects.length && unanswered === undefined) {
        const object = objects[next++]!;
        try {
          const found = await withRetries([destination], () => destination.head(object.key), { retries: options.retries, signal: options.signal });
          if (found === undefined) missing.push(object);
        } catch (error) {
          // A refusal (no s3:GetObject, or a 403 for a missing object without s3:ListBucket) tells nothing either way.
          unanswered ??= `HEAD ${destination.locate(object.key)}: ${describeError(error)}`;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, objects.length) }, ask));
    return missing;
  };
  let missing = await absent(sample);
  if (missing.length > 0 && unanswered === undefined) {
    await new Promise((resolve) => setTimeout(resolve, options.secondLookMs ?? SECOND_LOOK_MS));
    missing = await absent(missing);
  }
  if (unanswered !== undefined) return { sampled: 0, missing: [], unanswered, headRefused: true };
  options.log.info({ sampled: sample.length, missing: missing.length }, 'asked the destination for objects the checkpoint records as copied');
  return { sampled: sample.length, missing: missing.map((object) => destination.locate(object.key)) };
}

/** The objects to ask for: per job in turn, so that every job with something copied is in the sample. */
async function sampleCopied(options: DestinationCheckOptions): Promise<OwnedObject[]> {
  const perJob: OwnedObject[][] = [];
  for (const job of options.jobs) perJob.push(await sampleOfJob(job, options));
  const sample: OwnedObject[] = [];
  for (let index = 0; sample.length < SAMPLE_SIZE && perJob.some((objects) => index < objects.length); index++) {
    for (const objects of perJob) if (index < objects.length && sample.length < SAMPLE_SIZE) sample.push(objects[index]!);
  }
  return sample;
}

/** How many objects a look for known-good ones takes per job at most: those finished last above and below the watermark. */
const KNOWN_GOOD_NEWEST = 20;
/** And at evenly spread points below it: past a run of the newest rows that all fail (a disk lost last week). */
const KNOWN_GOOD_POINTS = Array.from({ length: 8 }, (_, index) => (index + 0.5) / 8);

/**
 * Objects the checkpoint records as copied and their rows still own as then, as the check samples them but more, and
 * not asked for: what a run copies again to tell a store that broke from objects failing each for its own reason
 * (src/sync/failureStreak.ts). The copy is the question: one no longer at the source is passed over.
 */
export async function copiedBefore(
  options: Pick<DestinationCheckOptions, 'db' | 'schema' | 'jobs' | 'scope' | 'resume' | 'destination'>,
): Promise<OwnedObject[]> {
  const found: OwnedObject[] = [];
  for (const job of options.jobs)
    found.push(...(await sampleOfJob(job, options, { newest: KNOWN_GOOD_NEWEST, points: KNOWN_GOOD_POINTS, above: KNOWN_GOOD_NEWEST })));
  return found;
}

async function sampleOfJob(
  job: JobName,
  options: Pick<DestinationCheckOptions, 'db' | 'schema' | 'scope' | 'resume' | 'destination'>,
  sizes: { readonly newest: number; readonly points: readonly number[]; readonly above: number } = {
    newest: NEWEST,
    points: Array.from({ length: SPREAD }, () => Math.random()),
    above: ABOVE,
  },
): Promise<OwnedObject[]> {
  const { db, schema, scope, resume, destination } = options;
  // Copied, as far as the checkpoint knows, and still owned as it was then: the run's own rule.
  const copied = (row: Row, object: OwnedObject) => copiedAsOf(resume, job, row, object, destination.locate(object.key));
  // One object a row (its first, the original when there is one), each row once.
  const picked = new Map<string, OwnedObject>();
  const take = (rows: readonly Row[], wanted?: ReadonlySet<string>) => {
    for (const row of rows) {
      const object = ownedInScope(job, row, scope).find((owned) => (wanted === undefined || wanted.has(destination.locate(owned.key))) && copied(row, owned));
      if (object !== undefined && !picked.has(object.key)) picked.set(object.key, object);
    }
  };
  const above = resume.lastDone(job, sizes.above);
  if (above.length > 0)
    take(await readRowsById(db, schema, job, [...new Set(above.map((entry) => entry.id))], scope), new Set(above.map((entry) => entry.key)));
  const watermark = resume.watermark(job);
  if (watermark !== undefined) {
    take(await readSampleRows(db, schema, job, watermark, { newest: sizes.newest, fractions: sizes.points }, scope, resume.changesFrom(job)));
  }
  return [...picked.values()];
}
