/**
 * Objects that fail on their own, night after night, among the oldest rows: archived to Glacier (S3 answers 403
 * InvalidObjectState until they are restored), or on a disk a Ceph or MinIO lost (500 for them, every time). The
 * failure stop (src/sync/failureStreak.ts) counted them: run 1 stopped after 100 in a row, and every later
 * `run all --resume` retried them first, failed them again in a row and stopped in that pass, before one new row was
 * read. Cron then copied nothing new, for good, with a line blaming the credentials. Now nightly runs of the real CLI
 * copy every readable object, report the failing ones each night (failed in the log, the checkpoint and the summary)
 * and exit 1 while they fail; and a source that really refuses every object still stops the run.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type LocalS3Server } from '../support/s3.js';
import { startProxy, type Fault, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig, type CliResult } from '../support/cli.js';
import { fixtureBytes } from '../support/fixture.js';

/** Accounts 1..ROWS with a PNG avatar each, all at the source; 1..FAILING (the oldest) fail on their own. */
const ROWS = 400;
const FAILING = 250;
const CONCURRENCY = 4;
/**
 * Stands for the 5 minutes (MASTOSYNC_TEST_STORE_PATIENCE_MS): with the proxy's latency, 100 objects failing in a
 * row at CONCURRENCY take longer (250 ms at least), so a run of them that counted would stop the run.
 */
const PATIENCE_MS = 50;
const LATENCY_MS = 10;
/**
 * No retry: these objects fail every time, so a retry changes nothing but its backoff (up to 200 ms each, of the
 * production's timing), which made most of this file's minute.
 */
const RETRIES = 0;

const avatarKey = (id: number) => {
  const digits = String(id).padStart(9, '0');
  return `accounts/avatars/${digits.slice(0, 3)}/${digits.slice(3, 6)}/${digits.slice(6)}/original/a${id}.png`;
};
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, index) => from + index);
const failingKeys = range(1, FAILING).map(avatarKey);
const readableKeys = range(FAILING + 1, ROWS).map(avatarKey);

let postgres: PostgresServer;
let source: LocalS3Server;
let destination: LocalS3Server;
let proxy: HttpProxy;
const cleanUp: Array<() => Promise<void> | void> = [];

before(async () => {
  postgres = await startPostgres();
  [source, destination] = await Promise.all([startS3(), startS3()]);
  await source.createBucket('alone-source');
  await putAvatars(range(1, ROWS));
  proxy = await startProxy({ upstreamPort: source.port, latencyMs: LATENCY_MS });
});

after(async () => {
  for (const clean of cleanUp.reverse()) await clean();
  await proxy?.stop();
  await source?.stop();
  await destination?.stop();
  await postgres?.stop();
});

/** Each account's avatar (or `body`) at the source, a few PUTs at a time. */
async function putAvatars(ids: readonly number[], body = (id: number) => fixtureBytes(`avatar ${id}`, 1500 + id, 'image/png')): Promise<void> {
  const left = [...ids];
  const putting = async () => {
    for (let id = left.shift(); id !== undefined; id = left.shift()) await source.put('alone-source', avatarKey(id), body(id), { contentType: 'image/png' });
  };
  await Promise.all(Array.from({ length: 8 }, putting));
}

/**
 * A database of ROWS accounts, and a config reading the source through the proxy into a bucket of its own (at
 * `destinationEndpoint`: the destination's, or a proxy's in front of it).
 */
async function instance(bucket: string, destinationEndpoint = destination.endpoint): Promise<{ db: TestDatabase; config: ReturnType<typeof writeConfig> }> {
  const db = await createDatabase('current');
  cleanUp.push(() => db.drop());
  await insertAvatarAccounts(db.client, `generate_series(1, ${ROWS}) AS g`);
  await destination.createBucket(bucket);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: 'alone-source' },
    destination: { endpoint: destinationEndpoint, bucket },
    concurrency: CONCURRENCY,
    batchSize: 50,
    retries: RETRIES,
  });
  cleanUp.push(() => rmSync(config.dir, { recursive: true, force: true }));
  return { db, config };
}

/** The source's GET of each of `keys` answers `fault`; everything else goes through. */
function failGets(keys: readonly string[], fault: Fault): void {
  const failing = new Set(keys);
  proxy.setFault((request) => (request.operation === 'GetObject' && failing.has(request.key!) ? fault : undefined));
}

const ARCHIVED: Fault = { kind: 'status', status: 403, code: 'InvalidObjectState', message: "The operation is not valid for the object's storage class" };
const LOST_DISK: Fault = { kind: 'status', status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' };

/** `mastosync ARGS` in `cwd`, with the store's patience of this file. */
function cli(cwd: string, ...args: string[]): Promise<CliResult> {
  return runCli([...args, '--json', '--quiet', '--log-level', 'warn'], { cwd, env: { MASTOSYNC_TEST_STORE_PATIENCE_MS: String(PATIENCE_MS) } });
}

/** One night's cron run. */
const night = (cwd: string) => cli(cwd, 'run', 'all', '--resume');
const verifyRepair = (cwd: string) => cli(cwd, 'verify', 'accounts', '--repair');

function summaryOf(result: CliResult): { stopped?: string; total: Record<string, number> } {
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { stopped?: string; total: Record<string, number> };
}

const stopLines = (result: CliResult) => result.stderr.split('\n').filter((line) => line.startsWith('mastosync: stopped:'));

/** The keys this night's log said failed. */
function loggedFailures(result: CliResult): Set<string> {
  const lines = readJsonLines<{ msg?: string; key?: string }>(
    result.stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .join('\n'),
  );
  return new Set(lines.filter((line) => line.msg === 'copy failed').map((line) => line.key!));
}

/** Keys whose last line in the checkpoint says failed. */
function failedInCheckpoint(checkpoint: string): Set<string> {
  const last = new Map<string, string>();
  for (const line of readJsonLines<{ key?: string; status?: string }>(readFileSync(checkpoint, 'utf8')))
    if (line.key !== undefined && line.status !== undefined) last.set(line.key, line.status);
  return new Set([...last].filter(([, status]) => status === 'failed').map(([key]) => key));
}

describe('the oldest objects archived (403 InvalidObjectState), night after night', () => {
  test('each night copies what is readable, reports the archived ones failed, exit 1, never a stop; a source refusing everything still stops', async () => {
    const { db, config } = await instance('alone-archived');
    failGets(failingKeys, ARCHIVED);
    try {
      for (let nightly = 1; nightly <= 3; nightly++) {
        const result = await night(config.dir);
        const at = `night ${nightly}`;
        assert.equal(result.code, 1, `${at}: objects failed\n${result.stderr.slice(0, 2000)}`);
        assert.deepEqual(stopLines(result), [], `${at}: the archived objects say nothing about the source`);
        assert.equal(summaryOf(result).stopped, undefined, at);
        assert.deepEqual((await destination.listKeys('alone-archived')).sort(), [...readableKeys].sort(), `${at}: every readable object, from the first night`);
        assert.equal(summaryOf(result).total.failed, FAILING, `${at}: the summary counts the archived objects`);
        assert.deepEqual([...loggedFailures(result)].sort(), [...failingKeys].sort(), `${at}: each one is in the log`);
        assert.deepEqual([...failedInCheckpoint(config.checkpoint)].sort(), [...failingKeys].sort(), `${at}: and outstanding in the checkpoint`);
      }
      for (const key of readableKeys.slice(0, 5)) {
        const id = Number(/a(\d+)\.png$/.exec(key)![1]);
        assert.ok((await destination.getObject('alone-archived', key))?.body.equals(fixtureBytes(`avatar ${id}`, 1500 + id, 'image/png')), key);
      }

      // New accounts, and a source that now fails every GET: the archived objects, tried first, fail too, and an
      // object copied before, read again, fails as well: the run stops there, within a few objects.
      await insertAvatarAccounts(db.client, `generate_series(${ROWS + 1}, ${ROWS + 200}) AS g`);
      await putAvatars(range(ROWS + 1, ROWS + 200));
      proxy.setFault((request) => (request.operation === 'GetObject' ? LOST_DISK : undefined));
      const refused = await night(config.dir);
      assert.equal(refused.code, 1, refused.stderr);
      const [stopped, ...more] = stopLines(refused);
      assert.deepEqual(more, [], refused.stderr);
      assert.match(
        stopped ?? '',
        /^mastosync: stopped: the source s3:\/\/alone-source at .* failed the GET of accounts\/avatars\/\S+, an object copied before, tried again after \d+ objects failed in a row \(its error: InternalError: /,
      );
      assert.ok(loggedFailures(refused).size < 20, `stopped after ${loggedFailures(refused).size} objects failed`);
    } finally {
      proxy.setFault(undefined);
    }
  });
});

describe('the oldest objects on a lost disk (500 for each of them, every time)', () => {
  test('the nights get past them: each tries at least 100 more, the third copies every readable object; each reports them, exit 1', async () => {
    const { config } = await instance('alone-lost-disk');
    failGets(failingKeys, LOST_DISK);
    try {
      const copiedBy: number[] = [];
      for (let nightly = 1; nightly <= 3; nightly++) {
        const result = await night(config.dir);
        const at = `night ${nightly}`;
        assert.equal(result.code, 1, `${at}\n${result.stderr.slice(0, 2000)}`);
        const failed = failedInCheckpoint(config.checkpoint);
        // A 500 for each of a run of new objects may be the source failing every object: those still count. The
        // failed ones of earlier nights do not, so each night gets at least the streak (100) further.
        assert.ok(failed.size >= Math.min(FAILING, 100 * nightly), `${at}: ${failed.size} objects tried and failed so far`);
        assert.ok(
          [...failed].every((key) => failingKeys.includes(key)),
          at,
        );
        assert.equal(summaryOf(result).total.failed, loggedFailures(result).size, `${at}: each failure is in the log`);
        copiedBy.push((await destination.listKeys('alone-lost-disk')).length);
      }
      assert.deepEqual(copiedBy.at(-1), readableKeys.length, `readable objects at the destination after each night: ${copiedBy.join(', ')}`);
      assert.deepEqual((await destination.listKeys('alone-lost-disk')).sort(), [...readableKeys].sort());
      assert.deepEqual([...failedInCheckpoint(config.checkpoint)].sort(), [...failingKeys].sort(), 'every lost object outstanding');

      // Once they all failed before, a night tries them all again, reports them, and stops for none of them.
      const again = await night(config.dir);
      assert.equal(again.code, 1, again.stderr);
      assert.deepEqual(stopLines(again), [], again.stderr);
      assert.equal(summaryOf(again).total.failed, FAILING);

      // --retry-failed tries only objects that failed before: an object copied before copies again between them, so
      // they fail each for its own reason, and it tries every one (it stopped at the 100th).
      const retried = await cli(config.dir, 'run', 'all', '--retry-failed');
      assert.equal(retried.code, 1, retried.stderr);
      assert.deepEqual(stopLines(retried), [], retried.stderr);
      assert.equal(summaryOf(retried).total.failed, FAILING);
    } finally {
      proxy.setFault(undefined);
    }
  });
});

describe('the newest 150 objects on a lost disk, then the destination dead', () => {
  test('a run and --retry-failed try every one of them (exit 1, no stop); a dead destination then stops the retry pass within a few objects, without waiting out the patience', async () => {
    const front = await startProxy({ upstreamPort: destination.port });
    cleanUp.push(() => front.stop());
    const { config } = await instance('alone-dead', front.endpoint);
    const lost = range(ROWS - 149, ROWS).map(avatarKey);
    // A stop below comes from the object tried again, not from the patience: 100 objects failing at CONCURRENCY with
    // no retry take longer than it is never reached here (fewer than 20 fail), so the window is what ends it.
    const patientFor =
      (patienceMs: number) =>
      (...args: string[]) =>
        runCli([...args, '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir, env: { MASTOSYNC_TEST_STORE_PATIENCE_MS: String(patienceMs) } });
    const patient = patientFor(600_000);
    failGets(lost, LOST_DISK);
    try {
      for (const args of [
        ['run', 'all', '--resume'],
        ['run', 'all', '--retry-failed'],
      ]) {
        const result = await patient(...args);
        const at = args.join(' ');
        assert.equal(result.code, 1, `${at}\n${result.stderr.slice(0, 2000)}`);
        assert.deepEqual(stopLines(result), [], at);
        assert.equal(summaryOf(result).total.failed, lost.length, at);
        assert.deepEqual([...loggedFailures(result)].sort(), [...lost].sort(), `${at}: each lost object tried and logged`);
        assert.equal((await destination.listKeys('alone-dead')).length, ROWS - lost.length, at);
      }

      // A destination restarting: every PUT fails for a moment (1.5 s from the first). Copies wait, the object copied
      // before is tried again, and the run goes on: it stopped at once on the first try (review).
      let firstRefused: number | undefined;
      front.setFault((request) => {
        if (request.operation !== 'PutObject') return undefined;
        firstRefused ??= Date.now();
        return Date.now() - firstRefused < 1500 ? LOST_DISK : undefined;
      });
      const rode = await patientFor(20_000)('run', 'all', '--resume');
      assert.equal(rode.code, 1, rode.stderr);
      assert.deepEqual(stopLines(rode), [], 'a moment of failing PUTs stops nothing');
      assert.match(rode.stderr, /an object copied before fails too: copies wait, and it is tried again before the run stops/);
      assert.equal(summaryOf(rode).total.failed, lost.length);

      // Dead for good: stopped once the known-good object failed for the whole window (here the patience, 2 s).
      front.setFault((request) => (request.operation === 'PutObject' ? LOST_DISK : undefined));
      const dead = await patientFor(2000)('run', 'all', '--resume');
      assert.equal(dead.code, 1, dead.stderr);
      const [stopped, ...more] = stopLines(dead);
      assert.deepEqual(more, [], dead.stderr);
      assert.match(
        stopped ?? '',
        /^mastosync: stopped: the destination s3:\/\/alone-dead at .* failed the PUT of accounts\/avatars\/\S+, an object copied before, tried again after \d+ objects failed in a row \(its error: InternalError: .*; the last object's: source GET: InternalError: /,
      );
      assert.ok(loggedFailures(dead).size < 20, `stopped after ${loggedFailures(dead).size} objects failed`);
    } finally {
      proxy.setFault(undefined);
    }
  });
});

describe('verify --repair over objects a lost disk cannot serve, and readable missing objects after them', () => {
  test('repairs every readable object and reports the lost ones, exit 1, never a stop (refused.test.ts: a destination refusing every PUT still stops it)', async () => {
    const { config } = await instance('alone-verify');
    failGets(failingKeys, LOST_DISK);
    try {
      const result = await verifyRepair(config.dir);
      assert.equal(result.code, 1, result.stderr.slice(0, 2000));
      assert.deepEqual(stopLines(result), [], 'the lost objects say nothing about the source');
      assert.deepEqual((await destination.listKeys('alone-verify')).sort(), [...readableKeys].sort(), 'every readable object repaired');
    } finally {
      proxy.setFault(undefined);
    }
  });
});

describe("verify --repair over objects the destination refuses alone (a proxy's body limit), among whole ones", () => {
  test('checks every object and reports the refused ones unrepaired, exit 1, never a stop', async () => {
    const db = await createDatabase('current');
    cleanUp.push(() => db.drop());
    await insertAvatarAccounts(db.client, `generate_series(1, ${ROWS}) AS g`);
    // Last in this file: every third avatar of the shared source grows past the destination's proxy limit.
    const largeIds = range(1, ROWS).filter((id) => id % 3 === 0);
    const large = new Set(largeIds.map(avatarKey));
    await putAvatars(largeIds, () => Buffer.alloc(300 * 1024, 7));
    await destination.createBucket('alone-refused');
    const front = await startProxy({ upstreamPort: destination.port, latencyMs: LATENCY_MS });
    cleanUp.push(() => front.stop());
    front.setFault((request) => (request.operation === 'PutObject' && large.has(request.key!) ? { kind: 'refuse-body' } : undefined));
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: source.endpoint, bucket: 'alone-source' },
      destination: { endpoint: front.endpoint, bucket: 'alone-refused' },
      concurrency: CONCURRENCY,
      batchSize: 50,
      retries: RETRIES,
    });
    cleanUp.push(() => rmSync(config.dir, { recursive: true, force: true }));
    const copied = await night(config.dir);
    assert.equal(copied.code, 1, copied.stderr);
    assert.equal(summaryOf(copied).total.failed, large.size);
    const result = await verifyRepair(config.dir);
    assert.equal(result.code, 1, result.stderr.slice(0, 2000));
    assert.deepEqual(stopLines(result), [], 'the refused objects come among whole ones');
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: { ok: number; missing: number; unrepaired: number } };
    assert.equal(summary.total.ok, ROWS - large.size, result.stdout.slice(-1500));
    assert.equal(summary.total.unrepaired, large.size);
  });
});
