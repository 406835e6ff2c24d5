/**
 * Server-side copy ([sync] copy_mode): with source and destination on one provider, the real CLI copies with
 * CopyObject and no object bytes pass through it. What an admin would check: the destination holds exactly the
 * owned keys, byte for byte, with Mastodon's Content-Type, Cache-Control and ACL, and the source was never read
 * (the recording proxy saw no GET of object bytes) — except for keys that s3rver cannot copy (a '+' in
 * x-amz-copy-source, components.md), which must still arrive, streamed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { CACHE_CONTROL, buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { expectedContentType } from '../support/contentTypes.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig, type ConfigSettings } from '../support/cli.js';
import { assertMissingAndRelocatedRecorded } from '../support/exact.js';

const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');
/**
 * s3rver decodes x-amz-copy-source with decodeURI, which leaves the escapes of reserved characters (%2B for '+',
 * %23 for '#', …) as they are: a copy of such a key finds nothing.
 */
const s3rverCannotCopy = (key: string) => /[;?:@&=+$,#]/.test(key);

let postgres: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
const cleanups: Array<() => Promise<void> | void> = [];
let worlds = 0;

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

interface World {
  fixture: Fixture;
  db: TestDatabase;
  source: string;
  destination: string;
}

async function makeWorld(): Promise<World> {
  worlds += 1;
  const fixture = buildFixture('current');
  const db = await createDatabase('current');
  cleanups.push(() => db.drop());
  const world = { fixture, db, source: `server-source-${worlds}`, destination: `server-destination-${worlds}` };
  await s3.createBucket(world.source);
  await s3.createBucket(world.destination);
  await loadFixture(fixture, db.client, s3, world.source);
  return world;
}

function configFor(world: World, settings: Partial<ConfigSettings>) {
  const config = writeConfig({
    databaseUrl: world.db.url,
    source: { endpoint: proxy.endpoint, bucket: world.source },
    destination: { endpoint: proxy.endpoint, bucket: world.destination },
    ...settings,
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  return config;
}

for (const copyMode of ['server', 'auto'] as const) {
  describe(`copy_mode = "${copyMode}" with source and destination on one endpoint with the same credentials`, () => {
    test('copies on the server: destination exact, ACL sent, no object bytes read from the source', async () => {
      const world = await makeWorld();
      const config = configFor(world, { copyMode });
      proxy.reset();
      const result = await runCli(['run', 'all', '--json', '--log-level', 'debug'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);

      const expectedKeys = world.fixture.present.map((object) => object.key).sort();
      assert.deepEqual((await s3.listKeys(world.destination)).sort(), expectedKeys, 'the destination must hold exactly the owned objects');
      const uploads = proxy.uploadsByKey(world.destination);
      for (const expected of world.fixture.present) {
        const stored = await s3.getObject(world.destination, expected.key);
        assert.ok(stored, `${expected.key} missing`);
        assert.equal(sha256(stored.body), expected.sha256, `${expected.key}: bytes differ from the source`);
        assert.equal(stored.contentType, expected.contentType, `${expected.key}: Content-Type`);
        assert.equal(stored.cacheControl, expected.cacheControl, `${expected.key}: Cache-Control`);
        const upload = uploads.get(expected.key);
        assert.equal(upload?.acl, expected.acl, `${expected.key}: ACL`);
        // s3rver answers NoSuchKey to a copy whose source key it cannot decode; those objects are streamed.
        assert.equal(upload?.operation, s3rverCannotCopy(expected.sourceKey!) ? 'PutObject' : 'CopyObject', `${expected.key}: how it was written`);
      }

      const sourceReads = proxy.requests.filter((request) => request.bucket === world.source && request.operation === 'GetObject');
      const bytesRead = sourceReads.reduce((sum, request) => sum + request.responseBytes, 0);
      const streamed = world.fixture.present.filter((object) => s3rverCannotCopy(object.sourceKey!));
      assert.ok(streamed.length > 0, 'the fixture has a key with "+" (the s3rver copy trap)');
      assert.equal(
        bytesRead,
        streamed.reduce((sum, object) => sum + object.size, 0),
        'only the objects s3rver cannot copy may be read from the source',
      );

      const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
      assert.equal(summary.total.missing, world.fixture.missing.length);
      assert.equal(summary.total.relocated, world.fixture.relocated.length);
      assert.equal(summary.total.failed, 0);
      // The summary counts apart the copies no byte of which passed through the run (its bytes are those streamed).
      assert.equal(summary.total.copiedOnProvider, summary.total.copied! + summary.total.relocated! - streamed.length);
      assertMissingAndRelocatedRecorded(config.checkpoint, result.stderr, world.fixture);
    });
  });
}

test("CopyObject from objects without Cache-Control, or typed application/octet-stream (another tool wrote them): each copy gets Mastodon's Cache-Control and the row's type, as a streamed copy writes them; a source's own values kept", async () => {
  const world = await makeWorld();
  const copied = world.fixture.present.filter((object) => !s3rverCannotCopy(object.sourceKey!));
  const own = copied[0]!;
  // Re-written at the source: one keeps its type and a Cache-Control of its own, the others lose their
  // Cache-Control, and those whose row names a type are labelled as a tool that knew none labels them.
  const untyped = new Set<string>();
  for (const object of copied) {
    const body = (await s3.getObject(world.source, object.sourceKey!))!.body;
    const rowType = expectedContentType(world.fixture, object);
    const generic = object !== own && rowType !== undefined && untyped.size % 2 === 0 ? 'application/octet-stream' : undefined;
    if (rowType !== undefined && object !== own) untyped.add(object.key);
    await s3.put(world.source, object.sourceKey!, body, {
      contentType: object === own ? object.contentType : (generic ?? (untyped.has(object.key) ? 'binary/octet-stream' : object.contentType)),
      cacheControl: object === own ? 'max-age=60' : undefined,
    });
  }
  assert.ok(untyped.size >= 4, 'objects with a generic type at the source');
  const config = configFor(world, { copyMode: 'server' });
  proxy.reset();
  const result = await runCli(['run', 'all', '--quiet'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  const uploads = proxy.uploadsByKey(world.destination);
  for (const object of copied) {
    assert.equal(uploads.get(object.key)?.operation, 'CopyObject', `${object.key}: copied on the provider`);
    const stored = (await s3.getObject(world.destination, object.key))!;
    assert.equal(sha256(stored.body), object.sha256, `${object.key}: bytes`);
    assert.equal(stored.cacheControl, object === own ? 'max-age=60' : CACHE_CONTROL, `${object.key}: Cache-Control`);
    const wanted = untyped.has(object.key) ? expectedContentType(world.fixture, object) : object.contentType;
    assert.equal(stored.contentType, wanted, `${object.key}: Content-Type`);
    assert.equal(uploads.get(object.key)?.acl, object.acl, `${object.key}: ACL`);
  }
});

test('copy_mode = "stream" streams even on one endpoint: every object is read (GET) and written (PUT)', async () => {
  const world = await makeWorld();
  const config = configFor(world, { copyMode: 'stream' });
  proxy.reset();
  const result = await runCli(['run', 'all'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  const operations = new Set([...proxy.uploadsByKey(world.destination).values()].map((upload) => upload.operation));
  assert.ok(!operations.has('CopyObject'), 'no CopyObject in stream mode');
  const read = new Set(proxy.requests.filter((request) => request.operation === 'GetObject' && request.status === 200).map((request) => request.key));
  for (const expected of world.fixture.present) assert.ok(read.has(expected.sourceKey), `${expected.sourceKey} was not read`);
});

test('copy_mode = "server" with a folder on one side is a usage error, and nothing is written', async () => {
  const world = await makeWorld();
  const folder = `/tmp/mastosync-server-copy-${process.pid}`;
  mkdirSync(folder, { recursive: true });
  cleanups.push(() => rmSync(folder, { recursive: true, force: true }));
  const config = configFor(world, { copyMode: 'server', destination: { type: 'fs', path: folder } });
  const result = await runCli(['run', 'all'], { cwd: config.dir });
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /copy_mode = "server".*must both be type = "s3"/);
  assert.equal(existsSync(config.checkpoint), false, 'nothing is written');
});

test('copy_mode = "server" onto another provider names the source bucket it cannot read, and the fix to stream', async () => {
  const world = await makeWorld();
  const other = await startS3();
  cleanups.push(() => other.stop());
  await other.createBucket(world.destination);
  const config = configFor(world, { copyMode: 'server', destination: { endpoint: other.endpoint, bucket: world.destination } });
  const result = await runCli(['run', 'all'], { cwd: config.dir });
  assert.equal(result.code, 1, result.stderr);
  const stopped = result.stderr.split('\n').filter((line) => line.startsWith('mastosync: stopped:'));
  assert.equal(stopped.length, 1, result.stderr);
  // The destination bucket exists (checked at the start); the other provider has no source bucket to copy from.
  assert.match(stopped[0]!, new RegExp(`bucket "${world.destination}" .*cannot read from \\[source\\] bucket "${world.source}"`));
  assert.match(stopped[0]!, /copy_mode = "stream"/);
  assert.doesNotMatch(stopped[0]!, /does not exist|create it/);
});
