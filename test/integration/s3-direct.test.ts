/**
 * The S3 backend without the AWS SDK, against s3rver:
 * - a run of small objects, its verify and a prune that deletes never load the SDK's chunk of the bundle (it costs
 *   17 MB of RSS and 0.16 s of CPU to load); an object above upload_cutoff does, and is copied byte for byte;
 * - the requests that went through the SDK before and now go direct: the bucket check, HEAD, DeleteObject and
 *   DeleteObjects (keys XML escapes, a key XML parsers would trim, a key that does not exist).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildFixture, loadFixture, BIG_OBJECT_SIZE, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, S3RVER_CREDENTIALS, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';
import { S3Store } from '../../src/storage/s3.js';
import { UsageError } from '../../src/errors.js';

const BUNDLE = resolve(import.meta.dirname, '../../dist/bundle');
const RECORD_LOADS = pathToFileURL(resolve(import.meta.dirname, '../support/recordLoads.mjs')).href;

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let fixture: Fixture;
const scratch = mkdtempSync(join(tmpdir(), 'mastosync-loads-'));

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('source');
  fixture = buildFixture('current');
  await loadFixture(fixture, db.client, s3, 'source');
});

after(async () => {
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** The owned object above 5 MiB (the others are a few KB), as the source holds it and the destination must. */
function bigObject(): { key: string; sourceKey: string } {
  const big = fixture.present.find((object) => fixture.sourceByKey.get(object.sourceKey!)?.body.length === BIG_OBJECT_SIZE)!;
  return { key: big.key, sourceKey: big.sourceKey! };
}

/** The bundle's files that hold the SDK's S3 client (its class name survives minification: --keep-names). */
function sdkChunks(): Set<string> {
  const files = readdirSync(BUNDLE).filter((name) => name.endsWith('.js'));
  return new Set(files.filter((name) => readFileSync(join(BUNDLE, name), 'utf8').includes('"S3Client"')).map((name) => pathToFileURL(join(BUNDLE, name)).href));
}

/** Runs the CLI, and gives its result with the bundle files it loaded. */
async function runRecorded(args: string[], cwd: string, name: string) {
  const loads = join(scratch, `${name}.txt`);
  const result = await runCli(args, { cwd, env: { NODE_OPTIONS: `--import ${RECORD_LOADS}`, TEST_RECORD_LOADS_FILE: loads } });
  const loaded = readFileSync(loads, 'utf8')
    .split('\n')
    .filter((url) => url.startsWith(pathToFileURL(BUNDLE).href));
  return { ...result, loaded };
}

function config(destination: string, uploadCutoffMib: number) {
  return writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'source' },
    destination: { endpoint: s3.endpoint, bucket: destination },
    uploadCutoffMib,
  });
}

test('a run of objects below upload_cutoff, its verify and a prune that deletes never load the SDK', async () => {
  const chunks = sdkChunks();
  assert.ok(chunks.size > 0, 'the bundle holds the SDK in a chunk of its own');
  await s3.createBucket('small-only');
  // Every fixture object (the largest 6 MiB) goes as one PUT.
  const written = config('small-only', 8);
  try {
    const run = await runRecorded(['run', 'all', '--quiet'], written.dir, 'run');
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.loaded.length > 0, 'the loads were recorded');
    const big = await s3.getObject('small-only', bigObject().key);
    assert.equal(big?.body.length, BIG_OBJECT_SIZE, 'the 6 MiB object went as one PUT');
    const verify = await runRecorded(['verify', 'all'], written.dir, 'verify');
    assert.equal(verify.code, 0, verify.stderr);
    // The destination's orphans: a copy of every source object the rows do not own, deleted in one DeleteObjects.
    await s3.put('small-only', 'media_attachments/files/000/000/999/original/orphan.png', Buffer.from('orphan'));
    const prune = await runRecorded(['prune', 'all', '--delete', '--max-delete', '100%'], written.dir, 'prune');
    assert.equal(prune.code, 0, prune.stderr);
    assert.equal(await s3.getObject('small-only', 'media_attachments/files/000/000/999/original/orphan.png'), null);
    for (const [command, { loaded }] of Object.entries({ run, verify, prune })) {
      assert.deepEqual(
        loaded.filter((url) => chunks.has(url)),
        [],
        `${command} loaded the SDK`,
      );
    }
  } finally {
    rmSync(written.dir, { recursive: true, force: true });
  }
});

test('an object above upload_cutoff loads the SDK for its multipart upload, and arrives whole', async () => {
  await s3.createBucket('with-large');
  const written = config('with-large', 5);
  try {
    const run = await runRecorded(['run', 'all', '--quiet'], written.dir, 'multipart');
    assert.equal(run.code, 0, run.stderr);
    const chunks = sdkChunks();
    assert.ok(
      run.loaded.some((url) => chunks.has(url)),
      'the SDK was loaded',
    );
    const { key, sourceKey } = bigObject();
    const [source, copied] = await Promise.all([s3.getObject('source', sourceKey), s3.getObject('with-large', key)]);
    assert.ok(copied?.body.equals(source!.body), 'byte for byte');
  } finally {
    rmSync(written.dir, { recursive: true, force: true });
  }
});

function store(bucket: string): S3Store {
  return new S3Store(
    { type: 's3', bucket, region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { ...S3RVER_CREDENTIALS } },
    { role: 'destination', maxSockets: 4, partSize: 8 * 1024 * 1024, queueSize: 1 },
  );
}

test('the bucket check, HEAD and deletes go direct: a missing bucket, a missing key and keys XML must escape or would trim', async () => {
  const missing = store('no-such-bucket');
  const direct = store('direct');
  try {
    await assert.rejects(
      missing.check(),
      (error: Error) => error instanceof UsageError && /does not exist: check bucket, endpoint and region/.test(error.message),
    );
    await s3.createBucket('direct');
    await direct.check();
    const keys = ['plain/a.png', `esc/a&b<c>'d"e.png`, 'esc/café + 100%.png', 'trim/a.png ', 'trim/a.png'];
    for (const key of keys) await s3.put('direct', key, Buffer.from(key), { contentType: 'image/png', cacheControl: 'public, max-age=1' });
    const head = await direct.head(keys[1]!);
    assert.deepEqual(head, {
      contentLength: Buffer.byteLength(keys[1]!),
      contentType: 'image/png',
      cacheControl: 'public, max-age=1',
      etag: (await s3.getObject('direct', keys[1]!))!.etag!.replaceAll('"', ''),
    });
    assert.equal(await direct.head('plain/none.png'), undefined);
    // Deleted: the escaped keys in one DeleteObjects, the key with a trailing space alone, a key that does not exist.
    const failures = await direct.delete([keys[0]!, keys[1]!, keys[2]!, keys[3]!, 'plain/none.png']);
    assert.deepEqual(failures, []);
    assert.deepEqual(await s3.listKeys('direct'), ['trim/a.png'], 'only the key that was not named is left (not trimmed into a deletion)');
  } finally {
    missing.close();
    direct.close();
  }
});
