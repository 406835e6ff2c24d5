/** Builds the source and destination stores from the config. */
import { resolve } from 'node:path';
import type { StoreConfig } from './config.js';
import { FsStore } from '../storage/fs.js';
import { S3Store } from '../storage/s3.js';
import type { ObjectStore } from '../storage/types.js';

/** Objects up to this size go as one streamed PUT; above it, multipart in parts this big. */
export const PART_SIZE = 8 * 1024 * 1024;
/** Parts of one multipart upload in flight: with PART_SIZE, bounds memory per large object to ~16 MiB. */
export const PART_QUEUE = 2;

export function createStore(config: StoreConfig, role: 'source' | 'destination', concurrency: number): ObjectStore {
  if (config.type === 'fs') return new FsStore(config.path, role);
  return new S3Store(config, { role, maxSockets: concurrency * (role === 'destination' ? PART_QUEUE : 1) + 4, partSize: PART_SIZE, queueSize: PART_QUEUE });
}

/** Whether two store configs name the same place (copying onto itself would be a no-op at best). */
export function samePlace(a: StoreConfig, b: StoreConfig): boolean {
  if (a.type === 'fs' && b.type === 'fs') return resolve(a.path) === resolve(b.path);
  if (a.type !== 's3' || b.type !== 's3') return false;
  return a.bucket === b.bucket && (a.endpoint ?? '') === (b.endpoint ?? '') && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
}
