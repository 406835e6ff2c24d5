/**
 * `run` with scope flags, as in a zero-downtime migration: after a bulk copy, a delta pass `--since <start of
 * the bulk copy>` copies exactly the attachments changed since (by each attachment's own *_updated_at, so a row
 * whose header changed does not drag its avatar along); `--until` is its complement; `--skip-remote-cache` and
 * `--min-id/--max-id` copy exactly what they name; and `plan` with the same flags counts what `run` copies.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { buildFixture, loadFixture, type ExpectedObject, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let fixture: Fixture;
let db: TestDatabase;
let destinations = 0;
const cleanups: Array<() => void> = [];

const BEFORE = '2024-01-01 00:00:00';
const AFTER = '2024-07-01 09:30:00';
const CUTOFF = '2024-06-01T00:00:00Z';

/** The attachments changed after the cutoff: [table, id, column prefix]. */
const CHANGED: Array<[string, string, string]> = [
  ['media_attachments', '5', 'file'],
  ['accounts', '110528637375951012', 'header'],
  ['media_attachments', '109349205816583424', 'thumbnail'],
];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  fixture = buildFixture('current');
  db = await createDatabase('current');
  await s3.createBucket('scope-source');
  await loadFixture(fixture, db.client, s3, 'scope-source');
  const attachments: Record<string, string[]> = {
    media_attachments: ['file', 'thumbnail'],
    accounts: ['avatar', 'header'],
    custom_emojis: ['image'],
    preview_cards: ['image'],
    preview_card_providers: ['icon'],
    site_uploads: ['file'],
    backups: ['dump'],
  };
  for (const [table, prefixes] of Object.entries(attachments)) {
    await db.client.query(`UPDATE ${table} SET ${prefixes.map((prefix) => `${prefix}_updated_at = '${BEFORE}'`).join(', ')}`);
  }
  for (const [table, id, prefix] of CHANGED) {
    await db.client.query(`UPDATE ${table} SET ${prefix}_updated_at = '${AFTER}' WHERE id = $1`, [id]);
  }
});

after(async () => {
  for (const cleanup of cleanups) cleanup();
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

const FOLDER_OF: Record<string, string> = { file: 'files', thumbnail: 'thumbnails', header: 'headers' };
const changed = (object: ExpectedObject) =>
  CHANGED.some(([table, id, prefix]) => object.table === table && object.rowId === id && object.attachment === FOLDER_OF[prefix]);

async function runInto(flags: string[]): Promise<{ keys: string[]; stderr: string; objects: number }> {
  const bucket = `scope-destination-${++destinations}`;
  await s3.createBucket(bucket);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'scope-source' },
    destination: { endpoint: s3.endpoint, bucket },
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  const result = await runCli(['run', 'all', '--json', '--quiet', ...flags], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: { objects: number } };
  return { keys: (await s3.listKeys(bucket)).sort(), stderr: result.stderr, objects: summary.total.objects };
}

async function planned(flags: string[]): Promise<number> {
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'scope-source' },
    destination: { endpoint: s3.endpoint, bucket: 'unused' },
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  const result = await runCli(['plan', 'all', '--json', ...flags], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { total: { objects: number } }).total.objects;
}

const presentKeys = (keep: (object: ExpectedObject) => boolean) =>
  fixture.present
    .filter(keep)
    .map((object) => object.key)
    .sort();

describe('run scope', () => {
  test("delta pass --since: exactly the attachments changed since, not their rows' other attachments", async () => {
    const delta = await runInto(['--since', CUTOFF]);
    const expected = presentKeys(changed);
    assert.deepEqual(delta.keys, expected);
    assert.deepEqual(expected, [
      'cache/accounts/headers/110/528/637/375/951/012/original/9a8b7c6d5e4f3a2b.gif',
      'media_attachments/files/000/000/005/original/c0ffee0123456789.gif',
      'media_attachments/files/000/000/005/small/c0ffee0123456789.png',
      'media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg',
    ]);
    assert.equal(await planned(['--since', CUTOFF]), delta.objects, 'plan counts what run copies');
  });

  test('--until is the complement of --since at the same instant', async () => {
    const bulk = await runInto(['--until', CUTOFF]);
    assert.deepEqual(
      bulk.keys,
      presentKeys((object) => !changed(object)),
    );
  });

  test('--skip-remote-cache: no remote media or cards, avatars/headers/emoji kept, and the warning', async () => {
    const result = await runInto(['--skip-remote-cache']);
    assert.deepEqual(
      result.keys,
      presentKeys((object) => !(object.cache && ['media_attachments', 'preview_cards'].includes(object.table))),
    );
    assert.ok(
      result.keys.some((key) => key.startsWith('cache/accounts/')),
      'remote avatars stay',
    );
    assert.match(result.stderr, /tootctl media remove/);
    assert.equal(await planned(['--skip-remote-cache']), result.objects);
  });

  test('--min-id/--max-id: exactly the rows in the range', async () => {
    const result = await runInto(['--min-id', '13', '--max-id', '110528637375951012']);
    assert.deepEqual(
      result.keys,
      presentKeys((object) => BigInt(object.rowId) >= 13n && BigInt(object.rowId) <= 110528637375951012n),
    );
  });
});
