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
  /** The request header an InvalidArgument is about (S3's <ArgumentName>), as the SDK copies it onto its errors. */
  ArgumentName?: string;
  /** The header a NotImplemented is about (S3's <Header>). */
  Header?: string;

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
  const error = new S3ResponseError(status, headers, code, xmlField(text, 'Message') ?? `HTTP ${status}`);
  error.ArgumentName = xmlField(text, 'ArgumentName');
  error.Header = xmlField(text, 'Header');
  return error;
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
const ACCESS_FIX: Record<string, (side: StoreSide, sent: SentSettings) => string> = {
  GET: () =>
    'give the credentials s3:GetObject and s3:ListBucket on the bucket (without s3:ListBucket, S3 answers 403 instead of 404 for a key that does not exist), then run again with --resume',
  // The ACL each PUT carries is what a bucket's Block Public Access refuses (AccessDenied, as for no s3:PutObject).
  PUT: (side, sent) =>
    sent.acl
      ? `give the credentials s3:PutObject and s3:PutObjectAcl on the bucket, and let it take public ACLs (Block Public Access off): each PUT carries [${side}] acl = "${sent.acl}"; or change [${side}] acl to "" (as Mastodon's S3_PERMISSION="") and make the objects public with a bucket policy, then run again with --resume`
      : `give the credentials s3:PutObject on the bucket, then run again with --resume`,
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
export function fatalS3Error(
  error: unknown,
  side: StoreSide,
  where: string,
  key: string,
  operation: string,
  sent: SentSettings = {},
): FatalStoreError | undefined {
  if (error instanceof FatalStoreError) return error;
  const status = httpStatus(error);
  if (status === undefined) return undefined;
  const { name, Code } = error as { name?: unknown; Code?: unknown };
  const code = typeof Code === 'string' ? Code : typeof name === 'string' ? name : `HTTP ${status}`;
  const refused = refusedSetting(error, code, { side, where, key, operation }, sent);
  if (refused !== undefined) return refused;
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
    return fatal('denied access', (ACCESS_FIX[operation] ?? ACCESS_FIX.PUT!)(side, sent));
  }
  return undefined;
}

/** What a write sends from the config, in a header of its own: `[destination] acl` (x-amz-acl) and `storage_class` (x-amz-storage-class). */
export interface SentSettings {
  readonly acl?: string;
  readonly storageClass?: string;
}

/** Where ACLs are disabled (Object Ownership "bucket owner enforced"), S3 refuses any x-amz-acl but bucket-owner-full-control. */
const ACLS_DISABLED_ON_WRITE = new Set(['AccessControlListNotSupported', 'InvalidBucketAclWithObjectOwnership']);
/** Answers that name the request header they refuse: InvalidArgument (<ArgumentName>), NotImplemented (<Header>). */
const REFUSES_A_HEADER = new Set(['InvalidArgument', 'InvalidRequest', 'NotImplemented']);

/**
 * A write refused for a setting it carries from the config (a storage class the provider lacks, an ACL the bucket
 * takes none of): every later write carries the same header and is refused alike, so the run stops at the first one,
 * naming the setting. An InvalidArgument about anything else (a key, a Content-Type, one object's header) is that
 * object's alone: told apart by the header the answer names (S3's <ArgumentName>).
 */
function refusedSetting(
  error: unknown,
  code: string,
  request: { readonly side: StoreSide; readonly where: string; readonly key: string; readonly operation: string },
  sent: SentSettings,
): FatalStoreError | undefined {
  const header = refusedHeader(error, code);
  const setting =
    sent.storageClass && (code === 'InvalidStorageClass' || header === 'x-amz-storage-class')
      ? { name: 'storage_class', value: sent.storageClass }
      : sent.acl && (ACLS_DISABLED_ON_WRITE.has(code) || header === 'x-amz-acl')
        ? { name: 'acl', value: sent.acl }
        : undefined;
  if (setting === undefined) return undefined;
  const { side, where, key, operation } = request;
  const said = (error as Error).message;
  const answer = `${code} on ${operation} ${key}${said && said !== code && !said.startsWith('HTTP ') ? `: ${said}` : ''}`;
  const again = 'then run again with --resume';
  const bucket = where.replace(/^\[\w+\] /, '');
  const problem = ACLS_DISABLED_ON_WRITE.has(code)
    ? `[${side}] acl "${setting.value}" is refused by the provider: ${bucket} has ACLs disabled (Object Ownership "bucket owner enforced") (${answer})`
    : `[${side}] ${setting.name} "${setting.value}" is refused by the provider: ${bucket} answered ${answer}`;
  const fix =
    setting.name === 'storage_class'
      ? `set [${side}] storage_class to a class this provider offers (AWS: STANDARD, STANDARD_IA, INTELLIGENT_TIERING; others name theirs), or to "" for the bucket's default, ${again}`
      : ACLS_DISABLED_ON_WRITE.has(code)
        ? `set [${side}] acl = "" (as Mastodon's S3_PERMISSION="") and let a bucket policy make the objects public, or enable ACLs on the bucket, ${again}`
        : `set [${side}] acl to a canned ACL this provider accepts, or to "" to send none (as Mastodon's S3_PERMISSION=""), ${again}`;
  return new FatalStoreError(side, key, problem, fix, { cause: error });
}

/** The request header an answer says it refuses, lower-cased: S3's <ArgumentName> or <Header>, as ours and the SDK's errors carry them. */
function refusedHeader(error: unknown, code: string): string | undefined {
  if (!REFUSES_A_HEADER.has(code)) return undefined;
  const { ArgumentName, Header } = error as { ArgumentName?: unknown; Header?: unknown };
  const named = typeof ArgumentName === 'string' ? ArgumentName : typeof Header === 'string' ? Header : undefined;
  return named?.toLowerCase();
}
