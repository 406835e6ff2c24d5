/**
 * Typed errors. UsageError is anything the admin must fix before a run can start (config, flags,
 * credentials, an unknown host, a missing bucket or table): the CLI prints its message on one line and exits 2 with
 * nothing written; what may pass by waiting (a database or bucket that does not answer yet) is an UnavailableError. One object that could not be copied is no error but a CopyResult (src/sync/copy.ts),
 * recorded in the checkpoint rather than stopping the run.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The error bin/mastosync.js throws for a chunk of dist/bundle/ it cannot read or compile (missing, cut short), maybe
 * as the cause of another: its message names the file and the fix (rebuild, reinstall). Code loaded when first needed
 * (the S3 SDK, for the first large object a run uploads) meets it mid-run as much as at the start.
 */
export function brokenBundle(error: unknown): Error | undefined {
  for (let seen = error, depth = 0; seen instanceof Error && depth < 10; seen = seen.cause, depth++) {
    if ((seen as { code?: unknown }).code === 'MASTOSYNC_BROKEN_BUNDLE') return seen;
  }
  return undefined;
}

/** The most useful one-line description of any thrown value, including an AWS or pg error code. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown; Code?: unknown }).code ?? (error as { Code?: unknown }).Code;
    const name = error.name && error.name !== 'Error' ? error.name : undefined;
    const label = typeof code === 'string' ? code : name;
    return label && !error.message.startsWith(label) ? `${label}: ${error.message}` : error.message;
  }
  return String(error);
}

/**
 * What a command needs at its start (the database, a bucket) answered nothing, or answered that it fails for now (a
 * 5xx, SlowDown, a database starting up), for longer than the start waits (`patiently`). The config may be right, and
 * nothing was written: exit 75 (EX_TEMPFAIL), which cron's next night and a Kubernetes Job's backoff retry, not 2.
 */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  constructor(
    /** What did not answer, and how, e.g. `[source] bucket "media" at https://… answered 503 (SlowDown: …)`. */
    readonly problem: string,
    /** What the admin checks if it lasts. */
    readonly fix: string,
    options: { cause: unknown },
  ) {
    super(`${problem}: ${fix}`, options);
  }
}

/**
 * A signal (SIGINT, SIGTERM, SIGHUP) came while a command was still starting (waiting for the database or a store,
 * reading its checkpoint): it stops there, with nothing written, and exits 130 as an interrupted run does. `before`
 * says what had not begun yet, in the command's words.
 */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor(
    readonly signal: NodeJS.Signals,
    before = 'before the first copy: nothing was written',
  ) {
    super(`interrupted by ${signal} at the start, ${before}`);
  }
}

/** The longest wait between two tries at the start (as between two reconnects: src/db/connection.ts). */
const START_WAIT_MAX_MS = 30_000;

/**
 * `attempt` until it works, fails otherwise than UnavailableError, or the patience runs out (with backoff: 0.5 s,
 * 1 s, 2 s… up to 30 s): a start is as patient as a run under way, whose lost database and silent stores are waited
 * for. Past the patience the last UnavailableError is thrown, saying how long it was tried. `signal` ends the waiting
 * (not an attempt in flight) with its reason: the start failed for good elsewhere (the database while a store is waited
 * for), and waiting on would only keep the process alive, logging, after its last line.
 */
export async function patiently<T>(
  attempt: () => Promise<T>,
  options: {
    readonly patienceMs: number;
    readonly onRetry?: (error: UnavailableError, retryInMs: number) => void;
    readonly signal?: AbortSignal;
  },
): Promise<T> {
  const { signal } = options;
  const started = performance.now();
  for (let tries = 0; ; tries++) {
    try {
      signal?.throwIfAborted();
      return await attempt();
    } catch (error) {
      if (!(error instanceof UnavailableError) || signal?.aborted === true) throw signal?.aborted === true ? signal.reason : error;
      const elapsed = performance.now() - started;
      if (elapsed >= options.patienceMs) {
        if (tries === 0) throw error;
        const tried = elapsed >= 90_000 ? `${Math.round(elapsed / 60_000)} min` : `${Math.round(elapsed / 1000)} s`;
        throw new UnavailableError(`${error.problem}, still after ${tried} of tries`, error.fix, { cause: error.cause });
      }
      const delay = Math.min(START_WAIT_MAX_MS, 500 * 2 ** tries, options.patienceMs - elapsed);
      options.onRetry?.(error, Math.round(delay));
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, delay);
        signal?.addEventListener('abort', done, { once: true });
      });
    }
  }
}
