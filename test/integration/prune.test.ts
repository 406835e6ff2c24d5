/**
 * `mastosync prune` end to end, on the Mastodon fixture of each schema (current with S3_KEY_PREFIX, v4.3, old) in
 * s3rver behind the recording proxy, and the old one in a folder: the bucket holds every owned object (some at a
 * legacy place), the fixture's orphans (deleted rows, replaced and removed files, stale copies on the wrong side
 * of cache/, a dropped table) and files outside Mastodon's folders.
 * - a dry run names exactly the orphans, with their sizes, and deletes nothing;
 * - --delete over the default limit (10% of what it listed) deletes nothing, says so and exits 2;
 * - --delete within the limit removes exactly the orphans: the bucket then holds what the rows own and the files
 *   outside Mastodon's folders, nothing else (an orphan named as an owned key with a space after it included, which
 *   a DeleteObjects body would name as the owned key to a server that trims XML text); one DeleteObjects per 1000 keys, none one by one; the manifest
 *   names each key deleted;
 * - a row that appears after the listing started keeps its key (checked again just before deleting), and a dry run
 *   does not name the key of a row that appeared before its folder was listed.
 */
import { after, before, describe, test } from 'node:test';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { buildFixture, loadFixture, withPrefix, type Fixture, type SchemaName } from '../support/fixture.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { filesBelow } from '../support/files.js';

interface World {
  readonly schema: SchemaName;
  readonly db: TestDatabase;
  readonly fixture: Fixture;
  readonly bucket: string;
  readonly keyPrefix?: string;
  readonly config: ReturnType<typeof writeConfig>;
  /** Every key in the bucket after loading (with the prefix). */
  readonly loaded: string[];
  /** An owned object's key with a space after it (without the prefix): an orphan that XML parsers may trim. */
  readonly spaced: string;
}

/** Not Mastodon's: never listed, never deleted. */
const OUTSIDE = ['robots.txt', 'cache/site_uploads/files/000/000/003/original/not-ours.png', 'other/accounts/avatars/000/000/001/original/x.png'];
/** Inside Mastodon's folders, but of a shape no row can own: an orphan. */
const STRAY = 'media_attachments/files/.DS_Store';

let postgres: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
const worlds = new Map<SchemaName, World>();

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
  for (const [schema, keyPrefix] of [
    ['current', 'mastodon'],
    ['v4.3', undefined],
    ['old', undefined],
  ] as const) {
    const db = await createDatabase(schema);
    const fixture = buildFixture(schema);
    const bucket = `prune-${schema.replace('.', '-')}`;
    await s3.createBucket(bucket);
    await loadFixture(fixture, db.client, s3, bucket, keyPrefix);
    for (const key of [...OUTSIDE, STRAY]) await s3.put(bucket, OUTSIDE.includes(key) ? key : withPrefix(key, keyPrefix), Buffer.from(key));
    const spaced = `${fixture.present.find((object) => object.sourceKey!.startsWith('media_attachments/files/'))!.sourceKey!} `;
    await s3.put(bucket, withPrefix(spaced, keyPrefix), Buffer.from('a space after the owned key'));
    // Outside the key prefix, a key that would be Mastodon's without it.
    if (keyPrefix !== undefined) await s3.put(bucket, 'accounts/avatars/000/000/001/original/unprefixed.png', Buffer.from('x'));
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket },
      destination: { endpoint: proxy.endpoint, bucket, keyPrefix },
    });
    worlds.set(schema, { schema, db, fixture, bucket, keyPrefix, config, loaded: await s3.listKeys(bucket), spaced });
  }
});

after(async () => {
  for (const world of worlds.values()) {
    rmSync(world.config.dir, { recursive: true, force: true });
    await world.db.drop();
  }
  await proxy?.stop();
  await s3?.stop();
  await postgres?.stop();
});

interface OrphanLine {
  orphan: string;
  job: string;
  size: number;
  reason: string;
}
interface Summary {
  total: { listed: number; orphans: number; deleted: number; keptOnRecheck: number; failed: number };
  limit: number;
  refused: boolean;
  manifest?: string;
}

/** The key of a preview card the fixture has no row for (an orphan), until insertLateCardWhenListing adds it. */
const LATE_CARD = 'cache/preview_cards/images/000/000/557/original/abcdefabcdefabcd.png';

/**
 * Adds the row that owns LATE_CARD when prune first lists `prefix` (before the request goes on), beyond the 3-digit
 * ids preview_cards has when prune starts. Clears the proxy's fault hook at the next `proxy.setFault`.
 */
function insertLateCardWhenListing(world: World, prefix: string): { inserted: boolean } {
  const late = { inserted: false };
  proxy.setFault((request) => {
    if (!late.inserted && request.operation.startsWith('ListObjects') && request.query.prefix === withPrefix(prefix, world.keyPrefix)) {
      late.inserted = true;
      psql(
        world,
        `INSERT INTO preview_cards (id, url, image_file_name, image_content_type, image_storage_schema_version, created_at, updated_at)
         VALUES (557, 'https://late.example', 'abcdefabcdefabcd.png', 'image/png', 1, now(), now())`,
      );
    }
    return undefined;
  });
  return late;
}

/** Runs `sql` at once, blocking: from inside the proxy's hook, before it forwards the request. */
function psql(world: World, sql: string): void {
  const result = spawnSync('psql', [world.db.url, '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
}

function parse(stdout: string): { orphans: OrphanLine[]; summary: Summary } {
  const lines = readJsonLines<OrphanLine & Summary>(stdout);
  return { orphans: lines.filter((line) => line.orphan !== undefined), summary: lines.at(-1)! };
}

/**
 * The orphans of the fixture, and the stray file: what prune must find, by key as the bucket names it (with the
 * destination's key prefix, as an admin looks it up) and size.
 */
function expectedOrphans(world: World): Map<string, number> {
  const orphans = [
    ...world.fixture.orphans.map((orphan) => [orphan.key, orphan.body.length] as const),
    [STRAY, STRAY.length] as const,
    [world.spaced, 'a space after the owned key'.length] as const,
  ];
  return new Map(orphans.map(([key, size]) => [withPrefix(key, world.keyPrefix), size]));
}

/** What the bucket must hold after prune --delete: every owned object where it is, and everything outside. */
function ownedAndOutside(world: World): string[] {
  const owned = world.fixture.present.map((object) => withPrefix(object.sourceKey!, world.keyPrefix));
  const outside = world.loaded.filter((key) => OUTSIDE.includes(key) || (world.keyPrefix !== undefined && !key.startsWith(`${world.keyPrefix}/`)));
  return [...new Set([...owned, ...outside])].sort();
}

for (const schema of ['current', 'v4.3', 'old'] as const) {
  describe(`prune on the ${schema} schema${schema === 'current' ? ', with a key prefix' : ''}`, () => {
    test(
      'a dry run names exactly the orphans with their sizes, and deletes nothing',
      { skip: schema !== 'current' && 'the delete below names them too' },
      async () => {
        const world = worlds.get(schema)!;
        // --dry-run, as for run, is the default made explicit.
        const result = await runCli(['prune', 'all', '--dry-run', '--json'], { cwd: world.config.dir });
        assert.equal(result.code, 0, result.stderr);
        const { orphans, summary } = parse(result.stdout);
        assert.deepEqual(new Map(orphans.map((orphan) => [orphan.orphan, orphan.size])), expectedOrphans(world));
        assert.equal(summary.total.orphans, orphans.length);
        assert.equal(summary.total.deleted, 0);
        // Off a terminal, progress goes to stderr as JSON lines; the last one counts every object listed.
        const progress = readJsonLines<{ msg: string; done: number }>(result.stderr).filter((line) => line.msg === 'progress');
        assert.equal(progress.at(-1)?.done, summary.total.listed, result.stderr);
        assert.deepEqual(await s3.listKeys(world.bucket), world.loaded);
      },
    );

    test(
      'a dry run does not name the key of a row created while it lists, beyond the ids the table had at its start',
      { skip: schema !== 'current' && 'once is enough' },
      async () => {
        const world = worlds.get(schema)!;
        // The row appears just before its folder is listed: its key is listed, and owned by then.
        const late = insertLateCardWhenListing(world, 'cache/preview_cards/images/');
        try {
          const result = await runCli(['prune', 'all', '--json'], { cwd: world.config.dir });
          assert.equal(result.code, 0, result.stderr);
          assert.ok(late.inserted, 'the row was inserted during the listing');
          const expected = expectedOrphans(world);
          assert.ok(expected.delete(withPrefix(LATE_CARD, world.keyPrefix)), 'the fixture holds the key as an orphan');
          const { orphans, summary } = parse(result.stdout);
          assert.deepEqual(new Map(orphans.map((orphan) => [orphan.orphan, orphan.size])), expected);
          assert.equal(summary.total.orphans, expected.size);
        } finally {
          proxy.setFault(undefined);
          psql(world, 'DELETE FROM preview_cards WHERE id = 557');
        }
      },
    );

    test(
      '--delete over the default limit (10% of the listed objects) deletes nothing, says so and exits 2',
      { skip: schema !== 'current' && 'once is enough' },
      async () => {
        const world = worlds.get(schema)!;
        proxy.reset();
        const result = await runCli(['prune', 'all', '--delete', '--json'], { cwd: world.config.dir });
        const { summary } = parse(result.stdout);
        assert.ok(summary.total.orphans > summary.total.listed / 10, 'the fixture has more than 10% orphans');
        assert.equal(result.code, 2, result.stderr);
        assert.equal(summary.refused, true);
        assert.match(result.stderr, /more than --max-delete allows \(\d+, 10% of those listed\).*nothing deleted/);
        // Without --json too: the table on stdout, the refusal once, on stderr.
        const text = await runCli(['prune', 'all', '--delete'], { cwd: world.config.dir });
        assert.equal(text.code, 2, text.stderr);
        assert.match(text.stdout, /^total /m);
        assert.doesNotMatch(text.stdout, /more than --max-delete/);
        assert.equal(text.stderr.match(/more than --max-delete/g)?.length, 1, text.stderr);
        assert.deepEqual(
          proxy.requests.filter((request) => request.operation === 'DeleteObjects' || request.method === 'DELETE'),
          [],
        );
        assert.deepEqual(await s3.listKeys(world.bucket), world.loaded);
      },
    );

    test('--delete within the limit removes exactly the orphans in one request, and writes the manifest', async () => {
      const world = worlds.get(schema)!;
      // In the current schema, a row for one orphan appears after the listing began (when the folders after
      // cache/preview_cards/ are listed: custom_emojis/): that key must survive the check just before deleting,
      // which looks up every id its folder names (557 lies beyond the 3-digit ids preview_cards had at the start).
      const late = schema === 'current' ? insertLateCardWhenListing(world, 'custom_emojis/images/') : undefined;
      proxy.reset();
      // From another folder, as cron runs it (from $HOME): the manifest goes beside the config, as the checkpoint does.
      const elsewhere = mkdtempSync(join(tmpdir(), 'mastosync-prune-cwd-'));
      const result = await runCli(['prune', 'all', '--delete', '--max-delete', '100%', '--config', world.config.file, '--json'], { cwd: elsewhere });
      proxy.setFault(undefined);
      assert.equal(result.code, 0, result.stderr);
      const { orphans, summary } = parse(result.stdout);
      const manifest = summary.manifest ?? '';
      assert.equal(dirname(manifest), world.config.dir, `the manifest ${manifest} is beside the config`);
      assert.match(manifest, /\/mastosync-prune-[\dT-]+Z\.jsonl$/);
      assert.deepEqual(filesBelow(elsewhere), [], 'nothing written where it was started');
      rmSync(elsewhere, { recursive: true });
      const expected = expectedOrphans(world);
      assert.deepEqual(new Map(orphans.map((orphan) => [orphan.orphan, orphan.size])), expected, 'the orphans as listed');
      if (schema === 'current') {
        assert.ok(late?.inserted, 'the row was inserted during the listing');
        assert.equal(summary.total.keptOnRecheck, 1);
        expected.delete(withPrefix(LATE_CARD, world.keyPrefix));
      }
      assert.equal(summary.total.deleted, expected.size);
      const deleted = readJsonLines<{ key: string; size: number }>(readFileSync(manifest, 'utf8'));
      assert.deepEqual(new Map(deleted.map((line) => [line.key, line.size])), expected);

      const wanted = ownedAndOutside(world);
      if (schema === 'current') wanted.push(withPrefix(LATE_CARD, world.keyPrefix));
      assert.deepEqual((await s3.listKeys(world.bucket)).sort(), wanted.sort(), 'exactly the owned objects and those outside Mastodon’s folders');

      const deletes = proxy.requests.filter((request) => request.operation === 'DeleteObjects');
      assert.equal(deletes.length, 1, 'one DeleteObjects for up to 1000 keys');
      assert.deepEqual(
        proxy.requests.filter((request) => request.method === 'DELETE').map((request) => request.key),
        [withPrefix(world.spaced, world.keyPrefix)],
        'only the key a trimming XML parser would misread deleted alone',
      );
    });
  });
}

describe('stopped by SIGINT while listing', () => {
  // Each request waits 400 ms at the proxy; SIGINT goes out as the first listing request arrives, so it lands
  // while that request is in flight: the command must end as interrupted (exit 130) with its summary, not with
  // the aborted request's error, and delete or copy nothing.
  for (const args of [
    ['prune', 'all', '--delete', '--max-delete', '100%', '--manifest', 'stopped.jsonl'],
    ['verify', 'all', '--by-listing'],
    ['run', 'all', '--skip-existing'],
  ]) {
    test(`${args.slice(0, 3).join(' ')} exits 130 with its summary`, async () => {
      const world = worlds.get('current')!;
      let signalled = false;
      let child: ChildProcess | undefined;
      const held = await s3.listKeys(world.bucket);
      proxy.reset();
      proxy.setLatency(400);
      proxy.setFault((request) => {
        if (!signalled && request.operation.startsWith('ListObjects') && request.query['list-type'] === '2' && request.query['max-keys'] !== '1') {
          signalled = true;
          child?.kill('SIGINT');
        }
        return undefined;
      });
      try {
        const result = await runCli(args, {
          cwd: world.config.dir,
          onSpawn: (spawned) => (child = spawned),
        });
        assert.ok(signalled, 'a listing was under way when SIGINT came');
        assert.equal(result.code, 130, result.stderr);
        assert.doesNotMatch(result.stderr, /AbortError|mastosync: error/);
        // The summary's last line says it was interrupted, not "all ... match" or "deleted N objects".
        assert.match(result.stdout.trimEnd().split('\n').at(-1)!, /^(prune: |verify: )?interrupted/, result.stdout);
        assert.deepEqual(
          proxy.requests.filter((request) => ['DeleteObjects', 'PutObject', 'CopyObject'].includes(request.operation) || request.method === 'DELETE'),
          [],
        );
        assert.deepEqual(await s3.listKeys(world.bucket), held);
      } finally {
        proxy.setFault(undefined);
        proxy.setLatency(0);
        rmSync(world.config.checkpoint, { force: true });
      }
    });
  }
});

test('deletes refused (AccessDenied): the summary, then one stopped line naming the permission; exit 1, nothing deleted', async () => {
  const world = worlds.get('current')!;
  // An orphan of its own: the tests above deleted the fixture's.
  const orphan = withPrefix('media_attachments/files/.refused', world.keyPrefix);
  await s3.put(world.bucket, orphan, Buffer.from('an orphan'));
  const held = await s3.listKeys(world.bucket);
  proxy.setFault((request) =>
    request.operation === 'DeleteObjects' || request.method === 'DELETE' ? { kind: 'status', status: 403, code: 'AccessDenied' } : undefined,
  );
  const manifest = join(world.config.dir, 'refused.jsonl');
  try {
    const result = await runCli(['prune', 'all', '--delete', '--max-delete', '100%', '--manifest', manifest], { cwd: world.config.dir });
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stdout, /^total +\d+/m, 'the table');
    assert.match(result.stdout.trimEnd().split('\n').at(-1)!, /^prune: stopped after deleting 0 objects \(0 B\): .*denied access \(AccessDenied on DELETE/);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /^mastosync: stopped: .*give the credentials s3:DeleteObject/);
    assert.deepEqual(await s3.listKeys(world.bucket), held);
  } finally {
    proxy.setFault(undefined);
    rmSync(manifest, { force: true });
    await s3.client.send(new DeleteObjectCommand({ Bucket: world.bucket, Key: orphan }));
  }
});

test('a listing that keeps failing stops with one line naming the store, the folder and the cause', async () => {
  const world = worlds.get('current')!;
  const config = writeConfig({
    databaseUrl: world.db.url,
    source: { endpoint: proxy.endpoint, bucket: world.bucket },
    destination: { endpoint: proxy.endpoint, bucket: world.bucket, keyPrefix: world.keyPrefix },
    retries: 0,
  });
  const folder = withPrefix('accounts/avatars/', world.keyPrefix);
  proxy.setFault((request) =>
    request.operation === 'ListObjectsV2' && request.query.prefix === folder ? { kind: 'status', status: 500, code: 'InternalError' } : undefined,
  );
  try {
    const result = await runCli(['prune', 'all'], { cwd: config.dir });
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.deepEqual(lines.length, 1, result.stderr);
    assert.match(
      lines[0]!,
      new RegExp(`^mastosync: stopped: s3://${world.bucket}\\S* at .* failed to list ${folder} \\(InternalError.*\\), again after retries: run again later$`),
    );
  } finally {
    proxy.setFault(undefined);
    rmSync(config.dir, { recursive: true, force: true });
  }
});

describe('prune on a folder (the old schema)', () => {
  test('--delete --max-delete N (exactly as many as there are) removes exactly the orphans, and nothing outside Mastodon’s folders', async () => {
    const world = worlds.get('old')!;
    const root = mkdtempSync(join(tmpdir(), 'mastosync-prune-fs-'));
    try {
      for (const object of world.fixture.sourceObjects) writeAt(root, object.key, object.body);
      for (const key of [...OUTSIDE, STRAY]) writeAt(root, key, Buffer.from(key));
      writeAt(root, world.spaced, Buffer.from('a space after the owned key'));
      const config = writeConfig({ databaseUrl: world.db.url, source: { type: 'fs', path: root }, destination: { type: 'fs', path: root } });
      const result = await runCli(['prune', 'all', '--delete', '--max-delete', String(expectedOrphans(world).size)], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, new RegExp(`deleted ${expectedOrphans(world).size} objects`));
      const owned = world.fixture.present.map((object) => object.sourceKey!);
      assert.deepEqual(filesBelow(root).sort(), [...new Set([...owned, ...OUTSIDE])].sort());
      rmSync(config.dir, { recursive: true, force: true });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('prune on a folder: the partial files of a killed run', () => {
  test('a temporary file untouched for an hour is an object no row owns: listed and deleted; one being written is not', async () => {
    const world = worlds.get('old')!;
    const root = mkdtempSync(join(tmpdir(), 'mastosync-prune-tmp-'));
    try {
      for (const object of world.fixture.present) writeAt(root, object.sourceKey!, world.fixture.sourceByKey.get(object.sourceKey!)!.body);
      const folder = dirname(world.fixture.present[0]!.sourceKey!);
      // As a SIGKILL leaves them: `.mastosync-<hex>.tmp` next to the object it was to become.
      const stale = `${folder}/.mastosync-0123456789ab.tmp`;
      const writing = `${folder}/.mastosync-ba9876543210.tmp`;
      writeAt(root, stale, Buffer.alloc(5000));
      writeAt(root, writing, Buffer.alloc(3000));
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      utimesSync(join(root, stale), twoHoursAgo, twoHoursAgo);
      const config = writeConfig({ databaseUrl: world.db.url, source: { type: 'fs', path: root }, destination: { type: 'fs', path: root } });
      const listed = await runCli(['prune', 'all'], { cwd: config.dir });
      assert.equal(listed.code, 0, listed.stderr);
      assert.ok(listed.stdout.includes(join(root, stale)), listed.stdout);
      assert.ok(!listed.stdout.includes(writing), 'a write in progress is not listed');
      const deleted = await runCli(['prune', 'all', '--delete', '--max-delete', '1'], { cwd: config.dir });
      assert.equal(deleted.code, 0, deleted.stderr);
      assert.equal(existsSync(join(root, stale)), false, 'the stale partial file is deleted');
      assert.equal(existsSync(join(root, writing)), true, 'the fresh one is kept');
      rmSync(config.dir, { recursive: true, force: true });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

function writeAt(root: string, key: string, body: Buffer): void {
  const path = join(root, key);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, body);
}
