/**
 * A checkpoint damaged in the middle (a line garbled at rest, not the torn last line a kill leaves): the next
 * --resume says so in one line naming the file and the line, and forgets nothing the line may have said. An object
 * recorded missing there, whose file has since appeared at the source, is copied; no later run forgets it either.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let fixture: Fixture;
const databases: TestDatabase[] = [];
let worlds = 0;
const cleanups: Array<() => void> = [];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  fixture = buildFixture('current');
});

after(async () => {
  for (const cleanup of cleanups.reverse()) cleanup();
  for (const db of databases) await db.drop();
  await s3?.stop();
  await postgres?.stop();
});

/** A finished run over a source that lacks the fixture's missing objects: its checkpoint records them missing. */
async function copied() {
  worlds += 1;
  const [source, destination] = [`damaged-source-${worlds}`, `damaged-destination-${worlds}`];
  await s3.createBucket(source);
  await s3.createBucket(destination);
  const db = await createDatabase('current');
  databases.push(db);
  await loadFixture(fixture, db.client, s3, source);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: source },
    destination: { endpoint: s3.endpoint, bucket: destination },
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  const first = await runCli(['run', 'all', '--quiet'], { cwd: config.dir });
  assert.equal(first.code, 0, first.stderr);
  return { source, destination, ...config };
}

/** Damages the checkpoint's line recording `key` missing (not its last line); returns its number. */
function damageMissingLine(checkpoint: string, key: string, change: (line: string) => string): number {
  const lines = readFileSync(checkpoint, 'utf8').split('\n');
  const index = lines.findIndex((line) => line.includes(`"key":${JSON.stringify(key)},"status":"missing"`));
  assert.ok(index > 0 && index < lines.length - 2, `a missing line for ${key} in the middle`);
  lines[index] = change(lines[index]!);
  writeFileSync(checkpoint, lines.join('\n'));
  return index + 1;
}

async function appearsAndResumes(world: Awaited<ReturnType<typeof copied>>, key: string, number: number): Promise<void> {
  // The file is at the source now (restored from a backup, say): a --resume that remembers it was missing copies it.
  const body = Buffer.from(`restored ${key}`);
  await s3.put(world.source, key, body);
  const resumed = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn'], { cwd: world.dir });
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(
    resumed.stderr.trim().split('\n'),
    [`mastosync: warning: checkpoint ${world.checkpoint}: damaged line ${number} (unreadable, and not a torn last line): ${WHAT}`],
    'one line, naming the file and the line',
  );
  assert.deepEqual((await s3.getObject(world.destination, key))?.body, body, 'the object the damaged line recorded missing is copied');

  // The damage is gone with the run's compaction, and what it said with it: the next run is quiet and copies nothing.
  const again = await runCli(['run', 'all', '--resume', '--json', '--log-level', 'warn'], { cwd: world.dir });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stderr, '');
  assert.equal((JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { total: { copied: number } }).total.copied, 0);
  assert.ok(!readFileSync(world.checkpoint, 'utf8').includes('\u0000'), 'the damaged line is gone');
}

const WHAT =
  'what it may have recorded is taken as not done (objects tried again, rows read again, from the start of the job where no row id can be read); `verify all` checks the whole destination';

/**
 * One finished run for both cases (a world each made a third of this file's time): each damages the line of its own
 * missing media object, so the second finds its line as the first run wrote it, compacted since.
 */
let world: Awaited<ReturnType<typeof copied>>;
const missingMedia = () => fixture.missing.filter((object) => object.table === 'media_attachments').map((object) => object.key);

test('a missing object whose line is damaged after its key: said, and the object copied once it is at the source', async () => {
  world = await copied();
  assert.ok(missingMedia().length >= 2, 'fixture: two media objects missing at the source');
  const key = missingMedia()[0]!;
  const number = damageMissingLine(world.checkpoint, key, (line) => line.replace('"status":"missing"', '"status":"missing"\u0000\u0000'));
  await appearsAndResumes(world, key, number);
});

test('a missing object whose key is unreadable: said, and its row read again, so the object is copied', async () => {
  const key = missingMedia()[1]!;
  const number = damageMissingLine(world.checkpoint, key, (line) => line.replace('"key":"', '"k\u0000y":"'));
  await appearsAndResumes(world, key, number);
});
