/**
 * A run that ends however it ends, short of a kill, leaves no `<checkpoint>.lock`: a lock left by a pod stopped
 * while its run waited for the database (`kubectl delete`, `docker stop`, `timeout`) blocked every later pod (exit
 * 75) until removed by hand, as a run on another host cannot be checked. SIGINT, SIGTERM and SIGHUP during the
 * start's waits exit 130 with one line; a lock that names another host says how to remove it; and a run that finds
 * the checkpoint in use says so first, before what the checkpoint records.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig, type ConfigSettings } from '../support/cli.js';
import { PgRelay } from '../support/pgRelay.js';

let db: TestDatabase;
let s3: S3Server;
let proxy: HttpProxy;
let closedPort: number;
const dirs: string[] = [];

before(async () => {
  db = await createDatabase('current');
  s3 = await startS3();
  // Slow enough that a run is still copying when it is signalled.
  proxy = await startProxy({ upstreamPort: s3.port, latencyMs: 25 });
  await s3.createBucket('signal-source');
  await loadFixture(buildFixture('current'), db.client, s3, 'signal-source');
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await s3?.stop();
});

/** A config from a folder to a folder (`overrides` replace either), on `databaseUrl`; the checkpoint lands beside it. */
function config(databaseUrl: string, overrides: Partial<ConfigSettings> = {}) {
  const written = writeConfig({ databaseUrl, source: { type: 'fs', path: '/nonexistent' }, destination: { type: 'fs', path: '/nonexistent' }, ...overrides });
  dirs.push(written.dir);
  const [source, destination] = [join(written.dir, 'source'), join(written.dir, 'destination')];
  mkdirSync(source);
  mkdirSync(destination);
  const text = readFileSync(written.file, 'utf8');
  writeFileSync(
    written.file,
    text.replace('path = "/nonexistent"', `path = ${JSON.stringify(source)}`).replace('path = "/nonexistent"', `path = ${JSON.stringify(destination)}`),
  );
  return { ...written, lock: `${written.checkpoint}.lock` };
}

const noDatabase = () => `postgres://postgres@127.0.0.1:${closedPort}/mastodon_production`;

/** The lines on stderr that are not JSON log lines. */
const plainLines = (stderr: string) => stderr.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('{'));

/**
 * Runs `args` and calls `then` with the child (and when it was called) once stderr holds `seen`; the result tells
 * whether the lock was there at that moment, and how long the run took after it.
 */
async function runUntil(args: string[], dir: string, lock: string, seen: RegExp, then: (child: ChildProcess) => void) {
  let held = false;
  let signalled = 0;
  const result = await runCli(args, {
    cwd: dir,
    onSpawn: (child) => {
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer | string) => {
        stderr += String(chunk);
        if (signalled === 0 && seen.test(stderr)) {
          held = existsSync(lock);
          signalled = Date.now();
          then(child);
        }
      });
    },
  });
  assert.ok(signalled > 0, `never saw ${String(seen)}: ${result.stderr}`);
  return { ...result, held, secondsAfter: (Date.now() - signalled) / 1000 };
}

describe('a signal while the start waits', () => {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    test(`${signal} while the database does not answer: exit 130, one line, the lock released, nothing written`, async () => {
      const { dir, lock, checkpoint } = config(noDatabase());
      const result = await runUntil(['run', 'all', '--quiet'], dir, lock, /the database does not answer yet/, (child) => child.kill(signal));
      assert.ok(result.held, 'the run held the lock while it waited');
      assert.equal(result.signal, null, `the run handled ${signal}`);
      assert.equal(result.code, 130, result.stderr);
      assert.deepEqual(plainLines(result.stderr), [`mastosync: interrupted by ${signal} at the start, before the first copy: nothing was written`]);
      assert.equal(existsSync(lock), false, 'the lock is gone');
      assert.equal(existsSync(checkpoint), false, 'no checkpoint was written');
      assert.ok(result.secondsAfter < 10, `${result.secondsAfter} s after the signal`);
    });
  }

  test('SIGTERM while a store does not answer (the database does): exit 130, the lock released', async () => {
    const { dir, lock, checkpoint } = config(db.url, { destination: { endpoint: `http://127.0.0.1:${closedPort}`, bucket: 'signal-nowhere' } });
    const result = await runUntil(['run', 'all', '--quiet'], dir, lock, /the store does not answer yet/, (child) => child.kill('SIGTERM'));
    assert.ok(result.held);
    assert.equal(result.code, 130, result.stderr);
    assert.deepEqual(plainLines(result.stderr), ['mastosync: interrupted by SIGTERM at the start, before the first copy: nothing was written']);
    assert.equal(existsSync(lock), false);
    assert.equal(existsSync(checkpoint), false);
  });

  test('SIGTERM while a resumed run asks the destination for what it copied, and it never answers: exit 130, the lock released', async () => {
    await s3.createBucket('signal-check');
    const { dir, lock, checkpoint } = config(db.url, {
      source: { endpoint: proxy.endpoint, bucket: 'signal-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'signal-check' },
    });
    const first = await runCli(['run', 'all', '--quiet'], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    const before = readFileSync(checkpoint, 'utf8');
    // The bucket check answers; each HEAD of an object is taken and never answered (retried for minutes otherwise).
    proxy.setFault((request) => (request.bucket === 'signal-check' && request.operation === 'HeadObject' ? { kind: 'silent' } : undefined));
    try {
      let signalled = 0;
      const result = await runCli(['run', 'all', '--resume', '--quiet'], {
        cwd: dir,
        onSpawn: (child) => {
          const timer = setInterval(() => {
            if (!proxy.requests.some((request) => request.bucket === 'signal-check' && request.operation === 'HeadObject')) return;
            clearInterval(timer);
            signalled = Date.now();
            child.kill('SIGTERM');
          }, 20);
          child.once('close', () => clearInterval(timer));
        },
      });
      assert.ok(signalled > 0, 'the run never asked the destination');
      assert.ok((Date.now() - signalled) / 1000 < 10, `${(Date.now() - signalled) / 1000} s after the signal`);
      assert.equal(result.code, 130, result.stderr);
      assert.deepEqual(plainLines(result.stderr), ['mastosync: interrupted by SIGTERM at the start, before the first copy: nothing was written']);
      assert.equal(existsSync(lock), false);
      assert.equal(readFileSync(checkpoint, 'utf8'), before, 'the checkpoint is as the first run left it');
    } finally {
      proxy.setFault(undefined);
    }
  });

  test('SIGTERM while a connection attempt is in flight (a server that accepts and says nothing): the lock goes at once', async () => {
    // Such an attempt lasts up to pg's connect timeout (20 s); a pod's grace period may end before it does.
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const { dir, lock } = config(`postgres://postgres@127.0.0.1:${port}/mastodon_production`);
      let lockGone: boolean | undefined;
      let lineThen = '';
      const result = await runCli(['run', 'all', '--quiet'], {
        cwd: dir,
        onSpawn: (child) => {
          let stderr = '';
          child.stderr!.on('data', (chunk: Buffer | string) => (stderr += String(chunk)));
          const waiting = setInterval(() => {
            if (sockets.size === 0) return;
            clearInterval(waiting);
            assert.ok(existsSync(lock), 'the run held the lock while it connected');
            child.kill('SIGTERM');
            setTimeout(() => {
              lockGone = !existsSync(lock);
              lineThen = stderr;
              // Now the attempt fails at once, and the process may end.
              for (const socket of sockets) socket.destroy();
            }, 1500);
          }, 20);
          child.once('close', () => clearInterval(waiting));
        },
      });
      assert.equal(lockGone, true, 'the lock was released within 1.5 s of the signal, the attempt still in flight');
      assert.match(lineThen, /^mastosync: interrupted by SIGTERM at the start, before the first copy: nothing was written$/m);
      assert.equal(result.code, 130, result.stderr);
      assert.equal(plainLines(result.stderr).length, 1, result.stderr);
    } finally {
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

test('SIGHUP while copying stops as SIGINT does: the copies in flight finish, exit 130, the lock released', async () => {
  await s3.createBucket('signal-hup');
  const { dir, lock, checkpoint } = config(db.url, {
    source: { endpoint: proxy.endpoint, bucket: 'signal-source' },
    destination: { endpoint: proxy.endpoint, bucket: 'signal-hup' },
  });
  const copied = () =>
    existsSync(checkpoint)
      ? readFileSync(checkpoint, 'utf8')
          .split('\n')
          .filter((line) => line.includes('"status"')).length
      : 0;
  const result = await runCli(['run', 'all'], {
    cwd: dir,
    onSpawn: (child) => {
      const timer = setInterval(() => {
        if (copied() < 3) return;
        clearInterval(timer);
        child.kill('SIGHUP');
      }, 20);
      child.once('close', () => clearInterval(timer));
    },
  });
  assert.equal(result.signal, null, 'the run handled SIGHUP');
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /"signal":"SIGHUP".*"msg":"stopping: no new copies; finishing those in flight/);
  assert.match(result.stdout, /^job +rows read/m);
  assert.equal(existsSync(lock), false);
});

test('verify: SIGHUP while checking stops as SIGTERM does: the checks in flight finish, its summary, exit 130', async () => {
  const { dir } = config(db.url, {
    source: { endpoint: proxy.endpoint, bucket: 'signal-source' },
    destination: { endpoint: proxy.endpoint, bucket: 'signal-source' },
    concurrency: 1,
  });
  const heads = () => proxy.requests.filter((request) => request.operation === 'HeadObject').length;
  const before = heads();
  let signalled = 0;
  const result = await runCli(['verify', 'all', '--by-head', '--json'], {
    cwd: dir,
    onSpawn: (child) => {
      const timer = setInterval(() => {
        if (heads() < before + 3) return;
        clearInterval(timer);
        signalled = Date.now();
        child.kill('SIGHUP');
      }, 20);
      child.once('close', () => clearInterval(timer));
    },
  });
  assert.ok(signalled > 0, result.stderr);
  assert.equal(result.signal, null, 'verify handled SIGHUP');
  assert.equal(result.code, 130, result.stderr);
  assert.match(result.stderr, /"signal":"SIGHUP".*"msg":"stopping: no new copies; finishing those in flight/);
  const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { interrupted?: boolean; total: { checked: number } };
  assert.equal(summary.interrupted, true, result.stdout);
  assert.ok(Date.now() - signalled < 10_000, 'stopped within seconds of the signal');
});

describe('a checkpoint held by another run', () => {
  test('held from another host: exit 75, and the line says when and how to remove the lock by hand', async () => {
    const { dir, lock, checkpoint } = config(noDatabase());
    const since = '2026-12-01T03:17:00.000Z';
    writeFileSync(lock, `${JSON.stringify({ pid: 1, host: 'pod-abc', since, processStart: 4242 })}\n`);
    const result = await runCli(['run', 'all', '--resume', '--quiet'], { cwd: dir });
    assert.equal(result.code, 75, result.stderr);
    assert.deepEqual(plainLines(result.stderr), [
      `mastosync: checkpoint ${checkpoint} is in use by another run (pid 1 on pod-abc, since ${since}): let it finish; ` +
        `a run on another host cannot be checked from ${hostname()}: if no mastosync run is going on pod-abc any more, delete ${lock}`,
    ]);
    assert.ok(existsSync(lock), 'another host’s lock is never removed by a run');
  });

  test('a run without --resume over a checkpoint in use says it is in use (exit 75), not to pass --resume (exit 2)', async () => {
    const { dir, lock, checkpoint } = config(noDatabase());
    const recorded = [
      '{"run":"2026-12-01T03:17:00.000Z","mode":"fresh","source":"folder","destination":"folder"}',
      '{"job":"media_attachments","watermark":"100"}',
      '',
    ].join('\n');
    writeFileSync(checkpoint, recorded);
    // This test's process holds it: a live pid on this host.
    writeFileSync(lock, `${JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() })}\n`);
    const result = await runCli(['run', 'all', '--quiet'], { cwd: dir });
    assert.equal(result.code, 75, result.stderr);
    assert.match(plainLines(result.stderr).join('\n'), new RegExp(`^mastosync: checkpoint \\S+ is in use by another run \\(pid ${process.pid} on `));
    assert.equal(plainLines(result.stderr).length, 1);
    assert.equal(readFileSync(checkpoint, 'utf8'), recorded);
    assert.ok(existsSync(lock), 'the holder’s lock stays');
    // Once it is free, the same run is refused for what the checkpoint records, and leaves no lock.
    rmSync(lock);
    const free = await runCli(['run', 'all', '--quiet'], { cwd: dir });
    assert.equal(free.code, 2, free.stderr);
    assert.match(free.stderr, /records progress .*Pass --resume/);
    assert.equal(existsSync(lock), false);
  });
});

describe('verify and prune: a signal while they wait on the database', () => {
  // They had no handler until their first store request: SIGTERM there was a raw death (exit 143, no line).
  const COMMANDS = [
    { args: ['verify', 'all'], before: 'before anything was checked' },
    { args: ['prune', 'all'], before: 'before anything was listed: nothing was deleted' },
  ];

  for (const { args, before } of COMMANDS) {
    test(`${args[0]}: SIGTERM while the database does not answer (tried again): exit 130, one line`, async () => {
      const { dir, lock } = config(noDatabase());
      const result = await runUntil([...args, '--log-level', 'warn'], dir, lock, /the database does not answer yet/, (child) => child.kill('SIGTERM'));
      assert.equal(result.signal, null, 'handled SIGTERM');
      assert.equal(result.code, 130, result.stderr);
      assert.deepEqual(plainLines(result.stderr), [`mastosync: interrupted by SIGTERM at the start, ${before}`]);
      assert.ok(result.secondsAfter < 10, `${result.secondsAfter} s after the signal`);
    });

    test(`${args[0]}: SIGINT while a query waits for an answer that never comes: exit 130 at once, one line`, async () => {
      const { hostname, port } = new URL(db.url);
      const relay = new PgRelay({ host: hostname, port: Number(port) });
      // The schema probe's query is held back and the connection goes silent: a database that hangs.
      relay.freezeAt(/pg_catalog\.pg_attribute/);
      try {
        const { dir } = config(await relay.listen(db.url));
        let signalled = 0;
        const result = await runCli([...args, '--log-level', 'warn'], {
          cwd: dir,
          onSpawn: (child) => {
            const timer = setInterval(() => {
              if (!relay.isFrozen) return;
              clearInterval(timer);
              signalled = Date.now();
              child.kill('SIGINT');
            }, 20);
            child.once('close', () => clearInterval(timer));
          },
        });
        assert.ok(signalled > 0, `the query was never sent: ${result.stderr}`);
        assert.equal(result.signal, null, 'handled SIGINT');
        assert.equal(result.code, 130, result.stderr);
        assert.deepEqual(plainLines(result.stderr), [`mastosync: interrupted by SIGINT at the start, ${before}`]);
        assert.ok((Date.now() - signalled) / 1000 < 10, `${(Date.now() - signalled) / 1000} s after the signal`);
      } finally {
        await relay.close();
      }
    });
  }
});
