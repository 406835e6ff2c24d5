/**
 * The copy pool: how many copies run at once, how many may wait, and that a failed copy frees its slot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { BoundedPool } from '../../src/sync/pool.js';

/** A task that runs until `finish` is called (or `fail`), noting when it started. */
function controlled(started: string[], name: string) {
  let finish!: () => void;
  let fail!: (error: Error) => void;
  const done = new Promise<void>((resolve, reject) => ((finish = resolve), (fail = reject)));
  return { task: () => (started.push(name), done), finish: () => finish(), fail: (error: Error) => fail(error) };
}

test('runs at most `concurrency` tasks, starts the queued ones as slots free up, and makes the submitter wait when the queue is full', async () => {
  const started: string[] = [];
  const pool = new BoundedPool(2, 1);
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((name) => controlled(started, name));
  assert.equal(pool.submit(a!.task), undefined, 'room: queued at once, nothing to wait for');
  assert.equal(pool.submit(b!.task), undefined);
  assert.equal(pool.submit(c!.task), undefined, 'one may wait for a slot');
  assert.deepEqual(started, ['a', 'b']);
  assert.equal(pool.active, 2);
  assert.equal(pool.inFlight, 3);
  let dQueued = false;
  const waiting = pool.submit(d!.task);
  assert.ok(waiting instanceof Promise, 'the queue is full: the submitter waits');
  void waiting.then(() => (dQueued = true));
  await nextTurn();
  assert.equal(dQueued, false);

  a!.fail(new Error('a failed')); // a failure frees its slot as a success does
  await nextTurn();
  assert.deepEqual(started, ['a', 'b', 'c']);
  assert.equal(dQueued, true);
  assert.equal(pool.inFlight, 3);

  // Two callers waiting for the same drain are both told.
  const drains = [pool.drain(), pool.drain()];
  for (const task of [b, c, d]) task!.finish();
  await Promise.all(drains);
  assert.deepEqual(started, ['a', 'b', 'c', 'd']);
  assert.equal(pool.inFlight, 0);
});

test('lowering the concurrency holds queued tasks back; raising it starts them at once', async () => {
  const started: string[] = [];
  const pool = new BoundedPool(2, 4);
  pool.concurrency = 1;
  const tasks = ['a', 'b', 'c'].map((name) => controlled(started, name));
  for (const task of tasks) pool.submit(task.task);
  assert.deepEqual(started, ['a']);
  pool.concurrency = 3;
  assert.deepEqual(started, ['a', 'b', 'c']);
  assert.equal(pool.concurrency, 3);
  pool.concurrency = 0.5;
  assert.equal(pool.concurrency, 1, 'never below one');
  for (const task of tasks) task.finish();
  await pool.drain();
  assert.equal(pool.active, 0);
});
