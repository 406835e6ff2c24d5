/** What the commands decide about their stores from the config: whether copies go on the provider, and where warnings go. */
import type { Logger } from 'pino';
import type { Config } from './config.js';
import { UsageError } from '../errors.js';
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

/** A store's warnings as log lines of the command. */
export function warnTo(log: Logger): StoreWarning {
  return (message, fields) => log.warn(fields, message);
}
