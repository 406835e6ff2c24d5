/**
 * Cron runs (issue 11): without a terminal, `--quiet` or a log level above info prints no progress line, so a
 * clean `run all --resume --quiet --log-level warn` writes nothing to stderr (cron mails nothing), and stdout
 * carries the summary with the run's start and end times in UTC.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { BIN, runCli, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildCopyWorld, type CopyWorld } from '../support/exact.js';
import { CACHE_CONTROL } from '../support/fixture.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let world: CopyWorld;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('quiet-source');
  await s3.createBucket('quiet-destination');
  world = await buildCopyWorld(db, s3, 'quiet-source');
  config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'quiet-source' },
    destination: { endpoint: s3.endpoint, bucket: 'quiet-destination' },
    // One PUT per object: s3rver cannot abort a multipart upload, and the warning that says so is not a clean run.
    uploadCutoffMib: 64,
  });
});

after(async () => {
  rmSync(config.dir, { recursive: true, force: true });
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

const ISO_SECOND = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

/** The `started …, finished …` line of the text summary, as dates; both within [from, to] (to the second). */
function runTimes(stdout: string, from: number, to: number): { started: string; finished: string } {
  const match = /^started (\S+), finished (\S+)$/m.exec(stdout);
  assert.ok(match, `no start and end times in the summary:\n${stdout}`);
  const [, started, finished] = match as unknown as [string, string, string];
  assertWithin(started, finished, from, to);
  return { started, finished };
}

function assertWithin(started: string, finished: string, from: number, to: number): void {
  assert.match(started, ISO_SECOND);
  assert.match(finished, ISO_SECOND);
  const [start, end] = [Date.parse(started), Date.parse(finished)];
  assert.ok(Math.floor(from / 1000) * 1000 <= start && start <= end && end <= to, `${started} … ${finished} is not within the run`);
}

describe('a cron run', () => {
  test('--log-level error without a terminal: nothing on stderr (not even the missing objects), exit 0, the summary with start and end on stdout', async () => {
    const from = Date.now();
    const result = await runCli(['run', 'all', '--log-level', 'error'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '', 'no progress line and no warning at --log-level error');
    assert.match(result.stdout, /^job +rows +changed +objects +copied/m);
    assert.match(result.stdout, new RegExp(`^total +\\d+ +0 +${world.fixture.expected.length} +`, 'm'));
    runTimes(result.stdout, from, Date.now());
    await assertDestinationExact(s3, 'quiet-destination', world);
  });

  test('--log-level silent --json: nothing on stderr; the JSON summary has started and finished', async () => {
    const from = Date.now();
    const result = await runCli(['run', 'all', '--resume', '--log-level', 'silent', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const report = JSON.parse(result.stdout) as { started: string; finished: string; interrupted: boolean };
    assert.equal(report.interrupted, false);
    assertWithin(report.started, report.finished, from, Date.now());
  });

  test('on a terminal (a pseudo-terminal, through script): the missing objects are readable warn lines above the live display, never JSON', async () => {
    const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;
    const command = [process.execPath, BIN, 'run', 'all', '--fresh', '--config', config.file].map(quote).join(' ');
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('MASTOSYNC_')));
    const child = spawn('script', ['-qfec', command, '/dev/null'], { cwd: config.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let screen = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (screen += chunk));
    const code = await new Promise<number | null>((done) => child.on('close', done));
    assert.equal(code, 0, screen);
    // eslint-disable-next-line no-control-regex -- the terminal's escape sequences are what is stripped here
    const lines = screen.split(/\r?\n/).map((line) => line.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r/g, ''));
    for (const object of world.fixture.missing) {
      assert.ok(
        lines.some((line) => line.startsWith('warn  missing at the source: ') && line.endsWith(` ${object.key}`)),
        `no readable warning for ${object.key}:\n${screen}`,
      );
    }
    assert.deepEqual(
      lines.filter((line) => line.trimStart().startsWith('{')),
      [],
      'no JSON on a terminal',
    );
    assert.ok(
      lines.some((line) => /^total .*done in/.test(line)),
      `the live display's final state:\n${screen}`,
    );
  });

  describe('once the source has every object', () => {
    before(async () => {
      // The fixture's rows that own an absent object: give them one, so a run has nothing to warn about.
      for (const object of world.fixture.missing)
        await s3.put('quiet-source', object.key, Buffer.from(`now present: ${object.key}`), { contentType: 'image/png', cacheControl: CACHE_CONTROL });
    });

    test('--quiet --log-level warn: stderr empty, exit 0, the summary with start and end on stdout', async () => {
      const from = Date.now();
      const result = await runCli(['run', 'all', '--fresh', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '', 'a clean cron run writes nothing to stderr, so cron mails nothing');
      assert.match(
        result.stdout,
        new RegExp(
          `^total +\\d+ +0 +${world.fixture.expected.length} +${world.wanted.length + world.fixture.missing.length - world.fixture.relocated.length} +${world.fixture.relocated.length} +0 +0 +0 `,
          'm',
        ),
      );
      runTimes(result.stdout, from, Date.now());
    });

    test('--log-level warn alone is quiet too: no JSON progress line', async () => {
      const result = await runCli(['run', 'all', '--fresh', '--log-level', 'warn', '--progress-interval', '1'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stderr, '');
    });

    test('at info, without a terminal, progress goes to stderr as JSON lines (what the quiet levels leave out)', async () => {
      const result = await runCli(['run', 'all', '--fresh'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      const progress = result.stderr.split('\n').filter((line) => line.includes('"msg":"progress"'));
      assert.ok(progress.length >= 1, result.stderr);
    });
  });
});
