/**
 * The owned objects of a table joined with a store's listing, in bounded memory: both sides are streamed in the
 * byte order of keys and merged, so neither the rows nor the listing is ever held whole.
 *
 * Rows come in id order, keys in partition order, and the two agree only among ids of one width: `000/000/001`
 * (ids below 10^9, padded to 9 digits) and `109/349/205/816/583/424` (18 digits) interleave in a listing, and a
 * 13-digit id, cut to its first 12 digits, sorts before a 12-digit one (docs/storage-layout.md §1.2). So the rows are
 * read once per id width that has any (ID_WIDTHS), each width's keys come out in key order, and those streams are
 * merged by key. One read of the rows serves all of a job's folders (mastodonPrefixes): each object goes to the
 * listing of its own folder, and the folders' listings are read side by side, each forward in its own order.
 */
import { describeError } from '../errors.js';
import type { Database } from '../db/connection.js';
import { readRowPages } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import { mastodonPrefixes } from '../mastodon/owners.js';
import type { JobName, Row } from '../mastodon/tables.js';
import type { ListedObject, ObjectStore } from '../storage/types.js';
import { collectIfGrown } from './garbage.js';
import { backoffMs, classifyFailure } from './retry.js';
import { heardFrom, waitForSilentStore } from './storeWatch.js';

/**
 * Id ranges within which the id partition grows with the id. Negative ids (only the instance actor, -99, has one)
 * partition in no useful order: their few objects are sorted in memory.
 */
const ID_WIDTHS: ReadonlyArray<{ readonly from: bigint; readonly to: bigint; readonly sortInMemory?: boolean }> = [
  { from: -(2n ** 63n), to: -1n, sortInMemory: true },
  { from: 0n, to: 10n ** 9n - 1n },
  { from: 10n ** 9n, to: 10n ** 12n - 1n },
  ...[13n, 14n, 15n, 16n, 17n, 18n].map((digits) => ({ from: 10n ** (digits - 1n), to: 10n ** digits - 1n })),
  { from: 10n ** 18n, to: 2n ** 63n - 1n },
];

/**
 * Compares keys as S3 lists them: by their UTF-8 bytes. UTF-16 code units sort the same way except a surrogate (a
 * character above U+FFFF) against U+E000–U+FFFF, which UTF-8 puts first.
 */
export function compareKeys(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let index = 0; index < length; index++) {
    const x = a.charCodeAt(index);
    const y = b.charCodeAt(index);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      const xSurrogate = x < 0xe000;
      const ySurrogate = y < 0xe000;
      if (xSurrogate !== ySurrogate) return xSurrogate ? 1 : -1;
    }
    return x - y;
  }
  return a.length - b.length;
}

export interface OwnedStreamOptions {
  readonly db: Database;
  readonly schema: Schema;
  readonly job: JobName;
  readonly scope: Scope;
  readonly batchSize: number;
  /** Told of each row with a file (every row read, whatever its objects' folders). */
  readonly onRow?: (row: Row) => void;
  /** Told how many rows each window read, with a file or not, as a plain run counts them (readRowPages' onRead). */
  readonly onRead?: (rows: number) => void;
}

/** An owned object, with the row that owns it and the folder (one of mastodonPrefixes) its key is under. */
export interface FolderObject {
  readonly object: OwnedObject;
  readonly row: Row;
  readonly folder: string;
  /** The key without its folder: the id partition, the style and the file name. */
  readonly inFolder: string;
}

/**
 * The objects of `job`'s rows in scope whose keys lie under one of `folders`, each folder's in the byte order of its
 * keys: one read of the rows per id width serves every folder. Objects of different folders interleave in the order
 * of their keys without the folder (partition, style, name), which is each folder's own order, so every folder's
 * listing can be read forward alongside. They come in small batches: a step of an async iteration per object cost
 * more than the join itself.
 */
function ownedByFolder(options: OwnedStreamOptions, folders: readonly string[]): AsyncIterable<FolderObject[]> {
  const streams = ID_WIDTHS.flatMap((width) => {
    const from = options.scope.minId === undefined ? width.from : max(width.from, BigInt(options.scope.minId));
    const to = options.scope.maxId === undefined ? width.to : min(width.to, BigInt(options.scope.maxId));
    return from > to ? [] : [ownedOfWidth(options, folders, from, to, width.sortInMemory === true)];
  });
  return mergeInFolderOrder(streams);
}

/**
 * Rows per window in a join, at most: a window (and the next, read ahead) lives while about as many listed keys go by,
 * long enough for V8 to move it out of the young generation, and the old generation grows with it. 1 M keys by listing
 * peaked at 177 MB with windows of 10,000 rows, 157 MB with 5000, 148–150 MB with 2000 and 148 MB with 1000.
 */
const JOIN_WINDOW_ROWS = 2000;

function ownedOfWidth(options: OwnedStreamOptions, folders: readonly string[], from: bigint, to: bigint, sortInMemory: boolean): AsyncIterable<FolderObject[]> {
  const scope = { ...options.scope, minId: String(from), maxId: String(to) };
  const pages = readRowPages(options.db, options.schema, options.job, {
    batchSize: Math.min(options.batchSize, JOIN_WINDOW_ROWS),
    scope,
    ...(options.onRead !== undefined && { onRead: options.onRead }),
  });
  return inFolderOrder(
    pages,
    (row) => {
      options.onRow?.(row);
      return ownedInScope(options.job, row, scope);
    },
    folders,
    sortInMemory,
  );
}

/**
 * The objects `objectsOf` gives for rows of one id width (`pages`, in id order) whose keys lie under one of
 * `folders`, in the order of their keys within their folder, in batches of about BATCH objects. Consecutive rows that share a
 * partition (a partition drops digits of the id) are sorted together, and all objects of a row share its partition
 * whatever their folder, so besides a page only one partition's objects are held; `sortInMemory` sorts them all
 * (the few negative ids, which partition in no useful order).
 */
export async function* inFolderOrder(
  pages: AsyncIterable<readonly Row[]>,
  objectsOf: (row: Row) => readonly OwnedObject[],
  folders: readonly string[],
  sortInMemory: boolean,
): AsyncIterable<FolderObject[]> {
  let group: FolderObject[] = [];
  let partition: string | undefined;
  let ready: FolderObject[] = [];
  for await (const rows of pages) {
    for (const row of rows) {
      for (const object of objectsOf(row)) {
        const folder = folders.find((candidate) => object.key.startsWith(candidate));
        if (folder === undefined) continue;
        const inFolder = object.key.slice(folder.length);
        const objectPartition = partitionOf(inFolder);
        if (!sortInMemory && objectPartition !== partition) {
          for (const done of group.sort(byKeyInFolder)) ready.push(done);
          group = [];
          partition = objectPartition;
          if (ready.length >= BATCH) {
            yield ready;
            ready = [];
          }
        }
        group.push({ object, row, folder, inFolder });
      }
    }
  }
  for (const done of group.sort(byKeyInFolder)) ready.push(done);
  if (ready.length > 0) yield ready;
}

/**
 * Objects per batch, about: enough to spare an async step per object, few enough that a batch's objects die young
 * (a page of rows at once kept them past the young generation, and the heap grew by 100 MB).
 */
const BATCH = 256;

function byKeyInFolder(a: FolderObject, b: FolderObject): number {
  return compareKeys(a.inFolder, b.inFolder);
}

/** `000/000/001` of `000/000/001/original/name.png`: all but the last two segments (style and name). */
function partitionOf(inFolder: string): string {
  return inFolder.slice(0, inFolder.lastIndexOf('/', inFolder.lastIndexOf('/') - 1));
}

/**
 * Merges streams of batches that are each in order of key within folder into one such stream. A batch ends where a
 * stream's batch does: that stream's next batch may hold the least key.
 */
export async function* mergeInFolderOrder(streams: ReadonlyArray<AsyncIterable<FolderObject[]>>): AsyncIterable<FolderObject[]> {
  if (streams.length === 1) return yield* streams[0]!;
  const iterators = streams.map((stream) => stream[Symbol.asyncIterator]());
  // Each stream's current batch and how far it is taken; undefined once the stream ended.
  const heads: Array<{ batch: FolderObject[]; taken: number } | undefined> = [];
  const refill = async (index: number) => {
    for (;;) {
      const next = await iterators[index]!.next();
      heads[index] = next.done ? undefined : { batch: next.value, taken: 0 };
      if (next.done || next.value.length > 0) return;
    }
  };
  try {
    await Promise.all(iterators.map((_, index) => refill(index)));
    for (;;) {
      const merged: FolderObject[] = [];
      let emptied = -1;
      while (emptied < 0) {
        let least = -1;
        for (let index = 0; index < heads.length; index++) {
          const head = heads[index];
          if (head === undefined) continue;
          if (least < 0 || byKeyInFolder(head.batch[head.taken]!, heads[least]!.batch[heads[least]!.taken]!) < 0) least = index;
        }
        if (least < 0) break;
        const head = heads[least]!;
        merged.push(head.batch[head.taken++]!);
        if (head.taken === head.batch.length) emptied = least;
      }
      if (merged.length > 0) yield merged;
      if (emptied < 0) return;
      await refill(emptied);
    }
  } finally {
    await Promise.all(iterators.map((iterator) => iterator.return?.()));
  }
}

/**
 * A store listed keys out of byte order: a merge with it would report objects missing that are not. The command
 * that meets it names the way around it (`withFix`).
 */
export class ListingOrderError extends Error {
  override readonly name = 'ListingOrderError';

  withFix(fix: string): ListingOrderError {
    return new ListingOrderError(`${this.message}: ${fix}`, { cause: this.cause });
  }
}

/** Entries a cursor reads ahead at a time once it reads at all: about a listing page, then answered without waiting. */
const READ_AHEAD = 1000;

/**
 * One folder's listing at one store, read forward as keys are asked for in ascending byte order: `take` answers
 * synchronously from the entries read ahead, and `readTo` reads on when they do not reach the key asked for.
 */
class ListingCursor {
  private readonly listed: AsyncIterator<ListedObject>;
  private entries: ListedObject[] = [];
  private taken = 0;
  private ended = false;
  private previous: string | undefined;

  constructor(
    listing: AsyncIterable<ListedObject>,
    private readonly where: string,
  ) {
    this.listed = listing[Symbol.asyncIterator]();
  }

  /** Whether `take(key)` can answer now: an entry at or after `key` is read, or the listing has ended. */
  covers(key: string): boolean {
    return this.ended || (this.taken < this.entries.length && compareKeys(this.entries.at(-1)!.key, key) >= 0);
  }

  /** Reads on until `take(key)` can answer, then some entries more, so that the next keys are answered at once. */
  async readTo(key: string): Promise<void> {
    // Not covered: every entry read so far sorts before `key` and will be passed over.
    this.entries = [];
    this.taken = 0;
    let reached = false;
    while (!reached || this.entries.length < READ_AHEAD) {
      const next = await this.listed.next();
      if (next.done) {
        this.ended = true;
        return;
      }
      const listedKey = next.value.key;
      if (this.previous !== undefined && compareKeys(this.previous, listedKey) >= 0) {
        throw new ListingOrderError(
          `${this.where} listed ${JSON.stringify(listedKey)} after ${JSON.stringify(this.previous)}, not in the byte order of keys S3 lists in, so its listing cannot be joined with the database`,
        );
      }
      this.previous = listedKey;
      this.entries.push(next.value);
      reached ||= compareKeys(listedKey, key) >= 0;
    }
  }

  /** The entry listed at `key`, if any, passing over the entries before it; `covers(key)` must hold. */
  take(key: string): ListedObject | undefined {
    while (this.taken < this.entries.length && compareKeys(this.entries[this.taken]!.key, key) < 0) this.taken += 1;
    const entry = this.entries[this.taken];
    if (entry === undefined || entry.key !== key) return undefined;
    this.taken += 1;
    return entry;
  }

  async close(): Promise<void> {
    await this.listed.return?.();
  }
}

/** A store to join with: its listing under a folder, and its name for messages. */
export interface ListingSide {
  readonly list: (folder: string) => AsyncIterable<ListedObject>;
  readonly where: string;
}

/** An owned object and what each side lists at its key (undefined: not listed). */
export interface JoinedObject {
  readonly owned: FolderObject;
  readonly listed: ReadonlyArray<ListedObject | undefined>;
}

/**
 * Pairs each owned object (from ownedByFolder, in batches) with the entry each of `sides` lists at its key, if any;
 * listed keys no object has are passed over. A folder is listed from the first object under it, and each folder's
 * listing is read forward on its own, so a folder holding no owned object is never listed. Yields a batch per batch
 * of objects. Throws ListingOrderError if a listing is not in ascending byte order.
 */
export async function* joinListings(owned: AsyncIterable<readonly FolderObject[]>, sides: readonly ListingSide[]): AsyncIterable<JoinedObject[]> {
  const cursors = new Map<string, ListingCursor[]>();
  try {
    for await (const batch of owned) {
      const joined: JoinedObject[] = [];
      for (const item of batch) {
        let folderCursors = cursors.get(item.folder);
        if (folderCursors === undefined) {
          folderCursors = sides.map((side) => new ListingCursor(side.list(item.folder), side.where));
          cursors.set(item.folder, folderCursors);
        }
        const key = item.object.key;
        for (const cursor of folderCursors) if (!cursor.covers(key)) await cursor.readTo(key);
        // An array of its length, not one grown by push (17 slots): a batch outlives V8's young generation.
        joined.push({ owned: item, listed: folderCursors.map((cursor) => cursor.take(key)) });
      }
      // Every object of the join outlives V8's young generation: collected as it grows, not when V8 gets to it.
      collectIfGrown();
      yield joined;
    }
  } finally {
    await Promise.all([...cursors.values()].flat().map((cursor) => cursor.close()));
  }
}

/**
 * The objects of `owned.job`'s rows in scope under Mastodon's folders for the job, each with what the destination
 * and the source list at its key (`listed`: [at the destination, at the source]), both listings resumed as
 * resumingListing does and ended by `signal`. What verify by listing and run --skip-existing compare.
 */
export function joinWithBothStores(
  owned: OwnedStreamOptions,
  stores: { readonly source: ObjectStore; readonly destination: ObjectStore },
  retries: number,
  signal: AbortSignal | undefined,
): AsyncIterable<JoinedObject[]> {
  const folders = mastodonPrefixes([owned.job]).map(({ prefix }) => prefix);
  const side = (store: ObjectStore): ListingSide => ({ list: (folder) => resumingListing(store, folder, retries, signal), where: store.description });
  return joinListings(ownedByFolder(owned, folders), [side(stores.destination), side(stores.source)]);
}

/** A listing kept failing, past the store's own retries and resumingListing's: the command cannot go on. */
export class ListingFailedError extends Error {
  override readonly name = 'ListingFailedError';

  constructor(store: ObjectStore, prefix: string, cause: unknown) {
    super(`${store.description} failed to list ${store.locate(prefix)} (${describeError(cause)}), again after retries: run again later`, { cause });
  }
}

/**
 * `store.list(prefix)`, resumed after the last key it gave when a page keeps failing transiently (the store retries
 * each page a few times itself): `retries` more times in a row, with backoff. A stop (`signal`) ends the listing
 * quietly, not with the aborted request's error, so that a command stopped by SIGINT or SIGTERM while it lists
 * still ends as interrupted, with its summary: its consumers check the stop before using what follows.
 */
export async function* resumingListing(store: ObjectStore, prefix: string, retries: number, signal?: AbortSignal): AsyncIterable<ListedObject> {
  let last: string | undefined;
  for (let failures = 0; ;) {
    try {
      for await (const object of store.list!(prefix, { startAfter: last, signal })) {
        last = object.key;
        failures = 0;
        heardFrom(store);
        yield object;
      }
      return;
    } catch (error) {
      if (signal?.aborted) return;
      const failure = classifyFailure([store], error);
      if (failure.kind === 'fatal') throw failure.error;
      // A store that answers nothing is waited for, up to its patience (its StoreUnreachableError then passes).
      const away = await waitForSilentStore(error);
      if (away !== undefined) {
        await new Promise((resolve) => setTimeout(resolve, away));
        if (signal?.aborted) return;
        continue;
      }
      // A failure no wait would fix (a refusal, a missing folder, bad input) passes as it is.
      if (failure.kind !== 'retryable' && failure.kind !== 'throttled') throw error;
      if (failures >= retries) throw new ListingFailedError(store, prefix, error);
      await new Promise((resolve) => setTimeout(resolve, backoffMs(failures, failure.afterMs)));
      failures += 1;
    }
  }
}

function max(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
}

function min(a: bigint, b: bigint): bigint {
  return a < b ? a : b;
}
