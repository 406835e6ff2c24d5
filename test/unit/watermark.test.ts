/** RowTracker: the watermark is the highest id up to which every row is finished, whatever the finishing order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RowTracker } from '../../src/sync/watermark.js';
import { BoundedPool } from '../../src/sync/pool.js';

test('the watermark waits for the slowest earlier row', () => {
  const tracker = new RowTracker();
  tracker.begin('1', 2);
  tracker.begin('2', 1);
  tracker.begin('3', 0); // a row with no files is finished at once, but only counts once rows before it are
  assert.equal(tracker.watermark, undefined);
  assert.equal(tracker.settle('2'), false);
  assert.equal(tracker.settle('1'), false);
  assert.equal(tracker.watermark, undefined);
  assert.equal(tracker.settle('1'), true);
  assert.equal(tracker.watermark, '3');
  assert.equal(tracker.pending, 0);
});

test('a resumed tracker starts at its watermark and keeps it until a later row finishes', () => {
  const tracker = new RowTracker('100');
  tracker.begin('101', 1);
  assert.equal(tracker.watermark, '100');
  tracker.settle('101');
  assert.equal(tracker.watermark, '101');
});

test('a million rows finishing in order keep the tracker small', () => {
  const tracker = new RowTracker();
  for (let id = 1; id <= 1_000_000; id++) {
    tracker.begin(String(id), 1);
    tracker.settle(String(id));
  }
  assert.equal(tracker.watermark, '1000000');
  assert.equal(tracker.pending, 0);
});

test('BoundedPool runs at most `concurrency` tasks and makes submit wait while the queue is full', async () => {
  const pool = new BoundedPool(2, 1);
  let running = 0;
  let peak = 0;
  const releases: Array<() => void> = [];
  const task = () =>
    new Promise<void>((resolve) => {
      running += 1;
      peak = Math.max(peak, running);
      releases.push(() => {
        running -= 1;
        resolve();
      });
    });
  await pool.submit(task);
  await pool.submit(task);
  await pool.submit(task); // queued: 2 running + 1 waiting fills the pool
  let fourthQueued = false;
  const fourth = pool.submit(task)!.then(() => (fourthQueued = true));
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(fourthQueued, false, 'submit must wait while the pool is full');
  releases.shift()!();
  await fourth;
  assert.equal(fourthQueued, true);
  while (releases.length > 0 || pool.inFlight > 0) {
    releases.shift()?.();
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await pool.drain();
  assert.equal(peak, 2);
});
