/**
 * A bounded work pool: at most `concurrency` tasks run at once, and `submit` waits while `maxQueued` more wait for
 * a slot, so the row reader stops reading and memory does not grow with the row count. A task costs one promise
 * (its own) and one callback here: this runs once per object, and p-limit's promise chain cost several times that
 * in allocations and CPU.
 */
export class BoundedPool {
  private limit: number;
  private running = 0;
  /** Tasks waiting for a slot, oldest first (at most maxQueued: shift() is cheap on so few). */
  private readonly queue: Array<() => Promise<void>> = [];
  /** Submitters waiting for room in the queue. */
  private waiters: Array<() => void> = [];
  /** Resolves every `drain` waiting once nothing runs or waits. */
  private drained: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined;
  private readonly settle = () => {
    this.running -= 1;
    this.startQueued();
    if (this.waiters.length > 0) {
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    }
    if (this.drained !== undefined && this.inFlight === 0) {
      const { resolve } = this.drained;
      this.drained = undefined;
      resolve();
    }
  };

  constructor(
    concurrency: number,
    /** Tasks allowed to wait for a slot, beyond those running. */
    private readonly maxQueued: number = concurrency,
  ) {
    this.limit = Math.max(1, Math.floor(concurrency));
  }

  get concurrency(): number {
    return this.limit;
  }

  /** Changes how many tasks run at once (throttling); queued tasks start as slots free up, or at once when raised. */
  set concurrency(value: number) {
    this.limit = Math.max(1, Math.floor(value));
    this.startQueued();
  }

  /** Tasks submitted and not settled: those running and those waiting for a slot. */
  get inFlight(): number {
    return this.running + this.queue.length;
  }

  /** Tasks running now. */
  get active(): number {
    return this.running;
  }

  /**
   * Queues `task` once there is room. Returns undefined when it was queued (or started) at once, else a promise that
   * resolves when it is: not when it finishes. A task's failure is its own to report: the pool only frees its slot.
   */
  submit(task: () => Promise<void>): Promise<void> | undefined {
    if (this.inFlight >= this.limit + this.maxQueued) return this.submitWhenRoom(task);
    this.enqueue(task);
    return undefined;
  }

  private async submitWhenRoom(task: () => Promise<void>): Promise<void> {
    while (this.inFlight >= this.limit + this.maxQueued) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.enqueue(task);
  }

  private enqueue(task: () => Promise<void>): void {
    if (this.running < this.limit) this.start(task);
    else this.queue.push(task);
  }

  /** Resolves once every submitted task has settled. */
  async drain(): Promise<void> {
    while (this.inFlight > 0) {
      if (this.drained === undefined) {
        let resolve!: () => void;
        const promise = new Promise<void>((settle) => (resolve = settle));
        this.drained = { promise, resolve };
      }
      await this.drained.promise;
    }
  }

  private start(task: () => Promise<void>): void {
    this.running += 1;
    let started: Promise<void>;
    try {
      started = task();
    } catch {
      started = Promise.resolve();
    }
    started.then(this.settle, this.settle);
  }

  private startQueued(): void {
    while (this.running < this.limit && this.queue.length > 0) this.start(this.queue.shift()!);
  }
}
