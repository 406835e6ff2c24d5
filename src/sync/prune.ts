/**
 * `prune`: the objects at the destination that no row owns any more (media of deleted statuses and accounts, remote
 * cache Mastodon removed, the styles of files replaced since), found by listing the destination under the folders
 * Mastodon writes (docs/storage-layout.md §8) and joining each page of 1000 listed keys with the rows they could
 * belong to, looked up by id (`WHERE id = ANY`, through the ranges a partition names, cut to the ids the table's
 * rows span when the run starts). Memory holds one page being listed and one being looked up; the
 * orphans found are spooled to a file. Dry by default. With `delete`, nothing is deleted when there are more
 * orphans than the limit; otherwise each batch of 1000 is checked again against the database just before its
 * delete request (a row that appeared since the listing keeps its key), and every key deleted goes to a manifest.
 */
import { appendFileSync, createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.js';
import { DatabaseLostError, type Database } from '../db/connection.js';
import { readRowSpans, readRowsInIdRanges, readRowsInIdRangesCut } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { ownedObjects, type OwnedObject } from '../mastodon/keys.js';
import { idPartition, legacyIdPartition } from '../mastodon/idPartition.js';
import { clipToRows, mastodonPrefixes, ownersOfKey, type IdRange } from '../mastodon/owners.js';
import type { JobName, Row } from '../mastodon/tables.js';
import { FatalStoreError } from '../storage/errors.js';
import type { ListedObject, ObjectStore } from '../storage/types.js';
import { resumingListing } from './listingJoin.js';
import { withRetries } from './retry.js';
import { StoreUnreachableError, StoreWatch } from './storeWatch.js';

/**
 * Why no row owns a key:
 * - `no-table`: this Mastodon version has no table for it (imports, from v4.4);
 * - `shape`: no row can own a key of this shape (a stray file inside Mastodon's folders);
 * - `no-row`: no row has the id its partition names (the status, account, card... was deleted);
 * - `not-owned`: the row exists but owns other keys (a replaced file, removed remote cache, a style it no longer has);
 * - `duplicate`: a legacy place of an object that is also where the row says (§4), so this copy is never read.
 */
export type OrphanReason = 'no-table' | 'shape' | 'no-row' | 'not-owned' | 'duplicate';

export interface Orphan {
  readonly job: JobName;
  readonly key: string;
  readonly size: number;
  readonly reason: OrphanReason;
}

/** At most this many objects, or this percentage of the objects listed, may be deleted. */
export type DeleteLimit = { readonly count: number } | { readonly percent: number };

export interface PruneJobSummary {
  job: JobName;
  listed: number;
  listedBytes: number;
  orphans: number;
  orphanBytes: number;
  deleted: number;
  deletedBytes: number;
  /** Orphans when listed, owned by a row when checked again just before deleting: kept. */
  keptOnRecheck: number;
  /** Delete requests the store refused for these keys. */
  failed: number;
}

export interface PruneResult {
  readonly jobs: PruneJobSummary[];
  /** The most objects the limit lets go. */
  readonly limit: number;
  /** More orphans than the limit: nothing was deleted. */
  readonly refused: boolean;
  readonly interrupted: boolean;
  /** What stopped the listing or the deletes that no retry could fix (the store's answer, the database lost), naming the fix. */
  readonly stoppedBy?: FatalStoreError | DatabaseLostError;
}

export interface PruneOptions {
  /** Jobs whose tables exist. */
  readonly jobs: readonly JobName[];
  /** Jobs whose tables this Mastodon version lacks: everything under their folders is an orphan. */
  readonly tablelessJobs?: readonly JobName[];
  readonly db: Database;
  readonly schema: Schema;
  readonly destination: ObjectStore;
  /** Delete the orphans (else only report them). */
  readonly delete: boolean;
  readonly limit: DeleteLimit;
  /** Where the keys deleted are written, one JSON line each, as they go. Required with `delete`. */
  readonly manifest?: string;
  /** Called once per object listed (for a progress display). */
  readonly onListed?: (job: JobName, size: number) => void;
  /** The orphans of one page, in listing order (one call a page, so a CLI can print them with one write). */
  readonly onOrphans?: (orphans: readonly Orphan[]) => void;
  readonly onDeleteFailure?: (failure: { readonly job: JobName; readonly key: string; readonly error: string }) => void;
  /** Ends the listing and starts no new delete request; one in flight is finished, so the manifest names it. */
  readonly stop?: AbortSignal;
  /** Times a listing page that keeps failing transiently is asked again, resuming after the last key listed. */
  readonly retries?: number;
  /** Listed keys looked up at once, and keys per delete request (S3's limit: 1000). */
  readonly pageSize?: number;
  /** Told when the destination falls silent and answers again. */
  readonly log?: Logger;
  /** Tests shorten how long the destination may answer nothing before prune stops (src/sync/storeWatch.ts); nothing else should. */
  readonly storePatienceMs?: number;
}

const PAGE = 1000;

export function emptyPruneSummary(job: JobName): PruneJobSummary {
  return { job, listed: 0, listedBytes: 0, orphans: 0, orphanBytes: 0, deleted: 0, deletedBytes: 0, keptOnRecheck: 0, failed: 0 };
}

export async function pruneJobs(options: PruneOptions): Promise<PruneResult> {
  // A destination that answers nothing is waited for, and stops prune once it has for the patience.
  const destination = new StoreWatch('once it answers again, run prune again', options.log, options.storePatienceMs).watch(options.destination, 'destination');
  if (destination.list === undefined) throw new Error(`${destination.description} cannot list its objects`);
  const pageSize = Math.min(options.pageSize ?? PAGE, PAGE);
  const tableless = new Set(options.tablelessJobs ?? []);
  const jobs = [...options.jobs, ...tableless];
  const summaries = new Map(jobs.map((job) => [job, emptyPruneSummary(job)]));
  const spoolFolder = options.delete ? mkdtempSync(join(dirname(options.manifest ?? './manifest'), '.mastosync-prune-')) : undefined;
  const spool = spoolFolder === undefined ? undefined : join(spoolFolder, 'orphans.jsonl');
  const stopped = () => options.stop?.aborted === true;
  const limitOf = () => {
    const listed = [...summaries.values()].reduce((sum, summary) => sum + summary.listed, 0);
    return 'count' in options.limit ? options.limit.count : Math.floor((listed * options.limit.percent) / 100);
  };
  const result = (refused: boolean) => ({ jobs: [...summaries.values()], limit: limitOf(), refused, interrupted: stopped() });
  try {
    // 1. List every folder of the chosen jobs, a page at a time, and report what no row owns. Each page's lookup
    // runs while the next page is listed; one lookup at a time, so orphans come in listing order.
    const rowSpans = new Map<JobName, readonly IdRange[]>();
    for (const job of options.jobs) rowSpans.set(job, await readRowSpans(options.db, job));
    let lookup: Promise<void> = Promise.resolve();
    const lookUp = async (job: JobName, page: readonly ListedObject[]) => {
      await lookup;
      const spans = rowSpans.get(job) ?? [];
      const readRows = (candidates: readonly IdRange[]) => readRowsInIdRanges(options.db, options.schema, job, clipToRows(candidates, spans));
      lookup = findOrphans(options, job, tableless.has(job), page, readRows).then(async (found) => {
        const orphans = await withoutRowsCreatedSince(options, job, spans, found);
        const summary = summaries.get(job)!;
        for (const orphan of orphans) {
          summary.orphans++;
          summary.orphanBytes += orphan.size;
        }
        if (orphans.length > 0) options.onOrphans?.(orphans);
        if (spool !== undefined && orphans.length > 0) appendFileSync(spool, orphans.map((orphan) => JSON.stringify(orphan) + '\n').join(''));
      });
      lookup.catch(() => undefined); // awaited before the next one or at the end; failing meanwhile is not unhandled
    };
    try {
      for (const { job, prefix } of mastodonPrefixes(jobs)) {
        const summary = summaries.get(job)!;
        let page: ListedObject[] = [];
        for await (const object of resumingListing(destination, prefix, options.retries ?? 0, options.stop)) {
          summary.listed++;
          summary.listedBytes += object.size;
          options.onListed?.(job, object.size);
          page.push(object);
          if (page.length >= pageSize) {
            await lookUp(job, page);
            page = [];
          }
          if (stopped()) break;
        }
        if (page.length > 0 && !stopped()) await lookUp(job, page);
        if (stopped()) break;
      }
    } catch (error) {
      // The destination gone while listed: the page being looked up is counted before the summary is made.
      if (error instanceof StoreUnreachableError) await lookup.catch(() => undefined);
      throw error;
    }
    await lookup;
    const orphans = [...summaries.values()].reduce((sum, summary) => sum + summary.orphans, 0);
    const limit = limitOf();
    if (!options.delete || spool === undefined || orphans === 0 || stopped()) return result(false);
    if (orphans > limit) return result(true);

    // 2. Delete them, 1000 keys a request, each batch checked against the database again just before: the next
    // batch is checked while this one's delete request is out.
    if (destination.delete === undefined) throw new Error(`${destination.description} cannot delete objects`);
    const deleteKeys = destination.delete.bind(destination);
    // A delete that meets the destination away is sent again once it answers (deleting a key twice is harmless).
    const deleteWhenAnswered = (keys: readonly string[]) => withRetries([destination], () => deleteKeys(keys), { retries: 0 });
    const stillOrphans = async (batch: readonly Orphan[]) => {
      const still = new Map<string, Orphan>();
      for (const job of new Set(batch.map((orphan) => orphan.job))) {
        const ofJob = batch.filter((orphan) => orphan.job === job);
        // Not cut to the rows' spans as read at the start, where a row created since may lie outside: to those
        // read again with the rows, in one snapshot.
        const readRows = (candidates: readonly IdRange[]) => readRowsInIdRangesCut(options.db, options.schema, job, candidates);
        const orphansNow = await findOrphans(options, job, tableless.has(job), ofJob, readRows);
        summaries.get(job)!.keptOnRecheck += ofJob.length - orphansNow.length;
        for (const orphan of orphansNow) still.set(orphan.key, orphan);
      }
      return still;
    };
    const remove = async (still: Map<string, Orphan>) => {
      if (still.size === 0) return;
      // Not aborted by the stop: a delete cut short leaves unknown which keys went, and the manifest must name them.
      const failures = await deleteWhenAnswered([...still.keys()]);
      for (const failure of failures) {
        const orphan = still.get(failure.key);
        if (orphan === undefined) continue;
        still.delete(failure.key);
        summaries.get(orphan.job)!.failed++;
        options.onDeleteFailure?.({ job: orphan.job, ...failure });
      }
      const at = new Date().toISOString();
      // Each key as the bucket (or folder) names it, key_prefix included, as the checkpoint and verify name keys.
      const lines = [...still.values()].map((orphan) => JSON.stringify({ ...orphan, key: destination.locate(orphan.key), deleted: at }) + '\n');
      appendFileSync(options.manifest!, lines.join(''), { mode: 0o600 });
      for (const orphan of still.values()) {
        const summary = summaries.get(orphan.job)!;
        summary.deleted++;
        summary.deletedBytes += orphan.size;
      }
    };
    let deleting: Promise<void> = Promise.resolve();
    const deleteBatch = async (batch: readonly Orphan[]) => {
      const still = await stillOrphans(batch);
      await deleting;
      // A stop that came during the re-check or the previous delete starts no new delete request.
      if (stopped()) return;
      deleting = remove(still);
      deleting.catch(() => undefined); // awaited before the next one or at the end
    };
    try {
      let batch: Orphan[] = [];
      for await (const line of createInterface({ input: createReadStream(spool), crlfDelay: Infinity })) {
        if (line === '') continue;
        batch.push(JSON.parse(line) as Orphan);
        if (batch.length >= pageSize) {
          await deleteBatch(batch);
          batch = [];
        }
        if (stopped()) break;
      }
      if (batch.length > 0 && !stopped()) await deleteBatch(batch);
      await deleting;
    } catch (error) {
      // What no retry can fix (the delete permission refused, the bucket gone): what was deleted so far is in the
      // manifest and the counts, which the caller reports with the cause.
      if (error instanceof FatalStoreError) return { ...result(false), stoppedBy: error };
      // Lost while checking a batch again: the delete request in flight ends first, so that the manifest names its keys.
      if (error instanceof DatabaseLostError) await deleting.catch(() => undefined);
      throw error;
    }
    return result(false);
  } catch (error) {
    // The destination answered nothing for the patience while listed: nothing was deleted; what was listed is counted.
    if (error instanceof StoreUnreachableError) return { ...result(false), stoppedBy: error };
    // The database lost for good, while listing or checking again before a delete: what was found and deleted so
    // far is in the counts (and the manifest), and a new prune lists everything again.
    if (!(error instanceof DatabaseLostError)) throw error;
    return { ...result(false), stoppedBy: error.withFix('once the cause is fixed, run prune again: it lists every object from the start') };
  } finally {
    if (spoolFolder !== undefined) rmSync(spoolFolder, { recursive: true, force: true });
  }
}

/**
 * The objects of `page` (all under `job`'s folders) that no row owns: the rows their partitions could name are
 * looked up in one query (`readRows`, given every id the partitions name), their keys derived again, and each
 * listed key compared with them.
 */
async function findOrphans(
  options: PruneOptions,
  job: JobName,
  tableless: boolean,
  page: readonly ListedObject[],
  readRows: (candidates: readonly IdRange[]) => Promise<Row[]>,
): Promise<Orphan[]> {
  const orphan = (object: ListedObject, reason: OrphanReason): Orphan => ({ job, key: object.key, size: object.size, reason });
  if (tableless) return page.map((object) => orphan(object, 'no-table'));
  const readings = page.map((object) => ownersOfKey(object.key).filter((owner) => owner.job === job));
  // The keys of one folder (original and styles, both sides of cache/) share a partition: its ids once.
  const partitions = new Map<string, readonly IdRange[]>();
  for (const owners of readings) for (const owner of owners) partitions.set(owner.partition, owner.ids);
  const rows = await readRows([...partitions.values()].flat());
  // Whether some row has the key's partition, for the reason given: a key's partition names exactly the ids whose
  // partition, current or before Paperclip 6.1, it is. Only orphans ask.
  let rowPartitions: Set<string> | undefined;
  const anyRowIn = (partition: string) =>
    (rowPartitions ??= new Set(rows.flatMap((row) => [idPartition(String(row.id)), legacyIdPartition(String(row.id))]))).has(partition);
  const exact = new Set<string>();
  const legacy = new Map<string, Array<{ object: OwnedObject; index: number }>>();
  for (const row of rows) {
    for (const object of ownedObjects(job, row)) {
      exact.add(object.key);
      object.alternates.forEach((alternate, index) => {
        const places = legacy.get(alternate) ?? [];
        places.push({ object, index });
        legacy.set(alternate, places);
      });
    }
  }
  const orphans: Orphan[] = [];
  for (const [index, object] of page.entries()) {
    if (exact.has(object.key)) continue;
    const places = legacy.get(object.key);
    if (places !== undefined) {
      // A legacy place is where the object is when neither its exact key nor an earlier alternate is there (§8).
      if (!(await Promise.all(places.map((place) => heldElsewhere(options.destination, place.object, place.index)))).every(Boolean)) continue;
      orphans.push(orphan(object, 'duplicate'));
      continue;
    }
    const owners = readings[index]!;
    if (owners.length === 0) orphans.push(orphan(object, 'shape'));
    else orphans.push(orphan(object, owners.some((owner) => anyRowIn(owner.partition)) ? 'not-owned' : 'no-row'));
  }
  return orphans;
}

/**
 * `found` less the keys a row created since the spans were read owns. Lookups cut to the spans read at the start
 * find every row inside them (they read the table as it is now), but not a row created since with an id beyond them
 * (a new status or account while prune runs, its media already copied): those orphans whose ids reach outside the
 * spans are looked up again with spans read anew, so that a dry run does not name them and the limit does not count
 * them. The delete still checks every batch again: a row can appear after this too.
 */
async function withoutRowsCreatedSince(options: PruneOptions, job: JobName, spans: readonly IdRange[], found: Orphan[]): Promise<Orphan[]> {
  const unsure = new Set(
    found.filter(
      (orphan) =>
        (orphan.reason === 'no-row' || orphan.reason === 'not-owned') &&
        ownersOfKey(orphan.key).some((owner) => owner.job === job && reachesOutside(owner.ids, spans)),
    ),
  );
  if (unsure.size === 0) return found;
  const readRows = (candidates: readonly IdRange[]) => readRowsInIdRangesCut(options.db, options.schema, job, candidates);
  // The orphans as looked up again, with the reason they have now (a row created since may make a key `not-owned`).
  const still = new Map((await findOrphans(options, job, false, [...unsure], readRows)).map((orphan) => [orphan.key, orphan]));
  return found.flatMap((orphan) => (!unsure.has(orphan) ? [orphan] : still.has(orphan.key) ? [still.get(orphan.key)!] : []));
}

/** Whether some id of `ranges` lies outside `spans`. */
function reachesOutside(ranges: readonly IdRange[], spans: readonly IdRange[]): boolean {
  const count = (list: readonly IdRange[]) => list.reduce((sum, range) => sum + (range.to - range.from + 1n), 0n);
  return count(clipToRows(ranges, spans)) < count(ranges);
}

/**
 * Whether the destination holds `object` at its exact key or an alternate before `index`. A HEAD that fails says
 * nothing, and then the copy at `index` is kept: never delete what may be the only one.
 */
async function heldElsewhere(destination: ObjectStore, object: OwnedObject, index: number): Promise<boolean> {
  for (const key of [object.key, ...object.alternates.slice(0, index)]) {
    const found = await destination.head(key).then(
      (info) => info !== undefined,
      () => undefined,
    );
    if (found === undefined) return false;
    if (found) return true;
  }
  return false;
}
