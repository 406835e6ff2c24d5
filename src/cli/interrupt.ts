/**
 * What SIGINT, SIGTERM and SIGHUP do to a run, from before it takes its checkpoint lock until it has released it:
 * without a handler Node dies of them at once (exit 143 for SIGTERM) and the lock stays, which a run on another host
 * (the next pod of a Kubernetes Job) cannot tell from a live one. During the start a signal ends it (exit 130,
 * nothing written); once copying, it stops new copies and lets those in flight finish for up to `graceMs`, then
 * aborts them (so does a second signal): a pod's grace period (30 s by default) ends in SIGKILL, which leaves the lock
 * behind, and every later pod of that shard then exits 75. An aborted copy is recorded as not done and copied again
 * by --resume; its multipart upload is aborted, so no partial object is left.
 * verify and prune are handled the same way, from before their first wait on the database to their last.
 */
import { setMaxListeners } from 'node:events';
import { InterruptedError } from '../errors.js';
import type { Logger } from '../log.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Well under Kubernetes' default grace period (30 s), which also has to cover the summary and the lock's release. */
export const DEFAULT_STOP_GRACE_MS = 20_000;

export class RunSignals {
  /** No new work: the start ends (its reason an InterruptedError), or no new copy starts. */
  readonly stop = new AbortController();
  /** The copies in flight are cut short too (a second signal while copying). */
  readonly abort = new AbortController();
  private copying = false;
  /** The first signal received, if any: a run it ended holds nothing afterwards (--metrics-hold). */
  private receivedSignal: NodeJS.Signals | undefined;
  private grace: NodeJS.Timeout | undefined;

  /**
   * `before`: what the line of a signal during the start says had not begun (InterruptedError). `graceMs`: how long
   * the copies in flight may take to finish after the first signal ([sync] stop_grace).
   */
  constructor(
    private readonly log: Logger,
    private readonly before?: string,
    private readonly graceMs = DEFAULT_STOP_GRACE_MS,
  ) {
    // Every copy in flight listens to these (its requests, its backoff): more than Node's default of 10 is normal
    // here, and its warning would be a non-JSON line on stderr.
    setMaxListeners(0, this.stop.signal, this.abort.signal);
    for (const signal of SIGNALS) process.on(signal, this.onSignal);
  }

  /** From here on a signal lets the copies in flight finish (the checkpoint records them) instead of ending the start. */
  startCopying(): void {
    this.stop.signal.throwIfAborted();
    this.copying = true;
  }

  /** Whether a signal ended (or began to end) the run. */
  get received(): NodeJS.Signals | undefined {
    return this.receivedSignal;
  }

  /** Back to Node's own handling: called once the lock is released, so a signal while the process winds down ends it. */
  remove(): void {
    clearTimeout(this.grace);
    for (const signal of SIGNALS) process.off(signal, this.onSignal);
  }

  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.receivedSignal ??= signal;
    if (!this.copying) {
      if (!this.stop.signal.aborted) this.stop.abort(new InterruptedError(signal, this.before));
      return;
    }
    if (this.stop.signal.aborted) {
      this.log.warn({ signal }, 'second signal: aborting the copies in flight');
      this.abort.abort();
      return;
    }
    const seconds = Math.round(this.graceMs / 1000);
    this.log.warn({ signal, graceSeconds: seconds }, `stopping: no new copies; finishing those in flight for up to ${seconds} s (signal again to abort them)`);
    this.stop.abort();
    this.grace = setTimeout(() => {
      if (this.abort.signal.aborted) return;
      this.log.warn({ graceSeconds: seconds }, `copies still in flight after ${seconds} s: aborting them (--resume copies them again)`);
      this.abort.abort();
    }, this.graceMs);
    // Copies that all finish in time end the run at once; the timer must not hold the process.
    this.grace.unref();
  };
}

/**
 * `command` with signals handled (RunSignals) from before its first wait on the database until it has returned, its
 * session closed: verify and prune, which had no handler until their first store request, so that SIGTERM while the
 * database was waited for (unreachable and tried again, a query that hangs) was a raw death (exit 143, no line).
 */
export async function withSignals<T>(log: Logger, before: string, command: (signals: RunSignals) => Promise<T>): Promise<T> {
  const signals = new RunSignals(log, before);
  try {
    return await command(signals);
  } finally {
    signals.remove();
  }
}

/**
 * `started`, or the stop's reason as soon as `stop` aborts: an attempt in flight (a connect to a host that does not
 * answer lasts up to 20 s) is not waited for, so the lock goes at once; what it opens late is handed to `dispose`.
 */
export function unlessStopped<T>(started: Promise<T>, stop: AbortSignal, dispose: (late: T) => unknown = () => undefined): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const stopped = () => reject(stop.reason);
    if (stop.aborted) stopped();
    else stop.addEventListener('abort', stopped, { once: true });
    started.then(
      (value) => {
        stop.removeEventListener('abort', stopped);
        if (!stop.aborted) return resolve(value);
        void Promise.resolve()
          .then(() => dispose(value))
          .catch(() => undefined);
      },
      (error: unknown) => {
        stop.removeEventListener('abort', stopped);
        reject(error);
      },
    );
  });
}
