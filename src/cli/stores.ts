/** Builds the source and destination stores from the config. */
import { resolve } from 'node:path';
import { DEFAULT_UPLOAD_CUTOFF_MIB, type Config, type StoreConfig } from './config.js';
import { UsageError } from '../errors.js';
import { FsStore } from '../storage/fs.js';
import { S3Store } from '../storage/s3.js';
import { copyOnProvider, sameProvider } from '../storage/s3Copy.js';
import type { ObjectStore } from '../storage/types.js';
import type { ServerCopy } from '../sync/copy.js';

/**
 * The part size of a multipart upload, for objects above [sync] upload_cutoff (smaller ones go as one streamed
 * PUT: nothing buffered, and the destination checks the whole object against Content-MD5). lib-storage buffers
 * each part; docs/performance.md has the measurements behind these figures.
 */
export const PART_SIZE = 8 * 1024 * 1024;
/** Parts of one multipart upload in flight: about (PART_QUEUE + 2) × PART_SIZE of memory per large object. */
export const PART_QUEUE = 2;

export function createStore(
  config: StoreConfig,
  role: 'source' | 'destination',
  concurrency: number,
  uploadCutoff = DEFAULT_UPLOAD_CUTOFF_MIB * 1024 * 1024,
): ObjectStore {
  if (config.type === 'fs') return new FsStore(config.path, role);
  return new S3Store(config, {
    role,
    maxSockets: concurrency * (role === 'destination' ? PART_QUEUE : 1) + 4,
    singlePutLimit: uploadCutoff,
    partSize: PART_SIZE,
    queueSize: PART_QUEUE,
  });
}

/**
 * `[sync] copy_mode`: "auto" copies on the provider when source and destination share endpoint, region and
 * credentials, "server" always does (both must be S3), "stream" never. Undefined means stream.
 */
export function serverCopier(mode: Config['sync']['copyMode'], source: ObjectStore, destination: ObjectStore): ServerCopy | undefined {
  if (mode === 'stream') return undefined;
  if (!(source instanceof S3Store && destination instanceof S3Store)) {
    if (mode === 'server')
      throw new UsageError(
        '[sync] copy_mode = "server" copies on an S3 provider: [source] and [destination] must both be type = "s3" (or set copy_mode = "stream")',
      );
    return undefined;
  }
  if (mode === 'auto' && !sameProvider(source.config, destination.config)) return undefined;
  return (sourceKey, key, options) => copyOnProvider(source, sourceKey, destination, key, options);
}

/** Whether two store configs name the same place (copying onto itself would be a no-op at best). */
export function samePlace(a: StoreConfig, b: StoreConfig): boolean {
  if (a.type === 'fs' && b.type === 'fs') return resolve(a.path) === resolve(b.path);
  if (a.type !== 's3' || b.type !== 's3') return false;
  return a.bucket === b.bucket && (a.endpoint ?? '') === (b.endpoint ?? '') && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
}
