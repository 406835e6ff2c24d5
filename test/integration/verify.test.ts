/**
 * `mastosync verify` end to end: after an exact copy it finds nothing and exits 0; after an object is deleted at the
 * destination and others are replaced with a wrong size, Content-Type or content, it names each of them and exits 1.
 * It never writes: the proxy sees only HEAD requests, and no checkpoint appears.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld, type Wanted } from '../support/exact.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let proxy: HttpProxy;
let world: IntegrityWorld;
let config: ReturnType<typeof writeConfig>;

interface Summary {
  total: { objects: number; checked: number; ok: number; missing: number; mismatched: number; missingAtSource: number; errors: number };
}
interface ProblemLine {
  key: string;
  problem: string;
  expected?: string | number;
  actual?: string | number;
}

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('verify-source');
  await s3.createBucket('verify-destination');
  world = await buildIntegrityWorld(db, s3, 'verify-source');
  proxy = await startProxy({ upstreamPort: s3.port });
  config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: 'verify-source' },
    destination: { endpoint: proxy.endpoint, bucket: 'verify-destination' },
  });
  const copy = await runCli(['run', 'all'], { cwd: config.dir });
  assert.equal(copy.code, 0, copy.stderr);
  await assertDestinationExact(s3, 'verify-destination', world);
  rmSync(config.checkpoint);
});

after(async () => {
  rmSync(config.dir, { recursive: true, force: true });
  await proxy?.stop();
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

async function verify(args: string[]) {
  proxy.reset();
  const result = await runCli(['verify', 'all', ...args], { cwd: config.dir });
  // The bucket checks (a one-key listing of each bucket), then one HEAD per object: nothing read whole, nothing written.
  const others = proxy.requests.filter((request) => request.method !== 'HEAD' && request.operation !== 'ListObjects').map((request) => `${request.method} ${request.url}`);
  assert.deepEqual(others, [], 'verify must send the bucket checks and HEAD requests only');
  const checks = proxy.requests.filter((request) => request.operation === 'ListObjects');
  assert.ok(checks.length >= 1 && checks.every((request) => request.query['max-keys'] === '1'), 'the bucket checks list one key, no more');
  assert.equal(existsSync(config.checkpoint), false, 'verify must not write a checkpoint');
  return result;
}

describe('verify', () => {
  test('an exact destination: every owned object checked, nothing off, exit 0', async () => {
    const result = await verify(['--json']);
    assert.equal(result.code, 0, result.stderr);
    const lines = readJsonLines<Summary & ProblemLine>(result.stdout);
    assert.equal(lines.length, 1, `no problem lines expected: ${result.stdout}`);
    const { total } = lines[0]!;
    assert.equal(total.objects, world.fixture.expected.length + 2);
    assert.equal(total.checked, total.objects);
    assert.equal(total.ok, world.wanted.length, 'relocated objects are found at their legacy source key too');
    assert.equal(total.missingAtSource, world.fixture.missing.length);
    assert.equal(total.missing + total.mismatched + total.errors, 0);
  });

  test('--sample checks a random share of the objects', async () => {
    const result = await verify(['--sample', '50', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const { total } = readJsonLines<Summary>(result.stdout).at(-1)!;
    assert.ok(total.checked > 0 && total.checked < total.objects, `${total.checked} of ${total.objects} checked`);
  });

  describe('after the destination was damaged', () => {
    let deleted: Wanted;
    let shortened: Wanted;
    let retyped: Wanted;
    let altered: Wanted;

    before(async () => {
      const small = world.wanted.filter((object) => object.size < 100_000 && object.key === object.sourceKey);
      [deleted, shortened, retyped, altered] = small as [Wanted, Wanted, Wanted, Wanted];
      const original = async (object: Wanted) => (await s3.getObject('verify-destination', object.key))!.body;
      await s3.client.send(new DeleteObjectCommand({ Bucket: 'verify-destination', Key: deleted.key }));
      await s3.put('verify-destination', shortened.key, (await original(shortened)).subarray(1), { contentType: shortened.contentType, cacheControl: shortened.cacheControl });
      await s3.put('verify-destination', retyped.key, await original(retyped), { contentType: 'application/octet-stream', cacheControl: retyped.cacheControl });
      const flipped = Buffer.from(await original(altered));
      flipped[flipped.length >> 1]! ^= 0x01;
      await s3.put('verify-destination', altered.key, flipped, { contentType: altered.contentType, cacheControl: altered.cacheControl });
    });

    test('--json names each damaged object with what differs, then the summary; exit 1', async () => {
      const result = await verify(['--json']);
      assert.equal(result.code, 1, result.stderr);
      const lines = readJsonLines<Summary & ProblemLine>(result.stdout);
      const problems = lines.slice(0, -1).map((line) => `${line.problem} ${line.key}`).sort();
      assert.deepEqual(problems, [
        `content-type ${retyped.key}`,
        `etag ${altered.key}`,
        `etag ${shortened.key}`,
        `missing ${deleted.key}`,
        `size ${shortened.key}`,
      ].sort());
      const size = lines.find((line) => line.problem === 'size')!;
      assert.deepEqual([size.expected, size.actual], [shortened.size, shortened.size - 1]);
      const type = lines.find((line) => line.problem === 'content-type')!;
      assert.deepEqual([type.expected, type.actual], [retyped.contentType, 'application/octet-stream']);
      const { total } = lines.at(-1)!;
      assert.equal(total.missing, 1);
      assert.equal(total.mismatched, 3);
      assert.equal(total.ok, world.wanted.length - 4);
    });

    test('without --json: one line per problem naming the key, and a verdict', async () => {
      const result = await verify([]);
      assert.equal(result.code, 1, result.stderr);
      const output = result.stdout;
      for (const object of [deleted, shortened, retyped, altered]) assert.ok(output.includes(object.key), `${object.key} is not named:\n${output}`);
      assert.match(output, /^missing +.*not at the destination/m);
      assert.match(output, /^verify: 4 of \d+ checked objects are off/m);
    });
  });
});
