/**
 * Copying one owned object: find it at the source (the exact key, else a legacy alternate), stream its bytes
 * through an integrity check into the destination under the exact key the database names, and retry from a
 * fresh GET when anything transient goes wrong. With a server-side copy the provider copies the bytes itself
 * (one CopyObject per candidate key) and nothing is streamed. Never throws: every outcome is a CopyResult.
 */
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName } from '../mastodon/tables.js';
import { typeToWrite, type ObjectStore, type ReadObject, type WriteOptions } from '../storage/types.js';
import { BodyRefusedError, FatalStoreError, IntegrityError, ShortSourceError, md5FromEtag } from '../storage/errors.js';
import { describeError } from '../errors.js';
import type { FailedAt } from './failureStreak.js';
import { IntegrityCheck, failedInSourceBody, readChecked } from './integrity.js';
import { classifyFailure, withRetries } from './retry.js';
import { findAtSource } from './source.js';

/** `present`: the destination held it already, as the source has it (run --skip-existing); nothing was copied. */
export type CopyStatus = 'copied' | 'relocated' | 'present' | 'missing' | 'failed';

export interface CopyResult {
  readonly status: CopyStatus;
  readonly bytes: number;
  readonly ms: number;
  /** The source key a relocated object came from. */
  readonly from?: string;
  /** Copied by the provider (serverCopy): no byte passed through the run, and `bytes` is 0. */
  readonly onProvider?: true;
  /** `present` and private: its ACL was set to Mastodon's (it may have been public: another tool's copy). */
  readonly aclSet?: true;
  readonly error?: string;
  /** Where a failed copy's last attempt failed (not for a fatal one, whose error names its store and request). */
  readonly failedAt?: FailedAt;
  /** The store judged the failure this object's own (an archived object: FailureKind `ofObject`), not the store's. */
  readonly ofObject?: true;
  readonly attempts: number;
  /** Set when no retry can fix what failed (a bucket gone, a full disk): the run should stop. */
  readonly fatal?: FatalStoreError; /** Missing at the source, and the destination holds it: Mastodon stored it there since a switch (a --since pass). */
  readonly atDestination?: true;
}

export interface CopyContext {
  readonly source: ObjectStore;
  readonly destination: ObjectStore;
  /** The destination's canned ACL; "" sends none, even for private objects (docs/storage-layout.md §1.3, S3_PERMISSION). */
  readonly acl: string;
  readonly storageClass?: string;
  /** Attempts after the first. */
  readonly retries: number;
  /** Told about every throttling answer, so the pool can slow down. */
  readonly onThrottle?: () => void;
  readonly signal?: AbortSignal;
  /** Set when the destination can copy from the source on their provider ([sync] copy_mode): copy there, stream nothing. */
  readonly serverCopy?: ServerCopy;
  /** Told of each body that streams (how much of it went through so far); the function it gives is called once it ended. */
  readonly onStream?: (job: JobName, bytesSoFar: () => number) => () => void;
}

/**
 * How a copy may go on the provider ([sync] copy_mode, decided before the run by destination.canCopyFrom): the
 * destination is asked first for each object, and the object is streamed when it declines.
 */
export interface ServerCopy {
  /** copy_mode = "server": ask even for a pair that does not share an account (see ServerCopyOptions.forced). */
  readonly forced: boolean;
}

/**
 * Bodies up to this size are read whole before they are written (readChecked); larger ones stream. Memory is at most
 * this much per copy in flight: 16 MiB at 64 in flight.
 */
const READ_WHOLE_AT_MOST = 256 * 1024;

/** Mastodon's Cache-Control on every object it writes (docs/storage-layout.md §6), for sources that carry none (a folder). */
export const MASTODON_CACHE_CONTROL = 'public, max-age=315576000, immutable';

export async function copyOwnedObject(object: OwnedObject, context: CopyContext): Promise<CopyResult> {
  // Per object: no closure but the attempt's, and nothing else allocated until something fails.
  const attempts: Attempts = { started: performance.now(), count: 0, earlierMd5s: undefined, at: SOURCE_GET };
  try {
    return await withRetries([context.source, context.destination], (attempt) => copyOnce(object, context, attempt, attempts), {
      retries: context.retries,
      signal: context.signal,
      onThrottle: context.onThrottle,
    });
  } catch (error) {
    const ms = elapsedMs(attempts);
    if (error instanceof FatalStoreError) return { status: 'failed', bytes: 0, ms, error: error.message, attempts: attempts.count, fatal: error };
    const failure = { status: 'failed', bytes: 0, ms, error: describeError(error), failedAt: attempts.at, attempts: attempts.count } as const;
    const kind = classifyFailure([context.source, context.destination], error);
    return kind.kind === 'permanent' && kind.ofObject ? { ...failure, ofObject: true } : failure;
  }
}

/** One object's attempts so far. */
interface Attempts {
  readonly started: number;
  count: number;
  /** What earlier reads gave, for a multipart ETag that cannot be recomputed (src/sync/integrity.ts). */
  earlierMd5s: Set<string> | undefined;
  /**
   * A write the destination was to prove against the source's MD5 failed: the next attempts hash the body here, so
   * that bytes rotten at the source are told as the source's (its body does not match its MD5), not as the
   * destination refusing them every time.
   */
  hashHere?: boolean;
  /** The request the attempt is at, so a failure says which side failed (and the run counts it: failureStreak.ts). */
  at: FailedAt;
}

// Shared, so that an attempt allocates nothing to say where it is.
const SOURCE_GET: FailedAt = { side: 'source', operation: 'GET' };
const SOURCE_BODY: FailedAt = { side: 'source', operation: 'GET', sourceBody: true };
const DESTINATION_PUT: FailedAt = { side: 'destination', operation: 'PUT' };
const PROVIDER_COPY: FailedAt = { side: 'destination', operation: 'copy' };

function elapsedMs(attempts: Attempts): number {
  return Math.round(performance.now() - attempts.started);
}

async function copyOnce(object: OwnedObject, context: CopyContext, attempt: number, attempts: Attempts): Promise<CopyResult> {
  attempts.count = attempt + 1;
  let found: { found: ReadObject; from: string } | undefined;
  try {
    attempts.at = PROVIDER_COPY;
    const onServer = context.serverCopy === undefined ? 'stream' : await copyOnServer(object, context.serverCopy, context);
    if (onServer === 'missing') return { status: 'missing', bytes: 0, ms: elapsedMs(attempts), attempts: attempts.count };
    // No bytes passed through: a server-side copy counts none (the summary counts these copies apart).
    if (onServer !== 'stream') return { ...finished(object, context, onServer.from, 0, attempts), onProvider: true };
    attempts.at = SOURCE_GET;
    found = await findAtSource(object, (key) => context.source.read(key, context.signal));
    if (found === undefined) return { status: 'missing', bytes: 0, ms: elapsedMs(attempts), attempts: attempts.count };
    checkAgainstRow(object, found.found, found.from, context.source);
    return finished(object, context, found.from, await streamToDestination(object, found.found, context, attempts), attempts);
  } catch (error) {
    found?.found.body.destroy();
    if (error instanceof IntegrityError && error.md5 !== undefined) (attempts.earlierMd5s ??= new Set()).add(error.md5);
    throw error;
  }
}

/** A folder file written this recently may still be growing: one shorter than its row is waited for, not failed. */
const SETTLING_MS = 10_000;

/**
 * Refuses an original shorter than the size its row records for it (OwnedObject.storedSize: only where that is the
 * stored file's): copied, it would be recorded done and never looked at again. A larger one is copied: Mastodon
 * writes a file before the row that names it, so that is a file written again since the row was read, and the row's
 * change brings it back (docs/integrity.md, "The row's size").
 */
function checkAgainstRow(object: OwnedObject, found: ReadObject, from: string, source: ObjectStore): void {
  const { storedSize: rowSize } = object;
  const size = found.contentLength;
  if (typeof rowSize !== 'number' || size === undefined || size >= rowSize) return;
  const age = found.modifiedMs === undefined ? undefined : Date.now() - found.modifiedMs;
  const settlingMs = age !== undefined && age < SETTLING_MS ? Math.max(1000, SETTLING_MS - Math.max(0, age)) : undefined;
  const row = `${object.job} row ${object.id} (${object.attachment}_file_size)`;
  throw new ShortSourceError(source.locate(from), row, rowSize, size, settlingMs);
}

function finished(object: OwnedObject, context: CopyContext, from: string, bytes: number, attempts: Attempts): CopyResult {
  const ms = elapsedMs(attempts);
  return from === object.key
    ? { status: 'copied', bytes, ms, attempts: attempts.count }
    : { status: 'relocated', bytes, ms, from: context.source.locate(from), attempts: attempts.count };
}

/** The provider's copy of the first candidate key the source has; `stream` as soon as the destination declines one. */
async function copyOnServer(object: OwnedObject, serverCopy: ServerCopy, context: CopyContext): Promise<{ from: string } | 'missing' | 'stream'> {
  const { source, destination } = context;
  if (destination.copyFrom === undefined) return 'stream';
  const options = {
    acl: aclFor(object, context.acl),
    ownerAcl: ownerAclFor(object, context.acl),
    storageClass: context.storageClass,
    forced: serverCopy.forced,
    cacheControl: MASTODON_CACHE_CONTROL,
    contentType: contentTypeFromRow(object),
    signal: context.signal,
  };
  let declined = false;
  const found = await findAtSource(object, async (key) => {
    const outcome = await destination.copyFrom!(source, key, object.key, options);
    if (outcome === 'declined') declined = true;
    // A declined key ends the search: the object is then streamed, and only a read may call it missing.
    return outcome === 'missing' ? undefined : outcome;
  });
  if (declined) return 'stream';
  return found === undefined ? 'missing' : { from: found.from };
}

async function streamToDestination(object: OwnedObject, source: ReadObject, context: CopyContext, attempts: Attempts): Promise<number> {
  const { earlierMd5s } = attempts;
  const md5 = md5FromEtag(source.etag);
  const length = source.contentLength;
  // A destination that proves what it stored against the source's MD5 needs no hashing here, which would only cost
  // CPU (most of it on large objects). The length is checked either way, before the body's last byte is sent.
  const provedByDestination = md5 !== undefined && !attempts.hashHere && context.destination.provesWrites(length);
  const expected = { length, etag: provedByDestination ? undefined : source.etag, earlierMd5s };
  const options: WriteOptions = {
    contentType: typeToWrite(source.contentType, contentTypeFromRow(object)),
    cacheControl: source.cacheControl ?? MASTODON_CACHE_CONTROL,
    contentLength: length,
    acl: aclFor(object, context.acl),
    ownerAcl: ownerAclFor(object, context.acl),
    storageClass: context.storageClass,
    contentMd5: md5 === undefined ? undefined : Buffer.from(md5, 'hex').toString('base64'),
    proofRequired: provedByDestination,
    // The run's hard stop ends the upload too.
    signal: context.signal,
  };
  // A small body is read whole and checked before any of it is sent, then written from memory: no stream between
  // the GET and the PUT (three stream types meeting in Node's stream code kept V8 recompiling it, issue 15).
  if (length !== undefined && length <= READ_WHOLE_AT_MOST && context.destination.writeBytes !== undefined) {
    attempts.at = SOURCE_BODY;
    const bytes = await readChecked(source.body, { length, etag: expected.etag, earlierMd5s });
    attempts.at = DESTINATION_PUT;
    try {
      await context.destination.writeBytes(object.key, bytes, options);
    } catch (error) {
      if (provedByDestination) attempts.hashHere = true;
      throw error;
    }
    return length;
  }
  const check = new IntegrityCheck(expected).from(source.body);
  attempts.at = DESTINATION_PUT;
  const streamed = context.onStream?.(object.job, () => check.bytes);
  try {
    await context.destination.write(object.key, check, options);
  } catch (error) {
    if (provedByDestination) attempts.hashHere = true;
    // A store's verdict on its own failure outranks the body's failure it caused (a full disk's error, a refused
    // body's reset, reach the body too).
    if (error instanceof FatalStoreError || error instanceof BodyRefusedError || check.failure === undefined) throw error;
    if (fromSourceBody(check.failure)) attempts.at = SOURCE_BODY;
    throw check.failure;
  } finally {
    streamed?.();
  }
  if (check.failure !== undefined) {
    attempts.at = SOURCE_BODY;
    throw check.failure;
  }
  return check.bytes;
}

/**
 * The body's failure is the source's: its own stream failed, or the check found its bytes were not the source's (the
 * upload that ended with it is not the destination's failure). Any other failure of the body came from the upload.
 */
function fromSourceBody(failure: unknown): boolean {
  return failedInSourceBody(failure) || failure instanceof IntegrityError;
}

/** The ACL Mastodon would have set on this object (docs/storage-layout.md §6). */
export function aclFor(object: OwnedObject, configured: string): string | undefined {
  if (configured === '') return undefined;
  return object.visibility === 'default' ? configured : 'private';
}

/** WriteOptions.ownerAcl: the configured ACL, for an object its owner fetches by link (a backup). */
export function ownerAclFor(object: OwnedObject, configured: string | undefined): string | undefined {
  return object.visibility === 'owner' && configured ? configured : undefined;
}

const TYPES_BY_EXTENSION: Readonly<Record<string, string>> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  heic: 'image/heic',
  mp4: 'video/mp4',
  webm: 'video/webm',
  mov: 'video/quicktime',
  mp3: 'audio/mpeg',
  ogg: 'audio/ogg',
  zip: 'application/zip',
  csv: 'text/csv',
};

/**
 * For a source that keeps no Content-Type (a folder), or whose type says nothing (application/octet-stream): the
 * database's type for `original`, and the style's format for the others (docs/storage-layout.md §6), as Mastodon
 * detected them when it wrote the object.
 */
export function contentTypeFromRow(object: OwnedObject): string | undefined {
  if (object.style === 'original' && object.storedContentType) return object.storedContentType;
  const fileName = object.key.slice(object.key.lastIndexOf('/') + 1);
  // A style without a format and an original without an extension give a name without one: same format as the original.
  if (!fileName.includes('.') && object.storedContentType) return object.storedContentType;
  const extension = fileName.slice(fileName.lastIndexOf('.') + 1).toLowerCase();
  return TYPES_BY_EXTENSION[extension] ?? (object.style === 'original' ? undefined : 'application/octet-stream');
}
