/**
 * Interrupting a run and resuming it (issue 2's contract): after a SIGKILL mid-run, `--resume` ends with the
 * destination exact and rewrites nothing the checkpoint recorded as finished; SIGINT stops reading, lets the
 * copies in flight finish and exits 130.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, existsSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
const cleanups: Array<() => Promise<void> | void> = [];
let worlds = 0;

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  // Latency makes a run last long enough to be interrupted part-way.
  proxy = await startProxy({ upstreamPort: s3.port, latencyMs: 25 });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await proxy?.stop();
  await s3?.stop();
  await postgres?.stop();
});

async function setUp(): Promise<{ fixture: Fixture; db: TestDatabase; destination: string; dir: string; checkpoint: string }> {
  worlds += 1;
  const fixture = buildFixture('current');
  const db = await createDatabase('current');
  cleanups.push(() => db.drop());
  const source = `resume-source-${worlds}`;
  const destination = `resume-destination-${worlds}`;
  await s3.createBucket(source);
  await s3.createBucket(destination);
  await loadFixture(fixture, db.client, s3, source);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: source },
    destination: { endpoint: proxy.endpoint, bucket: destination },
    concurrency: 2,
    batchSize: 5,
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  return { fixture, db, destination, dir: config.dir, checkpoint: config.checkpoint };
}

interface Line {
  key?: string;
  status?: string;
}

function checkpointLines(path: string): Line[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
  return lines.flatMap((line, index) => {
    try {
      return [JSON.parse(line) as Line];
    } catch {
      // Only the very last line may be torn by a kill.
      assert.equal(index, lines.length - 1, `line ${index + 1} is not JSON: ${line}`);
      return [];
    }
  });
}

/** Resolves with the child once the checkpoint holds at least `count` object results. */
function whenFinished(checkpoint: string, count: number, onReady: (child: ChildProcess) => void) {
  return (child: ChildProcess) => {
    const timer = setInterval(() => {
      if (checkpointLines(checkpoint).filter((line) => line.status !== undefined).length >= count) {
        clearInterval(timer);
        onReady(child);
      }
    }, 10);
    child.on('exit', () => clearInterval(timer));
  };
}

async function assertExact(fixture: Fixture, destination: string): Promise<void> {
  const keys = (await s3.listKeys(destination)).sort();
  assert.deepEqual(keys, fixture.present.map((object) => object.key).sort());
  for (const expected of fixture.present) {
    const stored = await s3.getObject(destination, expected.key);
    assert.equal(createHash('sha256').update(stored!.body).digest('hex'), expected.sha256, expected.key);
    assert.equal(stored!.contentType, expected.contentType, expected.key);
  }
}

test('SIGKILL mid-run, then --resume: destination exact, nothing finished is written again', async () => {
  const world = await setUp();
  const killed = await runCli(['run', 'all'], {
    cwd: world.dir,
    onSpawn: whenFinished(world.checkpoint, 12, (child) => child.kill('SIGKILL')),
  });
  assert.equal(killed.signal, 'SIGKILL');
  const finished = new Set(
    checkpointLines(world.checkpoint)
      .filter((line) => line.status === 'copied' || line.status === 'relocated')
      .map((line) => line.key!),
  );
  assert.ok(finished.size >= 8 && finished.size < world.fixture.present.length, `killed part-way (${finished.size} finished)`);

  proxy.reset();
  const resumed = await runCli(['run', 'all', '--resume'], { cwd: world.dir });
  assert.equal(resumed.code, 0, resumed.stderr);
  const rewritten = proxy.requests
    .filter((request) => request.bucket === world.destination && request.method !== 'GET' && request.method !== 'HEAD')
    .map((request) => request.key!)
    .filter((key) => finished.has(key));
  assert.deepEqual(rewritten, [], 'objects finished before the kill must not be uploaded again');
  await assertExact(world.fixture, world.destination);
});

test('SIGINT stops reading, finishes the copies in flight, exits 130; --resume completes the copy', async () => {
  const world = await setUp();
  const interrupted = await runCli(['run', 'all'], {
    cwd: world.dir,
    onSpawn: whenFinished(world.checkpoint, 6, (child) => child.kill('SIGINT')),
  });
  assert.equal(interrupted.code, 130, interrupted.stderr);
  assert.match(interrupted.stdout, /interrupted/);
  // Rows are counted when read, and some read rows still had copies to do: the summary must not call them finished.
  assert.match(interrupted.stdout, /^job +rows read +changed +objects/m);
  const [, read, finished, unfinished] =
    /\(of the (\d+) rows read, (\d+) are finished; (?:none of them stays to do|the objects of the other (\d+) stay to do); rows not reached are read by --resume\)$/m
      .exec(interrupted.stdout)!
      .map((count) => Number(count ?? 0));
  assert.equal(finished! + unfinished!, read);
  assert.match(interrupted.stdout, /^started \S+Z, finished \S+Z$/m);
  const lines = checkpointLines(world.checkpoint);
  const done = lines.filter((line) => line.status !== undefined);
  assert.ok(done.length < world.fixture.expected.length, 'the run stopped before the end');
  // Nothing half-done: every copied object recorded so far is complete at the destination.
  for (const line of done.filter((entry) => entry.status === 'copied')) {
    const expected = world.fixture.expectedByKey.get(line.key!)!;
    const stored = await s3.getObject(world.destination, line.key!);
    assert.equal(stored?.body.length, expected.size, line.key);
  }

  const resumed = await runCli(['run', 'all', '--resume'], { cwd: world.dir });
  assert.equal(resumed.code, 0, resumed.stderr);
  await assertExact(world.fixture, world.destination);

  // Resuming a finished copy reads no row again; the report says why its columns are empty.
  const again = await runCli(['run', 'all', '--resume', '--json'], { cwd: world.dir });
  assert.equal(again.code, 0, again.stderr);
  const report = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as {
    total: { copied: number };
    notes: string[];
    jobs: Array<{ job: string; rows: number }>;
  };
  assert.equal(report.total.copied, 0);
  for (const job of report.jobs.filter((entry) => world.fixture.rows.some((row) => row.table === entry.job))) {
    assert.ok(
      report.notes.some((note) => note.startsWith(`${job.job}: rows up to id `) && note.includes('were finished by an earlier run')),
      `a note for ${job.job}: ${report.notes.join(' | ')}`,
    );
  }
});

test('run without --resume over a checkpoint that records progress: exit 2, one line naming --resume and --fresh, nothing written; --fresh starts over', async () => {
  const world = await setUp();
  const first = await runCli(['run', 'all', '--quiet'], { cwd: world.dir });
  assert.equal(first.code, 0, first.stderr);
  // A later cron run: the refusal names when it began, not the first run (compaction keeps only the first's header).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const nightly = await runCli(['run', 'all', '--resume', '--quiet'], { cwd: world.dir });
  assert.equal(nightly.code, 0, nightly.stderr);
  const recorded = readFileSync(world.checkpoint, 'utf8');
  const firstStarted = /^\{"run":"([^"]+)"/.exec(recorded)![1]!;
  const lastSynced = [...recorded.matchAll(/"synced":"([^"]+)"/g)]
    .map((match) => match[1]!)
    .sort()
    .at(-1)!;
  assert.ok(lastSynced > firstStarted, `${lastSynced} after ${firstStarted}`);

  // The --resume forgotten once (shell history, after a reboot): it would have copied everything again.
  proxy.reset();
  const again = await runCli(['run', 'all'], { cwd: world.dir });
  assert.equal(again.code, 2, again.stdout + again.stderr);
  assert.match(
    again.stderr,
    /^mastosync: checkpoint \S+mastosync\.checkpoint\.jsonl records progress \(a run from s3:\/\/resume-source-\d+ at \S+ to s3:\/\/resume-destination-\d+ at \S+, the last run to finish a job started (\S+)\): media_attachments rows up to id \d+, accounts rows up to id \d+, .*\. Pass --resume to continue it, or --fresh to start over and replace it \(or --checkpoint with another file\); nothing was written\n$/,
  );
  assert.equal(/the last run to finish a job started (\S+)\)/.exec(again.stderr)?.[1], lastSynced);
  assert.equal(again.stdout, '');
  assert.equal(readFileSync(world.checkpoint, 'utf8'), recorded, 'the checkpoint is untouched');
  assert.deepEqual(proxy.requests, [], 'no store was contacted');
  assert.equal(existsSync(`${world.checkpoint}.lock`), false);

  const both = await runCli(['run', 'all', '--fresh', '--resume'], { cwd: world.dir });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /pass --fresh or --resume, not both/);

  const fresh = await runCli(['run', 'all', '--fresh', '--quiet', '--json'], { cwd: world.dir });
  assert.equal(fresh.code, 0, fresh.stderr);
  const total = (JSON.parse(fresh.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> }).total;
  assert.equal(total.copied! + total.relocated!, world.fixture.present.length, 'everything copied again');
  assert.match(readFileSync(world.checkpoint, 'utf8'), /^\{"run":"[^"]+","mode":"fresh"/);
  await assertExact(world.fixture, world.destination);
});

test('after --resume, the summary counts each row once and the progress ends at done = owned (objects missing before are tried again)', async () => {
  const world = await setUp();
  assert.ok(world.fixture.missing.length > 0, 'the world has objects missing at the source');
  interface Summary {
    jobs: Array<{ job: string; rows: number; objects: number }>;
  }
  interface Progress {
    msg: string;
    done: number;
    owned: number | null;
    jobs: Array<{ job: string; done: number; owned: number | null }>;
  }
  const rowsOf = (stdout: string) => Object.fromEntries((JSON.parse(stdout) as Summary).jobs.map((job) => [job.job, job.rows]));
  const first = await runCli(['run', 'all', '--json'], { cwd: world.dir });
  assert.equal(first.code, 0, first.stderr);
  const rows = rowsOf(first.stdout);

  for (const flags of [['--resume', '--skip-existing'], ['--resume']]) {
    const resumed = await runCli(['run', 'all', ...flags, '--json', '--progress-interval', '1'], { cwd: world.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    // The rows of the objects missing before are read by id to try them again: not counted twice (--skip-existing
    // reads every row again), and with --resume alone no row above the watermark is left.
    if (flags.includes('--skip-existing')) assert.deepEqual(rowsOf(resumed.stdout), rows, `${flags.join(' ')}: each row once`);
    else
      for (const [job, count] of Object.entries(rowsOf(resumed.stdout)))
        assert.ok(count <= rows[job]!, `${flags.join(' ')}: ${job} ${count} rows of ${rows[job]}`);
    const last = readJsonLines<Progress>(resumed.stderr)
      .filter((line) => line.msg === 'progress')
      .at(-1)!;
    for (const line of [last, ...last.jobs]) assert.equal(line.done, line.owned, `${flags.join(' ')}: ${JSON.stringify(line)}`);
  }
});
