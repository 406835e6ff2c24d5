/**
 * The storage layer's entry: the store configs src/cli maps TOML and the environment onto, and the one place that
 * builds a backend from its config. Everything else talks to an ObjectStore (types.ts).
 */
import { resolve } from 'node:path';
import { AzureStore } from './azure.js';
import { azureServiceUrl, type AzureStoreConfig } from './azureConfig.js';
import { FsStore, type FsStoreConfig } from './fs.js';
import { S3Store } from './s3.js';
import type { S3StoreConfig } from './s3Config.js';
import { SwiftStore } from './swift.js';
import type { SwiftStoreConfig } from './swiftConfig.js';
import type { StoreSide } from './errors.js';
import type { ObjectStore, StoreWarning } from './types.js';

export type StoreConfig = S3StoreConfig | FsStoreConfig | SwiftStoreConfig | AzureStoreConfig;
export type { SwiftStoreConfig };
export type { AzureCredentials, AzureStoreConfig } from './azureConfig.js';
/** Checks src/cli makes as it loads the config, so that the line refusing a value names its variable or file key. */
export { isRegionName, shownEndpoint } from './s3Endpoint.js';
export { authVersion } from './swiftAuth.js';

/**
 * The part size of a multipart upload, for objects above [sync] upload_cutoff (smaller ones go as one streamed
 * PUT: nothing buffered, and the destination checks the whole object against Content-MD5). lib-storage buffers
 * each part; docs/performance.md has the measurements behind these figures.
 */
export const PART_SIZE = 8 * 1024 * 1024;
/** Parts of one multipart upload in flight: about (PART_QUEUE + 2) × PART_SIZE of memory per large object. */
const PART_QUEUE = 2;

export interface CreateStoreOptions {
  readonly role: StoreSide;
  /** Copies in flight at once: the store keeps enough connections open for them. */
  readonly concurrency: number;
  /** Bytes: larger objects are uploaded in parts, others in one streamed PUT. */
  readonly uploadCutoff?: number;
  /** Told about what the admin should know while the store works (see StoreWarning). */
  readonly warn?: StoreWarning;
}

export function createStore(config: StoreConfig, options: CreateStoreOptions): ObjectStore {
  const { role, concurrency } = options;
  if (config.type === 'fs') return new FsStore(config.path, role);
  if (config.type === 'swift') return new SwiftStore(config, { role, maxSockets: concurrency + 4, warn: options.warn });
  if (config.type === 'azure') {
    return new AzureStore(config, { role, singlePutLimit: options.uploadCutoff, blockSize: PART_SIZE, blockQueue: PART_QUEUE, warn: options.warn });
  }
  return new S3Store(config, {
    role,
    maxSockets: concurrency * (role === 'destination' ? PART_QUEUE : 1) + 4,
    singlePutLimit: options.uploadCutoff,
    partSize: PART_SIZE,
    queueSize: PART_QUEUE,
    warn: options.warn,
  });
}

/** Whether two store configs name the same place (copying onto itself would be a no-op at best). */
export function samePlace(a: StoreConfig, b: StoreConfig): boolean {
  if (a.type === 'fs' && b.type === 'fs') return resolve(a.path) === resolve(b.path);
  if (a.type === 'swift' && b.type === 'swift') {
    return a.authUrl === b.authUrl && a.container === b.container && (a.keyPrefix ?? '') === (b.keyPrefix ?? '') && a.region === b.region;
  }
  if (a.type === 'azure' && b.type === 'azure') {
    return azureServiceUrl(a) === azureServiceUrl(b) && a.container === b.container && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
  }
  if (a.type !== 's3' || b.type !== 's3') return false;
  return a.bucket === b.bucket && (a.endpoint ?? '') === (b.endpoint ?? '') && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
}
