/**
 * src/cli/heap.ts: once a long command has readied the heap, a run's allocations leave the young generation at the
 * size it had, instead of V8 growing it to two 16 MiB semi-spaces (a run's peak memory), and what the start left in
 * the old space is gone, and a hot function waits longer before V8 optimizes it. If a Node upgrade renamed a V8 flag,
 * V8 would ignore it and this would fail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const heapModule = resolve(import.meta.dirname, '../../src/cli/heap.ts');

/** The young generation's size in MiB after allocating as a copy does: many short-lived objects, some kept a while. */
function youngGenerationAfterAllocating(stopGrowth: boolean): number {
  const script = `import { getHeapSpaceStatistics } from 'node:v8';
    import { settleHeapForWork } from ${JSON.stringify(heapModule)};
    const young = () => getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size / 1048576;
    if (${stopGrowth}) settleHeapForWork();
    const before = young();
    const kept = [];
    for (let i = 0; i < 3e6; i++) {
      const object = { id: i, key: [i] };
      if (i % 20 === 0) kept.push(object);
      if (kept.length > 20000) kept.splice(0, 10000);
    }
    console.log(JSON.stringify({ before, after: young() }));`;
  const { before, after } = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as {
    before: number;
    after: number;
  };
  return after / before;
}

test('a stopped young generation keeps its size through a run of allocations; left alone, V8 grows it', () => {
  assert.equal(youngGenerationAfterAllocating(true), 1);
  assert.ok(youngGenerationAfterAllocating(false) > 1, 'without the stop, the same allocations grow it');
});

test('what the start left in the old space is collected when the heap is readied, not held through the run', () => {
  const script = `import { getHeapStatistics } from 'node:v8';
    import { settleHeapForWork } from ${JSON.stringify(heapModule)};
    // Objects that live long enough to reach the old space, as loaded code's start-up objects do, then are dropped.
    let left = [];
    for (let i = 0; i < 300000; i++) left.push({ id: i, name: 'object ' + i });
    for (let i = 0; i < 200000; i++) void { churn: i };
    left = undefined;
    const before = getHeapStatistics().used_heap_size;
    settleHeapForWork();
    console.log(JSON.stringify({ before, after: getHeapStatistics().used_heap_size }));`;
  const { before, after } = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })) as {
    before: number;
    after: number;
  };
  assert.ok(before - after > 10 * 1024 * 1024, `used heap ${(before / 1048576).toFixed(1)} MiB before, ${(after / 1048576).toFixed(1)} MiB after`);
});

/** Calls of a small hot function until TurboFan has optimized it (compiled at once, not on a thread, so it counts the same). */
function callsUntilOptimized(settled: boolean): number {
  const script = `import { settleHeapForWork } from ${JSON.stringify(heapModule)};
    if (${settled}) settleHeapForWork();
    function hot(values) {
      let sum = 0;
      for (let i = 0; i < values.length; i++) sum += values[i] * 3 + (i & 7);
      return sum;
    }
    const values = Array.from({ length: 64 }, (_, i) => i);
    let calls = 0;
    // Bit 4 of V8's optimization status: optimized.
    while (calls < 1e5 && (eval('%GetOptimizationStatus(hot)') & 16) === 0) {
      hot(values);
      calls++;
    }
    console.log(calls);`;
  const flags = ['--allow-natives-syntax', '--no-concurrent-recompilation', '--import', 'tsx', '--input-type=module', '-e', script];
  return Number(execFileSync(process.execPath, flags, { encoding: 'utf8' }));
}

test('once the heap is readied, a hot function runs about four times as long before V8 optimizes it', () => {
  const before = callsUntilOptimized(false);
  const after = callsUntilOptimized(true);
  assert.ok(before > 0 && after < 1e5, `optimized after ${before} calls, and ${after} once readied`);
  assert.ok(after >= 3 * before, `optimized after ${before} calls, and already after ${after} once readied`);
});
