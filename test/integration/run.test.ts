/**
 * `mastosync run` end to end: the real CLI against a real PostgreSQL and s3rver (behind a recording proxy, so
 * the ACL each upload sent can be checked), over the hand-written Mastodon fixture (test/support/fixture.ts).
 * What an admin would check: the destination holds exactly the owned keys, byte for byte, with Mastodon's
 * Content-Type, Cache-Control and ACL; nothing else; and the checkpoint and summary tell the truth.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { buildFixture, loadFixture, withPrefix, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { assertMissingAndRelocatedRecorded } from '../support/exact.js';
import type { SchemaName } from '../support/schema.js';
import { SAMPLE_SIZE } from '../../src/sync/destinationCheck.js';

const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');

interface World {
  fixture: Fixture;
  db: TestDatabase;
  sourceBucket: string;
  destinationBucket: string;
  sourcePrefix?: string;
  destinationPrefix?: string;
}

let postgres: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
let buckets = 0;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await proxy?.stop();
  await s3?.stop();
  await postgres?.stop();
});

async function makeWorld(schema: SchemaName, prefixes: { source?: string; destination?: string } = {}): Promise<World> {
  const fixture = buildFixture(schema);
  const db = await createDatabase(schema);
  cleanups.push(() => db.drop());
  buckets += 1;
  const sourceBucket = `source-${buckets}`;
  const destinationBucket = `destination-${buckets}`;
  await s3.createBucket(sourceBucket);
  await s3.createBucket(destinationBucket);
  await loadFixture(fixture, db.client, s3, sourceBucket, prefixes.source);
  return { fixture, db, sourceBucket, destinationBucket, sourcePrefix: prefixes.source, destinationPrefix: prefixes.destination };
}

function configFor(world: World, options: { acl?: string; concurrency?: number; batchSize?: number } = {}) {
  const config = writeConfig({
    databaseUrl: world.db.url,
    source: { endpoint: proxy.endpoint, bucket: world.sourceBucket, keyPrefix: world.sourcePrefix },
    destination: { endpoint: proxy.endpoint, bucket: world.destinationBucket, keyPrefix: world.destinationPrefix, acl: options.acl },
    concurrency: options.concurrency,
    batchSize: options.batchSize,
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  return config;
}

/** The destination holds exactly the present owned keys, byte-exact, with Content-Type, Cache-Control and ACL. */
/**
 * Requests a resumed run sent to `bucket` beyond the bucket check (a one-key listing) and the HEADs of the check that
 * it still holds what the checkpoint records as copied (src/sync/destinationCheck.ts), at most SAMPLE_SIZE of them.
 */
function beyondChecks(bucket: string): string[] {
  const sent = proxy.requests.filter((request) => request.bucket === bucket && request.operation !== 'ListObjects');
  const heads = sent.filter((request) => request.operation === 'HeadObject');
  assert.ok(heads.length <= SAMPLE_SIZE, `${heads.length} HEADs`);
  return sent.filter((request) => request.operation !== 'HeadObject').map((request) => `${request.operation} ${request.key}`);
}

async function assertDestinationExact(world: World, options: { acl?: string; checkAcl?: boolean } = {}): Promise<void> {
  const destinationKey = (key: string) => withPrefix(key, world.destinationPrefix);
  const expectedKeys = world.fixture.present.map((object) => destinationKey(object.key)).sort();
  const actualKeys = (await s3.listKeys(world.destinationBucket)).sort();
  assert.deepEqual(actualKeys, expectedKeys, 'the destination must hold exactly the owned objects that exist at the source');
  const acls = proxy.aclByKey(world.destinationBucket);
  for (const expected of world.fixture.present) {
    const key = destinationKey(expected.key);
    const stored = await s3.getObject(world.destinationBucket, key);
    assert.ok(stored, `${key} missing`);
    assert.equal(stored.body.length, expected.size, `${key}: size`);
    assert.equal(sha256(stored.body), expected.sha256, `${key}: bytes differ from the source`);
    assert.equal(stored.contentType, expected.contentType, `${key}: Content-Type`);
    assert.equal(stored.cacheControl, expected.cacheControl, `${key}: Cache-Control`);
    if (options.checkAcl === false) continue;
    const sentAcl = acls.get(key);
    if (options.acl === '') assert.equal(sentAcl, undefined, `${key}: no ACL must be sent when acl = ""`);
    else assert.equal(sentAcl, expected.acl, `${key}: ACL`);
  }
}

for (const schema of ['current', 'v4.3', 'old'] as const) {
  describe(`run all on the ${schema} schema`, () => {
    let world: World;
    let config: ReturnType<typeof configFor>;
    before(async () => {
      world = await makeWorld(schema);
      config = configFor(world);
    });

    test('--dry-run lists every owned key and writes nothing (no object, no checkpoint)', async () => {
      const result = await runCli(['run', 'all', '--dry-run', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      const lines = readJsonLines<{ job?: string; source?: string; destination?: string; jobs?: unknown[] }>(result.stdout);
      const planned = lines
        .filter((line) => line.destination !== undefined)
        .map((line) => line.destination!)
        .sort();
      assert.deepEqual(planned, world.fixture.expected.map((object) => object.key).sort());
      assert.deepEqual(await s3.listKeys(world.destinationBucket), []);
      assert.equal(existsSync(config.checkpoint), false, 'a dry run must not write a checkpoint');
    });

    if (schema === 'current') {
      test('--dry-run | head: when the reader goes away, the list stops quietly (exit 0, no EPIPE trace)', async () => {
        // The reading end is closed before the first line, so every write meets EPIPE; pages of one row let the run
        // see that between pages, stop reading, and still exit 0.
        const paged = configFor(world, { batchSize: 1 });
        const result = await runCli(['run', 'all', '--dry-run', '--log-level', 'debug'], { cwd: paged.dir, onSpawn: (child) => child.stdout!.destroy() });
        assert.equal(result.code, 0, result.stderr);
        assert.match(result.stderr, /stdout was closed: the dry run stops listing/);
        assert.doesNotMatch(result.stderr, /EPIPE|Unhandled|"level":[56]0/);
        assert.equal(existsSync(paged.checkpoint), false, 'a dry run must not write a checkpoint');
      });
    }

    test('copies exactly the owned keys, byte-exact, with Content-Type, Cache-Control and ACL', async () => {
      const result = await runCli(['run', 'all', '--json', '--log-level', 'debug'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      await assertDestinationExact(world);

      const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
      assert.equal(summary.total.missing, world.fixture.missing.length);
      assert.equal(summary.total.relocated, world.fixture.relocated.length);
      assert.equal(summary.total.copied, world.fixture.present.length - world.fixture.relocated.length);
      assert.equal(summary.total.failed, 0);
      assert.equal(summary.total.bytes, world.fixture.presentBytes);

      assertMissingAndRelocatedRecorded(config.checkpoint, result.stderr, world.fixture);
    });

    test('--resume after a finished run copies nothing again', async () => {
      proxy.reset();
      const result = await runCli(['run', 'all', '--resume', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      // Beyond the bucket check (a one-key listing) and the check that it still holds a few of the objects copied,
      // nothing may touch the destination.
      assert.deepEqual(beyondChecks(world.destinationBucket), []);
      await assertDestinationExact(world, { checkAcl: false });
    });
  });
}

describe('key prefixes and ACL settings', () => {
  test('S3_KEY_PREFIX on each side: read under the source prefix, write under the destination prefix', async () => {
    // (A trailing slash giving "//" is covered by the unit tests: s3rver cannot store keys with "//".)
    const world = await makeWorld('current', { source: 'mastodon', destination: 'media' });
    const config = configFor(world);
    const result = await runCli(['run', 'all'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.ok((await s3.listKeys(world.destinationBucket)).every((key) => key.startsWith('media/')));
    await assertDestinationExact(world);
  });

  test('acl = "" sends no ACL at all, not even for backups and suspended accounts (docs/storage-layout.md §1.3, S3_PERMISSION)', async () => {
    const world = await makeWorld('current');
    const config = configFor(world, { acl: '' });
    const result = await runCli(['run', 'all'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    await assertDestinationExact(world, { acl: '' });
  });
});

describe('run --skip-existing', () => {
  let world: World;
  let config: ReturnType<typeof configFor>;
  interface Total {
    rows: number;
    copied: number;
    relocated: number;
    present: number;
    missing: number;
    failed: number;
  }
  const totalOf = (stdout: string) => readJsonLines<{ total?: Total }>(stdout).at(-1)!.total!;
  const objectRequests = () =>
    proxy.requests.filter((request) =>
      ['GetObject', 'PutObject', 'CopyObject', 'CreateMultipartUpload', 'UploadPart', 'DeleteObject'].includes(request.operation),
    );

  before(async () => {
    world = await makeWorld('current', { source: 'mastodon', destination: 'media' });
    config = configFor(world);
  });

  test('on an empty destination it copies everything, as a plain run does', async () => {
    const result = await runCli(['run', 'all', '--skip-existing', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    await assertDestinationExact(world);
    const total = totalOf(result.stdout);
    assert.deepEqual(
      [total.copied + total.relocated, total.present, total.missing, total.failed],
      [world.fixture.present.length, 0, world.fixture.missing.length, 0],
    );
  });

  test('without its checkpoint, a second run over the complete destination sends no object GET or PUT, only listings', async () => {
    rmSync(config.checkpoint);
    proxy.reset();
    const result = await runCli(['run', 'all', '--skip-existing', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      objectRequests().map((request) => `${request.operation} ${request.key}`),
      [],
    );
    const total = totalOf(result.stdout);
    assert.deepEqual([total.copied + total.relocated, total.present, total.missing], [0, world.fixture.present.length, world.fixture.missing.length]);
    // Rows counted as a plain run counts them: every row read, those that own no file too.
    const plain = totalOf((await runCli(['run', 'all', '--dry-run', '--json'], { cwd: config.dir })).stdout);
    assert.equal(total.rows, plain.rows);
    // HEADs only for the objects the source does not hold at their exact key (relocated ones, missing ones).
    const heads = proxy.requests.filter((request) => request.operation === 'HeadObject');
    assert.ok(heads.length <= 4 * (world.fixture.relocated.length + world.fixture.missing.length), `${heads.length} HEADs`);
    // Recorded as done: a --resume after it sends nothing to the destination (it only looks again for the missing).
    proxy.reset();
    const resumed = await runCli(['run', 'all', '--resume', '--json'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(beyondChecks(world.destinationBucket), []);
  });

  test('copies exactly what the destination lacks or holds with another size or content', async () => {
    rmSync(config.checkpoint);
    const [deleted, shortened, altered] = world.fixture.present.filter((object) => !object.relocated && object.size > 2 && object.size < 100_000);
    const key = (object: typeof deleted) => withPrefix(object!.key, world.destinationPrefix);
    await s3.client.send(new DeleteObjectCommand({ Bucket: world.destinationBucket, Key: key(deleted) }));
    await s3.put(world.destinationBucket, key(shortened), shortened!.body!.subarray(1));
    const flipped = Buffer.from(altered!.body!);
    flipped[0]! ^= 1;
    await s3.put(world.destinationBucket, key(altered), flipped);
    proxy.reset();
    const result = await runCli(['run', 'all', '--skip-existing', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(
      objectRequests()
        .filter((request) => request.operation === 'PutObject')
        .map((request) => request.key)
        .sort(),
      [key(deleted), key(shortened), key(altered)].sort(),
    );
    await assertDestinationExact(world, { checkAcl: false });
    const total = totalOf(result.stdout);
    assert.deepEqual([total.copied, total.present], [3, world.fixture.present.length - 3]);
  });

  test('--dry-run over a complete destination plans no copy and counts what is there as present', async () => {
    proxy.reset();
    const result = await runCli(['run', 'all', '--skip-existing', '--dry-run', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(objectRequests(), []);
    const lines = readJsonLines<{ total?: Total }>(result.stdout);
    assert.equal(lines.length, 1, 'no key is planned, only the summary');
    const total = lines[0]!.total!;
    assert.deepEqual([total.present, total.missing], [world.fixture.present.length, world.fixture.missing.length]);
    const text = await runCli(['run', 'all', '--skip-existing', '--dry-run'], { cwd: config.dir });
    assert.match(text.stdout, /^job +rows +objects +present +missing +skipped$/m);
  });

  test('a listing out of byte order stops run and verify by listing with one line naming the way around it', async () => {
    // s3rver lists `x.png ` before `x.png` (it sorts its files, named KEY._S3rver_object, by name): not S3's order.
    const owned = world.fixture.present.find((object) => !object.relocated)!;
    const spaced = `${withPrefix(owned.key, world.destinationPrefix)} `;
    await s3.put(world.destinationBucket, spaced, Buffer.from('x'));
    try {
      const run = await runCli(['run', 'all', '--skip-existing', '--dry-run'], { cwd: config.dir });
      assert.equal(run.code, 1, run.stderr);
      const runLines = run.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
      assert.equal(runLines.length, 1, run.stderr);
      assert.match(runLines[0]!, /^mastosync: stopped: .* not in the byte order .*: run without --skip-existing/);
      const verify = await runCli(['verify', 'all', '--by-listing'], { cwd: config.dir });
      assert.equal(verify.code, 1, verify.stderr);
      assert.match(verify.stderr, /^mastosync: stopped: .* not in the byte order .*: verify with --by-head instead$/m);
    } finally {
      await s3.client.send(new DeleteObjectCommand({ Bucket: world.destinationBucket, Key: spaced }));
    }
  });
});
