/** What the commands decide about their stores from the config: whether copies go on the provider, and where warnings go. */
import type { Logger } from '../log.js';
import type { Config } from './config.js';
import { startPatienceMs } from './setup.js';
import { UsageError, describeError, patiently } from '../errors.js';
import type { ObjectStore, StoreWarning } from '../storage/types.js';
import type { ServerCopy } from '../sync/copy.js';

/**
 * `[sync] copy_mode`: "auto" copies on the provider when the destination can copy from the source there (for S3:
 * one endpoint, region and credentials; for Swift: one account), "server" always asks it (both sides must be able to), "stream" never.
 * Undefined means stream.
 */
export function serverCopier(mode: Config['sync']['copyMode'], source: ObjectStore, destination: ObjectStore): ServerCopy | undefined {
  if (mode === 'stream') return undefined;
  const forced = mode === 'server';
  if (destination.copyFrom !== undefined && destination.canCopyFrom?.(source, { forced }) === true) return { forced };
  if (forced)
    throw new UsageError(
      '[sync] copy_mode = "server" copies on the provider: [source] and [destination] must both be type = "s3", both type = "swift" or both type = "azure" (or set copy_mode = "stream")',
    );
  return undefined;
}

/**
 * The stores' start checks, each tried again while it fails in a way that may pass (a 503 SlowDown, no answer), for
 * the start's patience: a pod whose network is not ready yet, or a provider's bad minute, is no config mistake.
 * `signal` stops the waiting when the start has failed for good elsewhere.
 */
export async function checkStores(stores: readonly ObjectStore[], log: Logger, signal?: AbortSignal): Promise<void> {
  const patienceMs = startPatienceMs();
  await Promise.all(
    stores.map((store) =>
      patiently(() => store.check(), {
        patienceMs,
        signal,
        onRetry: (error, retryInMs) =>
          log.warn({ error: describeError(error.cause), store: store.description, retryInMs }, 'the store does not answer yet; trying again'),
      }),
    ),
  );
}

/** A store's warnings as log lines of the command. */
export function warnTo(log: Logger): StoreWarning {
  return (message, fields) => log.warn(fields, message);
}
