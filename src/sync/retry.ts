/**
 * The one retry loop for object operations: each store judges its own failures (ObjectStore.classify), and this
 * waits with exponential backoff and full jitter, at least as long as a server's Retry-After asked, then tries
 * the whole operation again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FailureKind, ObjectStore } from '../storage/types.js';
import { waitForSilentStore } from './storeWatch.js';

/** Full-jitter backoff: a random wait up to base × 2^attempt (capped), or the server's Retry-After if longer. */
export function backoffMs(attempt: number, afterMs: number | undefined, baseMs = 200, capMs = 20_000, random = Math.random): number {
  const jitter = random() * Math.min(capMs, baseMs * 2 ** attempt);
  return afterMs === undefined ? jitter : Math.max(jitter, Math.min(afterMs, 5 * capMs));
}

/**
 * What a failure of an operation on `stores` means. Each store recognises its own errors and calls the others
 * permanent, so the most hopeful verdict is the one that knows: fatal first (nothing else matters), then
 * throttled, retryable, notFound.
 */
export function classifyFailure(stores: readonly ObjectStore[], error: unknown): FailureKind {
  const kinds = stores.map((store) => store.classify(error));
  const fatal = kinds.find((kind) => kind.kind === 'fatal');
  if (fatal !== undefined) return fatal;
  for (const wanted of ['throttled', 'retryable', 'notFound'] as const) {
    const found = kinds.filter((kind) => kind.kind === wanted);
    if (found.length === 0) continue;
    if (wanted === 'notFound') return { kind: 'notFound' };
    const waits = found.map((kind) => ('afterMs' in kind ? kind.afterMs : undefined)).filter((ms) => ms !== undefined);
    return { kind: wanted, afterMs: waits.length === 0 ? undefined : Math.max(...waits) };
  }
  // The store that knows the error says whether it is the object's own; the others only call it permanent.
  return kinds.find((kind) => kind.kind === 'permanent' && kind.ofObject === true) ?? { kind: 'permanent' };
}

export interface RetryOptions {
  /** Attempts after the first. */
  readonly retries: number;
  /** Once aborted, no further attempt starts and a backoff in progress ends. */
  readonly signal?: AbortSignal;
  /** Told about every throttling answer, so the caller can send fewer requests. */
  readonly onThrottle?: () => void;
}

/**
 * Runs `operation` (given the attempt number, from 0) until it succeeds, or fails in a way no retry fixes, or
 * `retries` further attempts have failed; then throws the last error, or the FatalStoreError a store made of it.
 * A watched store that answers nothing is waited for, up to its patience, and that counts against no retry
 * (src/sync/storeWatch.ts); past the patience its StoreUnreachableError is thrown.
 */
export async function withRetries<T>(stores: readonly ObjectStore[], operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 0, failed = 0; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      const failure = classifyFailure(stores, error);
      // Every attempt would fail the same way, and so would every other object: no retry, the run stops.
      if (failure.kind === 'fatal') throw failure.error;
      if (options.signal?.aborted) throw error;
      const away = await waitForSilentStore(error);
      if (away !== undefined) {
        await sleep(away, undefined, { signal: options.signal }).catch(() => undefined);
        // Stopped while it waited for the store: no new attempt (an upload, maybe) starts after a stop.
        if (options.signal?.aborted) throw error;
        continue;
      }
      if (failure.kind === 'throttled') options.onThrottle?.();
      const transient = failure.kind === 'retryable' || failure.kind === 'throttled';
      if (failed >= options.retries || !transient) throw error;
      await sleep(backoffMs(failed, failure.afterMs), undefined, { signal: options.signal }).catch(() => undefined);
      failed += 1;
    }
  }
}
