/**
 * `tootctl upgrade storage-schema` between two cron runs: it moves a remote file from `X/…` to `cache/X/…`, sets
 * `*_storage_schema_version` to 1 and saves the row (its `updated_at`), leaving `*_updated_at` as it was. The next
 * `run all --resume` must copy the file to its new key (a Mastodon switched to the destination reads only that one),
 * and must not copy again the files of a remote account only refreshed (saved, its files unchanged). Real PostgreSQL
 * and s3rver; the destination's bytes are compared with the source's.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { CACHE_CONTROL } from '../support/fixture.js';
import { createDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';

const SOURCE = 'upgrade-source';
const DESTINATION = 'upgrade-destination';
const NOW = `(now() AT TIME ZONE 'UTC')`;
/** Downloaded before v3.1.4 (no schema version), long before any run. */
const LONG_AGO = `'2019-06-01 12:00:00'`;

const OLD_MEDIA = ['original', 'small'].map((style) => `media_attachments/files/000/000/700/${style}/remote.png`);
const NEW_MEDIA = OLD_MEDIA.map((key) => `cache/${key}`);
const REFRESHED_AVATAR = 'cache/accounts/avatars/000/000/601/original/face.png';

let s3: S3Server;

before(async () => {
  s3 = await startS3();
  await s3.createBucket(SOURCE);
  await s3.createBucket(DESTINATION);
});

after(async () => {
  await s3?.stop();
});

const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');

describe('tootctl upgrade storage-schema between cron runs', () => {
  test('the next run all --resume copies the moved files to their cache/ keys, and copies nothing of a refreshed account', async () => {
    const db = await createDatabase('current');
    const store = (bucket: string) => ({ endpoint: s3.endpoint, bucket });
    const config = writeConfig({ databaseUrl: db.url, source: store(SOURCE), destination: store(DESTINATION), concurrency: 2 });
    const cronRun = async (): Promise<Map<string, JobSummary>> => {
      const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr + result.stdout);
      assert.equal(result.stderr, '', 'a clean cron run writes nothing to stderr');
      return new Map((JSON.parse(result.stdout) as { jobs: JobSummary[] }).jobs.map((job) => [job.job, job]));
    };
    try {
      const bodies = new Map<string, Buffer>();
      for (const key of [...OLD_MEDIA, REFRESHED_AVATAR]) {
        const body = randomBytes(1000 + bodies.size);
        bodies.set(key, body);
        await s3.put(SOURCE, key, body, { contentType: 'image/png', cacheControl: CACHE_CONTROL, acl: 'public-read' });
      }
      await db.client.query(
        `INSERT INTO accounts (id, username, domain, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at, avatar_storage_schema_version, created_at, updated_at)
         VALUES (600, 'poster', 'remote.example', NULL, NULL, NULL, NULL, NULL, ${LONG_AGO}, ${LONG_AGO}),
                (601, 'face', 'remote.example', 'face.png', 'image/png', 1002, ${LONG_AGO}, 1, ${LONG_AGO}, ${LONG_AGO})`,
      );
      await db.client.query(
        `INSERT INTO media_attachments (id, account_id, type, processing, file_file_name, file_content_type, file_file_size, file_updated_at, file_storage_schema_version, remote_url, created_at, updated_at)
         VALUES (700, 600, 0, 2, 'remote.png', 'image/png', 1000, ${LONG_AGO}, NULL, 'https://remote.example/remote.png', ${LONG_AGO}, ${LONG_AGO})`,
      );
      let report = await cronRun();
      assert.equal(report.get('media_attachments')!.copied, 2);
      assert.equal(report.get('accounts')!.copied, 1);

      // What the upgrade does on S3 (move_to: copy, then delete the old key) and to the row; and a refresh of the
      // remote account that changes no file (last_webfingered_at, say), which saves its row too.
      for (const [index, key] of OLD_MEDIA.entries()) {
        await s3.put(SOURCE, NEW_MEDIA[index]!, bodies.get(key)!, { contentType: 'image/png', cacheControl: CACHE_CONTROL, acl: 'public-read' });
      }
      await db.client.query(`UPDATE media_attachments SET file_storage_schema_version = 1, updated_at = ${NOW} WHERE id = 700`);
      await db.client.query(`UPDATE accounts SET updated_at = ${NOW} WHERE id = 601`);

      report = await cronRun();
      const differ: string[] = [];
      for (const [index, key] of NEW_MEDIA.entries()) {
        const copy = await s3.getObject(DESTINATION, key);
        if (copy === null || md5(copy.body) !== md5(bodies.get(OLD_MEDIA[index]!)!))
          differ.push(`${key}: ${copy === null ? 'not at the destination' : 'other bytes'}`);
      }
      assert.deepEqual(differ, [], 'the destination holds the moved files at the keys the database names now');
      assert.equal(report.get('media_attachments')!.copied, 2);
      assert.equal(report.get('accounts')!.copied, 0, 'a refreshed account whose files the destination holds is not copied again');

      // And the next run copies nothing.
      report = await cronRun();
      assert.equal(
        [...report.values()].reduce((sum, job) => sum + job.copied, 0),
        0,
      );
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
