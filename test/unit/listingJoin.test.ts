import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListingOrderError, compareKeys, joinListing } from '../../src/sync/listingJoin.js';
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

async function* items(keys: string[]): AsyncIterable<string> {
  yield* keys;
}

test('joinListing pairs each item with the entry at its key, passes over listed keys no item has', async () => {
  const joined: Array<[string, number | undefined]> = [];
  for await (const [item, entry] of joinListing(items(['a', 'c', 'd']), (key) => key, listed(['a', 'b', 'c', 'e']), 'store')) joined.push([item, entry?.size]);
  assert.deepEqual(joined, [
    ['a', 1],
    ['c', 1],
    ['d', undefined],
  ]);
});

test('joinListing refuses a listing out of byte order rather than report objects missing', async () => {
  await assert.rejects(async () => {
    for await (const _ of joinListing(items(['a/b', 'z']), (key) => key, listed(['a/b', 'a-b']), 'store'));
  }, ListingOrderError);
});
