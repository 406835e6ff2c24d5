/**
 * A store that goes away mid-run: a real s3rver (the destination, apart from the source's) stopped and started
 * again on its port, with what it stored. Gone for longer than the patience (shortened here as SessionOptions
 * shortens the database's), the run must stop soon after, with its summary and the stop naming the destination,
 * having recorded nothing wrong (no object failed for it): `--resume` then completes the copy byte for byte. Gone
 * for a few seconds only (a restart), the run must ride it through and exit 0, even with one retry per object.
 * verify and prune stop the same way, each with its own summary.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import pino from 'pino';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type LocalS3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { assertDestinationExact, assertObjectExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { loadConfig } from '../../src/cli/config.js';
import { openSession, type Session } from '../../src/cli/setup.js';
import { createStore } from '../../src/storage/index.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { CheckpointWriter, EMPTY_RESUME_STATE } from '../../src/sync/checkpoint.js';
import { runJobs, type RunSummary } from '../../src/sync/run.js';
import { StoreUnreachableError } from '../../src/sync/storeWatch.js';
import { verifyJobs } from '../../src/sync/verify.js';
import { pruneJobs } from '../../src/sync/prune.js';

/** Stands for the 5 minutes a run waits for a store. */
const PATIENCE_MS = 1500;

let postgres: PostgresServer;
let source: LocalS3Server;
let destination: LocalS3Server;
let sourceProxy: HttpProxy;
let db: TestDatabase;
let world: IntegrityWorld;
const dirs: string[] = [];
const log = pino({ level: 'silent' });

before(async () => {
  postgres = await startPostgres();
  [source, destination] = await Promise.all([startS3(), startS3()]);
  db = await createDatabase('current');
  await source.createBucket('outage-source');
  world = await buildIntegrityWorld(db, source, 'outage-source');
  // A little latency at the source, so that a run is still copying when the destination goes.
  sourceProxy = await startProxy({ upstreamPort: source.port, latencyMs: 30 });
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await sourceProxy?.stop();
  await db?.drop();
  await source?.stop();
  await destination?.stop();
  await postgres?.stop();
});

function configFor(bucket: string, extra: { retries?: number; concurrency?: number } = {}) {
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: sourceProxy.endpoint, bucket: 'outage-source' },
    destination: { endpoint: destination.endpoint, bucket },
    concurrency: extra.concurrency ?? 4,
    ...(extra.retries !== undefined && { retries: extra.retries }),
  });
  dirs.push(config.dir);
  return config;
}

/** The stores and the database session a command of that config uses, as the CLI opens them. */
async function open(file: string): Promise<{ session: Session; stores: { source: ObjectStore; destination: ObjectStore }; close(): Promise<void> }> {
  const config = loadConfig(file, {});
  const stores = {
    source: createStore(config.source, { role: 'source', concurrency: 4 }),
    destination: createStore(config.destination, { role: 'destination', concurrency: 4, uploadCutoff: config.sync.uploadCutoff }),
  };
  const session = await openSession(config, ['all'], log);
  return {
    session,
    stores,
    close: async () => {
      stores.source.close();
      stores.destination.close();
      await session.db.close();
    },
  };
}

/** Lines of a checkpoint that record an object. */
function objectLines(checkpoint: string): Array<{ key: string; status: string }> {
  return readJsonLines<{ key?: string; status?: string }>(readFileSync(checkpoint, 'utf8'))
    .filter((line) => line.status !== undefined && line.key !== undefined)
    .map((line) => ({ key: line.key!, status: line.status! }));
}

/**
 * A run (in-process, as the CLI makes it, with the patience shortened) into `bucket` during which `store` goes away
 * after a few copies and stays away until the run has ended; then it comes back.
 */
async function runUntilGone(bucket: string, store: LocalS3Server) {
  await destination.createBucket(bucket);
  const config = configFor(bucket);
  const { session, stores, close } = await open(config.file);
  const checkpoint = CheckpointWriter.open(config.checkpoint, {
    run: new Date().toISOString(),
    mode: 'fresh',
    source: stores.source.description,
    destination: stores.destination.description,
    scope: 'the whole database',
  });
  let results = 0;
  let haltedAt = 0;
  try {
    const summary = await runJobs({
      jobs: session.jobs,
      db: session.db,
      schema: session.schema,
      ...stores,
      batchSize: 10,
      concurrency: 4,
      acl: 'public-read',
      retries: 5,
      resume: EMPTY_RESUME_STATE,
      checkpoint,
      dryRun: false,
      storePatienceMs: PATIENCE_MS,
      onResult: () => {
        if (++results !== 8) return;
        haltedAt = performance.now();
        void store.halt();
      },
      stop: new AbortController().signal,
      abort: new AbortController().signal,
      log,
    });
    return { config, summary, stoppedAfterMs: performance.now() - haltedAt };
  } finally {
    checkpoint.close();
    await close();
    await store.restart();
  }
}

describe('the destination gone for longer than the patience', () => {
  const bucket = 'outage-gone';
  let config: ReturnType<typeof configFor>;
  let summary: RunSummary;
  let stoppedAfterMs: number;

  before(async () => {
    ({ config, summary, stoppedAfterMs } = await runUntilGone(bucket, destination));
  });

  test('the run stops soon after the patience, naming the destination and --resume', () => {
    assert.ok(summary.stoppedBy instanceof StoreUnreachableError, String(summary.stoppedBy));
    assert.match(
      summary.stoppedBy.message,
      /^the destination s3:\/\/outage-gone at http:\/\/127\.0\.0\.1:\d+ answered no request for \d+ s \(.+\): finished objects are in the checkpoint; once it answers again, run again with --resume$/,
    );
    assert.ok(stoppedAfterMs < PATIENCE_MS + 8000, `stopped ${Math.round(stoppedAfterMs)} ms after the destination went`);
    assert.equal(summary.interrupted, false);
  });

  test('its summary counts what was copied; no object failed for the store being away, and none was recorded wrong', async () => {
    const total = summary.jobs.reduce((sum, job) => ({ copied: sum.copied + job.copied + job.relocated, failed: sum.failed + job.failed }), {
      copied: 0,
      failed: 0,
    });
    assert.ok(total.copied >= 8 && total.copied < world.wanted.length, `copied before the stop: ${total.copied} of ${world.wanted.length}`);
    assert.equal(total.failed, 0);
    const lines = objectLines(config.checkpoint);
    assert.deepEqual(
      lines.filter((line) => line.status === 'failed'),
      [],
    );
    for (const line of lines.filter((line) => line.status === 'copied' || line.status === 'relocated')) {
      const wanted = world.wantedByKey.get(line.key);
      assert.ok(wanted, `${line.key}: recorded copied, and owned`);
      await assertObjectExact(destination, bucket, wanted);
    }
  });

  test('once it is back, --resume completes the copy, byte for byte', async () => {
    const result = await runCli(['run', 'all', '--resume', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    const { total } = readJsonLines<{ total: { failed: number } }>(result.stdout).at(-1)!;
    assert.equal(total.failed, 0);
    await assertDestinationExact(destination, bucket, world);
  });
});

describe('the source gone for longer than the patience, behind a proxy that answers 502 for it', () => {
  test('the run stops soon after the patience, naming the source; no object failed for it', async () => {
    const { config, summary, stoppedAfterMs } = await runUntilGone('outage-source-gone', source);
    assert.ok(summary.stoppedBy instanceof StoreUnreachableError, String(summary.stoppedBy));
    assert.match(
      summary.stoppedBy.message,
      /^the source s3:\/\/outage-source at http:\/\/127\.0\.0\.1:\d+ answered no request for \d+ s \(.*502.*\): .*--resume$/,
    );
    assert.ok(stoppedAfterMs < PATIENCE_MS + 8000, `stopped ${Math.round(stoppedAfterMs)} ms after the source went`);
    assert.equal(
      summary.jobs.reduce((sum, job) => sum + job.failed, 0),
      0,
    );
    assert.deepEqual(
      objectLines(config.checkpoint).filter((line) => line.status === 'failed'),
      [],
    );
  });
});

describe('the destination away for a few seconds (a restart)', () => {
  test('the run rides it through, exits 0, and the copy is complete and exact, with one retry per object', async () => {
    const bucket = 'outage-blip';
    await destination.createBucket(bucket);
    // One retry: an object that met the outage would fail, were the store's silence counted against the object.
    const config = configFor(bucket, { retries: 1, concurrency: 2 });
    const running = runCli(['run', 'all', '--json'], { cwd: config.dir });
    const recorded = () => {
      try {
        return objectLines(config.checkpoint).length;
      } catch {
        return 0; // not written yet
      }
    };
    while (recorded() < 8) await new Promise((resolve) => setTimeout(resolve, 50));
    const copiedBeforeHalt = recorded();
    await destination.halt();
    await new Promise((resolve) => setTimeout(resolve, 4000));
    await destination.restart();
    const result = await running;
    assert.equal(result.code, 0, result.stderr);
    const { total } = readJsonLines<{ total: { copied: number; relocated: number; failed: number } }>(result.stdout).at(-1)!;
    assert.equal(total.failed, 0);
    assert.ok(copiedBeforeHalt < world.wanted.length, 'the destination must have gone mid-run');
    assert.equal(total.copied + total.relocated, world.wanted.length);
    await assertDestinationExact(destination, bucket, world);
  });
});

/** Stopped soon after the patience by the destination gone, saying to `again` once it answers. */
function assertGoneSoon(stoppedBy: unknown, started: number, again: string): void {
  assert.ok(stoppedBy instanceof StoreUnreachableError, String(stoppedBy));
  assert.match(
    stoppedBy.message,
    new RegExp(`^the destination s3://outage-gone at .* answered no request for \\d+ s \\(.+\\): once it answers again, ${again}$`),
  );
  assert.ok(performance.now() - started < PATIENCE_MS + 8000, `stopped after ${Math.round(performance.now() - started)} ms`);
}

describe('verify and prune when the destination is gone', () => {
  let opened: Awaited<ReturnType<typeof open>>;

  before(async () => {
    opened = await open(configFor('outage-gone').file);
    await destination.halt();
  });

  after(async () => {
    await opened?.close();
    await destination.restart();
  });

  for (const method of ['head', 'listing'] as const) {
    test(`verify by ${method} stops with its summary, counting no object as an error`, async () => {
      const started = performance.now();
      const problems: unknown[] = [];
      const result = await verifyJobs({
        jobs: opened.session.jobs,
        db: opened.session.db,
        schema: opened.session.schema,
        ...opened.stores,
        batchSize: 10,
        concurrency: 4,
        retries: 5,
        samplePercent: 100,
        method,
        onProblem: (problem) => problems.push(problem),
        storePatienceMs: PATIENCE_MS,
      });
      assertGoneSoon(result.stoppedBy, started, 'run verify again');
      assert.deepEqual(problems, []);
      assert.equal(
        result.jobs.reduce((sum, job) => sum + job.errors + job.missing, 0),
        0,
      );
    });
  }

  test('prune stops with its summary, having deleted nothing', async () => {
    const started = performance.now();
    const result = await pruneJobs({
      jobs: opened.session.jobs,
      db: opened.session.db,
      schema: opened.session.schema,
      destination: opened.stores.destination,
      delete: false,
      limit: { count: 0 },
      retries: 5,
      storePatienceMs: PATIENCE_MS,
    });
    assertGoneSoon(result.stoppedBy, started, 'run prune again');
    assert.equal(
      result.jobs.reduce((sum, job) => sum + job.deleted, 0),
      0,
    );
  });
});
