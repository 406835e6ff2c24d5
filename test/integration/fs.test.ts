/**
 * The filesystem backend end to end, as an admin moving off (or onto) local storage would check it:
 * - from a folder laid out as Mastodon's public/system to an S3 bucket: exactly the owned objects arrive (no
 *   orphan lying in the folder is copied), byte for byte, with the Content-Type Mastodon would have sent (the
 *   database's for `original`, the style's format for the other styles), Mastodon's Cache-Control and ACL;
 * - from a bucket to a folder: every owned object becomes a file at its key, with Mastodon's modes (0644, or
 *   0600 for a private object, whatever the umask), and no temporary file is left behind;
 * - a copy whose source body is cut short on every attempt leaves neither a partial file nor a temporary one.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { BIG_OBJECT_SIZE, CACHE_CONTROL, publicFolderMode, type Fixture } from '../support/fixture.js';
import { expectedContentType } from '../support/contentTypes.js';
import type { TestDatabase } from '../support/postgres.js';
import type { S3Server } from '../support/s3.js';
import { startFixtureWorld, type FixtureWorld } from '../support/fixtureWorld.js';
import type { HttpProxy } from '../support/httpProxy.js';
import { filesBelow } from '../support/files.js';
import { runCli } from '../support/cli.js';
import { FsStore } from '../../src/storage/fs.js';

const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');

let world: FixtureWorld;
let s3: S3Server;
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;

before(async () => {
  world = await startFixtureWorld('fs-source');
  ({ s3, proxy, fixture, db } = world);
});

after(async () => {
  await world?.stop();
});

function tempFolder(name: string): string {
  const folder = mkdtempSync(join(tmpdir(), `mastosync-${name}-`));
  world.onStop(() => rmSync(folder, { recursive: true, force: true }));
  return folder;
}

/** A public/system folder holding the fixture's source objects (orphans too), and a config from it to a new `bucket`. */
async function folderToBucket(bucket: string) {
  const system = join(tempFolder('public'), 'public', 'system');
  for (const object of fixture.sourceObjects) {
    const path = join(system, object.key);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, object.body);
  }
  await s3.createBucket(bucket);
  const config = world.writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: system }, destination: { endpoint: proxy.endpoint, bucket } });
  return config;
}

describe('filesystem backend', () => {
  test('public/system folder → bucket: exactly the owned objects, bytes, Content-Type from the database and the style, Cache-Control, ACL', async () => {
    assert.ok(fixture.orphans.length >= 5, 'the folder holds orphans that must stay behind');
    const config = await folderToBucket('from-folder');

    const result = await runCli(['run', 'all', '--json', '--quiet'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
    assert.equal(summary.total.missing, fixture.missing.length);
    assert.equal(summary.total.relocated, fixture.relocated.length, 'legacy keys in the folder are found as in a bucket');

    assert.deepEqual(
      (await s3.listKeys('from-folder')).sort(),
      fixture.present.map((object) => object.key).sort(),
      'no orphan copied, no owned object left out',
    );
    const acls = proxy.aclByKey('from-folder');
    for (const expected of fixture.present) {
      const stored = (await s3.getObject('from-folder', expected.key))!;
      assert.equal(sha256(stored.body), expected.sha256, `${expected.key}: bytes`);
      assert.equal(stored.cacheControl, CACHE_CONTROL, `${expected.key}: Cache-Control`);
      assert.equal(acls.get(expected.key), expected.acl, `${expected.key}: ACL`);
      const contentType = expectedContentType(fixture, expected);
      // A NULL content type in the database leaves the type to the server's default.
      if (contentType !== undefined) assert.equal(stored.contentType, contentType, `${expected.key}: Content-Type`);
    }
    // The traps: a static GIF's small .png gets the style's type, an extensionless style the database's.
    assert.equal((await s3.getObject('from-folder', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'))!.contentType, 'image/png');
    assert.equal((await s3.getObject('from-folder', 'media_attachments/files/000/000/013/small/screenshot'))!.contentType, 'image/png');
    assert.equal((await s3.getObject('from-folder', 'site_uploads/files/000/000/004/original/fa1c0fa1c0fa1c0f.ico'))!.contentType, 'image/x-icon');
  });

  test("public/system folder → bucket: verify reports an object without Cache-Control (a copy by a tool that drops it), --repair writes Mastodon's", async () => {
    const config = await folderToBucket('from-folder-cc');
    assert.equal((await runCli(['run', 'all', '--quiet'], { cwd: config.dir })).code, 0);
    // Re-uploaded as `aws s3 sync` or rclone would: the same bytes and type, no Cache-Control.
    const tampered = fixture.present.find((object) => object.key.startsWith('accounts/headers/') && !object.relocated)!;
    const stored = (await s3.getObject('from-folder-cc', tampered.key))!;
    await s3.put('from-folder-cc', tampered.key, stored.body, { contentType: stored.contentType });
    assert.equal((await s3.getObject('from-folder-cc', tampered.key))!.cacheControl, undefined);

    const found = await runCli(['verify', 'accounts', '--by-head', '--json'], { cwd: config.dir });
    assert.equal(found.code, 1, found.stdout + found.stderr);
    const lines = found.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.filter((line) => line.problem !== undefined).map(({ key, problem, expected, actual }) => ({ key, problem, expected, actual })),
      [{ key: tampered.key, problem: 'cache-control', expected: CACHE_CONTROL, actual: 'none' }],
    );
    const repaired = await runCli(['verify', 'accounts', '--by-head', '--repair'], { cwd: config.dir });
    assert.equal(repaired.code, 0, repaired.stdout + repaired.stderr);
    assert.equal((await s3.getObject('from-folder-cc', tampered.key))!.cacheControl, CACHE_CONTROL);
    const again = await runCli(['verify', 'accounts', '--by-head'], { cwd: config.dir });
    assert.equal(again.code, 0, again.stdout + again.stderr);
  });

  test('bucket → folder: a file per owned object at its key, Mastodon modes, no temporary file left', async () => {
    const system = tempFolder('system');
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fs-source' },
      destination: { type: 'fs', path: system },
    });

    const result = await runCli(['run', 'all', '--quiet'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr);

    assert.deepEqual(filesBelow(system), fixture.present.map((object) => object.key).sort(), 'exactly the owned files, and no .tmp');
    for (const expected of fixture.present) {
      const path = join(system, expected.key);
      assert.equal(sha256(readFileSync(path)), expected.sha256, `${expected.key}: bytes`);
      const mode = statSync(path).mode & 0o777;
      assert.equal(mode, publicFolderMode(expected), `${expected.key}: mode ${mode.toString(8)}`);
    }
    for (const table of ['backups', 'media_attachments'] as const) {
      assert.ok(
        fixture.present.some((object) => object.acl === 'private' && object.table === table),
        `the fixture has private ${table} (backups, suspended media)`,
      );
    }
  });

  test('a source body cut short on every attempt leaves no partial file and no temporary file', async () => {
    const big = fixture.present.find((object) => object.size === BIG_OBJECT_SIZE)!;
    const system = tempFolder('cut');
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket: 'fs-source' },
      destination: { type: 'fs', path: system },
      retries: 1,
    });
    proxy.setFault((request) => (request.operation === 'GetObject' && request.key === big.key ? { kind: 'truncate', afterBytes: 3 * 1024 * 1024 } : undefined));
    try {
      const result = await runCli(['run', 'media_attachments', '--json', '--quiet'], { cwd: config.dir });
      assert.equal(result.code, 1, `one object failed: ${result.stderr}`);
      const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
      assert.equal(summary.total.failed, 1);
    } finally {
      proxy.setFault(undefined);
    }
    const files = filesBelow(system);
    assert.ok(!files.includes(big.key), 'no file at the key of the object that never arrived whole');
    assert.deepEqual(
      files.filter((file) => file.includes('.tmp')),
      [],
      'no temporary file left',
    );
    const media = fixture.present.filter((object) => object.table === 'media_attachments' && object.key !== big.key).map((object) => object.key);
    assert.deepEqual(files, media.sort(), 'every other media object arrived');
  });
});

test('re-applying an ACL in a folder never follows a link: the file it points to, maybe outside the folder, keeps its mode', async () => {
  const world = mkdtempSync(join(tmpdir(), 'mastosync-acl-link-'));
  try {
    const outside = join(world, 'outside.txt');
    writeFileSync(outside, 'not ours');
    chmodSync(outside, 0o644);
    const key = 'media_attachments/files/000/000/001/original/a.png';
    mkdirSync(dirname(join(world, 'system', key)), { recursive: true });
    symlinkSync(outside, join(world, 'system', key));
    const store = new FsStore(join(world, 'system'), 'destination');
    assert.equal(await store.access.compare(key, 'private'), undefined);
    assert.equal(await store.access.set(key, 'private'), false);
    assert.equal(statSync(outside).mode & 0o777, 0o644);
  } finally {
    rmSync(world, { recursive: true, force: true });
  }
});
