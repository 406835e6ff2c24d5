/**
 * A store that answers yet fails every object: a destination behind a proxy that answers HEADs and listings but resets
 * every PUT (a WAF, a full disk behind a gateway, a write permission revoked that surfaces as resets). The store
 * watch sees it answer, so each object used up its retries and the run went on through every object. Now the real
 * CLI stops once a clear run of objects has failed there (100 in a row, for the patience: shortened here as the
 * outage tests shorten it), with its summary, one `stopped:` line naming the side, the store, the operation and
 * the last error, exit 1; and `--resume` against the healthy destination copies everything, object by object. A
 * source whose every body is cut short stops it the same way, naming the source (review L5: it ran on for days).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type LocalS3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig, type CliResult } from '../support/cli.js';
import { fixtureBytes } from '../support/fixture.js';

/** Accounts 1..ROWS with a PNG avatar each; every fourth one's file is missing at the source. */
const ROWS = 400;
const CONCURRENCY = 4;
/** Stands for the 5 minutes (MASTOSYNC_TEST_STORE_PATIENCE_MS). */
const PATIENCE_MS = 2000;
/** Objects failed in a row before the stop, at CONCURRENCY (src/sync/failureStreak.ts, streakObjects). */
const STREAK = 100;

const avatarKey = (id: number) => {
  const digits = String(id).padStart(9, '0');
  return `accounts/avatars/${digits.slice(0, 3)}/${digits.slice(3, 6)}/${digits.slice(6)}/original/a${id}.png`;
};
const ids = Array.from({ length: ROWS }, (_, index) => index + 1);
const present = ids.filter((id) => id % 4 !== 0).map((id) => ({ key: avatarKey(id), body: fixtureBytes(`avatar ${id}`, 1500 + id, 'image/png') }));
const missing = ids.filter((id) => id % 4 === 0).map(avatarKey);

let postgres: PostgresServer;
let db: TestDatabase;
let source: LocalS3Server;
let destination: LocalS3Server;
let sourceProxy: HttpProxy;
let destinationProxy: HttpProxy;
const dirs: string[] = [];

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  await insertAvatarAccounts(db.client, `generate_series(1, ${ROWS}) AS g`);
  [source, destination] = await Promise.all([startS3(), startS3()]);
  await source.createBucket('refused-source');
  for (const object of present) await source.put('refused-source', object.key, object.body, { contentType: 'image/png' });
  [sourceProxy, destinationProxy] = await Promise.all([startProxy({ upstreamPort: source.port }), startProxy({ upstreamPort: destination.port })]);
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await sourceProxy?.stop();
  await destinationProxy?.stop();
  await db?.drop();
  await source?.stop();
  await destination?.stop();
  await postgres?.stop();
});

function configFor(bucket: string, through: { source?: HttpProxy; destination?: HttpProxy }) {
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: (through.source ?? source).endpoint, bucket: 'refused-source' },
    destination: { endpoint: (through.destination ?? destination).endpoint, bucket },
    concurrency: CONCURRENCY,
    batchSize: 50,
    // Few retries, so that objects fail fast here: the stop counts objects, whatever their retries.
    retries: 1,
  });
  dirs.push(config.dir);
  return config;
}

function run(args: string[], cwd: string): Promise<CliResult> {
  return runCli(['run', 'accounts', '--json', '--quiet', '--log-level', 'warn', ...args], {
    cwd,
    env: { MASTOSYNC_TEST_STORE_PATIENCE_MS: String(PATIENCE_MS) },
  });
}

function objectLines(checkpoint: string): Array<{ key: string; status: string; error?: string }> {
  return readJsonLines<{ key?: string; status?: string; error?: string }>(readFileSync(checkpoint, 'utf8'))
    .filter((line) => line.status !== undefined && line.key !== undefined)
    .map((line) => ({ key: line.key!, status: line.status!, error: line.error }));
}

function summaryOf(result: CliResult): { stopped?: string; notes: string[]; total: Record<string, number> } {
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { stopped?: string; notes: string[]; total: Record<string, number> };
}

const mastosyncLines = (result: CliResult) => result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));

describe('a destination that answers HEAD but resets every PUT', () => {
  const bucket = 'refused-puts';
  let config: ReturnType<typeof configFor>;
  let refused: CliResult;
  let stoppedAfter: number;

  before(async () => {
    await destination.createBucket(bucket);
    config = configFor(bucket, { destination: destinationProxy });
    destinationProxy.reset();
    destinationProxy.setFault((request) => (request.method === 'PUT' ? { kind: 'reset' } : undefined));
    try {
      refused = await run([], config.dir);
    } finally {
      destinationProxy.setFault(undefined);
    }
    const line = /failed the PUT of each of the last (\d+) objects/.exec(mastosyncLines(refused)[0] ?? '');
    stoppedAfter = Number(line?.[1]);
  });

  test('the run stops with its summary and one line naming the destination, the store, PUT and the last error; exit 1', () => {
    assert.equal(refused.code, 1, refused.stderr);
    const lines = mastosyncLines(refused);
    assert.equal(lines.length, 1, `one line names the cause:\n${refused.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(
        `^mastosync: stopped: the destination s3://${bucket} at http://127\\.0\\.0\\.1:${destinationProxy.port} failed the PUT of each of the last \\d+ objects, ` +
          `for \\d+ s, none copied in between \\(the last: .*(ECONNRESET|socket hang up).*\\): it answers, yet every PUT fails: .*` +
          `finished objects are in the checkpoint: once PUTs go through again, run again with --resume$`,
      ),
    );
    assert.equal(`mastosync: stopped: ${summaryOf(refused).stopped}`, lines[0], 'the summary names it too');
    assert.ok(
      destinationProxy.requests.some((request) => request.method === 'HEAD' && request.status === 404),
      'the store watch asked, and had an answer',
    );
  });

  test('within the bound: the streak of objects and those in flight, not every object', () => {
    assert.ok(stoppedAfter >= STREAK, `stopped after ${stoppedAfter} objects`);
    const lines = objectLines(config.checkpoint);
    const failed = lines.filter((line) => line.status === 'failed');
    assert.ok(failed.length >= stoppedAfter && failed.length <= stoppedAfter + CONCURRENCY, `${failed.length} failed, stopped after ${stoppedAfter}`);
    assert.ok(failed.length < present.length / 2, `stopped part-way: ${failed.length} of ${present.length} objects tried`);
    assert.equal(summaryOf(refused).total.failed, failed.length);
    for (const line of failed) assert.match(line.error ?? '', /^destination PUT: /, `${line.key}: the checkpoint says which side failed`);
    assert.deepEqual(
      lines.filter((line) => line.status === 'missing').map((line) => line.key),
      missing.filter((key) => lines.some((line) => line.key === key)),
      'objects missing at the source are recorded missing, not failed',
    );
    assert.ok(
      summaryOf(refused).notes.some(
        (note) => note === `where copies failed: ${failed.length} at the destination PUT (each object's error is in the log and the checkpoint)`,
      ),
      summaryOf(refused).notes.join('\n'),
    );
  });

  test('once the destination takes PUTs again, --resume copies everything, object by object', async () => {
    const resumed = await run(['--resume'], config.dir);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(summaryOf(resumed).total.failed, 0);
    assert.deepEqual((await destination.listKeys(bucket)).sort(), present.map((object) => object.key).sort(), 'exactly the objects at the source');
    for (const object of present) {
      const stored = await destination.getObject(bucket, object.key);
      assert.ok(stored?.body.equals(object.body), `${object.key}: byte for byte`);
      assert.equal(stored?.contentType, 'image/png', object.key);
    }
  });
});

describe('a source whose every body is cut short stops the run as one refusing every GET does, naming the source', () => {
  test('the run stops with one line naming the source and its bodies; each failure says the source GET (its body); --resume then copies everything', async () => {
    const bucket = 'refused-cut-bodies';
    await destination.createBucket(bucket);
    const config = configFor(bucket, { source: sourceProxy });
    sourceProxy.setFault((request) => (request.operation === 'GetObject' ? { kind: 'truncate', afterBytes: 100 } : undefined));
    let result: CliResult;
    try {
      result = await run([], config.dir);
    } finally {
      sourceProxy.setFault(undefined);
    }
    assert.equal(result.code, 1, result.stderr);
    const lines = mastosyncLines(result);
    assert.equal(lines.length, 1, `one line names the cause:\n${result.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(
        `^mastosync: stopped: the source s3://refused-source at http://127\\.0\\.0\\.1:${sourceProxy.port} answered the GET of each of the last (\\d+) objects ` +
          `with a body cut short or arriving wrong, for \\d+ s, none copied in between \\(the last: .+\\): it answers, yet no body arrives whole: .*` +
          `once bodies arrive whole again, run again with --resume$`,
      ),
    );
    assert.equal(`mastosync: stopped: ${summaryOf(result).stopped}`, lines[0], 'the summary names it too');
    const stoppedAfter = Number(/each of the last (\d+) objects/.exec(lines[0]!)?.[1]);
    assert.ok(stoppedAfter >= STREAK, `stopped after ${stoppedAfter} objects`);
    const failed = objectLines(config.checkpoint).filter((line) => line.status === 'failed');
    assert.ok(failed.length >= stoppedAfter && failed.length <= stoppedAfter + CONCURRENCY, `${failed.length} failed, stopped after ${stoppedAfter}`);
    assert.ok(failed.length < present.length / 2, `stopped part-way: ${failed.length} of ${present.length} objects tried`);
    for (const line of failed) assert.match(line.error ?? '', /^source GET \(its body\): /, line.key);
    assert.deepEqual(await destination.listKeys(bucket), [], 'no object written from a cut body');

    const resumed = await run(['--resume'], config.dir);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((await destination.listKeys(bucket)).sort(), present.map((object) => object.key).sort());
  });
});

describe('verify --repair against a destination that answers HEAD but resets every PUT', () => {
  test('stops as a run does, with its summary and one line naming the destination and PUT, exit 1: not a line per object', async () => {
    const bucket = 'refused-verify-repair';
    await destination.createBucket(bucket);
    const config = configFor(bucket, { destination: destinationProxy });
    destinationProxy.reset();
    destinationProxy.setFault((request) => (request.method === 'PUT' ? { kind: 'reset' } : undefined));
    let result: CliResult;
    try {
      result = await runCli(['verify', 'accounts', '--repair', '--by-head', '--json', '--quiet', '--log-level', 'warn'], {
        cwd: config.dir,
        env: { MASTOSYNC_TEST_STORE_PATIENCE_MS: String(PATIENCE_MS) },
      });
    } finally {
      destinationProxy.setFault(undefined);
    }
    assert.equal(result.code, 1, result.stderr);
    const lines = mastosyncLines(result);
    assert.equal(lines.length, 1, `one line names the cause:\n${result.stderr}`);
    assert.match(
      lines[0]!,
      new RegExp(
        `^mastosync: stopped: the destination s3://${bucket} at http://127\\.0\\.0\\.1:${destinationProxy.port} failed the PUT of each of the last (\\d+) objects, ` +
          `for \\d+ s, none copied in between \\(the last: .*(ECONNRESET|socket hang up).*\\): it answers, yet every PUT fails: .*` +
          `once PUTs go through again, run verify --repair again$`,
      ),
    );
    const stoppedAfter = Number(/each of the last (\d+) objects/.exec(lines[0]!)?.[1]);
    assert.ok(stoppedAfter >= STREAK, `stopped after ${stoppedAfter} objects`);
    const report = readJsonLines<{ repair?: string; error?: string; stopped?: string }>(result.stdout);
    const unrepaired = report.filter((line) => line.repair === 'failed');
    assert.ok(
      unrepaired.length >= stoppedAfter && unrepaired.length <= stoppedAfter + CONCURRENCY,
      `${unrepaired.length} not repaired, stopped after ${stoppedAfter}`,
    );
    assert.ok(unrepaired.length < present.length / 2, `stopped part-way: ${unrepaired.length} of ${present.length} objects`);
    for (const line of unrepaired) assert.match(line.error ?? '', /^destination PUT: /);
    assert.equal(`mastosync: stopped: ${report.at(-1)?.stopped}`, lines[0], 'the summary names it too');
  });
});
