/**
 * `--metrics HOST:PORT`: Prometheus metrics of a run or a verify on `/metrics`, and on `/status` the JSON of the
 * progress line (src/cli/progress.ts). Counters are read from the run's own summaries when scraped, so a scrape
 * after the last copy agrees with the summary the run prints; request timings come from the stores wrapped by
 * src/sync/observedStore.ts. Names and the PromQL to read them: docs/operations.md.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import { UsageError } from '../errors.js';
import type { ObjectStore } from '../storage/types.js';
import { observeStore, type StoreSide } from '../sync/observedStore.js';
import type { ProgressTally } from '../sync/progress.js';
import type { RunView } from '../sync/run.js';
import type { VerifyJobSummary } from '../sync/verify.js';
import { buildInfo } from './build.js';
import type { MetricsAddress } from './flags.js';
import { progressJson } from './progress.js';

/** Request duration buckets (seconds): from a LAN's few ms to a slow multipart part. */
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

const RUN_STATUSES = ['copied', 'relocated', 'present', 'missing', 'failed', 'skipped'] as const;
const VERIFY_STATUSES = ['ok', 'missing', 'mismatched', 'missingAtSource', 'errors', 'repaired', 'unrepaired'] as const;

export class Metrics {
  readonly registry = new Registry();
  private server: Server | undefined;
  private runView: RunView | undefined;
  private verifyJobs: ReadonlyArray<Readonly<VerifyJobSummary>> | undefined;
  private tally: ProgressTally | undefined;
  private readonly requestDuration: Histogram<'side' | 'operation'>;
  private readonly requestFailures: Counter<'side' | 'operation' | 'kind'>;

  constructor(command: 'run' | 'verify') {
    const registry = this.registry;
    // collect() runs with `this` bound to its metric: read the run through these.
    const runView = () => this.runView;
    const tally = () => this.tally;
    const verifyJobs = () => this.verifyJobs;
    new Gauge({
      name: 'mastosync_start_time_seconds',
      help: 'When this run or verify started (Unix time)',
      labelNames: ['command'],
      registers: [registry],
    }).set({ command }, Date.now() / 1000);
    // As Prometheus' own *_build_info: always 1, the build in its labels (src/cli/build.ts), so that a dashboard can
    // tell which build ran and alert on one left behind after an upgrade.
    const build = buildInfo();
    new Gauge({
      name: 'mastosync_build_info',
      help: 'Always 1; the build that runs: its package version, the git commit it was built from ("" when built outside git), and whether it had uncommitted changes',
      labelNames: ['version', 'revision', 'dirty'],
      registers: [registry],
    }).set({ version: build.version, revision: build.commit ?? '', dirty: String(build.dirty ?? false) }, 1);
    this.requestDuration = new Histogram({
      name: 'mastosync_request_duration_seconds',
      help: 'Store requests by side and operation, until the answer (a read: until its headers; a listing: whole)',
      labelNames: ['side', 'operation'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    });
    this.requestFailures = new Counter({
      name: 'mastosync_request_failures_total',
      help: 'Store requests that failed, by side, operation and kind as the store classifies them (retryable and throttled ones are retried; throttled ones also lower concurrency). An object missing at the source is an answer, not a failure: mastosync_objects_total{status="missing"}',
      labelNames: ['side', 'operation', 'kind'],
      registers: [registry],
    });
    const jobs = (): ReadonlyArray<Readonly<{ job: string; rows: number }>> => runView()?.jobs ?? verifyJobs() ?? [];
    countPerJob(registry, 'mastosync_rows_read_total', 'Database rows read, by job', jobs, (job) => job.rows);
    if (command === 'run') {
      countPerStatus(
        registry,
        'mastosync_objects_total',
        'Objects finished, by job and status (skipped: finished by an earlier run; present: at the destination already, --skip-existing)',
        () => runView()?.jobs,
        RUN_STATUSES,
      );
      countPerJob(
        registry,
        'mastosync_bytes_total',
        'Bytes streamed to the destination, by job (a copy on the provider counts none)',
        () => runView()?.jobs,
        (job) => job.bytes,
      );
      new Gauge({
        name: 'mastosync_objects_owned',
        help: 'Objects in scope, by job, once counted (for the ETA)',
        labelNames: ['job'],
        registers: [registry],
        collect() {
          this.reset();
          for (const job of tally()?.snapshot().jobs ?? []) if (job.owned !== undefined) this.set({ job: job.job }, job.owned);
        },
      });
      new Gauge({
        name: 'mastosync_copies_in_flight',
        help: 'Copies running now',
        registers: [registry],
        collect() {
          this.set(runView()?.copiesInFlight ?? 0);
        },
      });
      new Gauge({
        name: 'mastosync_concurrency',
        help: 'Copies allowed at once now (lowered while the provider throttles)',
        registers: [registry],
        collect() {
          const view = runView();
          if (view) this.set(view.concurrency);
        },
      });
      new Gauge({
        name: 'mastosync_watermark_id',
        help: 'Per job, the row id up to which every row is finished (a float: exact below 2^53, close above)',
        labelNames: ['job'],
        registers: [registry],
        collect() {
          this.reset();
          for (const job of runView()?.jobs ?? []) {
            const mark = runView()!.watermark(job.job);
            if (mark !== undefined) this.set({ job: job.job }, Number(mark));
          }
        },
      });
    } else {
      countPerStatus(registry, 'mastosync_verify_objects_total', 'Objects verified, by job and outcome', verifyJobs, VERIFY_STATUSES);
    }
  }

  /** Serves /metrics and /status; resolves with the address really bound (port 0 picks one). */
  async listen(address: MetricsAddress): Promise<AddressInfo> {
    const server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      if (path === '/metrics') {
        this.registry.metrics().then(
          (text) => response.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(String(error)),
        );
        return;
      }
      if (path === '/status') {
        response.writeHead(200, { 'content-type': 'application/json' }).end(`${this.status()}\n`);
        return;
      }
      response.writeHead(404, { 'content-type': 'text/plain' }).end('mastosync serves /metrics and /status\n');
    });
    // A scraper's keep-alive connection must not keep the process alive after the run.
    server.keepAliveTimeout = 1000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(
          error.code === 'EADDRINUSE' || error.code === 'EADDRNOTAVAIL' || error.code === 'EACCES'
            ? new UsageError(`--metrics cannot listen on ${address.host}:${address.port} (${error.code}): pick another address or port`)
            : // A host name the resolver does not know (EAI_AGAIN where no DNS answers at all).
              error.code === 'ENOTFOUND' || error.code === 'EAI_AGAIN'
              ? new UsageError(
                  `--metrics cannot listen on ${address.host}:${address.port} (${error.code}: no such host): give an address of this machine, e.g. 127.0.0.1:9464`,
                )
              : error,
        ),
      );
      server.listen(address.port, address.host, () => resolve());
    });
    server.unref();
    this.server = server;
    return server.address() as AddressInfo;
  }

  /** The progress line's JSON while a run goes (or the verify summaries so far). */
  status(): string {
    if (this.tally) return progressJson(this.tally.snapshot(), Date.now());
    if (this.verifyJobs) return JSON.stringify({ msg: 'verify', jobs: this.verifyJobs });
    return JSON.stringify({ msg: 'starting' });
  }

  observeRun(view: RunView, tally: ProgressTally): void {
    this.runView = view;
    this.tally = tally;
  }

  observeVerify(jobs: ReadonlyArray<Readonly<VerifyJobSummary>>): void {
    this.verifyJobs = jobs;
  }

  /** `store`, its requests timed and their failures counted. */
  observeStore(store: ObjectStore, side: StoreSide): ObjectStore {
    // At 0 from the start, as the other counters: a healthy run's failure-share and throttling panels show 0, not "No data".
    for (const operation of ['read', 'head', 'write', 'list'] as const)
      for (const kind of ['retryable', 'throttled'] as const) this.requestFailures.inc({ side, operation, kind }, 0);
    return observeStore(store, side, (requestSide, operation, seconds, outcome) => {
      this.requestDuration.observe({ side: requestSide, operation }, seconds);
      if (outcome !== 'ok') this.requestFailures.inc({ side: requestSide, operation, kind: outcome });
    });
  }

  /**
   * Keeps serving up to `holdMs` after the command ended, so that a scrape sees the final counts (a run may end
   * between two scrapes); a signal ends the wait at once (SIGHUP too, which would otherwise kill the process with
   * another exit code than the command's). Then closes. A command a signal ended passes 0.
   */
  async close(holdMs = 0): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    if (holdMs > 0) {
      server.ref();
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          for (const signal of HOLD_SIGNALS) process.off(signal, done);
          resolve();
        };
        const timer = setTimeout(done, holdMs);
        for (const signal of HOLD_SIGNALS) process.once(signal, done);
      });
    }
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** The signals that end --metrics-hold, as they stop a run (src/cli/interrupt.ts). */
const HOLD_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

type JobSummaries<J> = () => ReadonlyArray<Readonly<J>> | undefined;

/** A counter per job, read from the summaries at scrape time, so that the last scrape equals the printed summary. */
function countPerJob<J extends { job: string }>(
  registry: Registry,
  name: string,
  help: string,
  jobs: JobSummaries<J>,
  value: (job: Readonly<J>) => number,
): void {
  new Counter({
    name,
    help,
    labelNames: ['job'],
    registers: [registry],
    collect() {
      this.reset();
      for (const job of jobs() ?? []) this.inc({ job: job.job }, value(job));
    },
  });
}

/** As countPerJob, one series per job and status: the summary's column of that name. */
function countPerStatus<J extends { job: string } & Record<S, number>, S extends string>(
  registry: Registry,
  name: string,
  help: string,
  jobs: JobSummaries<J>,
  statuses: readonly S[],
): void {
  new Counter({
    name,
    help,
    labelNames: ['job', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      for (const job of jobs() ?? []) for (const status of statuses) this.inc({ job: job.job, status }, job[status]);
    },
  });
}

/** A Metrics for `command` already serving at `address`, the URL logged (src/cli/flags.ts loads this module only for --metrics). */
export async function serveMetrics(command: 'run' | 'verify', address: MetricsAddress, log: Logger): Promise<Metrics> {
  const metrics = new Metrics(command);
  const bound = await metrics.listen(address);
  log.info({ metrics: `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}/metrics` }, 'serving metrics');
  return metrics;
}
