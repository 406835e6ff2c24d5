/**
 * When to try an object again, and how long to wait: exponential backoff with full jitter, honouring a
 * server's Retry-After. Throttling, server errors, dropped connections, timeouts and bodies that arrived wrong
 * are transient; a refused credential or a malformed request is not.
 */
import { BodyRefusedError } from '../storage/errors.js';
import { IntegrityError } from './integrity.js';

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
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'TimeoutError',
  'RequestTimeoutException',
]);

export function isRetryable(error: unknown): boolean {
  if (error instanceof IntegrityError) return true;
  // Its store sends smaller bodies from now on: tried again, unless it could not (then no retry helps).
  if (error instanceof BodyRefusedError) return error.retryable;
  const status = statusOf(error);
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  for (const code of codesOf(error)) if (RETRYABLE_CODES.has(code)) return true;
  const message = error instanceof Error ? error.message : String(error);
  return /socket hang up|aborted|premature close|ECONNRESET|EPIPE|timed? ?out/i.test(message);
}

/** Throttling answers (503 SlowDown, 429): the caller should also send fewer requests. */
export function isThrottle(error: unknown): boolean {
  const status = statusOf(error);
  return (
    status === 429 || status === 503 || codesOf(error).some((code) => code === 'SlowDown' || code.startsWith('Throttl') || code.startsWith('TooManyRequests'))
  );
}

/** Full-jitter backoff: a random wait up to base × 2^attempt (capped), or the server's Retry-After if longer. */
export function backoffMs(attempt: number, error: unknown, baseMs = 200, capMs = 20_000, random = Math.random): number {
  const jitter = random() * Math.min(capMs, baseMs * 2 ** attempt);
  const retryAfter = retryAfterMs(error);
  return retryAfter === undefined ? jitter : Math.max(jitter, Math.min(retryAfter, 5 * capMs));
}

/**
 * The SDK attaches the raw answer to its errors as the non-enumerable `$response` (an HttpResponse whose header
 * names the Node handler lower-cases); its own retry strategy reads Retry-After there too.
 */
export function retryAfterMs(error: unknown): number | undefined {
  const headers = (error as { $response?: { headers?: Record<string, string | undefined> } } | undefined)?.$response?.headers ?? {};
  const name = Object.keys(headers).find((header) => header.toLowerCase() === 'retry-after');
  const value = name === undefined ? undefined : headers[name]?.trim();
  if (value === undefined || value === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function codesOf(error: unknown): string[] {
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
