/**
 * src/cli/heap.ts: once a long command has readied the heap, a run's allocations leave the young generation at the
 * size it had, instead of V8 growing it to two 16 MiB semi-spaces (a run's peak memory), and what the start left in
 * the old space is gone. If a Node upgrade renamed the V8 flag, V8 would ignore it and this would fail.
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
