/**
 * How the Swift backend judges its answers: the HTTP status of a request, Retry-After, and the answers no retry can
 * fix (FatalStoreError). src/sync sees only the FailureKind (SwiftStore.classify).
 */
import { FatalStoreError, classifyCommon, gatewayFoundNoStore, type StoreSide } from './errors.js';
import type { FailureKind } from './types.js';

/** An answer outside 2xx to one request of the store. */
export class SwiftHttpError extends Error {
  override readonly name = 'SwiftHttpError';
  constructor(
    readonly status: number,
    readonly method: string,
    /** The object or container path the request named. */
    readonly target: string,
    /** The start of the answer's body (Swift's HTML error page says little more than the status). */
    readonly detail: string,
    /** Retry-After, in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(`${method} ${target} answered ${status}${detail === '' ? '' : `: ${detail}`}`);
  }
}

/**
 * 429 and 498 (Swift's ratelimit middleware) ask for fewer requests; 5xx, 408, and a 401 that a renewed token may
 * fix are transient; 404 means not there. Everything else fails the request alone.
 */
export function classifySwiftError(error: unknown): FailureKind {
  // Before the common verdicts, which would read "Gateway Timeout" as any timeout.
  if (error instanceof SwiftHttpError && gatewayFoundNoStore(error.status)) return { kind: 'retryable', afterMs: error.retryAfterMs, noAnswer: true };
  const common = classifyCommon(error);
  if (common !== undefined) return common;
  if (!(error instanceof SwiftHttpError)) return { kind: 'permanent' };
  const { status, retryAfterMs: afterMs } = error;
  if (status === 429 || status === 498) return { kind: 'throttled', afterMs };
  // 401: the token expired or was revoked mid-run; the store renews it, and a fresh one refused is fatal (fatalSwiftAnswer).
  if (status >= 500 || status === 408 || status === 401) return { kind: 'retryable', afterMs };
  if (status === 404) return { kind: 'notFound' };
  return { kind: 'permanent' };
}

/** Retry-After (seconds or an HTTP date) in ms. */
export function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * The answers after which every later request would fail the same way, as a FatalStoreError naming the fix; undefined
 * for any other. `where` names the container for messages.
 */
export function fatalSwiftAnswer(error: SwiftHttpError, side: StoreSide, where: string, key: string, freshTokenRefused: boolean): FatalStoreError | undefined {
  const answered = `(${error.status} on ${error.method} ${key})`;
  const fatal = (problem: string, fix: string) => new FatalStoreError(side, key, `${where} ${problem} ${answered}`, fix, { cause: error });
  const again = 'then run again with --resume';
  if (error.status === 401 && freshTokenRefused) return fatal('refused a fresh token', `check username, password, tenant and domain, ${again}`);
  if (error.status === 403) {
    return fatal(
      'denied access',
      side === 'source'
        ? `give the user read access to the container (a role on the project, or the container's X-Container-Read), ${again}`
        : `give the user write access to the container (a role on the project, or the container's X-Container-Write), ${again}`,
    );
  }
  // Insufficient Storage: a full cluster; 413 "Upload exceeds quota": the account or container quota middleware.
  if (error.status === 507 || (error.status === 413 && /quota/i.test(error.detail))) {
    return fatal('is over its storage quota or out of space', `raise the account's or the container's quota, or free space, ${again}`);
  }
  // A PUT answers 404 only when the container is gone (an object PUT creates the object).
  if (error.status === 404 && error.method === 'PUT') {
    return fatal(
      'does not exist',
      side === 'destination' ? `create the container (swift post NAME), or check container and region, ${again}` : `check container and region, ${again}`,
    );
  }
  return undefined;
}
