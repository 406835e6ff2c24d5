/**
 * How the S3 backend reads its errors, the direct requests' (S3ResponseError) and the AWS SDK's alike, by their shape
 * (no SDK class is imported: a run that never needs the SDK never loads it): HTTP status, error code, Retry-After,
 * throttling, and the answers no retry can fix. src/sync sees only the FailureKind these give (S3Store.classify).
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  FatalStoreError,
  classifyCommon,
  errorCodes,
  fatalOfRequest,
  gatewayFoundNoStore,
  missingPlaceFix,
  retryAfterHeaderMs,
  type StoreSide,
} from './errors.js';
import type { FailureKind } from './types.js';
import { xmlField } from './s3List.js';

/**
 * An answer other than 2xx to a direct request, shaped as the SDK's S3ServiceException (name = the S3 error code,
 * `Code`, `$fault`, `$metadata.httpStatusCode`, the raw answer as `$response`), so that everything here reads both alike.
 */
export class S3ResponseError extends Error {
  readonly Code: string;
  readonly $fault: 'client' | 'server';
  readonly $metadata: { readonly httpStatusCode: number; readonly requestId?: string };
  readonly $response: { readonly statusCode: number; readonly headers: IncomingHttpHeaders | Readonly<Record<string, string | undefined>> };

  constructor(status: number, headers: IncomingHttpHeaders | Readonly<Record<string, string | undefined>>, code: string, message: string) {
    super(message);
    this.name = code;
    this.Code = code;
    this.$fault = status >= 500 ? 'server' : 'client';
    const requestId = headers['x-amz-request-id'];
    this.$metadata = { httpStatusCode: status, requestId: typeof requestId === 'string' ? requestId : undefined };
    this.$response = { statusCode: status, headers };
  }
}

/** The error of an answer `status` whose body is `text` (S3's <Error> XML, or nothing, as a HEAD's answer). */
export function responseError(status: number, headers: IncomingHttpHeaders | Readonly<Record<string, string | undefined>>, text: string): S3ResponseError {
  const code = xmlField(text, 'Code') ?? (status === 404 ? 'NotFound' : status === 403 ? 'Forbidden' : `Http${status}`);
  return new S3ResponseError(status, headers, code, xmlField(text, 'Message') ?? `HTTP ${status}`);
}

const RETRYABLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequests',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'InternalError',
  'ServiceUnavailable',
  'BadDigest',
  'IncompleteBody',
  'XAmzContentSHA256Mismatch',
  'RequestTimeoutException',
]);

/**
 * Throttling, server errors, dropped connections, timeouts and bodies that arrived wrong are transient; a refused
 * credential or a malformed request is not. Throttling answers (503 SlowDown, 429) also ask for fewer requests.
 */
export function classifyS3Error(error: unknown): FailureKind {
  if (error instanceof FatalStoreError) return { kind: 'fatal', error };
  const afterMs = retryAfterMs(error);
  if (isThrottle(error)) return { kind: 'throttled', afterMs };
  const status = httpStatus(error);
  // Before the common verdicts, which would read "Gateway Timeout" as any timeout.
  if (gatewayFoundNoStore(status)) return { kind: 'retryable', afterMs, noAnswer: true };
  const common = classifyCommon(error);
  if (common !== undefined) return common;
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return { kind: 'retryable', afterMs };
  if (errorCodes(error).some((code) => RETRYABLE_CODES.has(code))) return { kind: 'retryable', afterMs };
  if (isNotFound(error)) return { kind: 'notFound' };
  // An object a lifecycle rule moved to Glacier or another archive tier: S3 refuses it alone, until it is restored.
  if (s3ErrorCode(error) === 'InvalidObjectState') return ARCHIVED;
  return { kind: 'permanent' };
}

const ARCHIVED = { kind: 'permanent', ofObject: true } as const;

function isThrottle(error: unknown): boolean {
  const status = httpStatus(error);
  return (
    status === 429 ||
    status === 503 ||
    errorCodes(error).some((code) => code === 'SlowDown' || code.startsWith('Throttl') || code.startsWith('TooManyRequests'))
  );
}

/**
 * The SDK attaches the raw answer to its errors as the non-enumerable `$response` (an HttpResponse whose header
 * names the Node handler lower-cases); its own retry strategy reads Retry-After there too.
 */
export function retryAfterMs(error: unknown): number | undefined {
  const headers = (error as { $response?: { headers?: Record<string, string | undefined> } } | undefined)?.$response?.headers ?? {};
  const name = Object.keys(headers).find((header) => header.toLowerCase() === 'retry-after');
  return retryAfterHeaderMs(name === undefined ? undefined : headers[name]);
}

export function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(error) === 404;
}

/** What to grant, by the operation that was denied. */
const ACCESS_FIX: Record<string, (side: StoreSide) => string> = {
  GET: () =>
    'give the credentials s3:GetObject and s3:ListBucket on the bucket (without s3:ListBucket, S3 answers 403 instead of 404 for a key that does not exist), then run again with --resume',
  PUT: (side) => `give the credentials s3:PutObject on the bucket (and s3:PutObjectAcl, or set [${side}] acl = ""), then run again with --resume`,
  LIST: () => 'give the credentials s3:ListBucket on the bucket (under its key prefix at least), then run again',
  DELETE: () => 'give the credentials s3:DeleteObject on the bucket, then run again',
  ACL: () => 'give the credentials s3:GetObjectAcl and s3:PutObjectAcl on the bucket (or set [destination] acl = ""), then run again with --resume',
};

const CREDENTIALS_REFUSED = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'TokenRefreshRequired']);

/** The provider's error code (AccessDenied, InvalidAccessKeyId...), else `HTTP <status>`. */
export function s3ErrorCode(error: unknown): string {
  const { name, Code } = (error ?? {}) as { name?: unknown; Code?: unknown };
  return typeof Code === 'string' ? Code : typeof name === 'string' && name !== 'Error' ? name : `HTTP ${httpStatus(error) ?? '?'}`;
}

/** The provider did not accept the credentials themselves (as opposed to denying them one permission). */
export function refusedCredentials(error: unknown): boolean {
  return CREDENTIALS_REFUSED.has(s3ErrorCode(error));
}
/** Ceph RGW, MinIO (disk or bucket quota), and any provider answering 507 Insufficient Storage. */
const QUOTA_EXCEEDED = new Set(['QuotaExceeded', 'XMinioStorageFull', 'XMinioAdminBucketQuotaExceeded', 'InsufficientStorage']);
/** 403s about one object or one request, not about the run's credentials: retried or failed alone. */
const FORBIDDEN_FOR_ONE_REQUEST = new Set(['RequestTimeTooSkewed', 'InvalidObjectState', 'RequestExpired']);

/**
 * The answers no retry can fix, as a FatalStoreError naming the fix: the run stops at the first one instead of
 * failing every remaining object the same way. Undefined for any other error.
 */
export function fatalS3Error(error: unknown, side: StoreSide, where: string, key: string, operation: string): FatalStoreError | undefined {
  if (error instanceof FatalStoreError) return error;
  const status = httpStatus(error);
  if (status === undefined) return undefined;
  const { name, Code } = error as { name?: unknown; Code?: unknown };
  const code = typeof Code === 'string' ? Code : typeof name === 'string' ? name : `HTTP ${status}`;
  const fatal = fatalOfRequest(error, { side, where, key, operation, code });
  if (code === 'NoSuchBucket') return fatal('does not exist', missingPlaceFix(side, 'bucket, endpoint and region', 'bucket'));
  if (CREDENTIALS_REFUSED.has(code))
    return fatal('refused the credentials', 'check access_key_id, secret_access_key and session_token, then run again with --resume');
  // B2 says it only in the message of a 403 ("storage cap exceeded"); a 429 or 503 about a request quota is throttling.
  const overQuota = status !== 429 && status !== 503 && /storage cap|quota exceeded/i.test((error as Error).message ?? '');
  if (QUOTA_EXCEEDED.has(code) || status === 507 || overQuota) {
    return fatal('is over its storage quota', "raise the bucket's or the account's quota, or free space, then run again with --resume");
  }
  if ((status === 403 || status === 401) && !FORBIDDEN_FOR_ONE_REQUEST.has(code)) {
    return fatal('denied access', ACCESS_FIX[operation]?.(side) ?? ACCESS_FIX.PUT!(side));
  }
  return undefined;
}
