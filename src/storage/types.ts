/**
 * One interface for every backend (rclone's split: backends know storage, src/sync knows operations).
 * Keys given to a store are Mastodon's relative keys; each store maps them to its own layout
 * (an S3 key prefix, or a path under public/system).
 */
import type { Readable } from 'node:stream';

export interface ObjectInfo {
  readonly contentLength?: number;
  readonly contentType?: string;
  readonly cacheControl?: string;
  /** The ETag without quotes; a plain MD5 of the bytes unless the object was uploaded multipart or encrypted. */
  readonly etag?: string;
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
  close(): void;
}
