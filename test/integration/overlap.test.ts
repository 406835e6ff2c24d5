/**
 * One run per checkpoint, and only checkpoints as checkpoints: a cron run that starts while the previous one still
 * copies leaves at once (exit 75, naming the holder) without writing anything; a run killed with SIGKILL does not
 * block the next one; a file that is not a checkpoint (the config, say) is refused untouched.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig } from '../support/cli.js';

let s3: S3Server;
let proxy: HttpProxy;
let db: TestDatabase;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  s3 = await startS3();
  // Slow enough that a run is still copying when the next one starts.
  proxy = await startProxy({ upstreamPort: s3.port, latencyMs: 20 });
  db = await createDatabase('current');
  await s3.createBucket('overlap-source');
  await s3.createBucket('overlap-destination');
  await loadFixture(buildFixture('current'), db.client, s3, 'overlap-source');
  config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: 'overlap-source' },
    destination: { endpoint: proxy.endpoint, bucket: 'overlap-destination' },
    concurrency: 1,
  });
});

after(async () => {
  rmSync(config?.dir ?? '/nonexistent', { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await s3?.stop();
});

const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : []);

/** Calls `then` with the child once the checkpoint holds `count` object lines. */
function once(count: number, then: (child: ChildProcess) => void, checkpoint = config.checkpoint) {
  return (child: ChildProcess) => {
    const timer = setInterval(() => {
      if (lines(checkpoint).filter((line) => line.includes('"status"')).length >= count) {
        clearInterval(timer);
        then(child);
      }
    }, 20);
    child.once('close', () => clearInterval(timer));
  };
}

/**
 * A preload that makes link(2) fail as on a file system without hard links (vfat, SMB shares such as Azure Files'
 * volumes, some FUSE mounts): EPERM. The lock was taken with a hard link, and such a checkpoint folder made every run
 * fail with Node's raw error.
 */
const NO_HARD_LINKS = `
const fs = require('node:fs');
fs.linkSync = (from, to) => {
  throw Object.assign(new Error(\`EPERM: operation not permitted, link '\${from}' -> '\${to}'\`), { code: 'EPERM', errno: -1, syscall: 'link' });
};
`;

function noHardLinks(): NodeJS.ProcessEnv {
  const preload = join(config.dir, 'no-hard-links.cjs');
  writeFileSync(preload, NO_HARD_LINKS);
  return { NODE_OPTIONS: `--require ${preload}` };
}

test('a second run on a checkpoint in use exits 75 at once, names the holder and writes nothing; then runs go on', () =>
  overlappingRuns({}, config.checkpoint));

test('where the file system refuses hard links, the lock is created exclusively instead, with the same guarantees', async () => {
  const env = noHardLinks();
  // A checkpoint of its own: the runs above leave theirs finished.
  const checkpoint = join(config.dir, 'no-hard-links.jsonl');
  await overlappingRuns(env, checkpoint);
  await killedRunTakenOver(env, checkpoint);
});

/** Two runs on `checkpoint` (new), the second started while the first copies; then a third after them. */
async function overlappingRuns(env: NodeJS.ProcessEnv, checkpoint: string): Promise<void> {
  proxy.reset();
  const run = ['run', 'all', '--resume', '--quiet', '--checkpoint', checkpoint];
  let holder = 0;
  let secondDone!: (result: { result: Awaited<ReturnType<typeof runCli>>; checkpoint: string[] }) => void;
  const second = new Promise<{ result: Awaited<ReturnType<typeof runCli>>; checkpoint: string[] }>((done) => (secondDone = done));
  const first = runCli(run, {
    cwd: config.dir,
    env,
    onSpawn: once(
      3,
      (child) => {
        holder = child.pid!;
        // The checkpoint as the second run leaves it, while the first still copies (before it compacts the file).
        void runCli(run, { cwd: config.dir, env }).then((result) => secondDone({ result, checkpoint: lines(checkpoint) }));
      },
      checkpoint,
    ),
  });
  const { result: secondResult, checkpoint: duringFirst } = await second;
  assert.equal(secondResult.code, 75, secondResult.stderr);
  assert.match(
    secondResult.stderr,
    new RegExp(`^mastosync: checkpoint \\S+ is in use by another run \\(pid ${holder} on ${hostname()}, since \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z\\)`),
  );
  assert.equal(secondResult.stderr.trim().split('\n').length, 1, 'one line');
  assert.equal(secondResult.stdout, '');
  assert.equal(duringFirst.filter((line) => line.startsWith('{"run"')).length, 1, 'the second run wrote not even its header');
  assert.ok(existsSync(`${checkpoint}.lock`), 'the first run still holds the checkpoint');

  const firstResult = await first;
  assert.equal(firstResult.code, 0, firstResult.stderr);
  const writes = new Map<string, number>();
  for (const request of proxy.requests) {
    if (request.bucket === 'overlap-destination' && request.operation === 'PutObject') writes.set(request.key!, (writes.get(request.key!) ?? 0) + 1);
  }
  assert.ok(writes.size > 0);
  assert.deepEqual(
    [...writes].filter(([, count]) => count > 1),
    [],
    'no object copied twice',
  );
  assert.equal(existsSync(`${checkpoint}.lock`), false, 'the lock goes with its run');

  const third = await runCli([...run, '--json'], { cwd: config.dir, env });
  assert.equal(third.code, 0, third.stderr);
}

test('a run killed with SIGKILL leaves its lock behind, and the next run takes it over', () => killedRunTakenOver({}, config.checkpoint));

async function killedRunTakenOver(env: NodeJS.ProcessEnv, checkpoint: string): Promise<void> {
  const killed = await runCli(['run', 'all', '--fresh', '--quiet', '--checkpoint', checkpoint], {
    cwd: config.dir,
    env,
    onSpawn: once(lines(checkpoint).length + 2, (child) => child.kill('SIGKILL'), checkpoint),
  });
  assert.equal(killed.signal, 'SIGKILL');
  assert.ok(existsSync(`${checkpoint}.lock`), 'a killed run cannot remove its lock');
  const next = await runCli(['run', 'all', '--resume', '--quiet', '--checkpoint', checkpoint], { cwd: config.dir, env });
  assert.equal(next.code, 0, next.stderr);
  assert.equal(existsSync(`${checkpoint}.lock`), false);
  assert.deepEqual(
    readdirSync(config.dir).filter((name) => name.includes('.lock')),
    [],
    'nothing of the locks left',
  );
}

test('a file that is not a checkpoint is refused untouched (exit 2), for fresh and resumed runs', async () => {
  const before = readFileSync(config.file, 'utf8');
  for (const flags of [[], ['--resume']]) {
    const result = await runCli(['run', 'all', '--checkpoint', 'mastosync.toml', ...flags], { cwd: config.dir });
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /^mastosync: mastosync\.toml exists and is not a mastosync checkpoint .*: pass --checkpoint with a new file or an existing checkpoint/,
    );
    assert.equal(readFileSync(config.file, 'utf8'), before, 'the config is untouched');
  }
  const notes = join(config.dir, 'notes.txt');
  writeFileSync(notes, 'not json\n');
  const result = await runCli(['run', 'all', '--resume', '--checkpoint', notes], { cwd: config.dir });
  assert.equal(result.code, 2);
  assert.equal(readFileSync(notes, 'utf8'), 'not json\n');
});

test("a directory where the checkpoint's lock file goes is refused in one line that names it (exit 2), nothing written", async () => {
  const lock = `${config.checkpoint}.lock`;
  mkdirSync(lock);
  try {
    const before = lines(config.checkpoint);
    const result = await runCli(['run', 'all', '--resume', '--quiet'], { cwd: config.dir });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      `mastosync: ${lock} is a directory, where checkpoint ${config.checkpoint}'s lock file goes: remove it or move it away (each run makes and removes that file itself)\n`,
    );
    assert.equal(result.stdout, '');
    assert.deepEqual(lines(config.checkpoint), before, 'the checkpoint is untouched');
    assert.ok(statSync(lock).isDirectory(), 'the directory is left as it was');
    assert.deepEqual(
      readdirSync(config.dir).filter((name) => name.includes('.lock.')),
      [],
      "no file of the run's left beside it",
    );
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
});
