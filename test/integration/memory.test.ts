/**
 * Memory does not follow object size or row count (issue 5). The real CLI copies one large object, and its peak
 * RSS is compared with a run that copies a small one: a copier that buffered the object would grow by its size.
 * Both upload paths are covered: one streamed PUT (the default cutoff) and a multipart upload (a cutoff below
 * the object's size), whose parts are buffered a few at a time. The same holds for a table of many rows that own
 * no file. Speed is measured by `npm run bench`, never here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';

const MiB = 1024 * 1024;
const LARGE = 128 * MiB;
/**
 * Three quarters of the object: streaming adds garbage between collections (under 30 MiB with one PUT; about
 * 70 MiB with multipart parts buffered, whatever the object's size), a copier that held the object would add all
 * of it (one that buffered the body before sending it added twice its size, at 256 MiB).
 */
const MAX_GROWTH = (LARGE * 3) / 4;

let postgres: PostgresServer;
let s3: S3Server;
let probeDir: string;
let probe: string;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  // Preloaded into the CLI's process: at exit, writes its peak RSS to the file named by PEAK_RSS_FILE. VmHWM, not
  // getrusage: Linux carries ru_maxrss over exec, so a child of this (large) test process would report ours.
  probeDir = mkdtempSync(join(tmpdir(), 'mastosync-memory-'));
  probe = join(probeDir, 'peak-rss.mjs');
  writeFileSync(
    probe,
    "import { readFileSync, writeFileSync } from 'node:fs';\n" +
      "process.on('exit', () => writeFileSync(process.env.PEAK_RSS_FILE, String(1024 * Number(/VmHWM:\\s+(\\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))[1]))));\n",
  );
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(probeDir, { recursive: true, force: true });
  await s3?.stop();
  await postgres?.stop();
});

let worlds = 0;

/** A database whose media table owns one audio file (no styles) of `size` bytes, present at the source. */
async function oneObject(size: number): Promise<{ db: TestDatabase; source: string; key: string }> {
  worlds += 1;
  const db = await createDatabase('current');
  cleanups.push(() => db.drop());
  const key = 'media_attachments/files/000/000/001/original/f0f0f0f0f0f0f0f0.mp3';
  await db.client.query(
    `INSERT INTO media_attachments (id, account_id, type, file_file_name, file_content_type, file_file_size, created_at, updated_at)
     VALUES (1, 1, 4, 'f0f0f0f0f0f0f0f0.mp3', 'audio/mpeg', $1, now(), now())`,
    [size],
  );
  const source = `memory-source-${worlds}`;
  await s3.createBucket(source);
  await s3.put(source, key, randomBytes(size), { contentType: 'audio/mpeg' });
  return { db, source, key };
}

/** The small and the large world, made once for both upload paths (each copies them into buckets of its own). */
let objects: Promise<{ small: Awaited<ReturnType<typeof oneObject>>; large: Awaited<ReturnType<typeof oneObject>> }> | undefined;
const sharedObjects = () => (objects ??= (async () => ({ small: await oneObject(MiB), large: await oneObject(LARGE) }))());

async function newDestination(): Promise<string> {
  const bucket = `memory-destination-${++worlds}`;
  await s3.createBucket(bucket);
  return bucket;
}

/** Runs `mastosync run <job>` and returns its peak RSS in bytes. */
async function peakRss(db: TestDatabase, source: string, destination: string, job: string, uploadCutoffMib?: number): Promise<number> {
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: source },
    destination: { endpoint: s3.endpoint, bucket: destination },
    concurrency: 16,
    uploadCutoffMib,
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  const file = join(config.dir, 'peak-rss');
  const result = await runCli(['run', job], { cwd: config.dir, env: { NODE_OPTIONS: `--import ${probe}`, PEAK_RSS_FILE: file } });
  assert.equal(result.code, 0, result.stderr);
  return Number(readFileSync(file, 'utf8'));
}

for (const [path, uploadCutoffMib] of [
  ['one streamed PUT', 512],
  ['a multipart upload in 8 MiB parts', 8],
] as const) {
  test(`copying a ${LARGE / MiB} MiB object as ${path} grows memory by far less than its size`, async (t) => {
    const { small, large } = await sharedObjects();
    const smallPeak = await peakRss(small.db, small.source, await newDestination(), 'media_attachments', uploadCutoffMib);
    const destination = await newDestination();
    const largePeak = await peakRss(large.db, large.source, destination, 'media_attachments', uploadCutoffMib);
    t.diagnostic(`peak RSS ${(largePeak / MiB).toFixed(0)} MiB copying ${LARGE / MiB} MiB, ${(smallPeak / MiB).toFixed(0)} MiB copying 1 MiB`);
    // Its size as stored (a HEAD): reading it back whole would cost as much again as the copy.
    const copied = await s3.client.send(new HeadObjectCommand({ Bucket: destination, Key: large.key }));
    assert.equal(copied.ContentLength, LARGE, 'the large object was copied whole');
    assert.ok(
      largePeak - smallPeak < MAX_GROWTH,
      `peak RSS ${(largePeak / MiB).toFixed(0)} MiB copying ${LARGE / MiB} MiB against ${(smallPeak / MiB).toFixed(0)} MiB copying 1 MiB`,
    );
  });
}

test('reading a table of 300,000 rows takes no more memory than one of 1,000', async (t) => {
  await s3.createBucket('memory-rows-source');
  await s3.createBucket('memory-rows-destination');
  const peaks: number[] = [];
  for (const rows of [1_000, 300_000]) {
    const db = await createDatabase('current');
    cleanups.push(() => db.drop());
    await db.client.query(
      `INSERT INTO preview_cards (id, url, created_at, updated_at) SELECT g, 'https://news.example/' || g, now(), now() FROM generate_series(1, $1::bigint) g`,
      [rows],
    );
    peaks.push(await peakRss(db, 'memory-rows-source', 'memory-rows-destination', 'preview_cards'));
  }
  const [few, many] = peaks as [number, number];
  t.diagnostic(`peak RSS ${(many / MiB).toFixed(0)} MiB over 300,000 rows, ${(few / MiB).toFixed(0)} MiB over 1,000`);
  assert.ok(many - few < 20 * MiB, `peak RSS ${(many / MiB).toFixed(0)} MiB over 300,000 rows against ${(few / MiB).toFixed(0)} MiB over 1,000`);
});
