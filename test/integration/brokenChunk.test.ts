/**
 * A chunk of dist/bundle/ that the run loads only when it first needs it goes missing under a running cron (a checkout
 * pulled and not rebuilt, a package reinstalled half-way): the S3 SDK's chunk, which the first object above
 * upload_cutoff loads for its multipart upload. Every large object failed alone, each after its retries, counted as
 * the destination's failures, exit 1. The run now stops at the first with the launcher's line (rebuild), exit 2,
 * as when a chunk is missing at the start (launcher.test.ts).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type LocalS3Server } from '../support/s3.js';
import { runProgram, writeConfig } from '../support/cli.js';
import { fixtureBytes } from '../support/fixture.js';

const root = resolve(import.meta.dirname, '../..');
/** Accounts 1..ROWS; from LARGE_FROM on, each avatar is above the 1 MiB upload_cutoff (multipart: the S3 SDK). */
const ROWS = 40;
const LARGE_FROM = 11;
const CONCURRENCY = 2;

let scratch: string;
let postgres: PostgresServer;
let s3: LocalS3Server;
let db: TestDatabase;

const avatarKey = (id: number) => {
  const digits = String(id).padStart(9, '0');
  return `accounts/avatars/${digits.slice(0, 3)}/${digits.slice(3, 6)}/${digits.slice(6)}/original/a${id}.png`;
};

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'mastosync-broken-chunk-'));
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await insertAvatarAccounts(db.client, `generate_series(1, ${ROWS}) AS g`);
  await s3.createBucket('chunk-source');
  await s3.createBucket('chunk-destination');
  for (let id = 1; id <= ROWS; id++) {
    const size = id >= LARGE_FROM ? 1536 * 1024 : 2000 + id;
    await s3.put('chunk-source', avatarKey(id), fixtureBytes(`avatar ${id}`, size, 'image/png'), { contentType: 'image/png' });
  }
});

after(async () => {
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A checkout (src/ beside bin/: the fix is to rebuild) whose S3 SDK chunk is gone; the chunk's file name. */
function checkoutWithoutSdk(name: string): { home: string; sdk: string } {
  const home = join(scratch, name);
  for (const part of ['bin', 'package.json', 'dist/bundle']) cpSync(join(root, part), join(home, part), { recursive: true });
  mkdirSync(join(home, 'src'));
  const sdk = readdirSync(join(home, 'dist/bundle')).find((name) => name.startsWith('s3Sdk-') && name.endsWith('.js'));
  assert.ok(sdk, 'the bundle has an s3Sdk chunk');
  rmSync(join(home, 'dist/bundle', sdk));
  return { home, sdk };
}

/** A config copying from chunk-source into `destination`, every avatar from LARGE_FROM on above upload_cutoff. */
function configInto(destination: string): ReturnType<typeof writeConfig> {
  return writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'chunk-source' },
    destination: { endpoint: s3.endpoint, bucket: destination },
    concurrency: CONCURRENCY,
    batchSize: 5,
    retries: 2,
    uploadCutoffMib: 1,
  });
}

test('the S3 SDK chunk missing mid-run: one line naming it and the fix, exit 2, at the first large object', async () => {
  const { home, sdk } = checkoutWithoutSdk('checkout');
  const config = configInto('chunk-destination');
  try {
    const result = await runProgram(process.execPath, [join(home, 'bin/mastosync.js'), 'run', 'all', '--json', '--quiet', '--log-level', 'warn'], {
      cwd: config.dir,
      env: { MASTOSYNC_DEBUG: '' },
    });
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.deepEqual(
      { code: result.code, lines },
      {
        code: 2,
        lines: [`mastosync: stopped: dist/bundle/${sdk} is missing: run \`npm run build\` in ${home}, then run again with --resume`],
      },
      result.stderr.slice(0, 3000),
    );
    // Nothing said per object: the failures of the copies in flight are the stop's, logged at info.
    assert.doesNotMatch(result.stderr, /"msg":"copy failed"/);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: { copied: number; failed: number }; stopped?: string };
    assert.ok(summary.stopped?.includes(sdk), summary.stopped);
    // The small objects before the first large one are copied; of the large ones, at most those in flight failed.
    assert.ok(summary.total.copied >= LARGE_FROM - 1, JSON.stringify(summary.total));
    assert.ok(summary.total.failed <= CONCURRENCY, `${summary.total.failed} large objects failed one by one`);
  } finally {
    rmSync(config.dir, { recursive: true, force: true });
  }
});

test('verify --repair meets the missing chunk: the same line, and the fix says to run the verify again (it takes no --resume)', async () => {
  const { home, sdk } = checkoutWithoutSdk('checkout-verify');
  const config = configInto('chunk-verify-destination');
  await s3.createBucket('chunk-verify-destination');
  try {
    const result = await runProgram(
      process.execPath,
      [join(home, 'bin/mastosync.js'), 'verify', 'all', '--repair', '--json', '--quiet', '--log-level', 'warn'],
      {
        cwd: config.dir,
        env: { MASTOSYNC_DEBUG: '' },
      },
    );
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.deepEqual(
      { code: result.code, lines },
      { code: 2, lines: [`mastosync: stopped: dist/bundle/${sdk} is missing: run \`npm run build\` in ${home}, then run the same verify again`] },
      result.stderr.slice(0, 3000),
    );
  } finally {
    rmSync(config.dir, { recursive: true, force: true });
  }
});
