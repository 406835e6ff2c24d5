/**
 * The collection a listing join asks for: when what is held grew by its allowance, and a full collection then, one
 * that frees what outlived the young generation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import { collectIfGrown, growthTrigger } from '../../src/sync/garbage.js';

const MiB = 1024 * 1024;

test('growthTrigger says so once what is held grew by the allowance over the least since it last did', () => {
  const grown = growthTrigger(10 * MiB);
  assert.equal(grown(30 * MiB), false);
  assert.equal(grown(39 * MiB), false);
  assert.equal(grown(40 * MiB), true);
  // After the collection: what it left is the new least.
  assert.equal(grown(22 * MiB), false);
  assert.equal(grown(31 * MiB), false);
  // A collection V8 made on its own: the growth counts from there.
  assert.equal(grown(18 * MiB), false);
  assert.equal(grown(27 * MiB), false);
  assert.equal(grown(28 * MiB), true);
});

test('growthTrigger with a share: a large live heap must grow by that share of itself, so its collections stay few', () => {
  const grown = growthTrigger(10 * MiB, 0.5);
  assert.equal(grown(100 * MiB), false);
  assert.equal(grown(140 * MiB), false, '40 MB over 100 is more than 10 MB, less than half of 100');
  assert.equal(grown(150 * MiB), true);
  // A small heap: the 10 MB allowance rules.
  assert.equal(grown(12 * MiB), false);
  assert.equal(grown(22 * MiB), true);
});

/** Old garbage: a target that lives through the allocation of 600,000 objects moves to the old generation. */
function oldGarbage(): { ref: WeakRef<object>; grownTo: number } {
  const target = { name: 'old' };
  const junk = Array.from({ length: 600_000 }, (_, index) => ({ index, text: `junk ${index}` }));
  const grownTo = getHeapStatistics().used_heap_size;
  assert.equal(junk.length, 600_000);
  return { ref: new WeakRef(target), grownTo };
}

test('collectIfGrown frees the old generation once the heap grew by its allowance', async () => {
  collectIfGrown();
  const { ref, grownTo } = oldGarbage();
  await nextTurn(); // a WeakRef holds its target until the end of the turn that made it
  collectIfGrown();
  // Only a full collection clears an old target: a minor one (what `gc({ type: 'major' })` makes in V8 11) leaves it.
  assert.equal(ref.deref(), undefined);
  assert.ok(getHeapStatistics().used_heap_size < grownTo - 20 * MiB, 'the junk is freed');
});
