/**
 * One interface for every backend (rclone's split: backends know storage, src/sync knows operations).
 * Keys given to a store are Mastodon's relative keys; each store maps them to its own layout
 * (an S3 key prefix, or a path under public/system).
 */
import type { Readable } from 'node:stream';
import type { FatalStoreError, StoreSide } from './errors.js';

export interface ObjectInfo {
  readonly contentLength?: number;
  readonly contentType?: string;
  readonly cacheControl?: string;
  /** The ETag without quotes; a plain MD5 of the bytes unless the object was uploaded multipart or encrypted. */
  readonly etag?: string;
  /** When it was last written (ms since the epoch), where the store says so cheaply: a folder's mtime. */
  readonly modifiedMs?: number;
}

export interface ReadObject extends ObjectInfo {
  readonly body: Readable;
}

export interface WriteOptions {
  readonly contentType?: string;
  readonly cacheControl?: string;
  /** Exact byte count of the body, when known: lets small objects go as one streamed PUT. */
  readonly contentLength?: number;
  /** A canned ACL; undefined or "" sends none. */
  readonly acl?: string;
  /**
   * For an object only its owner fetches, by a link Mastodon hands out (a backup; `acl` is then "private"): the
   * configured ACL. A store that serves such links unsigned (a folder behind the web server, which Mastodon's download
   * redirects to) gives the object this access instead of `acl`'s, as Mastodon's own file there has; the others ignore it.
   */
  readonly ownerAcl?: string;
  readonly storageClass?: string;
  /** Base64 MD5 of the body, sent as Content-MD5 on a single PUT so the server itself refuses wrong bytes. */
  readonly contentMd5?: string;
  /**
   * The body was not hashed on the way (provesWrites): the store's answer must show that the stored bytes have
   * `contentMd5`, or the write fails with a retryable IntegrityError.
   */
  readonly proofRequired?: boolean;
  readonly signal?: AbortSignal;
}

export interface ObjectStore {
  /** For messages: `s3://bucket/prefix` or a folder path. */
  readonly description: string;
  /** Where `key` lives in this store, as an admin would look for it. */
  locate(key: string): string;
  /** Proves the store is reachable and usable before anything is written; throws UsageError naming the fix. */
  check(): Promise<void>;
  /** The object's bytes and attributes, or undefined when no such object exists. */
  read(key: string, signal?: AbortSignal): Promise<ReadObject | undefined>;
  head(key: string): Promise<ObjectInfo | undefined>;
  /** Writes all of `body` to `key`; the object appears only once every byte has arrived. */
  write(key: string, body: Readable, options: WriteOptions): Promise<void>;
  /**
   * Whether a write of `contentLength` bytes with `contentMd5` and `proofRequired` either stores exactly those
   * bytes or fails: the store then proves the copy end to end, and the copier need not hash the bytes itself.
   * May turn false during a run, once a provider's answers show they prove nothing.
   */
  provesWrites(contentLength: number | undefined): boolean;
  /**
   * Judges an error that one of this store's calls threw, or its body while it streamed (see FailureKind). An error
   * the store does not recognise as its own is `permanent`, so that of two stores the one that knows it decides.
   */
  classify(error: unknown): FailureKind;
  close(): void;

  // Optional capabilities: a backend without one leaves it undefined, and the caller falls back (or says why not).

  /**
   * As write, for a small body the caller holds whole and has checked already: sent from memory, with no stream
   * (S3: the headers and the body in one write; a folder: one writeFile). Without it the caller streams the body.
   */
  writeBytes?(key: string, bytes: Buffer, options: WriteOptions): Promise<void>;
  /**
   * Every object whose key starts with `prefix` (a relative key prefix, '' for all), in ascending byte order of
   * key, streamed page by page: memory does not grow with the number of objects. `startAfter` resumes a listing.
   */
  list?(prefix: string, options?: { readonly startAfter?: string; readonly signal?: AbortSignal }): AsyncIterable<ListedObject>;
  /** Deletes `keys` (up to 1000 per call); returns the keys that could not be deleted, with why. */
  delete?(keys: readonly string[], signal?: AbortSignal): Promise<ReadonlyArray<{ readonly key: string; readonly error: string }>>;
  /** Copies `sourceKey` of `source` to `key` of this store on the provider, or declines (see ServerCopyOutcome). */
  copyFrom?(source: ObjectStore, sourceKey: string, key: string, options: ServerCopyOptions): Promise<ServerCopyOutcome>;
  /**
   * Whether copyFrom can copy from `source` at all (with `forced`, as copy_mode = "server" asks), decided once before
   * a run, without a request: "auto" streams when false, "server" then stops with a usage error. A true answer may
   * still meet 'declined' for one key. Defined whenever copyFrom is.
   */
  canCopyFrom?(source: ObjectStore, options?: { readonly forced?: boolean }): boolean;
  /**
   * Who may read an object once written: S3's per-object ACL, a folder's file mode (Mastodon changes both when an
   * account is suspended or unsuspended). Absent where access belongs to the whole container (Azure, Swift).
   */
  readonly access?: ObjectAccess;
  /** Makes every request this store sends (parts, listings and retries included) wait for `gate` first. */
  limitRequests?(gate: RequestGate): void;
}

/** Per-object access, as `write` sets it from WriteOptions.acl (a canned ACL; "private" for Mastodon's private objects). */
export interface ObjectAccess {
  /**
   * Whether readers see `key` as a write with `acl` (and `ownerAcl`, WriteOptions) would have left it (public or not: grants that differ only in
   * who owns the object count as the same), and who they are; undefined when there is no such object.
   */
  compare(key: string, acl: string, signal?: AbortSignal, ownerAcl?: string): Promise<AccessCompared | undefined>;
  /**
   * Gives the existing object the access a write with `acl` (and `ownerAcl`, WriteOptions) gives; false when there is
   * no such object.
   */
  set(key: string, acl: string, signal?: AbortSignal, ownerAcl?: string): Promise<boolean>;
  /**
   * Asked once before a pass that reads access, writing nothing: throws an AccessUnsupportedError saying why when the
   * store shows it keeps no per-object access (a provider without ACLs answers the same for every key), and resolves
   * otherwise, which proves nothing more: compare and set may still meet the refusal.
   */
  probe(signal?: AbortSignal): Promise<void>;
}

/** An object's access compared with a canned ACL's. */
export interface AccessCompared {
  readonly matches: boolean;
  /**
   * Who may read it now, as the canned ACL that gives that access ("public-read", "authenticated-read", "private"),
   * with what shows it where that is not an ACL (a folder: "public-read (mode 0644)").
   */
  readonly found: string;
  /** The canned ACL whose access it was compared with, where the store chose another than `acl` (ownerAcl). */
  readonly expected?: string;
}

/**
 * One entry of a listing. Listings carry size and ETag but not Content-Type or Cache-Control (a HEAD does).
 */
export interface ListedObject {
  /** Mastodon's relative key: the store's key prefix (or folder) removed, as `read` and `write` take it. */
  readonly key: string;
  readonly size: number;
  /** The plain MD5 of the bytes (hex), when the listing carries one that is (not a multipart or encrypted ETag). */
  readonly md5?: string;
}

/**
 * What a failure means, as the store that threw it judges it: src/sync keeps one retry loop and acts on this,
 * so it never parses a backend's errors itself.
 * - `retryable`: transient (a dropped connection, a 5xx, a body that arrived wrong); try again after a backoff,
 *   at least `afterMs` when the server said so (Retry-After). `noAnswer`: the store itself did not answer (no
 *   connection, no name, no answer in time, a gateway saying the store behind it is down), which every request
 *   meets while a store is away; src/sync/storeWatch.ts waits for the store, not the object, on those.
 * - `throttled`: as retryable, and the caller should also send fewer requests.
 * - `fatal`: no retry can fix it and every later request would fail the same way (a bucket gone, credentials
 *   refused, a full disk): the run stops at once.
 * - `notFound`: the object (or its container) is not there.
 * - `permanent`: this request will never succeed, but others may (a malformed key, an object too large).
 *   `ofObject`: what refuses it is the object's own state, not the store nor the credentials (an object archived to a
 *   cold tier): a run of them says nothing about the store (src/sync/failureStreak.ts).
 */
export type FailureKind =
  | { readonly kind: 'retryable'; readonly afterMs?: number; readonly noAnswer?: true }
  | { readonly kind: 'throttled'; readonly afterMs?: number }
  | { readonly kind: 'fatal'; readonly error: FatalStoreError }
  | { readonly kind: 'notFound' }
  | { readonly kind: 'permanent'; readonly ofObject?: true };

export interface ServerCopyOptions {
  readonly acl?: string;
  /** As WriteOptions.ownerAcl. */
  readonly ownerAcl?: string;
  readonly storageClass?: string;
  /**
   * copy_mode = "server": the admin says the provider can copy between these stores (a grant across accounts, say),
   * so the store asks it for any source it could copy from, not only one that shares its endpoint and account.
   */
  readonly forced?: boolean;
  /**
   * The Cache-Control the copy carries when the source object has none (Mastodon's), as a streamed copy writes it:
   * which headers an object ends up with must not depend on how it was copied.
   */
  readonly cacheControl?: string;
  /**
   * The Content-Type the row names (contentTypeFromRow), which the copy carries when the source object's says nothing
   * (saysNothing: none, application/octet-stream), as a streamed copy writes it.
   */
  readonly contentType?: string;
  readonly signal?: AbortSignal;
}

/**
 * A copy the provider makes itself, from `source` (another store) into this one; no bytes pass through us.
 * `declined`: this pair of stores cannot (another provider or account, or answers that cannot be trusted for
 * this key), and the caller streams the object instead, as rclone's Copier declines with ErrorCantCopy.
 */
export type ServerCopyOutcome = 'copied' | 'missing' | 'declined';

/**
 * Waits for the caller's turn to send one request (`--max-rps`); rejects with the signal's reason if it aborts.
 * Without a signal, the wait ends when the run is hard-stopped; a request that must go even then (the abort of a
 * multipart upload, which cleans up) passes a signal that never aborts.
 */
export type RequestGate = (signal?: AbortSignal) => Promise<void>;

/** Things a store tells the admin about while it works (a multipart upload left open, a provider proving nothing). */
export type StoreWarning = (message: string, fields: { readonly key?: string; readonly [name: string]: unknown }) => void;

/** What createStore builds every network backend with. */
export interface StoreOptions {
  /** "source" or "destination", for messages. */
  readonly role: StoreSide;
  /** Sockets to keep open: enough for every request in flight. */
  readonly maxSockets: number;
  /** A connection silent this long fails (and is retried): a stalled provider must not hang a run. */
  readonly socketTimeoutMs?: number;
  /**
   * Told about what the admin should know while the store works: an upload that could not be cleaned up (its parts
   * or segments keep costing until deleted), once why the provider's answers do not prove the bytes, a refused body.
   */
  readonly warn?: StoreWarning;
}

/**
 * Content-Types that say nothing of the bytes. A provider labels an object written without a type so (S3
 * binary/octet-stream, Azure application/octet-stream), and so do tools that knew none; Mastodon never sends one
 * for a medium it identified. A copy gives such an object the type its row names (docs/storage-layout.md §6).
 */
function saysNothing(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === '' || type === 'application/octet-stream' || type === 'binary/octet-stream';
}

/** The Content-Type a copy writes: the source object's, unless it says nothing and the row names one. */
export function typeToWrite(sourceType: string | undefined, rowType: string | undefined): string | undefined {
  return saysNothing(sourceType) && !saysNothing(rowType) ? rowType : (sourceType ?? rowType);
}
