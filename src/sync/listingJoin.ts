/**
 * The owned objects of a table joined with a store's listing, in bounded memory: both sides are streamed in the
 * byte order of keys and merged, so neither the rows nor the listing is ever held whole.
 *
 * Rows come in id order, keys in partition order, and the two agree only among ids of one width: `000/000/001`
 * (ids below 10^9, padded to 9 digits) and `109/349/205/816/583/424` (18 digits) interleave in a listing, and a
 * 13-digit id, cut to its first 12 digits, sorts before a 12-digit one (docs/storage-layout.md §1.2). So the rows are
 * read once per id width that has any (ID_WIDTHS), each width's keys come out in key order, and those streams are
 * merged by key. Each of a job's folders (mastodonPrefixes) is listed and joined on its own.
 */
import type { Database } from '../db/connection.js';
import { readRowPages } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName, Row } from '../mastodon/tables.js';
import type { ListedObject, ObjectStore } from '../storage/types.js';
import { backoffMs, classifyFailure } from './retry.js';

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
}

/** An owned object, with the row that owns it. */
export interface RowObject {
  readonly object: OwnedObject;
  readonly row: Row;
}

/** The objects of `job`'s rows in scope whose keys start with `prefix`, in byte order of key. */
export async function* ownedInKeyOrder(options: OwnedStreamOptions, prefix: string): AsyncIterable<RowObject> {
  const streams = ID_WIDTHS.flatMap((width) => {
    const from = options.scope.minId === undefined ? width.from : max(width.from, BigInt(options.scope.minId));
    const to = options.scope.maxId === undefined ? width.to : min(width.to, BigInt(options.scope.maxId));
    return from > to ? [] : [ownedOfWidth(options, prefix, from, to, width.sortInMemory === true)];
  });
  yield* mergeByKey(streams);
}

async function* ownedOfWidth(options: OwnedStreamOptions, prefix: string, from: bigint, to: bigint, sortInMemory: boolean): AsyncIterable<RowObject> {
  const scope = { ...options.scope, minId: String(from), maxId: String(to) };
  // The objects of consecutive rows that share a partition (digits dropped), sorted together.
  let group: RowObject[] = [];
  let partition: string | undefined;
  const sorted = () => group.sort((a, b) => compareKeys(a.object.key, b.object.key));
  for await (const rows of readRowPages(options.db, options.schema, options.job, { batchSize: options.batchSize, scope })) {
    for (const row of rows) {
      options.onRow?.(row);
      const objects = ownedInScope(options.job, row, scope).filter((object) => object.key.startsWith(prefix));
      if (objects.length === 0) continue;
      const folder = partitionOf(objects[0]!.key, prefix);
      if (!sortInMemory && folder !== partition) {
        yield* sorted();
        group = [];
        partition = folder;
      }
      for (const object of objects) group.push({ object, row });
    }
  }
  yield* sorted();
}

/** `000/000/001` of `<prefix>000/000/001/original/name.png`: all but the last two segments (style and name). */
function partitionOf(key: string, prefix: string): string {
  const rest = key.slice(prefix.length);
  return rest.slice(0, rest.lastIndexOf('/', rest.lastIndexOf('/') - 1));
}

/** Merges streams that are each in key order into one. */
async function* mergeByKey(streams: ReadonlyArray<AsyncIterable<RowObject>>): AsyncIterable<RowObject> {
  const iterators = streams.map((stream) => stream[Symbol.asyncIterator]());
  const heads = await Promise.all(iterators.map((iterator) => iterator.next()));
  try {
    for (;;) {
      let least = -1;
      for (let index = 0; index < heads.length; index++) {
        const head = heads[index]!;
        if (head.done) continue;
        if (least < 0 || compareKeys(head.value.object.key, (heads[least]!.value as RowObject).object.key) < 0) least = index;
      }
      if (least < 0) return;
      yield heads[least]!.value as RowObject;
      heads[least] = await iterators[least]!.next();
    }
  } finally {
    await Promise.all(iterators.map((iterator) => iterator.return?.()));
  }
}

/** A store listed keys out of byte order: a merge with it would report objects missing that are not. */
export class ListingOrderError extends Error {
  override readonly name = 'ListingOrderError';
}

/**
 * Pairs each item (in key order) with the entry `listing` has at its key, if any; listed keys no item has are
 * passed over. Throws ListingOrderError if the listing is not in ascending byte order.
 */
export async function* joinListing<T>(
  items: AsyncIterable<T>,
  keyOf: (item: T) => string,
  listing: AsyncIterable<ListedObject>,
  where: string,
): AsyncIterable<[T, ListedObject | undefined]> {
  const listed = listing[Symbol.asyncIterator]();
  let current = await listed.next();
  let previous: string | undefined;
  const advance = async () => {
    previous = (current.value as ListedObject).key;
    current = await listed.next();
    if (!current.done && compareKeys(previous, current.value.key) >= 0) {
      throw new ListingOrderError(
        `${where} listed ${JSON.stringify(current.value.key)} after ${JSON.stringify(previous)}, not in the byte order of keys S3 lists in, so a listing cannot be joined with the database: use --by-head`,
      );
    }
  };
  try {
    for await (const item of items) {
      const key = keyOf(item);
      while (!current.done && compareKeys(current.value.key, key) < 0) await advance();
      if (!current.done && current.value.key === key) {
        yield [item, current.value];
        await advance();
      } else {
        yield [item, undefined];
      }
    }
  } finally {
    await listed.return?.();
  }
}

/**
 * `store.list(prefix)`, resumed after the last key it gave when a page keeps failing transiently (the store retries
 * each page a few times itself): `retries` more times in a row, with backoff.
 */
export async function* resumingListing(store: ObjectStore, prefix: string, retries: number, signal?: AbortSignal): AsyncIterable<ListedObject> {
  let last: string | undefined;
  for (let failures = 0; ;) {
    try {
      for await (const object of store.list!(prefix, { startAfter: last, signal })) {
        last = object.key;
        failures = 0;
        yield object;
      }
      return;
    } catch (error) {
      const failure = classifyFailure([store], error);
      if (failure.kind === 'fatal') throw failure.error;
      if ((failure.kind !== 'retryable' && failure.kind !== 'throttled') || failures >= retries || signal?.aborted) throw error;
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
