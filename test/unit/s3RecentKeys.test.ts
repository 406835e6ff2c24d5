/** S3Store's memory of keys reset while sending keeps only the latest (review L3): it grew by one per object reset and then given up, for a run's days. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentKeys } from '../../src/storage/s3.js';

test('RecentKeys keeps the latest `limit` keys; re-adding a key makes it the latest', () => {
  const keys = new RecentKeys(3);
  for (const key of ['a', 'b', 'c']) keys.add(key);
  keys.add('a');
  keys.add('d');
  assert.equal(keys.size, 3);
  assert.equal(keys.has('b'), false, 'the oldest goes');
  assert.deepEqual(
    ['a', 'c', 'd'].map((key) => keys.has(key)),
    [true, true, true],
  );
  keys.delete('c');
  assert.equal(keys.has('c'), false);
  for (let i = 0; i < 10_000; i++) keys.add(`k${i}`);
  assert.equal(keys.size, 3);
});
