import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListingOrderError, compareKeys, inFolderOrder, joinListings, mergeInFolderOrder, type FolderObject } from '../../src/sync/listingJoin.js';
import { mastodonPrefixes } from '../../src/mastodon/owners.js';
import { ownedObjects, type OwnedObject } from '../../src/mastodon/keys.js';
import type { Row } from '../../src/mastodon/tables.js';
import type { ListedObject } from '../../src/storage/types.js';
import { seededRandom } from '../support/random.js';

const bytes = (a: string, b: string) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)));

test('compareKeys orders as S3 lists: by UTF-8 bytes, not UTF-16 code units', () => {
  assert.equal(Math.sign(compareKeys('\uFF5E', '\u{1F600}')), -1, 'U+FF5E before U+1F600 (UTF-16 says after)');
  assert.equal(Math.sign(compareKeys('a/b', 'a-b')), 1);
  assert.equal(compareKeys('same', 'same'), 0);
  const random = seededRandom(3);
  const alphabet = ['a', '/', '.', '-', '0', 'é', '\uE000', '\uFFFD', '\u{1F600}', '\u{10000}'];
  const word = () => Array.from({ length: Math.floor(random() * 5) }, () => alphabet[Math.floor(random() * alphabet.length)]).join('');
  for (let round = 0; round < 2000; round++) {
    const [a, b] = [word(), word()];
    assert.equal(Math.sign(compareKeys(a, b)), bytes(a, b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
  }
});

async function* listed(keys: string[]): AsyncIterable<ListedObject> {
  for (const key of keys) yield { key, size: key.length };
}

const FOLDERS = mastodonPrefixes(['media_attachments']).map(({ prefix }) => prefix);

/** A media row: local or remote (then under cache/), an image (original and small) or audio, with a thumbnail or not. */
function mediaRow(id: string, random: () => number): Row {
  const remote = random() < 0.5;
  return {
    id,
    remote_url: remote ? `https://remote.example/${id}` : '',
    file_file_name: `${id}.${random() < 0.5 ? 'png' : 'mp3'}`,
    file_content_type: random() < 0.5 ? 'image/png' : 'audio/mpeg',
    file_storage_schema_version: 1,
    thumbnail_file_name: random() < 0.3 ? `t${id}.jpg` : null,
    thumbnail_storage_schema_version: 1,
  };
}

async function* pagesOf(rows: Row[], size: number): AsyncIterable<Row[]> {
  for (let start = 0; start < rows.length; start += size) yield rows.slice(start, start + size);
}

/** Every item of a stream of batches. */
async function collect<T>(batches: AsyncIterable<readonly T[]>): Promise<T[]> {
  const all: T[] = [];
  for await (const batch of batches) all.push(...batch);
  return all;
}

/** Every folder's keys, in the order the stream gave them. */
function byFolder(objects: readonly FolderObject[]): Map<string, string[]> {
  const folders = new Map<string, string[]>();
  for (const { folder, object } of objects) folders.set(folder, [...(folders.get(folder) ?? []), object.key]);
  return folders;
}

const inByteOrder = (keys: readonly string[]) => [...keys].sort((a, b) => Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b))));

test('inFolderOrder: one read of the rows gives each folder its owned keys in byte order', async () => {
  const random = seededRandom(12);
  // 9-digit ids (one partition each) and 13-digit ones (ten share a partition), each width read on its own.
  const narrow = Array.from({ length: 400 }, (_, index) => mediaRow(String(99_990 + index * 7), random));
  const wide = Array.from({ length: 400 }, (_, index) => mediaRow(String(1_000_000_000_000n + BigInt(index * 3)), random));
  for (const rows of [narrow, wide]) {
    const objects = await collect(inFolderOrder(pagesOf(rows, 37), (row) => ownedObjects('media_attachments', row), FOLDERS, false));
    const owned = rows.flatMap((row) => ownedObjects('media_attachments', row));
    assert.equal(objects.length, owned.length, 'every owned object, once');
    const folders = byFolder(objects);
    assert.ok(folders.size >= 3, `rows spread over ${folders.size} folders`);
    for (const [folder, keys] of folders) {
      assert.deepEqual(keys, inByteOrder(owned.filter((object) => object.key.startsWith(folder)).map((object) => object.key)), folder);
    }
  }
});

test('inFolderOrder streams: its first batch comes long before the rows are all read', async () => {
  const random = seededRandom(5);
  let pagesRead = 0;
  async function* counted(): AsyncIterable<Row[]> {
    for await (const page of pagesOf(
      Array.from({ length: 5000 }, (_, index) => mediaRow(String(index + 1), random)),
      10,
    )) {
      pagesRead += 1;
      yield page;
    }
  }
  for await (const _ of inFolderOrder(counted(), (row) => ownedObjects('media_attachments', row), FOLDERS, false)) break;
  assert.ok(pagesRead <= 50, `${pagesRead} pages of 500 read before the first batch`);
});

test("mergeInFolderOrder: widths whose keys interleave come out in each folder's byte order", async () => {
  const random = seededRandom(8);
  // 109349205 partitions as 109/349/205, and 109349205816583400 as 109/349/205/816/583/4: their keys interleave.
  const widths = [
    ['109349205', '109349206', '999999999'],
    ['109349205816583400', '109349205816583999', '109349206000000000'],
    ['100000000000', '100000000001'],
    ['1000000000000', '1000000000005'],
  ].map((ids) => ids.map((id) => mediaRow(id, random)));
  const streams = widths.map((rows) => inFolderOrder(pagesOf(rows, 2), (row) => ownedObjects('media_attachments', row), FOLDERS, false));
  const merged = await collect(mergeInFolderOrder(streams));
  const owned = widths.flat().flatMap((row) => ownedObjects('media_attachments', row));
  assert.equal(merged.length, owned.length);
  for (const [folder, keys] of byFolder(merged)) {
    assert.deepEqual(keys, inByteOrder(owned.filter((object) => object.key.startsWith(folder)).map((object) => object.key)), folder);
  }
});

/** Owned objects with only a key, under two folders. */
function folderObjects(keys: string[]): FolderObject[] {
  return keys.map((key) => {
    const folder = key.slice(0, key.indexOf('/') + 1);
    return { object: { key } as OwnedObject, row: {}, folder, inFolder: key.slice(folder.length) };
  });
}

/** `values` in batches of two. */
async function* batches<T>(values: T[]): AsyncIterable<T[]> {
  for (let start = 0; start < values.length; start += 2) yield values.slice(start, start + 2);
}

test('joinListings pairs each object with what each store lists at its key in its folder, and never lists a folder without objects', async () => {
  const asked: string[] = [];
  const side = (where: string, keys: string[]) => ({
    where,
    list: (folder: string) => {
      asked.push(`${where} ${folder}`);
      return listed(keys.filter((key) => key.startsWith(folder)));
    },
  });
  const destination = side('destination', ['a/1', 'a/2', 'a/3', 'b/1', 'b/9', 'c/1']);
  const source = side('source', ['a/1', 'a/3', 'a/4', 'b/1', 'b/2', 'c/1']);
  // Folders interleave, each in its own key order.
  const owned = folderObjects(['a/1', 'b/1', 'a/3', 'b/2', 'a/4', 'b/3']);
  const joined = (await collect(joinListings(batches(owned), [destination, source]))).map(
    ({ owned: { object }, listed: [atDestination, atSource] }) => `${object.key} ${atDestination ? 'D' : '-'}${atSource ? 'S' : '-'}`,
  );
  assert.deepEqual(joined, ['a/1 DS', 'b/1 DS', 'a/3 DS', 'b/2 -S', 'a/4 -S', 'b/3 --']);
  assert.deepEqual(asked.sort(), ['destination a/', 'destination b/', 'source a/', 'source b/'], 'c/ owns nothing: not listed');
});

test('joinListings refuses a listing out of byte order rather than report objects missing', async () => {
  await assert.rejects(async () => {
    for await (const _ of joinListings(batches(folderObjects(['a/b', 'a/z'])), [{ where: 'store', list: () => listed(['a/b', 'a-b']) }]));
  }, ListingOrderError);
});

test('joinListings reads a long listing ahead in steps and still finds every listed key, in batches of any size', async () => {
  const key = (index: number) => `a/${String(index).padStart(5, '0')}`;
  const listedKeys = Array.from({ length: 3500 }, (_, index) => key(index * 2));
  // Every third key: two of three listed ones are passed over, and odd ones are not listed at all.
  const ownedKeys = Array.from({ length: 2300 }, (_, index) => key(index * 3));
  const joined = await collect(joinListings(batches(folderObjects(ownedKeys)), [{ where: 'store', list: () => listed(listedKeys) }]));
  assert.deepEqual(
    joined.map(({ owned, listed: [entry] }) => [owned.object.key, entry?.key]),
    ownedKeys.map((owned, index) => [owned, index % 2 === 0 ? owned : undefined]),
  );
});
