/**
 * An original shorter than its row's `*_file_size` is not recorded as copied (tester F5: a file of a public/system
 * folder read while Mastodon was still writing it, 1 MB of 4 MB, was recorded done and never looked at again). A real
 * folder source, s3rver behind the recording proxy as the destination, PostgreSQL rows: the short file is not written,
 * its checkpoint line names the key, the row and both sizes, and `--resume` copies it once it is whole. A file written
 * moments ago is waited for rather than failed; a row whose size is not the stored file's (processing not complete)
 * does not hold its file to it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { startStores, type Stores } from '../support/fixtureWorld.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { fixtureBytes } from '../support/fixture.js';
import { readJsonLines, runCli } from '../support/cli.js';

const keyOf = (id: number) => `media_attachments/files/000/000/00${id}/original/f0f0f0f0f0f0f0f${id}.mp3`;
/** id → [the row's file_file_size, the row's processing, the bytes in the folder at first]. */
const ROWS: Record<number, [rowSize: number, processing: number, inFolder: number]> = {
  1: [400_000, 2, 100_000], // cut short, written long ago: fails now
  2: [3_000, 2, 3_000], // whole
  3: [5_000, 1, 2_000], // being processed in the background: its row's size is the upload's, not the file's
  4: [300_000, 2, 50_000], // being written now: waited for (with no retry left here, not copied yet)
  5: [2_000, 2, 2_600], // longer than its row: a file written again since, whose row follows
};
const bodyOf = (id: number) => fixtureBytes(`row ${id}`, Math.max(ROWS[id]![0], ROWS[id]![2]), 'audio/mpeg');

let stores: Stores;
let db: TestDatabase;
let system: string;

before(async () => {
  stores = await startStores();
  db = await createDatabase('current');
  stores.onStop(() => db.drop());
  system = mkdtempSync(join(tmpdir(), 'mastosync-rowsize-'));
  stores.onStop(() => rmSync(system, { recursive: true, force: true }));
  for (const [id, [rowSize, processing, inFolder]] of Object.entries(ROWS).map(([id, row]) => [Number(id), row] as const)) {
    await db.client.query(
      `INSERT INTO media_attachments (id, account_id, type, processing, file_file_name, file_content_type, file_file_size, created_at, updated_at)
       VALUES ($1, 1, 4, $2, $3, 'audio/mpeg', $4, now(), now())`,
      [id, processing, keyOf(id).split('/').at(-1), rowSize],
    );
    const path = join(system, keyOf(id));
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, bodyOf(id).subarray(0, inFolder));
    const written = id === 4 ? Date.now() / 1000 + 3600 : Date.now() / 1000 - 3600;
    utimesSync(path, written, written);
  }
  await stores.s3.createBucket('rowsize-destination');
});

after(async () => {
  await stores?.stop();
});

test('an original shorter than its row is not recorded copied, says why, and --resume copies it once whole', async () => {
  const config = stores.writeConfig({
    databaseUrl: db.url,
    source: { type: 'fs', path: system },
    destination: { endpoint: stores.proxy.endpoint, bucket: 'rowsize-destination' },
    retries: 0,
  });
  const first = await runCli(['run', 'all', '--json'], { cwd: config.dir });
  assert.equal(first.code, 1, first.stderr);
  const lines = readJsonLines<{ key?: string; status?: string; error?: string }>(readFileSync(config.checkpoint, 'utf8'));
  const statusOf = (id: number) => lines.filter((line) => line.key === keyOf(id)).at(-1);
  // Copied: the whole one, the one whose row's size is not its file's yet, the one longer than its row.
  assert.deepEqual((await stores.s3.listKeys('rowsize-destination')).sort(), [keyOf(2), keyOf(3), keyOf(5)].sort());
  assert.equal(statusOf(1)?.status, 'failed');
  assert.equal(
    statusOf(1)?.error,
    `source GET: ShortSourceError: ${join(system, keyOf(1))} is 100000 bytes at the source, but media_attachments row 1 (file_file_size) says 400000: ` +
      'not copied (cut short at the source, or still being written); run --resume to try it again',
  );
  assert.equal(statusOf(4)?.status, 'failed');
  assert.match(statusOf(4)?.error ?? '', /is 50000 bytes at the source, but media_attachments row 4 \(file_file_size\) says 300000: written moments ago/);
  assert.ok(first.stderr.includes(`"key":"${keyOf(1)}"`), 'the failure is in the log');
  const written = stores.proxy.requests.filter((request) => request.operation === 'PutObject').map((request) => request.key);
  assert.deepEqual(written.sort(), [keyOf(2), keyOf(3), keyOf(5)].sort(), 'nothing of a short original reaches the destination');

  // Mastodon finishes writing them.
  for (const id of [1, 4]) {
    const path = join(system, keyOf(id));
    writeFileSync(path, bodyOf(id));
    utimesSync(path, Date.now() / 1000 - 60, Date.now() / 1000 - 60);
  }
  const resumed = await runCli(['run', 'all', '--resume', '--json'], { cwd: config.dir });
  assert.equal(resumed.code, 0, resumed.stderr);
  for (const id of [1, 2, 3, 4, 5]) {
    const stored = await stores.s3.getObject('rowsize-destination', keyOf(id));
    assert.ok(stored?.body.equals(readFileSync(join(system, keyOf(id)))), `${keyOf(id)} at the destination as in the folder`);
  }
});
