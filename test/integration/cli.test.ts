/**
 * The launcher itself (bin/mastosync.js and the bundle it loads), as an admin meets it: run from any folder,
 * including Mastodon's own `live/`, which has a package.json of its own; and against s3rver as it comes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { runCli, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { makeS3Client, s3Helpers, type S3Server } from '../support/s3.js';
import { OWN_VERSION } from '../support/build.js';

const RECORD_LOADS = pathToFileURL(resolve(import.meta.dirname, '../support/recordLoads.mjs')).href;

test("--version prints mastosync's version, not that of the folder it runs in", async () => {
  const live = mkdtempSync(join(tmpdir(), 'mastosync-live-'));
  try {
    writeFileSync(join(live, 'package.json'), JSON.stringify({ name: '@mastodon/mastodon', version: '4.3.2' }));
    const result = await runCli(['--version'], { cwd: live });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), OWN_VERSION);
  } finally {
    rmSync(live, { recursive: true, force: true });
  }
});

test('--help lists every command', async () => {
  const result = await runCli(['--help'], { cwd: tmpdir() });
  assert.equal(result.code, 0, result.stderr);
  for (const command of ['run', 'init', 'check', 'plan', 'manifest', 'verify', 'prune'])
    assert.match(result.stdout, new RegExp(`mastosync ${command}\\b`), command);
});

/** Names that only the code of a command's work holds: its logging, config file parsing, database, stores and sync. */
const WORK_NAMES = ['"JsonLogger"', '"TomlError"', '"Pool"', '"S3Store"', '"CheckpointWriter"'];

test("--version, --help and a command's --help load the command line only, none of the commands' work", async () => {
  const bundle = resolve(import.meta.dirname, '../../dist/bundle');
  const scratch = mkdtempSync(join(tmpdir(), 'mastosync-loads-'));
  try {
    for (const args of [['--version'], ['--help'], ['run', '--help']]) {
      const loads = join(scratch, `${args.join('')}.txt`);
      const result = await runCli(args, { cwd: scratch, env: { NODE_OPTIONS: `--import ${RECORD_LOADS}`, TEST_RECORD_LOADS_FILE: loads } });
      assert.equal(result.code, 0, result.stderr);
      const loaded = readFileSync(loads, 'utf8')
        .split('\n')
        .filter((url) => url.startsWith(pathToFileURL(bundle).href));
      assert.ok(
        loaded.some((url) => url.endsWith('/main.js')),
        'the loads were recorded',
      );
      for (const url of loaded) {
        const text = readFileSync(fileURLToPath(url), 'utf8');
        assert.deepEqual(
          WORK_NAMES.filter((name) => text.includes(name)),
          [],
          `${args.join(' ')} loaded ${url}`,
        );
      }
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
});

describe('s3rver as it comes (no DES on Node 20 for its list tokens), sixteen copies in flight', () => {
  let postgres: PostgresServer;
  let db: TestDatabase;
  let server: ChildProcess;
  let s3: S3Server;
  let world: IntegrityWorld;
  let directory: string;

  before(async () => {
    postgres = await startPostgres();
    db = await createDatabase('current');
    directory = mkdtempSync(join(tmpdir(), 'mastosync-plain-s3rver-'));
    // Not test/support/s3.ts, which patches DES in for the tests' own listings: the server as an admin would run it.
    const script =
      "const S3rver = require('s3rver'); new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: process.argv[1] }).run().then(({ port }) => console.log(JSON.stringify({ port })));";
    server = spawn(process.execPath, ['-e', script, directory], { cwd: resolve(import.meta.dirname, '../..'), stdio: ['ignore', 'pipe', 'inherit'] });
    const { port } = JSON.parse(await new Promise<string>((done) => createInterface({ input: server.stdout! }).once('line', done))) as { port: number };
    const endpoint = `http://127.0.0.1:${port}`;
    const client = makeS3Client(endpoint);
    s3 = { ...s3Helpers(client), endpoint, port, directory, stop: async () => client.destroy() };
    await s3.createBucket('plain-source');
    await s3.createBucket('plain-destination');
    world = await buildIntegrityWorld(db, s3, 'plain-source');
  });

  after(async () => {
    await s3?.stop();
    server?.kill();
    await db?.drop();
    await postgres?.stop();
    rmSync(directory, { recursive: true, force: true });
  });

  test('check passes, and run copies exactly, writing nothing but JSON lines to stderr', async () => {
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'plain-source' },
      destination: { endpoint: s3.endpoint, bucket: 'plain-destination' },
      concurrency: 16,
    });
    try {
      const check = await runCli(['check'], { cwd: config.dir });
      assert.equal(check.code, 0, check.stderr);
      const run = await runCli(['run', 'all', '--json'], { cwd: config.dir });
      assert.equal(run.code, 0, run.stderr);
      // Cron mails stderr and log shippers parse it: a Node warning (too many abort listeners, say) is noise there.
      const notJson = run.stderr.split('\n').filter((line) => line.trim() !== '' && !isJson(line));
      assert.deepEqual(notJson, []);
      await assertDestinationExact(s3, 'plain-destination', world);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });

  test("--resume with no checkpoint over an empty destination (cron's first night) says so in the summary only, not on stderr (cron mails it)", async () => {
    await s3.createBucket('first-night');
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'plain-source' },
      destination: { endpoint: s3.endpoint, bucket: 'first-night' },
    });
    try {
      const result = await runCli(['run', 'all', '--resume', '--checkpoint', 'mastosync-chekpoint.jsonl', '--json', '--log-level', 'warn', '--quiet'], {
        cwd: config.dir,
      });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /no checkpoint/);
      const { notes } = JSON.parse(result.stdout) as { notes: string[] };
      assert.ok(
        notes.some((note) => /^no checkpoint at \/.*\/mastosync-chekpoint\.jsonl to resume from: started from the beginning$/.test(note)),
        notes.join('\n'),
      );
      await assertDestinationExact(s3, 'first-night', world);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });

  test('--resume with no checkpoint over a destination that already holds objects (a checkpoint deleted, moved or mistyped) warns on stderr: everything is copied again', async () => {
    // The first test filled plain-destination.
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'plain-source' },
      destination: { endpoint: s3.endpoint, bucket: 'plain-destination' },
    });
    try {
      const result = await runCli(['run', 'all', '--resume', '--checkpoint', 'mastosync-chekpoint.jsonl', '--log-level', 'warn', '--quiet'], {
        cwd: config.dir,
      });
      assert.equal(result.code, 0, result.stderr);
      const warnings = result.stderr.split('\n').filter((line) => line.includes('no checkpoint'));
      assert.equal(warnings.length, 1, result.stderr);
      assert.match(
        warnings[0]!,
        /^mastosync: warning: no checkpoint at \/.*\/mastosync-chekpoint\.jsonl to resume from, and the destination .*plain-destination.* already holds objects \(e\.g\. .+\): this run copies every object again\. If the checkpoint was moved, pass it with --checkpoint; to skip what is already there, add --skip-existing$/,
      );
      // With --skip-existing the listing skips what is there: nothing to warn about.
      rmSync(join(config.dir, 'mastosync-chekpoint.jsonl'), { force: true });
      const skipping = await runCli(
        ['run', 'all', '--resume', '--skip-existing', '--checkpoint', 'mastosync-chekpoint.jsonl', '--log-level', 'warn', '--quiet'],
        {
          cwd: config.dir,
        },
      );
      assert.equal(skipping.code, 0, skipping.stderr);
      assert.doesNotMatch(skipping.stderr, /no checkpoint/);
      // Nor for part of the database: a delta pass's first run (--since) over a full destination is the usual case.
      const delta = await runCli(['run', 'all', '--resume', '--since', '2000-01-01', '--checkpoint', 'delta.jsonl', '--log-level', 'warn', '--quiet'], {
        cwd: config.dir,
      });
      assert.equal(delta.code, 0, delta.stderr);
      assert.doesNotMatch(delta.stderr, /no checkpoint/);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });
});

function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}
