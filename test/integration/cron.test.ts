/**
 * mastosync as a cron job keeping a second bucket current: `run all --resume` again and again while Mastodon
 * changes files between the runs (new rows, a replaced avatar and emoji, remote media fetched again, a row whose
 * transaction committed after the last run had started, a missing object that appears at the source). After each
 * run the destination holds every object the database owns, byte for byte; a run with nothing changed sends no
 * object request but the probes of objects still missing; and the checkpoint stays small.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { CACHE_CONTROL, buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';

const SOURCE = 'cron-source';
const DESTINATION = 'cron-destination';

let s3: S3Server;
let proxy: HttpProxy;
let db: TestDatabase;
let fixture: Fixture;
let config: ReturnType<typeof writeConfig>;

/** What the database owns now and the source holds: key → bytes and Content-Type (the test's own model). */
const owned = new Map<string, { body: Buffer; contentType: string }>();
/** Every key any row owned at some point: the destination may keep those (a mirror prunes nothing). */
const everOwned = new Set<string>();

before(async () => {
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
  db = await createDatabase('current');
  fixture = buildFixture('current');
  await s3.createBucket(SOURCE);
  await s3.createBucket(DESTINATION);
  await loadFixture(fixture, db.client, s3, SOURCE);
  for (const object of fixture.present) {
    const source = fixture.sourceByKey.get(object.sourceKey!)!;
    owned.set(object.key, { body: source.body, contentType: source.contentType });
    everOwned.add(object.key);
  }
  config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: SOURCE },
    destination: { endpoint: proxy.endpoint, bucket: DESTINATION },
    concurrency: 4,
    batchSize: 4,
  });
});

after(async () => {
  rmSync(config?.dir ?? '/nonexistent', { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await s3?.stop();
});

type JobReport = JobSummary;

/** One cron run, as the crontab line in the README has it; returns its JSON summary, by job. */
async function cronRun(expect: { silent?: boolean } = {}): Promise<Map<string, JobReport>> {
  proxy.reset();
  const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  // Objects still missing are news only the first time: a run that finds nothing new mails nothing.
  if (expect.silent) assert.equal(result.stderr, '', 'a cron run with nothing new writes nothing to stderr');
  const report = JSON.parse(result.stdout) as { jobs: JobReport[] };
  return new Map(report.jobs.map((job) => [job.job, job]));
}

/** Every key the database owns is at the destination, byte for byte with its type; nothing else was ever written. */
async function assertExact(): Promise<void> {
  const stored = new Set(await s3.listKeys(DESTINATION));
  for (const key of stored) assert.ok(everOwned.has(key), `${key} is at the destination, but no row ever owned it`);
  for (const [key, wanted] of owned) {
    const object = await s3.getObject(DESTINATION, key);
    assert.ok(object, `${key} is owned and at the source, but not at the destination`);
    assert.equal(md5(object.body), md5(wanted.body), `${key}: bytes`);
    assert.equal(object.contentType, wanted.contentType, `${key}: Content-Type`);
    assert.equal(object.cacheControl, CACHE_CONTROL, `${key}: Cache-Control`);
  }
  assert.ok(statSync(config.checkpoint).size < 64 * 1024, `the checkpoint stays small: ${statSync(config.checkpoint).size} bytes`);
}

/** Object keys the run sent `operation` for, on `bucket`. */
function requested(bucket: string, ...operations: string[]): string[] {
  return proxy.requests.filter((request) => request.bucket === bucket && request.key && operations.includes(request.operation)).map((request) => request.key!);
}

/** Puts a new file at the source for `key`, as Mastodon would have written it, and records it as owned. */
async function newObject(key: string, contentType: string): Promise<void> {
  // Longer than any row's *_file_size in the fixture: a run refuses an original shorter than its row says.
  const body = randomBytes(100_000 + Math.floor(Math.random() * 3000));
  await s3.put(SOURCE, key, body, { contentType, cacheControl: CACHE_CONTROL, acl: 'public-read' });
  owned.set(key, { body, contentType });
  everOwned.add(key);
}

/** The row's attachment now names another file: its old keys are no longer owned (but stay at the destination). */
function disown(prefix: string): void {
  for (const key of [...owned.keys()]) if (key.startsWith(prefix)) owned.delete(key);
}

const NOW = `(now() AT TIME ZONE 'UTC')`;
const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');
/** Object keys of a row folder, with and without cache/ (probes of legacy places). */
const folderOf = (key: string) => key.replace(/^cache\//, '').replace(/\/(original|small|static)\/[^/]+$/, '/');

test('five cron runs with changes between them: each ends exact, sends requests only for what changed, and keeps the checkpoint small', async () => {
  // 1. The first night: everything.
  let report = await cronRun();
  const media = report.get('media_attachments')!;
  assert.equal(media.copied + media.relocated, fixture.present.filter((object) => object.table === 'media_attachments').length);
  await assertExact();

  // 2. A local account replaces its avatar (a row below the watermark), a new media row arrives above it, and an
  //    account row below the watermark appears (ids are not always increasing: an import, a restored row).
  await db.client.query(`UPDATE accounts SET avatar_file_name = 'cafe0000cafe0099.webp', avatar_updated_at = ${NOW} WHERE id = 110528637375951014`);
  disown('accounts/avatars/110/528/637/375/951/014/');
  await newObject('accounts/avatars/110/528/637/375/951/014/original/cafe0000cafe0099.webp', 'image/webp');
  await db.client.query(
    `INSERT INTO accounts (id, username, domain, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at, avatar_storage_schema_version, created_at, updated_at)
     VALUES (50, 'newcomer', NULL, 'beefbeefbeefbeef.png', 'image/png', 3000, ${NOW}, 1, ${NOW}, ${NOW})`,
  );
  await newObject('accounts/avatars/000/000/050/original/beefbeefbeefbeef.png', 'image/png');
  await db.client.query(
    `INSERT INTO media_attachments (id, account_id, type, processing, file_file_name, file_content_type, file_file_size, file_updated_at, file_storage_schema_version, remote_url, created_at, updated_at)
     VALUES (119349205816583500, 1, 0, 2, 'aaaa1111bbbb2222.png', 'image/png', 4000, ${NOW}, 1, '', ${NOW}, ${NOW})`,
  );
  await newObject('media_attachments/files/119/349/205/816/583/500/original/aaaa1111bbbb2222.png', 'image/png');
  await newObject('media_attachments/files/119/349/205/816/583/500/small/aaaa1111bbbb2222.png', 'image/png');
  const newKeys = [...owned.keys()].filter((key) => /cafe0000cafe0099|beefbeefbeefbeef|aaaa1111bbbb2222/.test(key)).sort();
  report = await cronRun();
  assert.equal(report.get('accounts')!.changed, 2, 'the replaced avatar and the new row below the watermark');
  assert.equal(report.get('media_attachments')!.changed, 0, 'a new row above the watermark is read as any new row');
  assert.deepEqual(requested(DESTINATION, 'PutObject', 'CreateMultipartUpload').sort(), newKeys, 'only the new files are written');
  const stillMissing = fixture.missing.map((object) => folderOf(object.key));
  for (const key of requested(SOURCE, 'GetObject', 'HeadObject')) {
    assert.ok(newKeys.includes(key) || stillMissing.includes(folderOf(key)), `${key} did not change, yet was requested`);
  }
  await assertExact();

  // 3. An emoji gets a new image, a remote media file is fetched again after `tootctl media remove`, and a style
  //    missing at the source appears there.
  await db.client.query(`UPDATE custom_emojis SET image_file_name = '0123456789abc999.png', image_updated_at = ${NOW} WHERE id = 9`);
  disown('custom_emojis/images/000/000/009/');
  await newObject('custom_emojis/images/000/000/009/original/0123456789abc999.png', 'image/png');
  await newObject('custom_emojis/images/000/000/009/static/0123456789abc999.png', 'image/png');
  await db.client.query(
    `UPDATE media_attachments SET file_file_name = 'ab12ab12ab12ab12.jpeg', file_content_type = 'image/jpeg', file_file_size = 5000,
       file_updated_at = ${NOW}, file_storage_schema_version = 1 WHERE id = 109349205816583432`,
  );
  await newObject('cache/media_attachments/files/109/349/205/816/583/432/original/ab12ab12ab12ab12.jpeg', 'image/jpeg');
  await newObject('cache/media_attachments/files/109/349/205/816/583/432/small/ab12ab12ab12ab12.jpeg', 'image/jpeg');
  const appearing = fixture.missing.find((object) => object.key.startsWith('cache/media_attachments/'))!;
  await newObject(appearing.key, 'image/png');
  report = await cronRun();
  assert.equal(report.get('custom_emojis')!.changed, 1);
  assert.equal(report.get('media_attachments')!.changed, 1, 'the remote file fetched again');
  assert.equal(
    report.get('media_attachments')!.missing,
    fixture.missing.filter((object) => object.table === 'media_attachments').length - 1,
    'the style that appeared is copied; the others are still missing',
  );
  await assertExact();

  // 4. Nothing changed: no object is written, and nothing is read but the objects still missing.
  report = await cronRun({ silent: true });
  for (const job of report.values()) assert.equal(job.changed, 0, job.job);
  assert.deepEqual(requested(DESTINATION, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), []);
  const missingNow = fixture.missing.filter((object) => object.key !== appearing.key).map((object) => folderOf(object.key));
  for (const key of requested(SOURCE, 'GetObject', 'HeadObject')) assert.ok(missingNow.includes(folderOf(key)), `${key} did not change, yet was requested`);
  await assertExact();

  // 5. A preview card changes its image, and a header change commits late: its timestamp is from before the last
  //    run started (Paperclip stamps the file when it is assigned, and the row commits after processing).
  await db.client.query(`UPDATE preview_cards SET image_file_name = 'c4c4c4c4c4c4c999.jpg', image_updated_at = ${NOW} WHERE id = 1234567890`);
  disown('cache/preview_cards/images/001/234/567/890/');
  await newObject('cache/preview_cards/images/001/234/567/890/original/c4c4c4c4c4c4c999.jpg', 'image/jpeg');
  await db.client.query(
    `UPDATE accounts SET header_file_name = '7a7a7a7a7a7a7a7a.png', header_content_type = 'image/png', header_updated_at = ${NOW} - interval '30 minutes' WHERE id = 1`,
  );
  disown('accounts/headers/000/000/001/');
  await newObject('accounts/headers/000/000/001/original/7a7a7a7a7a7a7a7a.png', 'image/png');
  // `tootctl media remove` clears a media row whose style was missing: nothing to look for any more.
  const removed = fixture.missing.find((object) => object.key.startsWith('media_attachments/files/'))!;
  await db.client.query(`UPDATE media_attachments SET file_file_name = NULL WHERE id = ${removed.rowId}`);
  disown(folderOf(removed.key));
  report = await cronRun();
  assert.equal(report.get('preview_cards')!.changed, 1);
  assert.equal(report.get('accounts')!.changed, 1, 'the late commit is within the change margin');
  await assertExact();
  assert.doesNotMatch(
    readFileSync(config.checkpoint, 'utf8'),
    new RegExp(removed.key.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
    'an object no row owns is no longer outstanding',
  );

  // 6. Nothing changed again: only the objects still missing are looked for.
  await cronRun({ silent: true });
  assert.deepEqual(requested(DESTINATION, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), []);
  const stillLookedFor = fixture.missing.filter((object) => object.key !== appearing.key && object.key !== removed.key).map((object) => folderOf(object.key));
  for (const key of requested(SOURCE, 'GetObject', 'HeadObject'))
    assert.ok(stillLookedFor.includes(folderOf(key)), `${key} is not missing any more, yet was requested`);
  await assertExact();
});
