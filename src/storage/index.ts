/**
 * The storage layer's entry: the store configs src/cli maps TOML and the environment onto, and the one place that
 * builds a backend from its config. Everything else talks to an ObjectStore (types.ts).
 */
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { AzureStore } from './azure.js';
import { azureServiceUrl, type AzureStoreConfig } from './azureConfig.js';
import { FsStore, type FsStoreConfig } from './fs.js';
import { S3Store } from './s3.js';
import type { S3StoreConfig } from './s3Config.js';
import { shownEndpoint } from './s3Endpoint.js';
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

/**
 * Where two store configs both lead, when they name the same place (copying onto itself would be a no-op at best,
 * and a prune or a repair then works on the source): said for the admin, e.g. `folder /srv/media (/srv/new leads
 * there too)`; undefined when they differ. Two spellings of one place count as one: a folder through a symlink (or
 * `..`), an endpoint by `localhost` or `127.0.0.1` (any loopback name, this machine's own name), with or without its
 * default port or a trailing slash. Other names are not resolved: two host names on one address are two services
 * behind a proxy that routes by name (an old and a new MinIO behind one nginx), which a migration may rightly join.
 */
export function samePlace(a: StoreConfig, b: StoreConfig): string | undefined {
  if (a.type === 'fs' && b.type === 'fs') {
    const [here, there] = [realFolder(a.path), realFolder(b.path)];
    if (here !== there) return undefined;
    const through = [a.path, b.path].filter((path) => resolve(path) !== here);
    return `folder ${here}${through.length > 0 ? ` (${through.join(' and ')} ${through.length > 1 ? 'lead' : 'leads'} there too)` : ''}`;
  }
  // Shown as every other line shows an endpoint: a user and password in it masked.
  const where = (endpoints: string[]) => {
    const [here, there] = endpoints.map(shownEndpoint) as [string, string];
    return here === there ? here : `${here} and ${there}, one machine`;
  };
  if (a.type === 'swift' && b.type === 'swift') {
    // Containers are an account's (a Keystone project; tempauth's "account:user"): two projects on one Keystone may
    // each have a container "mastodon", and moving from one to the other is a migration.
    const account = (config: SwiftStoreConfig) => [config.projectId ?? config.tenant ?? config.username.split(':')[0], config.domain ?? ''].join('\0');
    const same =
      urlPlace(a.authUrl) === urlPlace(b.authUrl) &&
      account(a) === account(b) &&
      a.container === b.container &&
      (a.keyPrefix ?? '') === (b.keyPrefix ?? '') &&
      a.region === b.region;
    return same ? `container "${a.container}" at ${where([a.authUrl, b.authUrl])}` : undefined;
  }
  if (a.type === 'azure' && b.type === 'azure') {
    const urls = [azureServiceUrl(a), azureServiceUrl(b)];
    const same = urlPlace(urls[0]!) === urlPlace(urls[1]!) && a.container === b.container && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
    return same ? `container "${a.container}" at ${where(urls)}` : undefined;
  }
  if (a.type !== 's3' || b.type !== 's3') return undefined;
  const same = a.bucket === b.bucket && urlPlace(a.endpoint ?? '') === urlPlace(b.endpoint ?? '') && (a.keyPrefix ?? '') === (b.keyPrefix ?? '');
  return same ? `bucket "${a.bucket}" at ${where([a.endpoint ?? 'AWS', b.endpoint ?? 'AWS'])}` : undefined;
}

/**
 * The folder `path` is, symlinks resolved: realpath of its deepest part that exists (a destination may not exist
 * yet), the rest appended.
 */
function realFolder(path: string): string {
  const rest: string[] = [];
  for (let existing = resolve(path); ;) {
    try {
      return join(realpathSync(existing), ...rest.reverse());
    } catch {
      const parent = dirname(existing);
      if (parent === existing) return resolve(path);
      rest.push(basename(existing));
      existing = parent;
    }
  }
}

/** `url` with loopback names as one (`loopback`), the default port spelled out and no trailing slash; as is when no URL. */
function urlPlace(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  const host = parsed.hostname.toLowerCase().replace(/\.$/, '');
  const port = parsed.port || (parsed.protocol === 'https:' ? '443' : parsed.protocol === 'http:' ? '80' : '');
  return `${parsed.protocol}//${isLoopback(host) ? 'loopback' : host}:${port}${parsed.pathname.replace(/\/+$/, '')}`;
}

/** Names of this machine as URL gives hostnames (IPv6 in brackets, IPv4 in dotted quad, IPv4-mapped in hex). */
function isLoopback(host: string): boolean {
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    /^127\.\d+\.\d+\.\d+$/.test(host) ||
    host === '0.0.0.0' ||
    host === '[::1]' ||
    host === '[::]' ||
    /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(host) ||
    host === hostname().toLowerCase()
  );
}
