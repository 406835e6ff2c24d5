/**
 * A database or store that does not answer at the start, or answers that it fails for now, is waited for as a run
 * waits for it mid-run: a blip as a pod starts passes, and one that outlasts the patience exits 75 (try again later),
 * not 2, which the Kubernetes Job fails at once. What cannot pass by waiting (an unknown host) still exits 2 at once.
 * The start's patience is 5 min; the real CLI gets a few seconds here through MASTOSYNC_TEST_START_PATIENCE_MS.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { PgRelay } from '../support/pgRelay.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig, type ConfigSettings } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let closedPort: number;
let objects: number;
const dirs: string[] = [];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('outage-source');
  const fixture = buildFixture('current');
  await loadFixture(fixture, db.client, s3, 'outage-source');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  // What a run with nothing in its way copies: the owned objects present at the source (some are missing there).
  objects = fixture.present.length;
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

async function run(overrides: Partial<ConfigSettings>, patienceMs: number, destination: string) {
  await s3.createBucket(destination);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'outage-source' },
    destination: { endpoint: s3.endpoint, bucket: destination },
    ...overrides,
  });
  dirs.push(config.dir);
  const started = Date.now();
  const result = await runCli(['run', 'all', '--log-level', 'warn'], { cwd: config.dir, env: { MASTOSYNC_TEST_START_PATIENCE_MS: String(patienceMs) } });
  return { ...result, seconds: (Date.now() - started) / 1000, lines: result.stderr.split('\n').filter((line) => line.trim() !== '') };
}

/** The stop line, the one that is not a JSON log line. */
const plainLines = (lines: readonly string[]) => lines.filter((line) => !line.startsWith('{'));

const slowDown = { kind: 'status', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' } as const;

describe('a transient outage at the start', () => {
  test('a destination answering 503 SlowDown for its first seconds: waited for, then the run copies everything', async () => {
    let proxy: HttpProxy | undefined;
    try {
      // From the start's first request on, longer than the check's own retries of one request last (at most 1.4 s of
      // waits): the start's patience has to try again. Counted from that request, not from here, so that a slow
      // start of the CLI cannot use the outage up before it asks.
      let first: number | undefined;
      const outage = (now: number) => now - (first ??= now) < 3000;
      proxy = await startProxy({ upstreamPort: s3.port, fault: () => (outage(Date.now()) ? slowDown : undefined) });
      const result = await run({ destination: { endpoint: proxy.endpoint, bucket: 'outage-late' } }, 60_000, 'outage-late');
      assert.equal(result.code, 0, result.stderr);
      assert.ok((proxy.faults['status:SlowDown'] ?? 0) >= 2, 'the start met the outage more than once');
      assert.match(result.stderr, /"msg":"the store does not answer yet; trying again"/);
      assert.equal((await s3.listKeys('outage-late')).length, objects);
    } finally {
      await proxy?.stop();
    }
  });

  test('a destination that keeps answering 503: exit 75 after the patience, one line saying so, nothing written', async () => {
    let proxy: HttpProxy | undefined;
    try {
      proxy = await startProxy({ upstreamPort: s3.port, fault: () => slowDown });
      const result = await run({ destination: { endpoint: proxy.endpoint, bucket: 'outage-never' } }, 2000, 'outage-never');
      assert.equal(result.code, 75, result.stderr);
      assert.deepEqual(plainLines(result.lines).length, 1, result.stderr);
      assert.match(
        plainLines(result.lines)[0]!,
        /^mastosync: \[destination\] bucket "outage-never" at http:\/\/127\.0\.0\.1:\d+ answered 503 \(SlowDown: .*\), still after \d+ s of tries: the provider fails for now; nothing was written, run again later$/,
      );
      assert.ok(result.seconds < 30, `${result.seconds} s`);
      assert.deepEqual(await s3.listKeys('outage-never'), []);
    } finally {
      await proxy?.stop();
    }
  });

  test('a store endpoint where nothing listens: exit 75, its password masked', async () => {
    const endpoint = `http://media:hunter2@127.0.0.1:${closedPort}`;
    const result = await run({ source: { endpoint, bucket: 'outage-source' } }, 1500, 'outage-closed');
    assert.equal(result.code, 75, result.stderr);
    assert.match(
      plainLines(result.lines).join('\n'),
      /^mastosync: \[source\] bucket "outage-source" at http:\/\/\*\*\*@127\.0\.0\.1:\d+ does not answer \(.*ECONNREFUSED/,
    );
    assert.doesNotMatch(result.stderr, /hunter2/);
  });

  test('an unknown host is no outage: exit 2 at once', async () => {
    const result = await run({ source: { endpoint: 'http://no-such-host.invalid:9000', bucket: 'outage-source' } }, 60_000, 'outage-unknown');
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^mastosync: \[source\] bucket "outage-source" at http:\/\/no-such-host\.invalid:9000 is unreachable \(.*ENOTFOUND/m);
    assert.ok(result.seconds < 15, `${result.seconds} s`);
  });

  test('a database that resets every connection for its first seconds (a restart): waited for, then the run copies everything', async () => {
    const relay = new PgRelay(postgres);
    try {
      const url = await relay.listen(db.url);
      // Reset until the start's first try has failed (its one connection reset), then up again.
      relay.drop({ connections: 1 });
      const result = await run({ databaseUrl: url }, 60_000, 'outage-db');
      assert.equal(result.code, 0, result.stderr);
      assert.equal(relay.resets, 1, 'the start met the restart');
      assert.match(result.stderr, /"msg":"the database does not answer yet; trying again"/);
      assert.equal((await s3.listKeys('outage-db')).length, objects);
    } finally {
      await relay.close();
    }
  });

  test('a database where nothing listens: exit 75 after the patience, one line', async () => {
    const result = await run({ databaseUrl: `postgres://postgres@127.0.0.1:${closedPort}/mastodon_production` }, 1500, 'outage-nodb');
    assert.equal(result.code, 75, result.stderr);
    const lines = plainLines(result.lines);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0]!,
      new RegExp(
        `^mastosync: cannot connect to PostgreSQL postgres@127\\.0\\.0\\.1:${closedPort}/mastodon_production \\(.*ECONNREFUSED.*\\), still after \\d+ s of tries: nothing listens there: check \\[database\\] url \\(host and port\\) or the SSH tunnel; nothing was written, run again later$`,
      ),
    );
  });

  test('a database refused at once while a store does not answer: exit 2 at once, nothing logged after the error (review M5)', async () => {
    const result = await run(
      {
        databaseUrl: db.url.replace(/\/[^/?]*(\?.*)?$/, '/no_such_database_outage'),
        source: { endpoint: `http://127.0.0.1:${closedPort}`, bucket: 'outage-source' },
      },
      60_000,
      'outage-linger',
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.lines.at(-1)!, /^mastosync: cannot connect to PostgreSQL .*no_such_database_outage.*no such database/);
    assert.ok(result.seconds < 15, `${result.seconds} s`);
  });

  test('a missing bucket while the database does not answer: exit 2 at once naming the bucket (review M5)', async () => {
    const result = await run(
      { databaseUrl: `postgres://postgres@127.0.0.1:${closedPort}/mastodon_production`, source: { endpoint: s3.endpoint, bucket: 'outage-no-such-bucket' } },
      60_000,
      'outage-nobucket',
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(plainLines(result.lines).join('\n'), /^mastosync: \[source\] bucket "outage-no-such-bucket"/);
    assert.ok(result.seconds < 15, `${result.seconds} s`);
  });
});
