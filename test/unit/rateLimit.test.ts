/**
 * `--max-rps`: the token bucket lets requests go at least 1/perSecond apart, in arrival order, even when the event
 * loop is busy at the moment they are due (timers then fire late, all at once).
 */
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../src/sync/rateLimit.js';

/** Blocks the event loop, as a burst of work in a real run does. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * Each release is seen a little after it happens (a promise callback; on a loaded machine the OS may also pause the
 * process in between, which shortens the next observed gap by as much: 1.6 ms has been seen), so gaps are read
 * with this slack. The burst the old bucket let out after a busy moment had gaps of 0.02 ms, far below it.
 */
const SLACK_MS = 3;
/** A lost wake-up must fail the test, not hang the run. */
const TIMEOUT = { timeout: 10_000 };

/** Takes `count` tokens at once and records when each was let go, in the order they were asked for. */
async function releases(bucket: TokenBucket, count: number, whileWaiting?: () => void): Promise<Array<{ index: number; at: number }>> {
  const order: Array<{ index: number; at: number }> = [];
  const taken = Array.from({ length: count }, (_, index) => bucket.take().then(() => order.push({ index, at: performance.now() })));
  whileWaiting?.();
  await Promise.all(taken);
  return order;
}

test('requests wait their turn, in the order they asked, at least 1/perSecond apart', TIMEOUT, async () => {
  const order = await releases(new TokenBucket(100), 12);
  assert.deepEqual(
    order.map((release) => release.index),
    [...Array(12).keys()],
  );
  for (let index = 1; index < order.length; index++) {
    const gap = order[index]!.at - order[index - 1]!.at;
    assert.ok(gap >= 10 - SLACK_MS, `release ${index} came ${gap.toFixed(2)} ms after the one before (100 per second: 10 ms apart)`);
  }
});

test('after a busy event loop, the late requests still go one interval apart, not in a burst', TIMEOUT, async () => {
  // The first goes at once and the next is due 20 ms later, but the loop is blocked from 5 to 105 ms: a bucket that
  // fixed each turn in advance would then let the four or five overdue requests go together.
  const order = await releases(new TokenBucket(50), 10, () => setTimeout(() => busyFor(100), 5));
  assert.ok(order[1]!.at - order[0]!.at >= 100, 'the busy spell delayed the second request');
  for (let index = 1; index < order.length; index++) {
    const gap = order[index]!.at - order[index - 1]!.at;
    assert.ok(gap >= 20 - SLACK_MS, `release ${index} came ${gap.toFixed(2)} ms after the one before (50 per second: 20 ms apart)`);
  }
});

test('a request after a quiet spell goes at once', TIMEOUT, async () => {
  const bucket = new TokenBucket(10);
  await bucket.take();
  await new Promise((resolve) => setTimeout(resolve, 120));
  const asked = performance.now();
  await bucket.take();
  // A wait would be the whole 100 ms interval; a loaded machine may take tens of ms to run the next turn anyway.
  assert.ok(performance.now() - asked < 90, 'the interval had passed: no wait');
});

test('a request whose signal aborts leaves the queue at once; those behind it keep their order', TIMEOUT, async () => {
  const bucket = new TokenBucket(20);
  await bucket.take();
  const stop = new AbortController();
  const order: string[] = [];
  const first = bucket.take().then(() => order.push('first'));
  const aborted = bucket.take(stop.signal).then(
    () => order.push('aborted one went'),
    (error: unknown) => order.push(`aborted: ${(error as Error).name}`),
  );
  const last = bucket.take().then(() => order.push('last'));
  stop.abort();
  await aborted;
  assert.deepEqual(order, ['aborted: AbortError'], 'rejected before any turn came');
  await Promise.all([first, last]);
  assert.deepEqual(order, ['aborted: AbortError', 'first', 'last']);
  await assert.rejects(bucket.take(AbortSignal.abort()), { name: 'AbortError' }, 'an aborted signal never queues');
  assert.equal(getEventListeners(stop.signal, 'abort').length, 0, 'the aborted wait leaves no listener behind');
  const served = new AbortController();
  await bucket.take(served.signal);
  assert.equal(getEventListeners(served.signal, 'abort').length, 0, 'a served wait leaves no listener behind');
});
