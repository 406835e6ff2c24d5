/**
 * `--metrics`: a real run (real PostgreSQL, s3rver behind a proxy that adds latency and throttles a few source
 * reads) scraped as Prometheus scrapes it. The counters move during the run, and the last scrape (served on
 * through --metrics-hold) agrees with the summary the run prints and with the requests the proxy saw.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { gitHead } from '../support/build.js';
import { runCli, writeConfig, type CliResult } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { faultFirst, startProxy, type HttpProxy } from '../support/httpProxy.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';

/** A CLI run that serves metrics, and the moments a test waits for. */
interface ServingCli {
  readonly child: ChildProcess;
  readonly result: Promise<CliResult>;
  /** `http://host:port`, once the CLI has logged where it serves /metrics. */
  readonly metricsBase: Promise<string>;
  /** Once the summary is on stdout (the run is over; --metrics-hold keeps serving). */
  readonly summaryPrinted: Promise<void>;
}

function runServingMetrics(args: string[], cwd: string): ServingCli {
  let child!: ChildProcess;
  let metricsBase!: Promise<string>;
  let summaryPrinted!: Promise<void>;
  const result = runCli(args, {
    cwd,
    onSpawn: (spawned) => {
      child = spawned;
      metricsBase = new Promise((resolve) =>
        createInterface({ input: spawned.stderr! }).on('line', (line) => {
          const address = (JSON.parse(line) as { metrics?: string }).metrics;
          if (address !== undefined) resolve(address.replace(/\/metrics$/, ''));
        }),
      );
      let stdout = '';
      summaryPrinted = new Promise((resolve) =>
        spawned.stdout!.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.endsWith('\n')) resolve();
        }),
      );
    },
  });
  return { child, result, metricsBase, summaryPrinted };
}

/** One sample of the Prometheus text format: name, labels, value. */
interface Sample {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly value: number;
}

function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of match[2]?.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[name!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The sum of the samples named `name` whose labels include `labels`. */
function sum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((sample) => sample.name === name && Object.entries(labels).every(([label, value]) => sample.labels[label] === value))
    .reduce((total, sample) => total + sample.value, 0);
}

interface Summary {
  jobs: Array<{ job: string; rows: number; copied: number; relocated: number; missing: number; failed: number; skipped: number; bytes: number }>;
  total: { copied: number; relocated: number; missing: number; failed: number };
}

describe('--metrics during a real run', () => {
  let postgres: PostgresServer;
  let db: TestDatabase;
  let s3: S3Server;
  let proxy: HttpProxy;
  let world: IntegrityWorld;

  before(async () => {
    postgres = await startPostgres();
    db = await createDatabase('current');
    s3 = await startS3();
    await s3.createBucket('metrics-source');
    await s3.createBucket('metrics-destination');
    world = await buildIntegrityWorld(db, s3, 'metrics-source');
    proxy = await startProxy({ upstreamPort: s3.port, latencyMs: 25 });
  });

  after(async () => {
    await proxy?.stop();
    await s3?.stop();
    await db?.drop();
    await postgres?.stop();
  });

  test('counters move while it runs, and the last scrape agrees with the summary and with the requests sent', async () => {
    const throttled = 3;
    proxy.setFault(
      faultFirst(throttled, (request) => request.operation === 'GetObject' && request.bucket === 'metrics-source', {
        kind: 'status',
        status: 503,
        code: 'SlowDown',
      }),
    );
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket: 'metrics-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'metrics-destination' },
      concurrency: 2,
    });
    try {
      const {
        child,
        result: running,
        metricsBase: url,
        summaryPrinted,
      } = runServingMetrics(['run', 'all', '--json', '--metrics', '127.0.0.1:0', '--metrics-hold', '60'], config.dir);
      const base = await Promise.race([url, running.then((result) => assert.fail(`ended before serving metrics: ${result.stderr}`))]);
      const scrape = async () => {
        const response = await fetch(`${base}/metrics`);
        assert.equal(response.status, 200);
        assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
        return parseMetrics(await response.text());
      };

      // While it runs: scrape until the summary is printed, and see the finished objects grow.
      const seen: number[] = [];
      let ended = false;
      void summaryPrinted.then(() => (ended = true));
      while (!ended) {
        seen.push(sum(await scrape(), 'mastosync_objects_total'));
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      const during = seen.filter((value) => value > 0 && value < world.wanted.length);
      assert.ok(new Set(during).size >= 2, `the count must move during the run: ${seen.join(' ')}`);
      for (let index = 1; index < seen.length; index++) assert.ok(seen[index]! >= seen[index - 1]!, `a counter never goes down: ${seen.join(' ')}`);

      // Served on after the run (--metrics-hold): the final values.
      const final = await scrape();
      const status = (await (await fetch(`${base}/status`)).json()) as {
        msg: string;
        done: number;
        bytes: number;
        jobs: Array<{ job: string; state: string }>;
      };
      child.kill('SIGTERM'); // ends the hold
      const result = await running;
      assert.equal(result.code, 0, result.stderr);
      const summary = JSON.parse(result.stdout) as Summary;

      for (const job of summary.jobs) {
        for (const status of ['copied', 'relocated', 'missing', 'failed', 'skipped'] as const) {
          assert.equal(sum(final, 'mastosync_objects_total', { job: job.job, status }), job[status], `${job.job} ${status}`);
        }
        assert.equal(sum(final, 'mastosync_bytes_total', { job: job.job }), job.bytes, `${job.job} bytes`);
        assert.equal(sum(final, 'mastosync_rows_read_total', { job: job.job }), job.rows, `${job.job} rows`);
      }
      assert.equal(summary.total.failed, 0);
      // As docs/operations.md's table says: the statuses it lists, and an object missing at the source counted there,
      // not as a failed request (the store answered: no such object).
      const documented = (metric: string) => {
        const row = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8')
          .split('\n')
          .find((line) => line.startsWith(`| \`${metric}\``))!;
        return row.split('|')[4]!;
      };
      const statuses = new Set(final.filter((sample) => sample.name === 'mastosync_objects_total').map((sample) => sample.labels.status!));
      assert.match(documented('mastosync_objects_total'), new RegExp(`\`${[...statuses].join(' ')}\``), 'the statuses served, as documented');
      assert.ok(summary.total.missing > 0, 'the world has objects missing at the source');
      assert.equal(sum(final, 'mastosync_objects_total', { status: 'missing' }), summary.total.missing);
      assert.equal(sum(final, 'mastosync_request_failures_total', { side: 'source', kind: 'notFound' }), 0);
      assert.match(documented('mastosync_request_failures_total'), /missing at the source is an answer, not a failed request/);
      assert.equal(sum(final, 'mastosync_copies_in_flight'), 0);
      assert.ok(sum(final, 'mastosync_start_time_seconds', { command: 'run' }) > Date.now() / 1000 - 600);
      // The build, as --version names it.
      const [build] = final.filter((sample) => sample.name === 'mastosync_build_info');
      const version = (await runCli(['--version'])).stdout.trim();
      assert.equal(build?.value, 1);
      assert.equal(`${build.labels.version}+${build.labels.revision!.slice(0, 12)}${build.labels.dirty === 'true' ? '.dirty' : ''}`, version);
      assert.equal(build.labels.revision, gitHead() ?? '', 'the commit this checkout is at');
      assert.ok(sum(final, 'mastosync_watermark_id') > 0, 'every job that read rows has a watermark');

      // The requests, by side and operation, as the proxy saw them.
      const sourceGets = proxy.requests.filter((request) => request.operation === 'GetObject' && request.bucket === 'metrics-source').length;
      assert.equal(sum(final, 'mastosync_request_duration_seconds_count', { side: 'source', operation: 'read' }), sourceGets);
      assert.equal(sum(final, 'mastosync_request_failures_total', { side: 'source', operation: 'read', kind: 'throttled' }), throttled);
      // One write that succeeded per object copied; the others failed, each counted by kind (the object whose multipart
      // ETag no part size gives is written twice: the first answer cannot be proved, src/sync/integrity.ts).
      assert.equal(
        sum(final, 'mastosync_request_duration_seconds_count', { side: 'destination', operation: 'write' }),
        summary.total.copied + summary.total.relocated + sum(final, 'mastosync_request_failures_total', { side: 'destination', operation: 'write' }),
      );
      assert.equal(sum(final, 'mastosync_request_failures_total', { side: 'destination', kind: 'throttled' }), 0);
      // At 0, not absent: the dashboard's throttling panel shows 0 for a side that was never throttled, not "No data".
      assert.ok(
        final.some(
          (sample) => sample.name === 'mastosync_request_failures_total' && sample.labels.side === 'destination' && sample.labels.kind === 'throttled',
        ),
        'a series for the destination throttled, at 0',
      );

      // /status: the progress line's JSON, at its end.
      assert.equal(status.msg, 'progress');
      assert.equal(
        status.done,
        summary.jobs.reduce((total, job) => total + job.copied + job.relocated + job.missing + job.failed + job.skipped, 0),
      );
      assert.equal(
        status.bytes,
        summary.jobs.reduce((total, job) => total + job.bytes, 0),
      );
      assert.ok(status.jobs.every((job) => job.state === 'done'));
      await assertDestinationExact(s3, 'metrics-destination', world);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });

  test('verify --metrics: its counts by outcome agree with its summary, its HEADs with the requests sent', async () => {
    proxy.setFault(undefined);
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket: 'metrics-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'metrics-destination' },
    });
    try {
      proxy.reset();
      const {
        child,
        result: running,
        metricsBase: url,
        summaryPrinted,
      } = runServingMetrics(['verify', 'all', '--json', '--metrics', '0', '--metrics-hold', '60'], config.dir);
      const base = await url;
      assert.match(base, /^http:\/\/127\.0\.0\.1:\d+$/, 'a port alone binds to loopback');
      await summaryPrinted;
      const final = parseMetrics(await (await fetch(`${base}/metrics`)).text());
      child.kill('SIGTERM');
      const result = await running;
      assert.equal(result.code, 0, result.stderr);
      const summary = JSON.parse(result.stdout) as { jobs: Array<Record<string, number> & { job: string }>; total: { ok: number } };
      assert.ok(summary.total.ok > 0);
      for (const job of summary.jobs) {
        for (const status of ['ok', 'missing', 'mismatched', 'missingAtSource', 'errors']) {
          assert.equal(sum(final, 'mastosync_verify_objects_total', { job: job.job, status }), job[status], `${job.job} ${status}`);
        }
        assert.equal(sum(final, 'mastosync_rows_read_total', { job: job.job }), job.rows, `${job.job} rows`);
      }
      const heads = proxy.requests.filter((request) => request.operation === 'HeadObject' && request.bucket === 'metrics-destination').length;
      assert.equal(sum(final, 'mastosync_request_duration_seconds_count', { side: 'destination', operation: 'head' }), heads);
      assert.ok(sum(final, 'mastosync_start_time_seconds', { command: 'verify' }) > 0);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });

  // A stop is a stop (Kubernetes, systemd): the hold would hold it until the grace period's SIGKILL.
  for (const command of ['run', 'verify'] as const) {
    test(`${command} ended by SIGTERM: exit 130 right after its summary, no --metrics-hold`, async () => {
      const config = writeConfig({
        databaseUrl: db.url,
        source: { endpoint: proxy.endpoint, bucket: 'metrics-source' },
        destination: { endpoint: proxy.endpoint, bucket: command === 'run' ? 'metrics-stopped' : 'metrics-destination' },
        concurrency: 1,
      });
      if (command === 'run') await s3.createBucket('metrics-stopped');
      proxy.reset();
      proxy.setFault(undefined);
      // Slow enough that the signal comes with most objects still to do.
      proxy.setLatency(300);
      try {
        const args = command === 'run' ? ['run', 'all', '--json', '--fresh'] : ['verify', 'all', '--json', '--by-head'];
        const { child, result: running, summaryPrinted } = runServingMetrics([...args, '--metrics', '0', '--metrics-hold', '600'], config.dir);
        // The signal once the first object is being written (run) or asked for (verify).
        const first = command === 'run' ? 'PutObject' : 'HeadObject';
        while (!proxy.requests.some((request) => request.operation === first)) await new Promise((resolve) => setTimeout(resolve, 20));
        child.kill('SIGTERM');
        await summaryPrinted;
        // The hold is 600 s: a process still there a minute after its summary is holding.
        let timer: NodeJS.Timeout | undefined;
        const held = new Promise<'held'>((resolve) => (timer = setTimeout(() => resolve('held'), 60_000)));
        const ended = await Promise.race([running, held]).finally(() => clearTimeout(timer));
        if (ended === 'held') {
          child.kill('SIGKILL');
          assert.fail(`${command} still held /metrics after a SIGTERM ended it`);
        }
        assert.equal(ended.code, 130, ended.stderr);
        const summary = JSON.parse(ended.stdout.trim().split('\n').at(-1)!) as { interrupted?: boolean };
        assert.equal(summary.interrupted, true, ended.stdout);
      } finally {
        proxy.setLatency(25);
        rmSync(config.dir, { recursive: true, force: true });
      }
    });
  }

  test('a bad --metrics address is one line and exit 2, nothing written', async () => {
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'metrics-source' },
      destination: { endpoint: s3.endpoint, bucket: 'metrics-destination' },
    });
    try {
      const result = await runCli(['run', 'all', '--metrics', 'localhost:99999'], { cwd: config.dir });
      assert.equal(result.code, 2);
      assert.equal(result.stderr.trim(), 'mastosync: --metrics takes HOST:PORT or PORT (e.g. 127.0.0.1:9464 or 9464), not "localhost:99999"');
      // A host that does not resolve (.invalid never does) is a usage error too, not a resolver's raw error.
      const unknown = await runCli(['run', 'all', '--metrics', 'no-such-host.invalid:1'], { cwd: config.dir });
      assert.equal(unknown.code, 2, unknown.stderr);
      assert.match(
        unknown.stderr.trim(),
        /^mastosync: --metrics cannot listen on no-such-host\.invalid:1 \((ENOTFOUND|EAI_AGAIN): no such host\): give an address/,
      );
      assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);
      assert.equal(existsSync(config.checkpoint), false, 'nothing written');
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });
});
