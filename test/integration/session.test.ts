/**
 * The database session is harmless to a live production primary, checked from PostgreSQL's side: it cannot
 * write, it is named `mastosync` in pg_stat_activity, and during a long run none of its transactions (or
 * snapshots) lives longer than a moment, so a days-long run never holds back vacuum. Values reach SQL only as
 * parameters: no id or file name from the data ever appears in a statement's text.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import pino from 'pino';
import { connectDatabase, type Database } from '../../src/db/connection.js';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let fixture: Fixture;
let db: TestDatabase;
const silent = pino({ level: 'silent' });

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  fixture = buildFixture('current');
  db = await createDatabase('current');
  await s3.createBucket('session-source');
  await loadFixture(fixture, db.client, s3, 'session-source');
});

after(async () => {
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

/** The other sessions on the test database, as an admin's `SELECT … FROM pg_stat_activity` shows them. */
interface Activity {
  pid: number;
  application_name: string;
  state: string | null;
  xact_age_ms: number | null;
  backend_xmin: string | null;
  query: string;
}

async function activity(): Promise<Activity[]> {
  const { rows } = await db.client.query<Activity>(
    `SELECT pid, application_name, state, backend_xmin::text AS backend_xmin, query,
            (extract(epoch FROM clock_timestamp() - xact_start) * 1000)::float8 AS xact_age_ms
       FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
  );
  return rows;
}

describe('the session cannot harm the database', () => {
  let session: Database;
  before(async () => {
    session = await connectDatabase({ connectionString: db.url, ssl: false, batchSize: 10_000 }, silent);
  });
  after(async () => {
    await session?.close();
  });

  test("every write through the tool's session fails as read-only, and nothing changed", async () => {
    const before = (await db.client.query<{ n: string }>('SELECT count(*) AS n FROM accounts')).rows[0]!.n;
    const attempts: Array<[what: string, sql: string, values?: unknown[]]> = [
      ['INSERT', `INSERT INTO accounts (id, username, created_at, updated_at) VALUES ($1, 'intruder', now(), now())`, ['999999']],
      ['UPDATE', `UPDATE accounts SET avatar_file_name = NULL`],
      ['DELETE', `DELETE FROM media_attachments`],
      ['DDL', `CREATE TABLE mastosync_was_here (id int)`],
    ];
    for (const [what, sql, values] of attempts) {
      await assert.rejects(
        session.query(sql, values),
        (error: { code?: string }) => error.code === '25006',
        `${what} must fail with 25006 read_only_sql_transaction`,
      );
    }
    // An explicit transaction is read-only too (the default applies to every transaction the session starts).
    const client = await session.connect();
    try {
      await client.query('BEGIN');
      await assert.rejects(client.query(`INSERT INTO accounts (id, username, created_at, updated_at) VALUES (999997, 'x', now(), now())`), { code: '25006' });
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    assert.equal((await db.client.query<{ n: string }>('SELECT count(*) AS n FROM accounts')).rows[0]!.n, before);
    assert.equal((await db.client.query(`SELECT 1 FROM pg_tables WHERE tablename = 'mastosync_was_here'`)).rowCount, 0);
  });

  test('pg_stat_activity names every connection of the tool mastosync; its settings bound any statement', async () => {
    const seen = await activity();
    assert.ok(seen.length > 0, 'the tool holds a connection');
    assert.deepEqual([...new Set(seen.map((row) => row.application_name))], ['mastosync']);
    const [settings] = await session.query<{ read_only: string; statement_timeout: string; idle: string }>(
      `SELECT current_setting('default_transaction_read_only') AS read_only, current_setting('statement_timeout') AS statement_timeout,
              current_setting('idle_in_transaction_session_timeout') AS idle`,
    );
    assert.deepEqual(settings, { read_only: 'on', statement_timeout: '5min', idle: '1min' });
  });
});

describe('a long run holds no transaction, snapshot or cursor', () => {
  let proxy: HttpProxy;
  before(async () => {
    // Slow object storage and two rows a page: the run lasts seconds and reads many pages meanwhile.
    proxy = await startProxy({ upstreamPort: s3.port, latencyMs: 50 });
    await s3.createBucket('session-destination');
  });
  after(async () => {
    await proxy?.stop();
  });

  test('pg_stat_activity, polled during the run: no mastosync transaction older than a moment, no snapshot while idle, no value in any statement', async () => {
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket: 'session-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'session-destination' },
      batchSize: 2,
      concurrency: 2,
    });
    try {
      const samples: Activity[][] = [];
      let running = true;
      const started = Date.now();
      const run = runCli(['run', 'all'], { cwd: config.dir }).finally(() => (running = false));
      while (running) {
        samples.push(await activity());
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const result = await run;
      const runMs = Date.now() - started;
      assert.equal(result.code, 0, result.stderr);

      const rows = samples.flat();
      const ours = rows.filter((row) => row.application_name === 'mastosync');
      assert.ok(runMs > 4000, `the run must last long enough to mean something (${runMs} ms)`);
      assert.ok(samples.filter((sample) => sample.length > 0).length > 50, `the tool's sessions were seen in many samples (${samples.length} taken)`);
      assert.deepEqual(
        rows.filter((row) => row.application_name !== 'mastosync'),
        [],
        'every connection of the run is named mastosync',
      );

      const oldest = Math.max(0, ...ours.map((row) => row.xact_age_ms ?? 0));
      assert.ok(oldest < 2000, `the oldest mastosync transaction seen was ${oldest.toFixed(0)} ms old, in a run of ${runMs} ms`);
      // A backend still starting (state null: authenticating, reading the catalogs) holds a snapshot for that moment.
      const idleWithSnapshot = ours.filter((row) => row.state !== null && row.state !== 'active' && row.backend_xmin !== null);
      assert.deepEqual(idleWithSnapshot, [], 'an idle session holds no snapshot (backend_xmin), so vacuum is never held back');
      assert.deepEqual(
        ours.filter((row) => row.state === 'idle in transaction'),
        [],
        'never idle in a transaction',
      );

      // Statements carry placeholders only: no id (keyset position) and no file name from the data in their text.
      const statements = [...new Set(ours.map((row) => row.query))];
      const literals = fixture.rows.flatMap((row) => [
        String(row.values.id),
        ...Object.values(row.values).filter((value): value is string => typeof value === 'string' && /\.\w+$/.test(value)),
      ]);
      for (const text of statements) {
        const leaked = literals.filter((literal) => literal.length >= 4 && text.includes(literal));
        assert.deepEqual(leaked, [], `a value from the data appears in a statement: ${text}`);
      }
      assert.ok(
        statements.some((text) => /WHERE t\."id" > \$1::bigint/.test(text)),
        `keyset page queries were seen: ${statements.join('\n')}`,
      );
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });
});
