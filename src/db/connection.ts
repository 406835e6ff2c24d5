/**
 * The database session: a small pg pool that is harmless on a production primary. Every read is read-only and bound
 * by a statement timeout, on connections named `mastosync`; reads are short keyset pages, so no snapshot outlives
 * one page and a days-long run never holds back vacuum. Connected to PostgreSQL itself, the settings are the
 * session's, from the startup packet, and pages run as plain statements; behind a pooler that refuses or drops
 * them (PgBouncer), each read carries them in its own short transaction (SETTINGS).
 */
import { connect, type Socket } from 'node:net';
import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { Logger } from '../log.js';
import { UnavailableError, UsageError, describeError, patiently } from '../errors.js';
// Types only: ssh2 (src/ssh/tunnel.ts) is loaded when a tunnel is configured, not at every start.
import type { TunnelError } from '../ssh/errors.js';
import type { Tunnel } from '../ssh/tunnel.js';
import { ANSWER_TIMEOUT_MS, strictSslMode, type DatabaseConfig } from './config.js';

export interface Database {
  /** For messages: user@host:port/database (never the password). */
  readonly description: string;
  /** A short query; retried once over a fresh connection (and tunnel) when the connection was lost. */
  query<T extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: readonly unknown[]): Promise<T[]>;
  /**
   * A dedicated client for streaming one query; release it when the stream ends (with the error, if `read` failed).
   * `at` says what it reads (`accounts after row 1200`), for the line that tells a read waits on a silent database.
   */
  connect(at?: string): Promise<pg.PoolClient>;
  /**
   * Runs `read` (queries on `client`, from connect()) as every read must run: read-only, with a statement timeout
   * (SETTINGS); in one snapshot with `REPEATABLE READ`.
   */
  read<T>(client: pg.PoolClient, read: () => Promise<T>, isolation?: 'REPEATABLE READ'): Promise<T>;
  /**
   * Replaces a lost connection (and tunnel) after a drop; waits with backoff until it works. Concurrent callers
   * share one attempt, and a connection that works again (another caller restored it) is kept.
   */
  reconnect(reason: unknown): Promise<void>;
  /** The verified SSH host key fingerprint when connected through a tunnel. */
  readonly hostKeyFingerprint: string | undefined;
  close(): Promise<void>;
}

/**
 * What every read runs under: read-only, as belt and braces (the tool never writes, and a bug must not be able to
 * either), and no statement may run away on a production primary (keyset pages take milliseconds).
 */
const SETTINGS = { default_transaction_read_only: 'on', statement_timeout: '5min', idle_in_transaction_session_timeout: '60s' } as const;

/** How the tool's sessions show in pg_stat_activity. */
const APPLICATION_NAME = 'mastosync';

/** The settings in the startup packet: the session's own, for every statement, where no pooler stands between. */
const STARTUP_OPTIONS = Object.entries(SETTINGS)
  .map(([name, value]) => `-c ${name}=${value}`)
  .join(' ');

/**
 * The settings for one transaction (SET LOCAL), opened in one round trip. Never a session's SET: behind PgBouncer in
 * transaction mode (Mastodon's documented setup) each transaction may run on another server connection, so a
 * session's SET held for no later statement, and stayed on the server connection for whichever client took it next:
 * Mastodon's own, whose writes a read-only default then failed. (PgBouncer refuses settings in the startup packet.)
 */
const READ_TRANSACTION = (isolation: 'READ COMMITTED' | 'REPEATABLE READ') =>
  [
    `BEGIN ISOLATION LEVEL ${isolation} READ ONLY`,
    `SET LOCAL statement_timeout = '${SETTINGS.statement_timeout}'`,
    `SET LOCAL idle_in_transaction_session_timeout = '${SETTINGS.idle_in_transaction_session_timeout}'`,
    `SET LOCAL application_name = '${APPLICATION_NAME}'`,
  ].join('; ');

/**
 * `read` (queries on `client`) inside a read transaction (READ_TRANSACTION), committed when it is done. On failure
 * the caller releases the client with the error, which closes its connection and the transaction with it.
 */
async function inReadTransaction<T>(client: pg.ClientBase, read: () => Promise<T>, isolation: 'READ COMMITTED' | 'REPEATABLE READ'): Promise<T> {
  await client.query(READ_TRANSACTION(isolation));
  const result = await read();
  await client.query('COMMIT');
  return result;
}

/** A pooler's answer to settings in the startup packet (PgBouncer: `unsupported startup parameter: options`). */
function refusesStartupOptions(error: unknown): boolean {
  return (error as { code?: string }).code === '08P01' && /startup parameter/i.test((error as Error).message);
}

/**
 * How long a query may wait for the server's next word before its connection counts as lost whatever else is known:
 * longer than any statement may run (statement_timeout, READ_TRANSACTION), so only a dead path takes this long.
 */
const ANSWER_DEADLINE_MS = 5.5 * 60_000;

/** How long a new connection, and the check of a silent path, may take: what a healthy path does in well under a second. */
const CONNECT_TIMEOUT_MS = 20_000;

/** What a client's current query reads, for the line that says where a read waits (Database.connect's `at`). */
const waitingAt = new WeakMap<pg.Client, string>();

export interface SessionOptions {
  /** Tests shorten the wait for an answer (ANSWER_DEADLINE_MS); nothing else should. */
  readonly answerDeadlineMs?: number;
  /** Tests shorten how long a lost connection is tried again (RECONNECT_PATIENCE_MS); nothing else should. */
  readonly reconnectPatienceMs?: number;
  /** How long the first connection is tried (RECONNECT_PATIENCE_MS): `check` tells at once; tests shorten it. */
  readonly startPatienceMs?: number;
  /** Stops waiting for the first connection (with its reason): the command's start failed for good elsewhere. */
  readonly startSignal?: AbortSignal;
}

/** How long a run keeps trying to restore a lost connection (a rebooting server, a flapping link). */
const RECONNECT_PATIENCE_MS = 5 * 60_000;
const RECONNECT_MAX_DELAY_MS = 30_000;

export async function connectDatabase(config: DatabaseConfig, log: Logger, options: SessionOptions = {}): Promise<Database> {
  const base = clientConfig(config);
  const answerTimeoutMs = config.answerTimeoutMs ?? ANSWER_TIMEOUT_MS;
  // A check of the path never outlasts the wait it follows; a test's short answer_timeout shortens connecting too.
  const connectTimeoutMs = Math.min(CONNECT_TIMEOUT_MS, answerTimeoutMs);
  const target = { host: base.host ?? '127.0.0.1', port: base.port ?? 5432 };
  // Mastodon on one machine often names a socket folder (DB_HOST=/var/run/postgresql); an SSH forward reaches TCP only.
  if (config.ssh && target.host.startsWith('/'))
    throw new UsageError(
      `[database] host is the Unix socket folder ${target.host}, which an SSH tunnel cannot reach: set host = "127.0.0.1" (PostgreSQL must listen on it, as it does by default), as the SSH server sees the database`,
    );
  const description = `${base.user ?? 'postgres'}@${target.host}:${target.port}/${base.database ?? ''}${config.ssh ? ` via ssh ${config.ssh.user}@${config.ssh.host}:${config.ssh.port}` : ''}`;

  let tunnel: Tunnel | undefined;
  /** Why the SSH server last refused to open a channel to the database: pg itself only sees the socket close. */
  let forwardError: TunnelError | undefined;
  let pool: pg.Pool | undefined;
  /** The sockets of the current pool's clients: those still open once it is ended wait on a peer that is gone. */
  let sockets = new Set<Socket>();
  let closed = false;
  let reconnecting: Promise<void> | undefined;
  /** Each read opens a transaction with the settings: a pooler refused or dropped them from the startup packet. */
  let perTransaction = false;
  /** The first contact worked: what fails later is a session lost, not a config to fix before anything is read. */
  let contacted = false;

  const open = async () => {
    // A pool reopened at the first contact (reopenPool) keeps its tunnel: a second SSH handshake at every start
    // could be refused (sshd's MaxStartups, a rate limit) and costs a round of key exchange for nothing.
    if (config.ssh && (!tunnel || tunnel.dropped)) {
      await tunnel?.close().catch(() => undefined);
      const { openTunnel } = await import('../ssh/tunnel.js');
      tunnel = await openTunnel(config.ssh, target);
      tunnel.onDrop((reason) => log.warn({ error: describeError(reason) }, 'ssh tunnel dropped; reconnecting on the next query'));
      tunnel.on('forwardError', (error) => (forwardError = error));
    }
    const next = new pg.Pool({
      ...base,
      ...(tunnel ? { host: tunnel.localHost, port: tunnel.localPort } : {}),
      // Behind a pooler the name goes with each transaction too: PgBouncer keeps a startup packet's application_name
      // on the server connection, where a client that sets none (Mastodon's) then ran under the tool's name.
      ...(!perTransaction && { application_name: APPLICATION_NAME, options: [base.options, STARTUP_OPTIONS].filter(Boolean).join(' ') }),
      max: 3,
      idleTimeoutMillis: 30_000,
      // A silently dead path must fail (and be reconnected) rather than hang a run.
      connectionTimeoutMillis: connectTimeoutMs,
      keepAlive: true,
    });
    // An idle client whose connection dies emits here; without a listener the process would crash. Errors are
    // logged as their code and message: pg-pool hangs the whole Client (its cancel key among it) on this one.
    next.on('error', (error) => log.warn({ error: describeError(error), database: description }, 'idle database connection lost'));
    // Every client, those the reconnect's own check takes too, so that no query waits on a frozen path for good.
    const opened = new Set<Socket>();
    next.on('connect', (client) => {
      const socket = watchAnswers(client, { deadlineMs: options.answerDeadlineMs ?? ANSWER_DEADLINE_MS, answerTimeoutMs, probe, log, description });
      opened.add(socket);
      socket.once('close', () => opened.delete(socket));
    });
    sockets = opened;
    pool = next;
  };

  const shutPool = async () => {
    const oldPool = pool;
    pool = undefined;
    const oldSockets = sockets;
    if (oldPool) await endPool(oldPool);
    // A client ended on a frozen path half-closes its socket and waits for good for the peer's end: with it open,
    // Node would not exit after the run's last line. Nothing more is asked of them.
    for (const socket of oldSockets) socket.destroy();
  };

  const shut = async () => {
    const oldTunnel = tunnel;
    tunnel = undefined;
    await shutPool();
    await oldTunnel?.close().catch(() => undefined);
  };

  /** A new pool with what the first contact learnt (perTransaction), through the same tunnel. */
  const reopenPool = async () => {
    await shutPool();
    await open();
  };

  const works = async (): Promise<boolean> => {
    if (!pool || tunnel?.dropped) return false;
    // Bounded: the pool's idle clients may sit on the same silent path as the read that was cut.
    return withinTime(pool.query('SELECT 1'), connectTimeoutMs).then(
      () => true,
      () => false,
    );
  };

  /**
   * Whether the database answers a new connection (not one of the pool's) within connectTimeoutMs: told apart, a
   * query that is slow (it does) and a path gone silent (it does not). A server that completes the startup and then
   * queues the check (a pooler whose pool is full) answers, and so does one that refuses the connection with an error
   * of its own (53300 too many clients, 57P03 starting up): the path to it works, and a read waiting on it is slow,
   * not lost. Closed after, whatever the answer.
   */
  const probe = async (): Promise<PathCheck> => {
    if (!pool) return { answers: false };
    const client = new pg.Client({ ...pool.options, connectionTimeoutMillis: connectTimeoutMs });
    client.on('error', () => undefined);
    try {
      await withinTime(client.connect(), connectTimeoutMs);
      return { answers: true };
    } catch (error) {
      return error instanceof pg.DatabaseError ? { answers: true, refusal: `${error.code ?? '?'}: ${error.message}` } : { answers: false };
    } finally {
      (client as unknown as Partial<ClientInternals>).connection?.stream.destroy();
      void client.end().catch(() => undefined);
    }
  };

  const restore = async (reason: unknown): Promise<void> => {
    // Two readers can lose the connection at once; the second must not tear down what the first rebuilt.
    if (await works()) return;
    log.warn({ error: describeError(reason), database: description }, 'database connection lost; reconnecting');
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      if (closed) throw new Error('the database session is closed');
      await shut();
      try {
        await open();
        await pool!.query('SELECT 1');
        log.info({ attempt: attempt + 1 }, 'database connection restored');
        return;
      } catch (error) {
        if (!worthRetrying(error) || Date.now() - started >= (options.reconnectPatienceMs ?? RECONNECT_PATIENCE_MS))
          throw new DatabaseLostError(description, { cause: error });
        const delay = Math.min(RECONNECT_MAX_DELAY_MS, 500 * 2 ** attempt);
        log.warn({ error: describeError(error), database: description, attempt: attempt + 1, retryInMs: delay }, 'database still unreachable');
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  };

  /** Takes a first client, and learns whether the settings hold for the session or must come with each read. */
  const firstContact = async () => {
    let client: pg.PoolClient;
    try {
      client = await database.connect();
    } catch (error) {
      if (!refusesStartupOptions(error)) throw error;
      perTransaction = true;
      await reopenPool();
      client = await database.connect();
    }
    try {
      if (!perTransaction) {
        // A pooler may take the startup packet's settings and drop them (PgBouncer's ignore_startup_parameters).
        const { rows } = await client.query<{ read_only: string; timeout: string }>(
          `SELECT current_setting('default_transaction_read_only') AS read_only, current_setting('statement_timeout') AS timeout`,
        );
        perTransaction = rows[0]?.read_only !== SETTINGS.default_transaction_read_only || rows[0]?.timeout !== SETTINGS.statement_timeout;
      }
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    // Released once, outside the try: a failure of the reopen below must not release it again (pg then throws
    // "Release called on client which has already been released", which hid the real cause).
    client.release();
    // The pooler dropped the settings but kept the name the pool's clients were opened with: open them without it.
    if (perTransaction && pool?.options.application_name !== undefined) await reopenPool();
  };

  const database: Database = {
    description,
    async query(text, values) {
      const run = async () => {
        const client = await database.connect();
        try {
          const rows = await database.read(client, async () => (await client.query(text, values as unknown[])).rows);
          client.release();
          return rows;
        } catch (error) {
          // Whatever failed, the transaction is left open or aborted: it ends with the connection.
          client.release(error as Error);
          throw error;
        }
      };
      try {
        return await run();
      } catch (error) {
        if (!isConnectionLost(error) || closed) throw error;
        await database.reconnect(error);
        return await run().catch((again: unknown) => {
          throw isConnectionLost(again) ? new DatabaseLostError(description, { cause: again }) : again;
        });
      }
    },
    async connect(at) {
      // While the pool is being replaced there is none to take a client from: wait for the new one.
      if (reconnecting) await reconnecting;
      if (closed || !pool) throw new Error('the database session is closed');
      const client = (await pool.connect().catch((error: unknown) => {
        // A new connection refused for good once the session had worked (a password changed, the database dropped,
        // pg_hba.conf edited): no reconnecting heals it, so a command stops with its summary, not a bare error.
        throw contacted && refusedForGood(error) ? new DatabaseLostError(description, { cause: error }) : error;
      })) as pg.PoolClient & { mastosyncHeard?: boolean };
      if (!client.mastosyncHeard) {
        // pg also emits a dead socket's error on a checked-out client, where the pool listens no more; unheard it
        // would crash the process. The failing query reports it and reconnects, so nothing is lost by this.
        client.on('error', () => undefined);
        client.mastosyncHeard = true;
      }
      if (at === undefined) waitingAt.delete(client);
      else waitingAt.set(client, at);
      return client;
    },
    read(client, read, isolation) {
      return perTransaction || isolation !== undefined ? inReadTransaction(client, read, isolation ?? 'READ COMMITTED') : read();
    },
    reconnect(reason) {
      reconnecting ??= restore(reason).finally(() => (reconnecting = undefined));
      return reconnecting;
    },
    get hostKeyFingerprint() {
      return tunnel?.hostKeyFingerprint;
    },
    async close() {
      closed = true;
      await shut();
    },
  };
  // The first contact fails at once with what to fix (a wrong password, no such database, an unknown host), and
  // waits as long as a reconnect would for what may pass (a restart, a failover, a pod's network not ready yet).
  await patiently(
    async () => {
      try {
        await open();
        await firstContact();
      } catch (error) {
        await shut();
        const cause = forwardError ?? error;
        forwardError = undefined;
        throw worthRetrying(cause) ? connectionUnavailableError(cause, description) : connectionUsageError(cause, description);
      }
    },
    {
      patienceMs: options.startPatienceMs ?? RECONNECT_PATIENCE_MS,
      signal: options.startSignal,
      onRetry: (error, retryInMs) =>
        log.warn({ error: describeError(error.cause), database: description, retryInMs }, 'the database does not answer yet; trying again'),
    },
  );
  contacted = true;
  return database;
}

/** What a new connection found: whether the database answers, and the error it refused the connection with, if so. */
interface PathCheck {
  readonly answers: boolean;
  readonly refusal?: string;
}

/** pg's internals read by watchAnswers (pg 8; `activeQuery` without the underscore is deprecated and warns). */
interface ClientInternals {
  readonly connection: { readonly stream: Socket };
  readonly _activeQuery: unknown;
  readonly _queryQueue: readonly unknown[];
}

interface Watch {
  /** Silence after which the connection is cut whatever the check of the path says (ANSWER_DEADLINE_MS). */
  readonly deadlineMs: number;
  /** Silence after which the admin is told and the path checked ([database] answer_timeout). */
  readonly answerTimeoutMs: number;
  /** Whether the database answers a new connection (see connectDatabase). */
  readonly probe: () => Promise<PathCheck>;
  readonly log: Logger;
  readonly description: string;
}

/**
 * A frozen database host, proxy, NAT or SSH forward leaves the socket open and silent, and TCP may not notice for
 * hours (its keepalive waits two hours by default, and sees nothing wrong while a proxy's kernel still acknowledges):
 * the query waits forever, and so does the run, holding its checkpoint lock. A query that has heard nothing for
 * answer_timeout is told in a warning that names where it reads, and the path is checked with a new connection: if
 * none answers either, the path is dead and the connection is cut at once; if one does, the query is slow rather
 * than lost, and waits on, up to the deadline (longer than any statement may run). Cut, the server is asked to cancel
 * the query and the query fails as a lost connection, which is reconnected and read again (a page is read whole in
 * its own transaction, so reading it again is safe behind PgBouncer too). An idle client is left alone: there is
 * nothing to wait for.
 */
function watchAnswers(client: pg.Client, watch: Watch): Socket {
  const internals = client as unknown as ClientInternals;
  const socket = internals.connection.stream;
  const step = Math.min(watch.answerTimeoutMs, watch.deadlineMs);
  socket.setTimeout(step);
  let cutting = false;
  let silentMs = 0;
  let checking = false;
  socket.on('data', () => (silentMs = 0));
  const cut = (message: string) => {
    if (cutting) return;
    cutting = true;
    const error = Object.assign(new Error(`Connection terminated: ${message}`), { code: 'ETIMEDOUT' });
    // Nothing more is read, so that the query fails as cut (read again), not as cancelled (an error that stops).
    socket.pause();
    // Cut once the cancel went out: a pooler forgets a client's queries when the client goes (PgBouncer).
    void cancelQuery(client, socket).then(() => socket.destroy(error));
  };
  socket.on('timeout', () => {
    if (cutting || (internals._activeQuery == null && internals._queryQueue.length === 0)) {
      silentMs = 0;
      return;
    }
    silentMs += step;
    const seconds = Math.round(silentMs / 1000);
    if (silentMs >= watch.deadlineMs) return cut(`the database sent nothing for ${seconds} s while a query waited`);
    if (checking) return;
    const at = waitingAt.get(client) ?? readsFrom(internals);
    const where = { database: watch.description, waitingSeconds: seconds };
    watch.log.warn(where, `database not answering for ${seconds} s at ${at}; checking whether it answers a new connection`);
    checking = true;
    void watch.probe().then(({ answers, refusal }) => {
      checking = false;
      if (cutting || silentMs === 0) return;
      if (!answers) {
        watch.log.warn(where, `database not answering at ${at}, nor a new connection: the path to it is dead; reconnecting and reading from ${at} again`);
        return cut(`the database sent nothing for ${seconds} s at ${at} and answered no new connection`);
      }
      watch.log.warn(
        where,
        `database ${refusal ? `refuses a new connection (${refusal}), so it is there, but does not answer` : 'answers a new connection but not'} the read at ${at}: it may be slow; waiting up to ${Math.round(watch.deadlineMs / 1000)} s in all, then reconnecting`,
      );
    });
  });
  return socket;
}

/** The table a client's current query reads (its first FROM), for when the reader said nothing (connect's `at`). */
function readsFrom(internals: ClientInternals): string {
  const text = (internals._activeQuery as { text?: string } | null)?.text ?? '';
  const table = /\bFROM\s+"?(\w+)"?/i.exec(text)?.[1];
  return table ?? 'a query';
}

/** `promise`, or a rejection once `ms` passed. */
function withinTime<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  promise.catch(() => undefined);
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** How long a cancel request may take to go out before the connection is cut anyway (on a frozen path it never goes). */
const CANCEL_PATIENCE_MS = 2_000;

/**
 * Asks the server to cancel what `client` runs (PostgreSQL's CancelRequest, on a connection of its own, which a
 * pooler passes on): the server notices a client gone only when it next writes to it, so a query whose connection
 * is cut at the answer deadline would run on alone, and its snapshot hold vacuum back, up to the statement timeout.
 * Best effort: settles once the request went out or the patience ran out, never fails, keeps no process alive.
 * It goes to the address `socket` (the query's connection) is connected to, not to the host by name again: behind a
 * name with several addresses (an HA endpoint, a pooler fleet) another node would get it, and do nothing (review L5).
 */
export function cancelQuery(client: pg.Client, socket: Socket): Promise<void> {
  const { remoteAddress, remotePort } = socket;
  const { host, port, processID, secretKey } = client as unknown as { host: string; port: number; processID: number | null; secretKey: number | null };
  if (processID === null || secretKey === null) return Promise.resolve();
  const request = Buffer.alloc(16);
  request.writeInt32BE(16, 0);
  request.writeInt32BE(80877102, 4); // the cancel request code
  request.writeInt32BE(processID, 8);
  request.writeInt32BE(secretKey, 12);
  return new Promise<void>((resolve) => {
    const cancel = host.startsWith('/')
      ? connect(`${host}/.s.PGSQL.${port}`)
      : remoteAddress !== undefined && remotePort !== undefined
        ? connect(remotePort, remoteAddress)
        : connect(port, host);
    // Not ended after it: the server closes the connection once it has acted on the request, and PgBouncer takes an
    // end before that for a client gone, and passes nothing on.
    cancel.once('connect', () => cancel.write(request));
    cancel.once('close', () => resolve());
    cancel.setTimeout(CANCEL_PATIENCE_MS, () => cancel.destroy());
    cancel.on('error', () => undefined);
    cancel.unref();
  });
}

/** How long closing waits for clients still out to come back before it cuts the tunnel under them. */
const POOL_END_PATIENCE_MS = 5_000;

/**
 * pool.end() waits until every client taken out is returned; one that never is (its reader waits on a connection
 * that died without a word) would hold it, and the run, forever, and with nothing else left to do Node would end
 * the run silently. Wait a while, then carry on: closing the tunnel ends what is left.
 */
async function endPool(pool: pg.Pool): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const patience = new Promise<void>((resolve) => (timer = setTimeout(resolve, POOL_END_PATIENCE_MS)));
  await Promise.race([pool.end().catch(() => undefined), patience]);
  clearTimeout(timer);
}

function clientConfig(config: DatabaseConfig): pg.ClientConfig {
  const fromUrl = config.connectionString ? (parseIntoClientConfig(strictSslMode(config.connectionString)) as pg.ClientConfig) : {};
  const merged: pg.ClientConfig = {
    ...fromUrl,
    ...(config.host !== undefined && { host: config.host }),
    ...(config.port !== undefined && { port: config.port }),
    ...(config.user !== undefined && { user: config.user }),
    ...(config.password !== undefined && { password: config.password }),
    ...(config.database !== undefined && { database: config.database }),
  };
  if (config.ssl && merged.ssl === undefined) merged.ssl = true;
  if (typeof merged.port === 'string') merged.port = Number(merged.port);
  return merged;
}

// 53300: too many connections (Mastodon's own burst), which a later attempt may find free.
// EHOSTUNREACH, ENETUNREACH and EAI_AGAIN (the resolver failing for a moment) pass as a network comes back: waited for,
// as the same through an SSH tunnel is (src/ssh/errors.ts). ENOTFOUND, a name that does not exist, is not.
const CONNECTION_LOST_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  '53300',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08003',
  '08006',
]);

/** A connection refused for what no waiting heals: credentials or role (class 28), the database gone (3D000). */
function refusedForGood(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code ?? '';
  return code.startsWith('28') || code === '3D000';
}

/** Errors after which the same query may succeed on a new connection. */
export function isConnectionLost(error: unknown): boolean {
  // Reconnecting already gave up (its message quotes the cause, which would match below): a stop, not a retry.
  if (error instanceof DatabaseLostError) return false;
  const code = (error as { code?: string } | undefined)?.code;
  if (code !== undefined && CONNECTION_LOST_CODES.has(code)) return true;
  const message = (error as Error | undefined)?.message ?? '';
  return /Connection terminated|connection is closed|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i.test(
    message,
  );
}

/**
 * Whether restoring the connection may succeed later without the admin: a dropped or unreachable tunnel, a
 * database restarting. A host key that no longer matches (a spoofed server), refused credentials or a bad key
 * never heal by waiting, and a host key must never be retried: stop at once.
 */
function worthRetrying(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  if (name === 'HostKeyError') return false;
  if (name === 'TunnelError') return (error as TunnelError).retryable;
  return isConnectionLost(error);
}

/**
 * The connection was lost and could not be restored within the patience: a command stops on it as on a store error
 * no retry fixes (its summary, then one `stopped:` line). What to do next depends on the command (a run resumes from
 * its checkpoint, verify and prune start again), so each says it with `withFix`.
 */
export class DatabaseLostError extends Error {
  override readonly name = 'DatabaseLostError';
  constructor(
    private readonly description: string,
    options: { cause: unknown },
    fix = 'once the cause is fixed, run the command again',
  ) {
    super(`lost the connection to ${description} and could not restore it (${describeError(options.cause)}): ${fix}`, options);
  }

  withFix(fix: string): DatabaseLostError {
    return new DatabaseLostError(this.description, { cause: this.cause }, fix);
  }
}

/** The first connection failed in a way that may pass (see worthRetrying): exit 75 once the start's patience is out. */
function connectionUnavailableError(error: unknown, description: string): UnavailableError {
  const code = (error as { code?: string }).code;
  if ((error as { name?: string }).name === 'TunnelError')
    return new UnavailableError((error as Error).message, 'nothing was written; run again later', { cause: error });
  const fix =
    code === 'ECONNREFUSED' ? 'nothing listens there: check [database] url (host and port) or the SSH tunnel' : 'check [database] url and the network';
  return new UnavailableError(`cannot connect to PostgreSQL ${description} (${describeError(error)})`, `${fix}; nothing was written, run again later`, {
    cause: error,
  });
}

/** The codes of Node's TLS errors for a server certificate it does not trust. */
const UNTRUSTED_CERTIFICATE_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** What to change when TLS to the database failed: the server offers none, or its certificate is not trusted. */
function tlsHint(error: unknown): string | undefined {
  const code = (error as { code?: string }).code ?? '';
  if (/does not support SSL/i.test((error as Error).message ?? ''))
    return 'the server offers no TLS: remove sslmode=… from [database] url or ssl = true from [database], or turn ssl on at the server';
  if (!UNTRUSTED_CERTIFICATE_CODES.has(code)) return undefined;
  return (
    "the server's certificate is checked, its host name too, for every sslmode but disable and no-verify (stricter than libpq): " +
    'add its CA as sslrootcert=/path/to/ca.pem to [database] url, or sslmode=no-verify to encrypt without checking it'
  );
}

function connectionUsageError(error: unknown, description: string): UsageError {
  if (error instanceof UsageError) return error;
  const code = (error as { code?: string }).code;
  const name = (error as { name?: string }).name;
  if (name === 'HostKeyError' || name === 'TunnelError') return new UsageError((error as Error).message, { cause: error });
  const hints: Record<string, string> = {
    ECONNREFUSED: 'nothing listens there: check [database] url (host and port) or the SSH tunnel',
    ENOTFOUND: 'unknown host: check [database] url',
    ETIMEDOUT: 'no answer: check [database] url and the network',
    '28P01': 'wrong password: check [database] url or password',
    '28000': 'connection refused by pg_hba.conf or role: check [database] user',
    '3D000': 'no such database: check [database] url or database',
  };
  const hint = (code && hints[code]) ?? tlsHint(error) ?? 'check [database]';
  return new UsageError(`cannot connect to PostgreSQL ${description} (${describeError(error)}): ${hint}`, { cause: error });
}
