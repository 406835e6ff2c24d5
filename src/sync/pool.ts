/**
 * A bounded work pool. p-limit caps how many copies run at once but queues without bound; `submit` also
 * waits while the queue is full, so the row reader stops reading and memory does not grow with the row count.
 */
import pLimit, { type LimitFunction } from 'p-limit';

export class BoundedPool {
  private readonly limit: LimitFunction;
  private waiters: Array<() => void> = [];
  private readonly running = new Set<Promise<void>>();

  constructor(
    concurrency: number,
    /** Tasks allowed to wait for a slot, beyond those running. */
    private readonly maxQueued: number = concurrency,
  ) {
    this.limit = pLimit(concurrency);
  }

  get concurrency(): number {
    return this.limit.concurrency;
  }

  /** Changes how many tasks run at once (throttling); queued tasks start as slots free up. */
  set concurrency(value: number) {
    this.limit.concurrency = Math.max(1, Math.floor(value));
  }

  /** Tasks submitted and not settled: those running and those waiting for a slot. */
  get inFlight(): number {
    return this.running.size;
  }

  /** Tasks running now. */
  get active(): number {
    return this.limit.activeCount;
  }

  /** Queues `task` once there is room; resolves when it is queued, not when it finishes. */
  async submit(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.limit.concurrency + this.maxQueued) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const promise: Promise<void> = this.limit(task)
      .catch(() => undefined)
      .finally(() => {
        this.running.delete(promise);
        const waiters = this.waiters;
        this.waiters = [];
        for (const wake of waiters) wake();
      });
    this.running.add(promise);
  }

  /** Resolves once every submitted task has settled. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
