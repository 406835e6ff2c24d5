/**
 * How the Azure Blob backend reads @azure/storage-blob's errors (a RestError with the HTTP status and the service's
 * x-ms-error-code), and the answers no retry can fix. src/sync sees only the FailureKind these give.
 */
import { FatalStoreError, classifyCommon, fatalOfRequest, gatewayFoundNoStore, missingPlaceFix, retryAfterHeaderMs, type StoreSide } from './errors.js';
import type { FailureKind } from './types.js';

interface AzureErrorShape {
  readonly name?: unknown;
  readonly statusCode?: unknown;
  readonly code?: unknown;
  readonly message?: unknown;
  readonly details?: { readonly errorCode?: unknown };
  readonly response?: { readonly headers?: { get?(name: string): string | undefined } };
}

/** The HTTP status of a service answer, when the error is one. */
export function azureStatus(error: unknown): number | undefined {
  const status = (error as AzureErrorShape | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

/**
 * The service's error code (x-ms-error-code). The SDK puts it in `code` when the answer had an XML body, and only in
 * `details.errorCode` for a HEAD, which has none.
 */
export function azureErrorCode(error: unknown): string | undefined {
  const shape = error as AzureErrorShape | undefined;
  if (azureStatus(error) === undefined) return undefined;
  for (const value of [shape?.details?.errorCode, shape?.response?.headers?.get?.('x-ms-error-code'), shape?.code]) {
    if (typeof value === 'string' && value !== '') return value;
  }
  return undefined;
}

/** 503 ServerBusy is how Azure throttles (account ingress/egress or request rate); 429 from a proxy in front. */
const THROTTLING_CODES = new Set(['ServerBusy', 'TooManyRequests']);
const TRANSIENT_CODES = new Set(['InternalError', 'OperationTimedOut', 'Md5Mismatch', 'ContainerBeingDeleted', 'BlobBeingRehydrated']);

/**
 * Throttling, server errors, timeouts and bodies that arrived wrong are transient; a refused credential or a missing
 * container is fatal (fatalAzureError); a blob that is not there is notFound.
 */
export function classifyAzureError(error: unknown, side: StoreSide, where: string, containerUrl: string): FailureKind {
  // Before the common verdicts, which would read "Gateway Timeout" as any timeout.
  if (gatewayFoundNoStore(azureStatus(error))) return { kind: 'retryable', afterMs: retryAfterMs(error), noAnswer: true };
  const common = classifyCommon(error);
  if (common !== undefined) return common;
  const status = azureStatus(error);
  if (status === undefined) return { kind: 'permanent' };
  const code = azureErrorCode(error) ?? '';
  const afterMs = retryAfterMs(error);
  if (THROTTLING_CODES.has(code) || status === 429 || status === 503) return { kind: 'throttled', afterMs };
  if (status >= 500 || status === 408 || TRANSIENT_CODES.has(code) || changedOnTheWay(error)) return { kind: 'retryable', afterMs };
  const fatal = fatalAzureError(error, side, where, blobOf(error, containerUrl), operationOf(error));
  if (fatal !== undefined) return { kind: 'fatal', error: fatal };
  if (status === 404) return { kind: 'notFound' };
  // A blob in the Archive tier: refused alone until it is rehydrated.
  if (code === 'BlobArchived') return { kind: 'permanent', ofObject: true };
  return { kind: 'permanent' };
}

/**
 * Azurite 3.35 answers a body whose Content-MD5 differs with 400 InvalidOperation "Provided contentMD5 doesn't
 * match" where Azure says Md5Mismatch: bytes changed on the way either way, which a fresh attempt fixes.
 */
function changedOnTheWay(error: unknown): boolean {
  const message = (error as AzureErrorShape).message;
  return azureErrorCode(error) === 'InvalidOperation' && typeof message === 'string' && /content-?md5/i.test(message);
}

function retryAfterMs(error: unknown): number | undefined {
  return retryAfterHeaderMs((error as AzureErrorShape).response?.headers?.get?.('retry-after'));
}

/** The blob a failed request named: its URL after the container's, decoded (for a fatal error's message). */
function blobOf(error: unknown, containerUrl: string): string {
  const url = (error as { request?: { url?: unknown } }).request?.url;
  if (typeof url !== 'string' || !url.startsWith(`${containerUrl}/`)) return '';
  const path = url.slice(containerUrl.length + 1).split('?')[0]!;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

function operationOf(error: unknown): string {
  const method = (error as { request?: { method?: unknown } }).request?.method;
  return typeof method === 'string' ? method : 'request';
}

/** Credentials the service refused, or a SAS that does not allow the operation: every later request fails alike. */
const CREDENTIALS_REFUSED = new Set([
  'AuthenticationFailed',
  'AuthorizationFailure',
  'AuthorizationPermissionMismatch',
  'AuthorizationResourceTypeMismatch',
  'AuthorizationServiceMismatch',
  'AuthorizationProtocolMismatch',
  'AuthorizationSourceIPMismatch',
  'InsufficientAccountPermissions',
  'InvalidAuthenticationInfo',
  'NoAuthenticationInformation',
]);
const ACCOUNT_UNUSABLE = new Set(['AccountIsDisabled', 'AccountBeingCreated', 'ContainerDisabled']);

/**
 * The answers no retry can fix, as a FatalStoreError naming the fix: the run stops at the first one instead of
 * failing every remaining object the same way. Undefined for any other error.
 */
export function fatalAzureError(error: unknown, side: StoreSide, where: string, key: string, operation: string): FatalStoreError | undefined {
  if (error instanceof FatalStoreError) return error;
  const status = azureStatus(error);
  if (status === undefined) return undefined;
  const code = azureErrorCode(error) ?? `HTTP ${status}`;
  const fatal = fatalOfRequest(error, { side, where, key, operation, code });
  if (code === 'ContainerNotFound') return fatal('does not exist', missingPlaceFix(side, 'container, account and endpoint', 'container'));
  if (CREDENTIALS_REFUSED.has(code) || ((status === 401 || status === 403) && code !== 'BlobArchived')) {
    return fatal(
      'refused the credentials',
      `check access_key (or sas_token, or connection_string), and that a SAS allows ${side === 'source' ? 'read and list' : 'read, create, write and list'} and has not expired, then run again with --resume`,
    );
  }
  if (ACCOUNT_UNUSABLE.has(code)) return fatal('cannot be used now', 'check the storage account in the Azure portal, then run again with --resume');
  return undefined;
}
