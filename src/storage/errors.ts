/**
 * Errors a store classifies itself, so that src/sync needs to know no backend: a FatalStoreError is one that no
 * retry can fix (a bucket gone, credentials refused, a full disk…). Every later request would fail the same way,
 * so the run stops at the first one instead of failing each remaining object separately.
 */
import { brokenBundle } from '../errors.js';
import type { FailureKind } from './types.js';

export type StoreSide = 'source' | 'destination';

export class FatalStoreError extends Error {
  override readonly name: string = 'FatalStoreError';
  constructor(
    /** Undefined for what is neither store's (BrokenBundleError). */
    readonly side: StoreSide | undefined,
    /** The key whose request showed it (the store's own key: with the key prefix, or the file's path). */
    readonly key: string,
    /** What is wrong, e.g. `[destination] folder /srv/system is full (ENOSPC)`. */
    readonly problem: string,
    /** What the admin does about it, as one sentence. */
    readonly fix: string,
    options: { cause: unknown },
  ) {
    super(`${problem}: ${fix}`, options);
  }
}

/**
 * A chunk of dist/bundle/ that a store loads when it first needs it (the S3 SDK, for the first object above
 * upload_cutoff), missing or damaged mid-run: a checkout pulled and not rebuilt under a running cron, a package
 * reinstalled half-way. Every object that needs it would fail the same way, each counted as the destination's
 * failure after its retries; the run stops at the first, and the CLI says the launcher's line (rebuild, reinstall)
 * with exit 2, as it does when the chunk is missing at the start.
 */
class BrokenBundleError extends FatalStoreError {
  override readonly name = 'BrokenBundleError';
  constructor(broken: Error) {
    // The launcher's line is `<file> <problem>: <fix>`.
    const at = broken.message.lastIndexOf(': ');
    const [problem, fix] =
      at < 0 ? [broken.message, 'run `npm run build`, or reinstall mastosync'] : [broken.message.slice(0, at), broken.message.slice(at + 2)];
    super(undefined, '', problem, `${fix}, then run again with --resume`, { cause: broken });
  }
}

/**
 * What makes the FatalStoreErrors of one failed request: `<where> <problem> (<code> on <operation> <key>)`, and the fix.
 */
export function fatalOfRequest(
  error: unknown,
  request: { readonly side: StoreSide; readonly where: string; readonly key: string; readonly operation: string; readonly code: string },
): (problem: string, fix: string) => FatalStoreError {
  const { side, where, key, operation, code } = request;
  return (problem, fix) => new FatalStoreError(side, key, `${where} ${problem} (${code} on ${operation} ${key})`, fix, { cause: error });
}

/** The fix when the bucket or container (named by `settings`, e.g. "bucket, endpoint and region") does not exist. */
export function missingPlaceFix(side: StoreSide, settings: string, place: 'bucket' | 'container'): string {
  const again = `check ${settings}, then run again with --resume`;
  return side === 'destination' ? `${again}; if the ${place} was deleted, create it and run again with --fresh (what was copied went with it)` : again;
}

/**
 * The provider refused a request body of `size` bytes as too large (413, EntityTooLarge, or a connection closed
 * while the body was sent). The store remembers the size, and the next attempt goes in smaller parts.
 */
export class BodyRefusedError extends Error {
  override readonly name = 'BodyRefusedError';
  constructor(
    readonly size: number,
    message: string,
    /** False when the next attempt could not send a smaller body. */
    readonly retryable: boolean,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Bytes that arrived wrong: a body cut short or altered on the way, or a store's answer showing that what it stored
 * differs from what was sent. Transient (corruption in transit is random): the copy starts again from a fresh read.
 */
export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
  constructor(
    message: string,
    /** The MD5 of the bytes that arrived, for a later read to agree with (unverifiable multipart ETags). */
    readonly md5?: string,
  ) {
    super(message);
  }
}

/**
 * An original the source holds with fewer bytes than its row's `*_file_size`, a size that is the stored file's
 * (docs/integrity.md, "The row's size"): a file still being written, or one cut short at the source. It is not
 * copied. `settlingMs`, for a file written moments ago: it may still grow, so it is tried again after that long;
 * otherwise the object fails alone, and `run --resume` tries it again.
 */
export class ShortSourceError extends Error {
  override readonly name = 'ShortSourceError';
  constructor(
    readonly key: string,
    readonly row: string,
    readonly rowSize: number,
    readonly sourceSize: number,
    readonly settlingMs: number | undefined,
  ) {
    super(
      `${key} is ${sourceSize} bytes at the source, but ${row} says ${rowSize}: ` +
        (settlingMs === undefined
          ? 'not copied (cut short at the source, or still being written); run --resume to try it again'
          : 'written moments ago and maybe still being written: not copied yet'),
    );
  }
}

/**
 * The provider keeps no per-object access (S3 answers NotImplemented to GetObjectAcl, as Cloudflare R2 does): as
 * Mastodon, which logs it and goes on, there is nothing to re-apply.
 */
export class AccessUnsupportedError extends Error {
  override readonly name: string = 'AccessUnsupportedError';
}

/**
 * The credentials may not read or set per-object access (S3 answers AccessDenied to GetObjectAcl or PutObjectAcl):
 * none is re-applied, and the copy goes on, as it did before access was re-applied at all; the admin is told what
 * to grant.
 */
export class AccessRefusedError extends AccessUnsupportedError {
  override readonly name = 'AccessRefusedError';
}

/** A plain MD5 ETag: 32 hex digits, no `-<parts>` suffix (multipart). */
export function md5FromEtag(etag: string | undefined): string | undefined {
  if (etag === undefined || etag.length !== 32) return undefined;
  // Per character rather than a regular expression: two or three ETags are read per object copied.
  let upper = false;
  for (let index = 0; index < 32; index++) {
    const code = etag.charCodeAt(index);
    if ((code >= 48 && code <= 57) || (code >= 97 && code <= 102)) continue;
    if (code >= 65 && code <= 70) upper = true;
    else return undefined;
  }
  return upper ? etag.toLowerCase() : etag;
}

/**
 * Node's (and undici's) codes for a store that did not answer: nothing listens, no such name, no route, no answer
 * in time, the connection dropped. Transient whichever store met them, and what every request meets while a store
 * is away (restarting, or gone).
 */
const NO_ANSWER_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'TimeoutError',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_SOCKET',
]);
const NO_ANSWER = { kind: 'retryable', noAnswer: true } as const;
/** This process out of file descriptors or memory for a moment (a burst of sockets under a low `ulimit -n`): it passes. */
const OUT_OF_RESOURCES_CODES = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN']);

/**
 * What every store judges alike: its own FatalStoreError, bytes that arrived wrong, a refused body (retried when
 * the next attempt sends a smaller one), Node's errors for a store that did not answer, and a stream cut short.
 * Undefined for anything else, which the backend judges.
 */
export function classifyCommon(error: unknown): FailureKind | undefined {
  if (error instanceof FatalStoreError) return { kind: 'fatal', error };
  const broken = brokenBundle(error);
  if (broken !== undefined) return { kind: 'fatal', error: new BrokenBundleError(broken) };
  if (error instanceof IntegrityError) return { kind: 'retryable' };
  // Not the store's fault, nor any other object's: a file still being written is waited for, a short one fails alone.
  if (error instanceof ShortSourceError)
    return error.settlingMs === undefined ? { kind: 'permanent', ofObject: true } : { kind: 'retryable', afterMs: error.settlingMs };
  // Its store sends smaller bodies from now on: tried again, unless it could not (then no retry helps).
  if (error instanceof BodyRefusedError) return error.retryable ? { kind: 'retryable' } : { kind: 'permanent' };
  const codes = errorCodes(error);
  if (codes.some((code) => NO_ANSWER_CODES.has(code))) return NO_ANSWER;
  if (codes.some((code) => OUT_OF_RESOURCES_CODES.has(code))) return { kind: 'retryable' };
  // A body cut short: the source's or the destination's, which the code cannot tell.
  if (codes.includes('ERR_STREAM_PREMATURE_CLOSE')) return { kind: 'retryable' };
  const message = error instanceof Error ? error.message : String(error);
  // SDKs that keep only the message of the socket's error (Azure's REQUEST_SEND_ERROR, say).
  if (/socket hang up|ECONNRESET|ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EPIPE/.test(message)) return NO_ANSWER;
  // Not a silence for sure: an answer may say it (S3's 400 RequestTimeout), and a stop aborts requests.
  if (/aborted|premature close|timed? ?out/i.test(message)) return { kind: 'retryable' };
  return undefined;
}

/**
 * Whether a store's failure at the start's check may pass by waiting: an answer that it fails for now (5xx, SlowDown,
 * 429) or no answer at all (refused, reset, no answer in time: a restart, a pod's network not ready yet). An unknown
 * host (ENOTFOUND) is the endpoint's name, to fix, whatever a DNS blip mid-run may be.
 */
export function mayPassWithTime(error: unknown, status: number | undefined): boolean {
  if (status !== undefined) return status >= 500 || status === 429;
  const codes = errorCodes(error);
  if (codes.includes('ENOTFOUND') || /ENOTFOUND/.test(error instanceof Error ? error.message : '')) return false;
  return classifyCommon(error)?.kind === 'retryable';
}

/**
 * A TLS handshake answered in plain HTTP (an https:// endpoint on an http-only server): OpenSSL's "wrong version
 * number", whose raw text spans lines and names no endpoint.
 */
export function answeredPlainHttp(error: unknown): boolean {
  return errorCodes(error).includes('ERR_SSL_WRONG_VERSION_NUMBER') || /wrong version number/.test(error instanceof Error ? error.message : '');
}

/** A gateway's answer that the store behind it is down or silent (502 Bad Gateway, 504 Gateway Timeout). */
export function gatewayFoundNoStore(status: number | undefined): boolean {
  return status === 502 || status === 504;
}

/** The names and codes of an error and of its causes (a few levels deep), as SDKs and Node set them. */
export function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (
    let current = error as { name?: unknown; code?: unknown; Code?: unknown; cause?: unknown } | undefined, depth = 0;
    current && depth < 4;
    current = current.cause as typeof current, depth++
  ) {
    for (const value of [current.name, current.code, current.Code]) if (typeof value === 'string') codes.push(value);
  }
  return codes;
}

/** A Retry-After header's wait in milliseconds (seconds, or an HTTP date); undefined when absent or unreadable. */
export function retryAfterHeaderMs(header: string | undefined): number | undefined {
  const value = header?.trim();
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** `20 MiB`, `1.5 MiB`, `800 KiB`: sizes as an admin sets them in nginx or a provider's limits. */
export function formatSize(bytes: number): string {
  const MiB = 1024 * 1024;
  if (bytes >= MiB) return `${Number((bytes / MiB).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} B`;
}
