/**
 * `mastosync verify` end to end: after an exact copy it finds nothing and exits 0; after an object is deleted at the
 * destination and others are replaced with a wrong size, Content-Type, Cache-Control or content, it names each of
 * them and exits 1. It never writes: the proxy sees only HEAD requests, and no checkpoint appears. `--repair` then
 * copies exactly those objects again, after which the destination is exact and verify exits 0. Objects the source
 * lacks are counted apart from the matches.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { CACHE_CONTROL } from '../support/fixture.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld, type Wanted } from '../support/exact.js';
import type { VerifyJobSummary } from '../../src/sync/verify.js';
import { mastodonPrefixes } from '../../src/mastodon/owners.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let proxy: HttpProxy;
let world: IntegrityWorld;
let config: ReturnType<typeof writeConfig>;

interface Summary {
  total: Omit<VerifyJobSummary, 'job'>;
}
interface RepairLine {
  key: string;
  repair: string;
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
  const others = proxy.requests
    .filter((request) => request.method !== 'HEAD' && request.operation !== 'ListObjects')
    .map((request) => `${request.method} ${request.url}`);
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
    // Rows counted as run counts them: every row read, those that own no file too.
    const plain = await runCli(['run', 'all', '--dry-run', '--json'], { cwd: config.dir });
    assert.equal(total.rows, readJsonLines<{ total?: { rows: number } }>(plain.stdout).at(-1)!.total!.rows);
    const listed = readJsonLines<Summary>((await runCli(['verify', 'all', '--by-listing', '--json'], { cwd: config.dir })).stdout).at(-1)!;
    assert.equal(listed.total.rows, total.rows, 'by listing too');
  });

  test('--quiet prints no progress line (a cron job mails nothing); without it, one JSON line at least', async () => {
    const quiet = await verify(['--quiet']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.doesNotMatch(quiet.stderr, /"msg":"progress"/);
    const shown = await verify(['--progress-interval', '1']);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stderr, /"msg":"progress"/);
  });

  test('--sample checks a random share of the objects', async () => {
    const result = await verify(['--sample', '50', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const { total } = readJsonLines<Summary>(result.stdout).at(-1)!;
    assert.ok(total.checked > 0 && total.checked < total.objects, `${total.checked} of ${total.objects} checked`);
    // The progress goes through every object in scope, those the sample leaves out too, so it ends at 100%.
    const progress = readJsonLines<{ msg: string; done: number }>(result.stderr).filter((line) => line.msg === 'progress');
    assert.equal(progress.at(-1)?.done, total.objects, result.stderr);
  });

  describe('after the destination was damaged', () => {
    let deleted: Wanted;
    let shortened: Wanted;
    let retyped: Wanted;
    let altered: Wanted;
    let recached: Wanted;

    before(async () => {
      const small = world.wanted.filter((object) => object.size < 100_000 && object.key === object.sourceKey);
      [deleted, shortened, retyped, altered, recached] = small as [Wanted, Wanted, Wanted, Wanted, Wanted];
      const original = async (object: Wanted) => (await s3.getObject('verify-destination', object.key))!.body;
      await s3.client.send(new DeleteObjectCommand({ Bucket: 'verify-destination', Key: deleted.key }));
      await s3.put('verify-destination', shortened.key, (await original(shortened)).subarray(1), {
        contentType: shortened.contentType,
        cacheControl: shortened.cacheControl,
      });
      await s3.put('verify-destination', retyped.key, await original(retyped), { contentType: 'application/octet-stream', cacheControl: retyped.cacheControl });
      const flipped = Buffer.from(await original(altered));
      flipped[flipped.length >> 1]! ^= 0x01;
      await s3.put('verify-destination', altered.key, flipped, { contentType: altered.contentType, cacheControl: altered.cacheControl });
      // As a copy by a tool that drops Cache-Control leaves it: browsers and the CDN would fetch it again and again.
      await s3.put('verify-destination', recached.key, await original(recached), { contentType: recached.contentType });
    });

    test('--json names each damaged object with what differs, then the summary; exit 1', async () => {
      const result = await verify(['--json']);
      assert.equal(result.code, 1, result.stderr);
      const lines = readJsonLines<Summary & ProblemLine>(result.stdout);
      const problems = lines
        .slice(0, -1)
        .map((line) => `${line.problem} ${line.key}`)
        .sort();
      assert.deepEqual(
        problems,
        [
          `cache-control ${recached.key}`,
          `content-type ${retyped.key}`,
          `etag ${altered.key}`,
          `etag ${shortened.key}`,
          `missing ${deleted.key}`,
          `size ${shortened.key}`,
        ].sort(),
      );
      const size = lines.find((line) => line.problem === 'size')!;
      assert.deepEqual([size.expected, size.actual], [shortened.size, shortened.size - 1]);
      const type = lines.find((line) => line.problem === 'content-type')!;
      assert.deepEqual([type.expected, type.actual], [retyped.contentType, 'application/octet-stream']);
      const cache = lines.find((line) => line.problem === 'cache-control')!;
      assert.deepEqual([cache.expected, cache.actual], [recached.cacheControl, 'none']);
      const { total } = lines.at(-1)!;
      assert.equal(total.missing, 1);
      assert.equal(total.mismatched, 4);
      assert.deepEqual([total.sizeDiffers, total.contentTypeDiffers, total.cacheControlDiffers, total.md5Differs], [1, 1, 1, 2]);
      assert.equal(total.ok, world.wanted.length - 5);
      assert.equal(total.missingAtSource, world.fixture.missing.length, 'objects the source lacks are counted apart');
    });

    test('without --json: one line per problem naming the key, and a verdict', async () => {
      const result = await verify([]);
      assert.equal(result.code, 1, result.stderr);
      const output = result.stdout;
      for (const object of [deleted, shortened, retyped, altered, recached]) assert.ok(output.includes(object.key), `${object.key} is not named:\n${output}`);
      assert.match(output, /^missing +.*not at the destination/m);
      assert.match(output, new RegExp(`^cache-control differs +${recached.key} .*: ${recached.cacheControl} at the source, none at the destination$`, 'm'));
      assert.match(output, /^mismatched: 1 size, 1 Content-Type, 1 Cache-Control, 2 MD5/m);
      assert.match(output, /^verify: 5 of \d+ checked objects are off.*--repair/m);
    });

    test('--repair copies again exactly the objects found off, as run does; then the destination is exact and verify exits 0', async () => {
      proxy.reset();
      const result = await runCli(['verify', 'all', '--repair', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const lines = readJsonLines<Summary & ProblemLine & RepairLine>(result.stdout);
      const damaged = [deleted, shortened, retyped, altered, recached].map((object) => object.key).sort();
      const repairs = lines.filter((line) => line.repair !== undefined);
      assert.deepEqual(
        repairs.map((line) => `${line.repair} ${line.key}`).sort(),
        damaged.map((key) => `copied ${key}`),
      );
      const { total } = lines.at(-1)!;
      assert.deepEqual([total.missing, total.mismatched, total.repaired, total.unrepaired], [1, 4, 5, 0]);
      // Only those five were written: one PUT each, nothing else at the destination.
      const written = proxy.requests
        .filter((request) => request.bucket === 'verify-destination' && request.method !== 'HEAD' && request.method !== 'GET')
        .map((request) => `${request.method} ${request.key}`);
      assert.deepEqual(
        written.sort(),
        damaged.map((key) => `PUT ${key}`),
      );
      // With the ACL a run gives each object: private ones stay private.
      const acls = proxy.aclByKey('verify-destination');
      for (const key of damaged) assert.equal(acls.get(key), world.fixture.expectedByKey.get(key)!.acl, `${key}: ACL`);
      assert.equal(existsSync(config.checkpoint), false, 'a repair writes no checkpoint');

      await assertDestinationExact(s3, 'verify-destination', world);
      const again = await verify([]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.match(again.stdout, /^verify: all \d+ checked objects the source has match it$/m);
    });
  });

  describe('after the source lost an object the destination still has', () => {
    let lost: Wanted;

    before(async () => {
      lost = world.wanted.find((object) => object.size < 100_000 && object.key === object.sourceKey)!;
      await s3.client.send(new DeleteObjectCommand({ Bucket: 'verify-source', Key: lost.sourceKey }));
    });

    test('it is counted as missing at the source, apart from the matches; not a fault of the copy: exit 0', async () => {
      const result = await verify(['--json']);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      const lines = readJsonLines<Summary>(result.stdout);
      assert.equal(lines.length, 1, result.stdout);
      const { total } = lines[0]!;
      assert.equal(total.missingAtSource, world.fixture.missing.length + 1);
      assert.equal(total.ok, world.wanted.length - 1);

      const text = await verify([]);
      assert.equal(text.code, 0);
      assert.match(text.stdout, new RegExp(`^missing at source: ${world.fixture.missing.length + 1} objects the source lacks:`, 'm'));
    });

    test('--repair has nothing to copy: exit 0, nothing written', async () => {
      proxy.reset();
      const result = await runCli(['verify', 'all', '--repair', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.deepEqual(
        proxy.requests.filter((request) => request.method === 'PUT' || request.method === 'POST' || request.method === 'DELETE'),
        [],
      );
      assert.equal(readJsonLines<Summary>(result.stdout).at(-1)!.total.repaired, 0);
    });
  });

  describe('by listing', () => {
    /**
     * Past 2000 objects verify lists by default. Many small media rows (audio: the original only) around both
     * id widths: a 9-digit id whose partition begins an 18-digit one's (their keys interleave in a listing), and a
     * 12- and a 13-digit id that share one partition folder. Their objects are written straight into s3rver's
     * folder, for speed; damage goes through S3.
     */
    const extraIds = [
      ...Array.from({ length: 2100 }, (_, index) => String(700_000 + index)),
      '109349205',
      '109349205816583400',
      '109349205816583999',
      '100000000000',
      '1000000000000',
    ];
    const keyOf = (id: string) => {
      const padded = id.padStart(id.length < 10 ? 9 : 12, '0');
      const partition = (padded.match(/\d{3}/g) ?? []).join('/');
      return `media_attachments/files/${partition}/original/${id}.mp3`;
    };
    const bodyOf = (id: string) => Buffer.from(`audio ${id} `.repeat(3));
    let deleted: string;
    let truncated: string;
    let replaced: string;

    before(async () => {
      await db.client.query(
        `INSERT INTO media_attachments (id, account_id, type, file_file_name, file_content_type, file_file_size, created_at, updated_at)
         SELECT g::bigint, 1, 4, g || '.mp3', 'audio/mpeg', 30, now(), now() FROM unnest($1::text[]) g`,
        [extraIds],
      );
      for (const bucket of ['verify-source', 'verify-destination']) {
        for (const id of extraIds) {
          const file = join(s3.directory, bucket, `${keyOf(id)}._S3rver_object`);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, bodyOf(id));
          // The headers Mastodon writes: without them s3rver answers binary/octet-stream, which a run replaces by the row's type.
          writeFileSync(
            join(s3.directory, bucket, `${keyOf(id)}._S3rver_metadata.json`),
            JSON.stringify({ 'content-type': 'audio/mpeg', 'cache-control': CACHE_CONTROL }),
          );
        }
      }
      [deleted, truncated, replaced] = [keyOf('700100'), keyOf('109349205816583400'), keyOf('109349205')];
      await s3.client.send(new DeleteObjectCommand({ Bucket: 'verify-destination', Key: deleted }));
      await s3.put('verify-destination', truncated, bodyOf('109349205816583400').subarray(2));
      await s3.put('verify-destination', replaced, Buffer.from(bodyOf('109349205').toString().toUpperCase()));
    });

    test('finds a deleted, a truncated and a replaced object at about one request per thousand objects; exit 1', async () => {
      proxy.reset();
      const result = await runCli(['verify', 'all', '--json'], { cwd: config.dir });
      assert.equal(result.code, 1, result.stdout + result.stderr);
      const lines = readJsonLines<Summary & ProblemLine & { method?: string }>(result.stdout);
      assert.deepEqual(
        lines
          .slice(0, -1)
          .map((line) => `${line.problem} ${line.key}`)
          .sort(),
        [`etag ${replaced}`, `etag ${truncated}`, `missing ${deleted}`, `size ${truncated}`].sort(),
      );
      const summary = lines.at(-1)!;
      assert.equal(summary.method, 'listing');
      const { total } = summary;
      const owned = world.fixture.expected.length + 2 + extraIds.length;
      assert.equal(total.objects, owned);
      assert.equal(total.checked, owned);
      // Off a terminal, the progress goes to stderr as JSON lines, as run's does; the last one counts every object.
      const progress = readJsonLines<{ msg: string; done: number; owned: number | null }>(result.stderr).filter((line) => line.msg === 'progress');
      assert.ok(progress.length >= 1, result.stderr);
      assert.equal(progress.at(-1)!.done, owned);
      assert.ok([owned, null].includes(progress.at(-1)!.owned), 'the objects in scope, once counted');
      assert.deepEqual([total.missing, total.mismatched, total.sizeDiffers, total.md5Differs], [1, 2, 1, 2]);
      // The source lost one object earlier in this file; the fixture's own missing ones are missing there too.
      assert.equal(total.missingAtSource, world.fixture.missing.length + 1);
      assert.equal(total.ok, owned - 3 - total.missingAtSource);

      const written = proxy.requests.filter((request) => !['GET', 'HEAD'].includes(request.method));
      assert.deepEqual(written, [], 'verify writes nothing');
      const listings = proxy.requests.filter((request) => request.operation === 'ListObjectsV2');
      const heads = proxy.requests.filter((request) => request.operation === 'HeadObject');
      const reads = proxy.requests.filter((request) => request.operation === 'GetObject');
      assert.deepEqual(reads, [], 'no object is read');
      // Each folder Mastodon writes listed once per side, in pages of 1000; HEADs only for the objects the source
      // does not list at their exact key (relocated, or missing there), a few alternates each.
      const folders = mastodonPrefixes().length;
      assert.ok(listings.length <= 2 * folders + 2 * Math.ceil(owned / 1000), `${listings.length} listings for ${folders} folders`);
      const notAtExactKey = world.fixture.missing.length + 1 + world.wanted.filter((object) => object.key !== object.sourceKey).length;
      assert.ok(heads.length <= 4 * notAtExactKey, `${heads.length} HEADs for ${notAtExactKey} objects not at their exact key at the source`);
      const bucketChecks = 2;
      assert.ok(proxy.requests.length <= owned / 900 + 3 * 2 * folders + heads.length + bucketChecks, `${proxy.requests.length} requests for ${owned} objects`);
    });

    test('--sample HEADs a share for Content-Type and Cache-Control, and the text output says what was checked', async () => {
      const result = await runCli(['verify', 'all', '--by-listing', '--sample', '1'], { cwd: config.dir });
      assert.equal(result.code, 1, result.stdout + result.stderr);
      assert.match(result.stdout, /^by listing: presence, size and MD5 of every object; Content-Type and Cache-Control by HEAD on a 1% sample$/m);
      assert.match(result.stdout, /^verify: 3 of \d+ checked objects are off.*--repair/m);
    });

    test('with a folder on one side the text output does not claim MD5s were compared: a folder keeps none', async () => {
      const folder = join(config.dir, 'system');
      mkdirSync(folder);
      const toFolder = writeConfig({
        databaseUrl: db.url,
        source: { endpoint: proxy.endpoint, bucket: 'verify-source' },
        destination: { type: 'fs', path: folder },
      });
      try {
        const copy = await runCli(['run', 'backups'], { cwd: toFolder.dir });
        assert.equal(copy.code, 0, copy.stderr);
        const result = await runCli(['verify', 'backups', '--by-listing'], { cwd: toFolder.dir });
        assert.equal(result.code, 0, result.stdout + result.stderr);
        assert.match(result.stdout, /^by listing: presence and size of every object \(a folder keeps no MD5\); Content-Type and Cache-Control not checked/m);
      } finally {
        rmSync(toFolder.dir, { recursive: true, force: true });
      }
    });
  });

  describe('a folder destination with a byte changed, the size the same (tester F1)', () => {
    test('verify says how many objects it compared by size only and why; --checksum reads both sides and finds it', async () => {
      const folder = join(config.dir, 'system-f1');
      mkdirSync(folder);
      const toFolder = writeConfig({
        databaseUrl: db.url,
        source: { endpoint: proxy.endpoint, bucket: 'verify-source' },
        destination: { type: 'fs', path: folder },
        concurrency: 2,
      });
      try {
        const copy = await runCli(['run', 'accounts'], { cwd: toFolder.dir });
        assert.equal(copy.code, 0, copy.stderr);
        // One the copy wrote (an earlier case removes one from the source).
        const altered = world.wanted.find((object) => object.job === 'accounts' && existsSync(join(folder, object.key)))!;
        const file = join(folder, altered.key);
        const bytes = readFileSync(file);
        bytes[bytes.length >> 1]! ^= 0x01;
        writeFileSync(file, bytes);

        const bySize = await runCli(['verify', 'accounts', '--by-head', '--json'], { cwd: toFolder.dir });
        assert.equal(bySize.code, 0, 'by size the altered object matches: that is all a folder allows without --checksum');
        const { total } = readJsonLines<Summary>(bySize.stdout).at(-1)!;
        assert.equal(total.sizeOnly, total.checked - total.missingAtSource, 'every object found was compared by size only');
        assert.equal(total.checksummed, 0);
        const text = await runCli(['verify', 'accounts', '--by-head'], { cwd: toFolder.dir });
        assert.match(
          text.stdout,
          new RegExp(
            `^size only: ${total.sizeOnly} objects compared by presence and size, not their bytes: the destination is a folder, which keeps no MD5; verify --checksum reads and hashes both sides of those$`,
            'm',
          ),
        );

        const checked = await runCli(['verify', 'accounts', '--checksum', '--json'], { cwd: toFolder.dir });
        assert.equal(checked.code, 1, checked.stdout + checked.stderr);
        const lines = readJsonLines<ProblemLine & Summary>(checked.stdout);
        const problems = lines.filter((line) => line.problem !== undefined);
        assert.deepEqual(
          problems.map((line) => [line.key, line.problem]),
          [[join(folder, altered.key), 'checksum']],
        );
        assert.notEqual(problems[0]!.expected, problems[0]!.actual);
        const checkedTotal = lines.at(-1)!.total;
        assert.equal(checkedTotal.checksummed, total.sizeOnly, 'each object compared by size before is read and hashed now');
        assert.equal(checkedTotal.sizeOnly, 0);
        assert.equal(checkedTotal.md5Differs, 1);
      } finally {
        rmSync(toFolder.dir, { recursive: true, force: true });
      }
    });
  });
});
