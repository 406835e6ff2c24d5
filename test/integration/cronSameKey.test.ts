/**
 * A file Mastodon writes again under the SAME key, its row's `*_updated_at` stamped anew, soon after a cron run
 * copied it: a name kept on re-upload (an avatar `me.png` before v3.1, a site upload before v4.0) or a style
 * reprocessed in place. The next `run all --resume` must copy the new bytes, with the default change margin, whether
 * the checkpoint says the key was copied recently (a compacted recent line, as 0.1.0 writes it too) or above the
 * watermark by a run cut short (a line without the row's stamp, as 0.1.0 wrote them). Real PostgreSQL and s3rver;
 * the destination's bytes and ETag are compared with the source's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { CACHE_CONTROL } from '../support/fixture.js';
import { createDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';

const SOURCE = 'samekey-source';
const NOW = `(now() AT TIME ZONE 'UTC')`;
/** An upload from Mastodon's pre-3.1 days: long before any run's start less the margin. */
const LONG_AGO = `'2019-06-01 12:00:00'`;

const AVATAR = 'accounts/avatars/000/000/500/original/me.png';
/** An avatar never changed: an old checkpoint's line for it must still count (no copy storm). */
const UNCHANGED_AVATAR = 'accounts/avatars/000/000/501/original/old.png';
const BELOW_AVATAR = 'accounts/avatars/000/000/010/original/first.png';
const SITE_UPLOAD = ['original', '@1x', '@2x'].map((style) => `site_uploads/files/000/000/001/${style}/banner.png`);
const MEDIA_ORIGINAL = 'media_attachments/files/000/000/100/original/photo.png';
const MEDIA_SMALL = 'media_attachments/files/000/000/100/small/photo.png';

let s3: S3Server;

before(async () => {
  s3 = await startS3();
  await s3.createBucket(SOURCE);
});

after(async () => {
  await s3?.stop();
});

/** One Mastodon-shaped world: a database, a destination bucket and a config whose checkpoint is its own. */
async function world(name: string) {
  const db = await createDatabase('current');
  const destination = `samekey-${name}`;
  await s3.createBucket(destination);
  const store = (bucket: string) => ({ endpoint: s3.endpoint, bucket });
  const config = writeConfig({ databaseUrl: db.url, source: store(SOURCE), destination: store(destination), concurrency: 2 });
  return { db, destination, config };
}

type World = Awaited<ReturnType<typeof world>>;

/** Writes `size` new bytes at the source under `key`, as Paperclip's upload does (the same key, new content). */
async function write(key: string, size: number): Promise<Buffer> {
  const body = randomBytes(size);
  await s3.put(SOURCE, key, body, { contentType: 'image/png', cacheControl: CACHE_CONTROL, acl: 'public-read' });
  return body;
}

/** The cron line of docs/operations.md (default change margin), with --json; exit 0 and a silent stderr asked. */
async function cronRun({ config }: World): Promise<Map<string, JobSummary>> {
  const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  assert.equal(result.stderr, '', 'a clean cron run writes nothing to stderr');
  const report = JSON.parse(result.stdout) as { jobs: JobSummary[] };
  return new Map(report.jobs.map((job) => [job.job, job]));
}

/** The destination holds the source's object at each key: the same bytes, the same ETag. Every key that differs is named. */
async function assertSameAtDestination({ destination }: World, keys: readonly string[]): Promise<void> {
  const differ: string[] = [];
  for (const key of keys) {
    const [source, copy] = [await s3.getObject(SOURCE, key), await s3.getObject(destination, key)];
    assert.ok(source, `${key} is at the source`);
    if (copy === null) differ.push(`${key}: not at the destination`);
    else if (md5(copy.body) !== md5(source.body) || copy.etag !== source.etag)
      differ.push(`${key}: ${copy.body.length} bytes, ETag ${copy.etag} at the destination; ${source.body.length} bytes, ETag ${source.etag} at the source`);
  }
  assert.deepEqual(differ, [], 'the destination holds the bytes the source holds now');
}

const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');
const copiedIn = (report: Map<string, JobSummary>) => [...report.values()].reduce((sum, job) => sum + job.copied + job.relocated, 0);

describe('a file rewritten under the same key with a newer *_updated_at', () => {
  test('the next cron run copies the new bytes: an avatar kept as me.png, a site upload before v4.0, a style reprocessed in place', async () => {
    const here = await world('recent');
    const { db } = here;
    try {
      // 1. Rows as Mastodon before v3.1 / v4.0 names them (the uploaded name kept), stamped now; cron's first run.
      await write(AVATAR, 1111);
      for (const key of SITE_UPLOAD) await write(key, 1500);
      await write(MEDIA_ORIGINAL, 3000);
      await write(MEDIA_SMALL, 800);
      await db.client.query(
        `INSERT INTO accounts (id, username, domain, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at, created_at, updated_at)
         VALUES (500, 'me', NULL, 'me.png', 'image/png', 1111, ${NOW}, ${NOW}, ${NOW})`,
      );
      await db.client.query(
        `INSERT INTO site_uploads (id, var, file_file_name, file_content_type, file_file_size, file_updated_at, created_at, updated_at)
         VALUES (1, 'thumbnail', 'banner.png', 'image/png', 1500, ${NOW}, ${NOW}, ${NOW})`,
      );
      await db.client.query(
        `INSERT INTO media_attachments (id, account_id, type, processing, file_file_name, file_content_type, file_file_size, file_updated_at, remote_url, created_at, updated_at)
         VALUES (100, 500, 0, 2, 'photo.png', 'image/png', 3000, ${NOW}, '', ${NOW}, ${NOW})`,
      );
      let report = await cronRun(here);
      assert.equal(copiedIn(report), 1 + 3 + 2);
      const everything = [AVATAR, ...SITE_UPLOAD, MEDIA_ORIGINAL, MEDIA_SMALL];
      await assertSameAtDestination(here, everything);

      // 2. Moments later, within the margin: new bytes under the same keys, each row stamped anew.
      await write(AVATAR, 2222);
      await db.client.query(`UPDATE accounts SET avatar_file_size = 2222, avatar_updated_at = ${NOW}, updated_at = ${NOW} WHERE id = 500`);
      for (const key of SITE_UPLOAD) await write(key, 1700);
      await db.client.query(`UPDATE site_uploads SET file_file_size = 1700, file_updated_at = ${NOW}, updated_at = ${NOW} WHERE id = 1`);
      // `reprocess!` of the small style: the original stays, the small is written again, file_updated_at stamped.
      await write(MEDIA_SMALL, 900);
      await db.client.query(`UPDATE media_attachments SET file_updated_at = ${NOW}, updated_at = ${NOW} WHERE id = 100`);
      report = await cronRun(here);
      await assertSameAtDestination(here, everything);
      assert.equal(report.get('accounts')!.changed, 1, 'the avatar rewritten as me.png');
      assert.equal(report.get('accounts')!.copied, 1);
      assert.equal(report.get('site_uploads')!.changed, 1);
      assert.equal(report.get('site_uploads')!.copied, 3);
      assert.equal(report.get('media_attachments')!.changed, 1);
      assert.equal(report.get('media_attachments')!.copied, 2, 'both styles of the stamped attachment');

      // 3. And the next runs copy nothing more: the new copies' lines carry the new stamps.
      report = await cronRun(here);
      assert.equal(copiedIn(report), 0);
      assert.equal(report.get('accounts')!.skipped, 1, 'read again within the margin, known as copied');
      await assertSameAtDestination(here, everything);
    } finally {
      rmSync(here.config.dir, { recursive: true, force: true });
      await db.drop();
    }
  });

  test('a checkpoint from 0.1.0 (lines above the watermark without the row stamp) copies a rewritten file again, and nothing else', async () => {
    const here = await world('legacy');
    const { db, config } = here;
    try {
      await write(BELOW_AVATAR, 1000);
      await write(AVATAR, 1111);
      await write(UNCHANGED_AVATAR, 1200);
      for (const [id, name, size] of [
        [10, 'first.png', 1000],
        [500, 'me.png', 1111],
        [501, 'old.png', 1200],
      ] as const) {
        await db.client.query(
          `INSERT INTO accounts (id, username, domain, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at, created_at, updated_at)
           VALUES (${id}, 'user${id}', NULL, '${name}', 'image/png', ${size}, ${LONG_AGO}, ${LONG_AGO}, ${LONG_AGO})`,
        );
      }
      const first = await cronRun(here);
      assert.equal(first.get('accounts')!.copied, 3);

      // What 0.1.0 leaves when that run was cut short after row 10 and compacted: the run's header, the watermark,
      // and rows 500 and 501 done above it in lines that carry neither `updated` (stamped long before the run) nor
      // the run's start.
      const header = readFileSync(config.checkpoint, 'utf8').split('\n')[0]!;
      const started = (JSON.parse(header) as { started: string }).started;
      const done = (id: number, key: string, bytes: number) => `{"job":"accounts","id":"${id}","key":"${key}","status":"copied","bytes":${bytes},"ms":3}`;
      writeFileSync(
        config.checkpoint,
        [header, '{"job":"accounts","watermark":"10"}', `{"job":"accounts","synced":"${started}"}`, done(500, AVATAR, 1111), done(501, UNCHANGED_AVATAR, 1200)]
          .map((line) => `${line}\n`)
          .join(''),
      );

      // The avatar is written again as me.png after that run (an upgrade later, the cron resumes).
      await write(AVATAR, 2222);
      await db.client.query(`UPDATE accounts SET avatar_file_size = 2222, avatar_updated_at = ${NOW}, updated_at = ${NOW} WHERE id = 500`);
      const report = await cronRun(here);
      await assertSameAtDestination(here, [BELOW_AVATAR, AVATAR, UNCHANGED_AVATAR]);
      const accounts = report.get('accounts')!;
      assert.equal(accounts.copied, 1, 'the rewritten avatar, only');
      assert.equal(accounts.skipped, 1, 'the avatar unchanged since long before that run stays done');

      // The new copy's line and the moved watermark keep it done: nothing is copied twice.
      const again = await cronRun(here);
      assert.equal(copiedIn(again), 0);
      await assertSameAtDestination(here, [AVATAR]);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
