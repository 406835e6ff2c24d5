/**
 * The default checkpoint is named after the config file (mastosync.toml → mastosync.checkpoint.jsonl); it was
 * mastosync-checkpoint.jsonl beside it, shared by two configs in one folder. A cron job set up before the change must
 * go on: its `run all --resume` finds the earlier file alone, takes it over (moved once, said once), and copies nothing
 * again. An earlier file of another config in the folder is left for that config; one an earlier version's run still
 * holds is not moved.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';

const SOURCE = 'earlier-source';

let s3: S3Server;
let db: TestDatabase;
const dirs: string[] = [];
/** Where cron starts the runs: not the config's folder. */
let home: string;

before(async () => {
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket(SOURCE);
  await loadFixture(buildFixture('current'), db.client, s3, SOURCE);
  home = mkdtempSync(join(tmpdir(), 'mastosync-home-'));
  dirs.push(home);
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
  await s3?.stop();
});

interface Total {
  copied: number;
  failed: number;
}

/** A config in its own folder, writing to a bucket of its own. */
async function configFor(destination: string): Promise<ReturnType<typeof writeConfig>> {
  await s3.createBucket(destination);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: SOURCE },
    destination: { endpoint: s3.endpoint, bucket: destination },
  });
  dirs.push(config.dir);
  return config;
}

async function cronRun(file: string): Promise<{ code: number | null; stderr: string; total: Total }> {
  const result = await runCli(['run', 'all', '--config', file, '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: home });
  return { code: result.code, stderr: result.stderr, total: result.stdout === '' ? ({} as Total) : (JSON.parse(result.stdout) as { total: Total }).total };
}

/** A checkpoint as an earlier version left it: the first run's, under the earlier default name. */
async function earlierVersionRan(config: ReturnType<typeof writeConfig>): Promise<{ earlier: string }> {
  const first = await cronRun(config.file);
  assert.equal(first.code, 0, first.stderr);
  assert.ok(first.total.copied > 0);
  const earlier = join(config.dir, 'mastosync-checkpoint.jsonl');
  renameSync(config.checkpoint, earlier);
  return { earlier };
}

test('the default checkpoint is named after the config file', async () => {
  const config = await configFor('earlier-named');
  const run = await cronRun(config.file);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(config.checkpoint, join(config.dir, 'mastosync.checkpoint.jsonl'));
  assert.ok(existsSync(config.checkpoint));
  assert.equal(existsSync(join(config.dir, 'mastosync-checkpoint.jsonl')), false);
});

test("a cron job's --resume over the earlier default checkpoint takes it over: moved once, said once, nothing copied again", async () => {
  const config = await configFor('earlier-upgrade');
  const { earlier } = await earlierVersionRan(config);
  const before = readFileSync(earlier, 'utf8');

  const upgraded = await cronRun(config.file);
  assert.equal(upgraded.code, 0, upgraded.stderr);
  assert.equal(upgraded.total.copied, 0, 'the earlier checkpoint was resumed: nothing is copied again');
  const lines = upgraded.stderr.split('\n').filter((line) => line !== '');
  assert.deepEqual(lines.length, 1, upgraded.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `^mastosync: warning: moved checkpoint ${earlier.replaceAll('.', '\\.')} to ${config.checkpoint.replaceAll('.', '\\.')}: the default checkpoint is now named after the config file \\(mastosync\\.toml\\)`,
    ),
  );
  assert.equal(existsSync(earlier), false);
  assert.equal(readFileSync(config.checkpoint, 'utf8').split('\n')[0], before.split('\n')[0], "the earlier run's header: the same checkpoint, resumed");

  const next = await cronRun(config.file);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.stderr, '', 'said once: the next run says nothing');
  assert.equal(next.total.copied, 0);
});

test("two configs in one folder: the earlier default checkpoint stays the one config's whose run wrote it", async () => {
  const a = await configFor('earlier-pair-a');
  const { earlier } = await earlierVersionRan(a);
  // b sits beside a, and writes elsewhere: its run refused the shared file before.
  await s3.createBucket('earlier-pair-b');
  const b = join(a.dir, 'b.toml');
  writeFileSync(b, readFileSync(a.file, 'utf8').replace('earlier-pair-a', 'earlier-pair-b'));

  const other = await cronRun(b);
  assert.equal(other.code, 0, other.stderr);
  assert.ok(other.total.copied > 0, 'b starts its own checkpoint');
  assert.ok(existsSync(join(a.dir, 'b.checkpoint.jsonl')));
  assert.ok(existsSync(earlier), "a's checkpoint is left where a's run finds it");

  const own = await cronRun(a.file);
  assert.equal(own.code, 0, own.stderr);
  assert.equal(own.total.copied, 0);
  assert.match(own.stderr, /^mastosync: warning: moved checkpoint \S+mastosync-checkpoint\.jsonl to \S+mastosync\.checkpoint\.jsonl: /);
});

test("an earlier version's run still holding the earlier checkpoint: not moved, exit 75, nothing written", async () => {
  const config = await configFor('earlier-held');
  const { earlier } = await earlierVersionRan(config);
  const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    writeFileSync(`${earlier}.lock`, `${JSON.stringify({ pid: holder.pid, host: (await import('node:os')).hostname(), since: new Date().toISOString() })}\n`);
    const held = await cronRun(config.file);
    assert.equal(held.code, 75, held.stderr);
    assert.match(held.stderr, new RegExp(`checkpoint ${earlier.replaceAll('.', '\\.')} is in use by another run \\(pid ${holder.pid} `));
    assert.ok(existsSync(earlier));
    assert.equal(existsSync(config.checkpoint), false);
  } finally {
    holder.kill();
    rmSync(`${earlier}.lock`, { force: true });
  }
  const after = await cronRun(config.file);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(after.total.copied, 0);
});
