/**
 * `--max-rps N` / `[sync] max_rps`: one token bucket shared by every request a store sends during a run (both stores, every
 * part, retries included), for providers that publish a request limit. A request waits for its token rather
 * than fail; waiting requests are served in arrival order.
 */
import type { ObjectStore, RequestGate } from '../storage/types.js';

/**
 * A bucket of one token: requests are let go at least 1/perSecond apart, so any one-second window holds at most
 * perSecond + 1 of them (a burst allowance would break the promise a provider's limit needs). Each wait is
 * measured from when the previous request really went: a timer that fires late (a busy event loop) delays the
 * requests behind it instead of letting them catch up in a burst. The price: time lost to a late timer is not made
 * up, so with a busy event loop a run sends somewhat fewer than perSecond requests a second, never more.
 */
export class TokenBucket {
  private readonly intervalMs: number;
  private lastRelease = Number.NEGATIVE_INFINITY;
  /** Waiting requests, served in arrival order. */
  private readonly waiting: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly perSecond: number) {
    this.intervalMs = 1000 / perSecond;
  }

  /** Resolves when the caller may send one request; rejects with the signal's reason if it aborts first. */
  take(signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { go: resolve };
      if (signal) {
        // A hard stop must not wait for the turns of every aborted copy.
        const onAbort = () => {
          const index = this.waiting.indexOf(waiter);
          if (index >= 0) this.waiting.splice(index, 1);
          reject(signal.reason);
        };
        signal.addEventListener('abort', onAbort, { once: true });
        waiter.go = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
      }
      this.waiting.push(waiter);
      if (this.timer === undefined) this.releaseNext();
    });
  }

  private releaseNext(): void {
    this.timer = undefined;
    if (this.waiting.length === 0) return;
    const waitMs = this.lastRelease + this.intervalMs - performance.now();
    if (waitMs > 0) {
      // Rounded up: a timer may not fire before its whole wait has passed.
      this.timer = setTimeout(() => this.releaseNext(), Math.ceil(waitMs));
      return;
    }
    this.lastRelease = performance.now();
    this.waiting.shift()!.go();
    this.releaseNext();
  }
}

interface Waiter {
  go: () => void;
}

/**
 * `[sync] max_rps` / --max-rps over every store of a command that can gate its requests: one bucket, so the cap is
 * for the whole run. `abort` (the hard stop) ends the waits of requests that carry no abort signal of their own.
 */
export function limitStoreRates(stores: readonly ObjectStore[], perSecond: number | undefined, abort?: AbortSignal): void {
  if (perSecond === undefined) return;
  const bucket = new TokenBucket(perSecond);
  const gate: RequestGate = (signal) => bucket.take(signal ?? abort);
  for (const store of stores) store.limitRequests?.(gate);
}
