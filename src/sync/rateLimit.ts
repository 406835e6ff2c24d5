/**
 * `--max-rps N` / `[sync] max_rps`: one token bucket shared by every S3 request of a run (both stores, every
 * part, retries included), for providers that publish a request limit. A request waits for its token rather
 * than fail; waiting requests are served in arrival order.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { BuildMiddleware } from '@smithy/types';
import { S3Store } from '../storage/s3.js';
import type { ObjectStore } from '../storage/types.js';

/**
 * A bucket of one token: requests are spaced 1/perSecond apart, so any one-second window holds at most
 * perSecond + 1 of them (a burst allowance would break the promise a provider's limit needs).
 */
export class TokenBucket {
  /** Tokens available now; negative while requests wait (each is owed its turn). */
  private tokens = 1;
  private refilledAt = performance.now();

  constructor(readonly perSecond: number) {}

  /** Resolves when the caller may send one request. */
  async take(): Promise<void> {
    const now = performance.now();
    this.tokens = Math.min(1, this.tokens + ((now - this.refilledAt) * this.perSecond) / 1000);
    this.refilledAt = now;
    this.tokens -= 1;
    if (this.tokens >= 0) return;
    const waitMs = (-this.tokens * 1000) / this.perSecond;
    await new Promise((resolve) => setTimeout(resolve, waitMs));
  }
}

/** Makes every request `client` sends wait for a token of `bucket` first. */
export function limitRequestRate(client: S3Client, bucket: TokenBucket): void {
  const middleware: BuildMiddleware<any, any> = (next) => async (args) => {
    await bucket.take();
    return next(args);
  };
  client.middlewareStack.add(middleware, { step: 'build', name: 'mastosyncMaxRps' });
}

/** `[sync] max_rps` / --max-rps over every S3 store of a command: one bucket, so the cap is for the whole run. */
export function limitStoreRates(stores: readonly ObjectStore[], perSecond: number | undefined): void {
  if (perSecond === undefined) return;
  const bucket = new TokenBucket(perSecond);
  for (const store of stores) {
    if (!(store instanceof S3Store)) continue;
    limitRequestRate(store.client, bucket);
    // GET and single PUT bypass the SDK's middleware (src/storage/s3Direct.ts).
    store.direct.gate = () => bucket.take();
  }
}
