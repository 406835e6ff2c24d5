/**
 * A path to the database that freezes: a proxy, NAT or host that stops forwarding without closing anything, so
 * the socket stays open and silent and TCP notices nothing for hours. A query waiting on it must fail as a lost
 * connection once it has waited longer than any statement may run, and be read again over a new connection; a
 * run must never wait on it for good (found by an admin-style test: the run sat silent, holding its lock).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseLostError, connectDatabase, type Database } from '../../src/db/connection.js';
import { readRowPages } from '../../src/db/rows.js';
import { probeSchema } from '../../src/db/schema.js';
import { FsStore } from '../../src/storage/fs.js';
import { EMPTY_RESUME_STATE } from '../../src/sync/checkpoint.js';
import { runJobs } from '../../src/sync/run.js';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { PgRelay } from '../support/pgRelay.js';

let postgres: PostgresServer;
let db: TestDatabase;

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  await insertAvatarAccounts(db.client, 'generate_series(1, 30) AS g');
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
});

describe('a frozen path to the database', () => {
  let relay: PgRelay;
  let session: Database;

  before(async () => {
    relay = new PgRelay(postgres);
    // A wait of 1 s for the server's next word stands for the 5.5 minutes a run waits.
    session = await connectDatabase({ connectionString: await relay.listen(db.url), ssl: false, batchSize: 10 }, pino({ level: 'silent' }), {
      answerDeadlineMs: 1000,
    });
  });
  after(async () => {
    await session?.close();
    await relay?.close();
  });

  /** Freezes the relay, starts `read`, thaws the relay for new connections once the deadline has passed, and gives what `read` gave. */
  async function acrossAFreeze<T>(read: () => Promise<T>): Promise<T> {
    relay.freeze();
    const result = read();
    setTimeout(() => relay.thaw(), 1500);
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('still waiting on the frozen connection after 15 s')), 15_000);
    });
    try {
      return await Promise.race([result, hung]);
    } finally {
      clearTimeout(timer);
    }
  }

  test('a connection with no query waiting is left alone, however long it is idle', async () => {
    const client = await session.connect();
    try {
      // Twice the deadline with nothing asked: the deadline is for an answer, not for silence.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      assert.deepEqual((await client.query<{ n: number }>('SELECT 7 AS n')).rows, [{ n: 7 }]);
    } finally {
      client.release();
    }
  });

  test('a short query waiting on it is answered over a new connection', async () => {
    const rows = await acrossAFreeze(() => session.query<{ n: number }>('SELECT 42 AS n'));
    assert.deepEqual(rows, [{ n: 42 }]);
  });

  test('pages of rows read across it are all read, each row once', async () => {
    const schema = await probeSchema(session);
    const ids: string[] = [];
    await acrossAFreeze(async () => {
      for await (const rows of readRowPages(session, schema, 'accounts', { batchSize: 10 })) ids.push(...rows.map((row) => String(row.id)));
    });
    assert.deepEqual(
      ids.map(Number),
      Array.from({ length: 30 }, (_, index) => index + 1),
    );
  });
});

describe('a database gone for good mid-run', () => {
  test('the run stops as on an error no retry fixes: what it read is in its summary, the stop says to --resume', async () => {
    const relay = new PgRelay(postgres);
    const url = await relay.listen(db.url);
    // Half a second of reconnecting stands for the 5 minutes a run keeps trying.
    const session = await connectDatabase({ connectionString: url, ssl: false, batchSize: 10 }, pino({ level: 'silent' }), {
      reconnectPatienceMs: 500,
    });
    const folder = mkdtempSync(join(tmpdir(), 'mastosync-gone-'));
    try {
      let gone = false;
      const summary = await runJobs({
        jobs: ['accounts'],
        db: session,
        schema: await probeSchema(session),
        source: new FsStore(join(folder, 'source'), 'source'),
        destination: new FsStore(join(folder, 'destination'), 'destination'),
        batchSize: 10,
        concurrency: 2,
        acl: '',
        retries: 0,
        resume: EMPTY_RESUME_STATE,
        dryRun: true,
        // The database (here, the only path to it) goes away once the first page is read, and never comes back.
        onPlan: () => {
          if (!gone) void relay.close();
          gone = true;
        },
        stop: new AbortController().signal,
        abort: new AbortController().signal,
        log: pino({ level: 'silent' }),
      });
      assert.ok(summary.stoppedBy instanceof DatabaseLostError, String(summary.stoppedBy));
      assert.match(summary.stoppedBy.message, /^lost the connection to .* could not restore it \(.*\): .*run again with --resume$/);
      const [accounts] = summary.jobs;
      assert.ok(accounts!.rows >= 10 && accounts!.rows < 30, `rows read before the loss: ${accounts!.rows}`);
      assert.equal(summary.interrupted, false);
    } finally {
      await session.close();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe('a database that refuses new connections for good once the session worked', () => {
  test('(a password changed, the database dropped) is lost for good, which stops a command with its summary, not a bare error', async () => {
    const relay = new PgRelay(postgres);
    const session = await connectDatabase({ connectionString: await relay.listen(db.url), ssl: false, batchSize: 10 }, pino({ level: 'silent' }));
    try {
      assert.deepEqual(await session.query('SELECT 1 AS one'), [{ one: 1 }]);
      // Every connection cut (the pool's idle one too) and every new one refused as a wrong password is.
      relay.loseForGood();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await assert.rejects(session.query('SELECT 1 AS one'), (error: Error) => error instanceof DatabaseLostError && /28P01/.test(error.message));
    } finally {
      await session.close();
      await relay.close();
    }
  });
});

describe('a query cut at the answer deadline', () => {
  test('is cancelled at the server as well: it does not run on alone there', async () => {
    const session = await connectDatabase({ connectionString: db.url, ssl: false, batchSize: 10 }, pino({ level: 'silent' }), { answerDeadlineMs: 1000 });
    try {
      // Silent for longer than the deadline on a path that works, as every query on a frozen one is: cut, read again
      // over a new connection, cut again.
      await assert.rejects(session.query('SELECT pg_sleep(30)'), DatabaseLostError);
      // The server notices a client gone only when it next writes to it: pg_sleep would have run on for 30 s.
      const running = async () =>
        (
          await db.client.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND state = 'active' AND query = 'SELECT pg_sleep(30)'`,
          )
        ).rows[0]!.n;
      const until = Date.now() + 3000;
      while ((await running()) > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(await running(), 0, 'a cut query still runs at the server');
    } finally {
      await session.close();
    }
  });
});

describe('[database] answer_timeout: a read that hears nothing from the database', () => {
  /** A session whose warnings are kept (their messages), with the answer_timeout of `answerTimeoutMs`. */
  async function watchedSession(connectionString: string, answerTimeoutMs: number) {
    const warnings: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push((JSON.parse(line) as { msg: string }).msg) });
    // Half a second of reconnecting stands for the 5 minutes a run keeps trying.
    const session = await connectDatabase({ connectionString, ssl: false, batchSize: 10, answerTimeoutMs }, log, { reconnectPatienceMs: 500 });
    return { session, warnings };
  }

  test('on a path gone silent for good: told within the timeout where it waits, then the read stops, bounded (it took 11 min)', async () => {
    const relay = new PgRelay(postgres);
    const { session, warnings } = await watchedSession(await relay.listen(db.url), 1000);
    try {
      const schema = await probeSchema(session);
      const pages = readRowPages(session, schema, 'accounts', { batchSize: 10 });
      assert.equal((await pages.next()).done, false);
      // A proxy (an SSH forward, a NAT) that stops forwarding without closing anything, and never comes back.
      relay.freeze();
      const started = Date.now();
      const told = new Promise<number>((resolve) => {
        const poll = setInterval(
          () => warnings.some((line) => line.startsWith('database not answering')) && (clearInterval(poll), resolve(Date.now() - started)),
          20,
        );
      });
      const read = (async () => {
        for (let page = await pages.next(); !page.done; page = await pages.next());
      })();
      await assert.rejects(read, DatabaseLostError);
      const stoppedAfter = Date.now() - started;
      // answer_timeout (1 s) + the check of the path (at most the timeout) + the cancel's patience (2 s) + reconnecting (0.5 s, 1 s a try).
      assert.ok(stoppedAfter < 8000, `stopped after ${stoppedAfter} ms`);
      assert.ok((await told) < 2000, 'told within about the timeout');
      assert.match(warnings.join('\n'), /^database not answering for 1 s at accounts after row \d+; checking whether it answers a new connection$/m);
      assert.match(warnings.join('\n'), /^database not answering at accounts after row \d+, nor a new connection: the path to it is dead; reconnecting/m);
    } finally {
      await session.close();
      await relay.close();
    }
  });

  test('that is slow on a database refusing new connections (too many clients): told, not cut as a dead path; its answer is read', async () => {
    const relay = new PgRelay(postgres);
    const { session, warnings } = await watchedSession(await relay.listen(db.url), 1000);
    try {
      await session.query('SELECT 1');
      // Mastodon's own burst (Sidekiq, Puma) took every connection the server allows.
      relay.refuseNew();
      assert.deepEqual(await session.query('SELECT 1 AS n FROM pg_sleep(2.5)'), [{ n: 1 }]);
      assert.match(
        warnings.join('\n'),
        /^database refuses a new connection \(53300: sorry, too many clients already\), so it is there, but does not answer the read at pg_sleep: it may be slow/m,
      );
      assert.doesNotMatch(warnings.join('\n'), /reconnecting and reading|path to it is dead/);
      assert.equal(relay.statements.filter((text) => /pg_sleep/.test(text)).length, 1, 'the slow read was sent once, not cut and sent again');
    } finally {
      await session.close();
      await relay.close();
    }
  });

  test('that is slow on a database that answers: told, not cut; its answer is read', async () => {
    const { session, warnings } = await watchedSession(db.url, 1000);
    try {
      assert.deepEqual(await session.query('SELECT 1 AS n FROM pg_sleep(2.5)'), [{ n: 1 }]);
      assert.match(warnings.join('\n'), /^database not answering for 1 s at pg_sleep; checking/m);
      assert.match(warnings.join('\n'), /^database answers a new connection but not the read at pg_sleep: it may be slow; waiting up to 330 s in all/m);
      assert.doesNotMatch(warnings.join('\n'), /reconnecting and reading/);
    } finally {
      await session.close();
    }
  });
});
