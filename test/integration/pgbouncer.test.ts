/**
 * Through PgBouncer in transaction mode (Mastodon's documented setup), with one server connection that every
 * client's transactions share: PgBouncer refuses settings in the startup packet (or, told to, drops them), and a session's SET would hold for
 * no later transaction of ours (another server connection may run it) but stay on the server connection for the
 * next client (Mastodon's, read-only: its writes failed). Each read carries its settings in its own transaction:
 * - what the tool sets (its application_name too) never reaches another client, who can still write;
 * - every read is read-only and bounded by the statement timeout;
 * - pages, and reads in one snapshot, read every row.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { DatabaseLostError, connectDatabase, type Database } from '../../src/db/connection.js';
import { readRowPages, readRowsInIdRangesCut } from '../../src/db/rows.js';
import { probeSchema } from '../../src/db/schema.js';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { isPgBouncerAvailable, startPgBouncer, type PgBouncer } from '../support/pgbouncer.js';
import { runCli, writeConfig } from '../support/cli.js';
import { isSshdAvailable, startSshd, type Sshd } from '../support/sshd.js';

const skip = isPgBouncerAvailable() ? false : 'pgbouncer is not installed (apt-get install -y pgbouncer)';

for (const [name, options] of [
  ['refusing settings in the startup packet', {}],
  ['dropping settings in the startup packet (ignore_startup_parameters = options)', { ignoreStartupOptions: true }],
] as const) {
  describe(`through PgBouncer in transaction mode, ${name}`, { skip }, () => {
    let postgres: PostgresServer;
    let db: TestDatabase;
    let bouncer: PgBouncer;
    let url: string;
    let session: Database;

    before(async () => {
      postgres = await startPostgres();
      db = await createDatabase('current');
      await insertAvatarAccounts(db.client, 'generate_series(1, 30) AS g');
      await db.client.query('CREATE TABLE written_by_others (id int)');
      bouncer = await startPgBouncer(postgres, options);
      url = bouncer.through(db.url);
      session = await connectDatabase({ connectionString: url, ssl: false, batchSize: 10 }, pino({ level: 'silent' }));
    });
    after(async () => {
      await session?.close();
      await bouncer?.stop();
      await db?.drop();
      await postgres?.stop();
    });

    /** Another client of the same PgBouncer, database and user: Mastodon's, in production. */
    async function asAnotherClient<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        return await use(client);
      } finally {
        await client.end();
      }
    }

    test('every read is read-only and bounded by the statement timeout', async () => {
      const [settings] = await session.query<{ read_only: string; timeout: string; idle: string }>(
        `SELECT current_setting('transaction_read_only') AS read_only, current_setting('statement_timeout') AS timeout,
              current_setting('idle_in_transaction_session_timeout') AS idle`,
      );
      assert.deepEqual(settings, { read_only: 'on', timeout: '5min', idle: '1min' });
      await assert.rejects(session.query('INSERT INTO written_by_others VALUES (1)'), { code: '25006' });
    });

    test('pages, and reads in one snapshot, read every row', async () => {
      const schema = await probeSchema(session);
      const ids: number[] = [];
      for await (const rows of readRowPages(session, schema, 'accounts', { batchSize: 10 })) ids.push(...rows.map((row) => Number(row.id)));
      assert.deepEqual(
        ids,
        Array.from({ length: 30 }, (_, index) => index + 1),
      );
      const some = await readRowsInIdRangesCut(session, schema, 'accounts', [{ from: 5n, to: 7n }]);
      assert.deepEqual(
        some.map((row) => Number(row.id)),
        [5, 6, 7],
      );
    });

    test('what the tool sets never reaches another client, whose writes still go through', async () => {
      // The tool's reads first, on the one server connection the other client then takes.
      await session.query('SELECT 1');
      const seen = await asAnotherClient(async (client) => {
        const { rows } = await client.query<{ read_only: string; timeout: string; idle: string; name: string }>(
          `SELECT current_setting('default_transaction_read_only') AS read_only, current_setting('statement_timeout') AS timeout,
                current_setting('idle_in_transaction_session_timeout') AS idle, current_setting('application_name') AS name`,
        );
        await client.query('INSERT INTO written_by_others VALUES (1)');
        return rows[0];
      });
      // Not even the tool's name: pg_stat_activity would call Mastodon's queries mastosync's (and a rule that ends
      // long mastosync queries would end Mastodon's).
      assert.deepEqual(seen, { read_only: 'off', timeout: '0', idle: '0', name: '' });
    });

    test('a query cut at the answer deadline is cancelled at the server through it', async () => {
      const cutting = await connectDatabase({ connectionString: url, ssl: false, batchSize: 10 }, pino({ level: 'silent' }), {
        answerDeadlineMs: 1000,
        reconnectPatienceMs: 500,
      });
      try {
        await assert.rejects(cutting.query('SELECT pg_sleep(30)'), DatabaseLostError);
      } finally {
        await cutting.close();
      }
      // The cancel goes on a connection of its own, and the server ends the query a moment later: a few seconds, not
      // the query's 30 (checked at once, it was still active once in five runs).
      let running = -1;
      for (const until = Date.now() + 5000; running !== 0 && Date.now() < until; await new Promise((resolve) => setTimeout(resolve, 100))) {
        const { rows } = await db.client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = 'SELECT pg_sleep(30)'`,
        );
        running = rows[0]!.n;
      }
      assert.equal(running, 0, 'a cut query still runs at the server');
    });

    test('mastosync check: the session is read-only, with a statement timeout', async () => {
      const folder = join(db.name, 'store');
      const config = writeConfig({ databaseUrl: url, source: { type: 'fs', path: folder }, destination: { type: 'fs', path: folder } });
      mkdirSync(join(config.dir, folder), { recursive: true });
      try {
        const result = await runCli(['check', '--config', config.file], { cwd: config.dir });
        assert.match(result.stdout, /^ok {3}session: read-only, application_name mastosync, PostgreSQL \d+/m);
      } finally {
        rmSync(config.dir, { recursive: true, force: true });
      }
    });
  });
}

/**
 * Through an SSH tunnel to PgBouncer, with an SSH server that takes one connection from this host and drops the next
 * (sshd's MaxStartups, a rate limit, fail2ban): learning how the pooler treats the settings must not cost a second
 * SSH handshake, and whatever fails must be said as itself.
 */
describe('through an SSH tunnel to PgBouncer', { skip: skip || (isSshdAvailable() ? false : 'OpenSSH server not installed (/usr/sbin/sshd missing)') }, () => {
  let postgres: PostgresServer;
  let db: TestDatabase;
  let sshd: Sshd;

  before(async () => {
    postgres = await startPostgres();
    db = await createDatabase('current');
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
    await db?.drop();
    await postgres?.stop();
  });

  /** In front of sshd: passes the first connection on, drops every later one at once. */
  async function oneConnectionOnly(): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
    let connections = 0;
    const server = net.createServer((socket) => {
      if (++connections > 1) return socket.destroy();
      const upstream = net.connect(sshd.port, sshd.host);
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
      server.on('close', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      connections: () => connections,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  for (const [name, options] of [
    ['refusing settings in the startup packet', {}],
    ['dropping settings in the startup packet', { ignoreStartupOptions: true }],
  ] as const) {
    test(`mastosync check, PgBouncer ${name}: one SSH connection serves the whole start`, async () => {
      const bouncer = await startPgBouncer(postgres, options);
      const relay = await oneConnectionOnly();
      const config = writeConfig({
        databaseUrl: bouncer.through(db.url),
        source: { type: 'fs', path: 'source' },
        destination: { type: 'fs', path: 'destination' },
        extra: [
          '',
          '[database.ssh]',
          `host = "127.0.0.1"`,
          `port = ${relay.port}`,
          `user = "${sshd.user}"`,
          `private_key = ${JSON.stringify(sshd.clientKeyPath)}`,
          `host_key = ${JSON.stringify(sshd.hostKeyFingerprint)}`,
          '',
        ].join('\n'),
      });
      for (const folder of ['source', 'destination']) mkdirSync(join(config.dir, folder));
      try {
        const result = await runCli(['check', '--config', config.file], { cwd: config.dir });
        assert.equal(result.code, 0, result.stdout + result.stderr);
        assert.match(result.stdout, /^ok {3}session: read-only, application_name mastosync, PostgreSQL \d+/m);
        assert.equal(relay.connections(), 1, 'SSH connections opened');
      } finally {
        rmSync(config.dir, { recursive: true, force: true });
        await relay.close();
        await bouncer.stop();
      }
    });
  }
});
