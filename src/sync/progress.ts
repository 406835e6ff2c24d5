/**
 * The running tally behind the progress display: objects finished and bytes per job, against the objects each
 * job owns (counted alongside the run, so known a little later). The per-object path is a few additions on
 * preallocated counters; rates and ETAs are computed only when a snapshot is taken, from samples kept over
 * a sliding window, so they follow the current speed rather than the average since the start.
 */
import type { JobName } from '../mastodon/tables.js';

export interface ProgressLine {
  readonly job: string;
  /** Objects finished (copied, relocated, missing or failed), plus those an earlier run finished (resume). */
  readonly done: number;
  /** Objects in scope; undefined until counted. */
  readonly owned?: number;
  readonly bytes: number;
  readonly objectsPerSecond: number;
  readonly bytesPerSecond: number;
  /** Seconds left at the current rate; undefined while unknown. */
  readonly etaSeconds?: number;
  readonly state: 'waiting' | 'running' | 'done';
}

export interface ProgressSnapshot {
  readonly elapsedMs: number;
  readonly jobs: ProgressLine[];
  readonly total: ProgressLine;
}

interface Counters {
  readonly job: JobName;
  done: number;
  skipped: number;
  bytes: number;
  /** Bodies streaming now (a large object's bytes read so far): shown while it streams, not only once it is done. */
  readonly streaming: Set<() => number>;
  owned?: number;
  /** Objects below a resumed run's watermark taken on again, which the count (above it) leaves out. */
  revisited: number;
  /** When its first object finished: its rate is measured from then, not while it waited its turn. */
  startedAt?: number;
}

interface Sample {
  readonly at: number;
  readonly done: number[];
  readonly bytes: number[];
}

/** Rates are measured over about this long. */
const RATE_WINDOW_MS = 20_000;

export class ProgressTally {
  private readonly counters: Record<string, Counters> = {};
  private readonly order: Counters[];
  private readonly samples: Sample[] = [];
  private readonly started: number;
  private finished = false;

  constructor(
    jobs: readonly JobName[],
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.order = jobs.map((job) => (this.counters[job] = { job, done: 0, skipped: 0, bytes: 0, revisited: 0, streaming: new Set() }));
    this.started = clock();
    this.sample();
  }

  /** One object finished. Called once per object: keep it to counter updates. */
  result(job: JobName, bytes: number): void {
    const counters = this.counters[job]!;
    if (counters.done === 0) counters.startedAt = this.clock();
    counters.done += 1;
    counters.bytes += bytes;
  }

  /**
   * A body of `job` streams now, `bytesSoFar` telling how much of it went through: counted in the bytes shown until
   * the returned function is called (before its result comes), so that a 2 GB video does not leave them still for
   * minutes. Only streamed bodies come here; a small one read whole is counted at its result alone.
   */
  streaming(job: JobName, bytesSoFar: () => number): () => void {
    const streaming = this.counters[job]!.streaming;
    streaming.add(bytesSoFar);
    return () => void streaming.delete(bytesSoFar);
  }

  /** Objects an earlier run finished, not copied again. */
  skipped(job: JobName, objects: number): void {
    this.counters[job]!.skipped += objects;
  }

  /**
   * Objects a resumed run takes on below its checkpoint's watermark (failed or missing before, changed since): the
   * count covers the rows above it, so without these done would pass owned.
   */
  revisited(job: JobName, objects: number): void {
    this.counters[job]!.revisited += objects;
  }

  /** The job's objects in scope, once counted. */
  owned(job: JobName, objects: number): void {
    this.counters[job]!.owned = objects;
  }

  /** The run is over: every job is done, whatever the counts say. */
  finish(): void {
    this.finished = true;
  }

  snapshot(): ProgressSnapshot {
    const now = this.clock();
    this.sample(now);
    const oldest = this.samples[0]!;
    const latest = this.samples[this.samples.length - 1]!;
    const perSecond = (from: number, to: number, since: number | undefined) => {
      const seconds = (now - Math.max(oldest.at, since ?? oldest.at)) / 1000;
      return seconds > 0 ? (to - from) / seconds : 0;
    };
    const jobs = this.order.map((counters, index) =>
      line(
        counters.job,
        counters.done + counters.skipped,
        ownedOf(counters),
        bytesOf(counters),
        perSecond(oldest.done[index]!, latest.done[index]!, counters.startedAt),
        perSecond(oldest.bytes[index]!, latest.bytes[index]!, counters.startedAt),
        this.stateOf(counters),
      ),
    );
    const sum = (values: readonly number[]) => values.reduce((total, value) => total + value, 0);
    const counted = this.order.every((counters) => counters.owned !== undefined);
    const firstStart = Math.min(...this.order.map((counters) => counters.startedAt ?? Number.POSITIVE_INFINITY));
    const total = line(
      'total',
      sum(jobs.map((job) => job.done)),
      counted ? sum(jobs.map((job) => job.owned ?? 0)) : undefined,
      sum(jobs.map((job) => job.bytes)),
      perSecond(sum(oldest.done), sum(latest.done), Number.isFinite(firstStart) ? firstStart : undefined),
      perSecond(sum(oldest.bytes), sum(latest.bytes), Number.isFinite(firstStart) ? firstStart : undefined),
      this.finished ? 'done' : jobs.some((job) => job.state !== 'waiting') ? 'running' : 'waiting',
    );
    return { elapsedMs: Math.round(now - this.started), jobs, total };
  }

  private stateOf(counters: Counters): ProgressLine['state'] {
    const owned = ownedOf(counters);
    if (this.finished || (owned !== undefined && counters.done + counters.skipped >= owned)) return 'done';
    return counters.done + counters.skipped > 0 ? 'running' : 'waiting';
  }

  private sample(at = this.clock()): void {
    this.samples.push({ at, done: this.order.map((counters) => counters.done), bytes: this.order.map(bytesOf) });
    // Keep one sample older than the window, so the rate always spans at least the window once it has passed.
    while (this.samples.length > 2 && at - this.samples[1]!.at >= RATE_WINDOW_MS) this.samples.shift();
  }
}

/** The bytes of the objects done, and of those streaming now so far. */
function bytesOf(counters: Counters): number {
  let bytes = counters.bytes;
  for (const bytesSoFar of counters.streaming) bytes += bytesSoFar();
  return bytes;
}

function ownedOf(counters: Counters): number | undefined {
  return counters.owned === undefined ? undefined : counters.owned + counters.revisited;
}

function line(
  job: string,
  done: number,
  owned: number | undefined,
  bytes: number,
  objectsPerSecond: number,
  bytesPerSecond: number,
  state: ProgressLine['state'],
): ProgressLine {
  const remaining = owned === undefined ? undefined : Math.max(0, owned - done);
  const etaSeconds =
    state === 'done' ? 0 : remaining === undefined ? undefined : remaining === 0 ? 0 : objectsPerSecond > 0 ? remaining / objectsPerSecond : undefined;
  return { job, done, ...(owned !== undefined && { owned }), bytes, objectsPerSecond, bytesPerSecond, ...(etaSeconds !== undefined && { etaSeconds }), state };
}
