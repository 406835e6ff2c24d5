/**
 * The summary of a run stopped part-way says how much is left: the rows read whose objects are not all recorded,
 * those never begun included (a page of rows is read at once, and a stop leaves most of it untouched). An admin
 * reads that line (or --json's unfinishedRows) to judge what the next --resume has to do; it must agree with the
 * checkpoint and with what the destination holds.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { Fixture } from '../support/fixture.js';
import type { TestDatabase } from '../support/postgres.js';
import type { S3Server } from '../support/s3.js';
import type { HttpProxy } from '../support/httpProxy.js';
import { startFixtureWorld, type FixtureWorld } from '../support/fixtureWorld.js';
import { runCli } from '../support/cli.js';

/** Objects the destination takes before it refuses every upload (AccessDenied: no retry can fix it). */
const ACCEPTED = 6;

let world: FixtureWorld;
let s3: S3Server;
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;
let worlds = 0;

before(async () => {
  world = await startFixtureWorld('stop-source');
  ({ s3, proxy, fixture, db } = world);
});

after(async () => {
  await world?.stop();
});

interface Line {
  job?: string;
  id?: string;
  key?: string;
  status?: string;
  watermark?: string;
}

/** A run whose destination refuses every upload after the first ACCEPTED, over one page of rows per table. */
async function stoppedRun(json: boolean) {
  worlds += 1;
  const destination = `stop-destination-${worlds}`;
  await s3.createBucket(destination);
  const config = world.writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'stop-source' },
    destination: { endpoint: proxy.endpoint, bucket: destination },
    concurrency: 1,
    batchSize: 1000,
  });
  let puts = 0;
  proxy.setFault((request) => {
    if (request.bucket !== destination || request.method !== 'PUT') return undefined;
    puts += 1;
    return puts > ACCEPTED ? { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } : undefined;
  });
  try {
    const result = await runCli(['run', 'all', '--quiet', '--log-level', 'error', ...(json ? ['--json'] : [])], { cwd: config.dir });
    assert.equal(result.code, 1, result.stdout + result.stderr);
    const lines = existsSync(config.checkpoint)
      ? readFileSync(config.checkpoint, 'utf8')
          .split('\n')
          .filter((line) => line !== '')
          .map((line) => JSON.parse(line) as Line)
      : [];
    return { result, lines, destination };
  } finally {
    proxy.setFault(undefined);
  }
}

/**
 * What the checkpoint says is left of the first job (media_attachments, the only one begun): every row up to its
 * watermark is finished; above it, the rows that own an object with no line yet are not. (A stopped run compacts
 * the checkpoint: the lines of objects below the watermark are gone.)
 */
async function leftOf(lines: readonly Line[], destination: string): Promise<{ rows: number; unfinished: number }> {
  const recorded = new Map(lines.filter((line) => line.status !== undefined).map((line) => [line.key!, line.status!]));
  const watermark = BigInt(lines.filter((line) => line.job === 'media_attachments' && line.watermark !== undefined).at(-1)?.watermark ?? '-1');
  const rows = fixture.rows.filter((row) => row.table === 'media_attachments');
  const above = rows.filter((row) => BigInt(String(row.values.id)) > watermark);
  const unfinished = above.filter((row) => row.keys.some((key) => !recorded.has(key)));
  // The destination agrees: it holds the objects of the rows finished (less those failed), and nothing of a row never begun.
  const held = new Set(await s3.listKeys(destination));
  const present = new Set(fixture.present.map((object) => object.key));
  for (const row of rows.filter((entry) => !unfinished.includes(entry)))
    for (const key of row.keys.filter((entry) => present.has(entry) && recorded.get(entry) !== 'failed')) assert.ok(held.has(key), key);
  for (const row of unfinished.filter((entry) => entry.keys.every((key) => !recorded.has(key)))) for (const key of row.keys) assert.ok(!held.has(key), key);
  assert.ok(unfinished.length > rows.length / 2, `most rows were never begun (${unfinished.length} of ${rows.length} left)`);
  return { rows: rows.length, unfinished: unfinished.length };
}

test('stopped part-way: the status line counts the rows never begun as still to do, as the checkpoint does', async () => {
  const { result, lines, destination } = await stoppedRun(false);
  const left = await leftOf(lines, destination);
  const [, read, finished] = /\(of the (\d+) rows read, (\d+) are finished[,;]/m.exec(result.stdout) ?? [];
  assert.equal(Number(read), left.rows, result.stdout);
  assert.equal(Number(finished), left.rows - left.unfinished, result.stdout);
  assert.match(result.stdout, new RegExp(`the objects of the other ${left.unfinished} stay to do; rows not reached are read by --resume\\)$`, 'm'));
});

test('stopped part-way: --json unfinishedRows agrees with the checkpoint and the destination', async () => {
  const { result, lines, destination } = await stoppedRun(true);
  const left = await leftOf(lines, destination);
  const report = JSON.parse(result.stdout.trim().split('\n').at(-1)!) as {
    jobs: Array<{ job: string; rows: number; unfinishedRows: number }>;
    total: { unfinishedRows: number };
  };
  assert.deepEqual(
    report.jobs.map(({ job, rows, unfinishedRows }) => ({ job, rows, unfinishedRows })),
    [{ job: 'media_attachments', rows: left.rows, unfinishedRows: left.unfinished }],
  );
  assert.equal(report.total.unfinishedRows, left.unfinished);
});
