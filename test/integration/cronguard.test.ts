/**
 * The cron line (`run all --resume --quiet --log-level warn`) when the destination changed behind the checkpoint's
 * back: emptied (a recursive delete, a lifecycle rule), or partly. A resumed run first asks the destination for a
 * handful of objects the checkpoint records as copied: all gone stops the run before anything is copied, with one
 * line and exit 1; some gone warns on stderr and ends with exit 1. `--resume --skip-existing` copies exactly what the
 * destination lacks, the checkpoint notwithstanding. A healthy destination costs the check its few HEADs, no more,
 * and the run stays silent; a destination that refuses HEAD gets one warning, not a stopped backup.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand } from '@aws-sdk/client-s3';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type Fault, type HttpProxy } from '../support/httpProxy.js';
import { BIN, runCli, runProgram, writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';
import { SAMPLE_SIZE } from '../../src/sync/destinationCheck.js';

const SOURCE = 'guard-source';
const CRON = ['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'];
/**
 * The pause before objects not found are asked for again (2 s, src/sync/destinationCheck.ts), shortened: a pause
 * there is, and the second HEADs after it are counted, which is what these tests check of it.
 */
const SECOND_LOOK = { MASTOSYNC_TEST_SECOND_LOOK_MS: '50' };

let s3: S3Server;
let proxy: HttpProxy;
let db: TestDatabase;
let fixture: Fixture;
const configs: Array<{ dir: string }> = [];

before(async () => {
  // The two servers start side by side.
  [s3, db] = await Promise.all([startS3(), createDatabase('current')]);
  proxy = await startProxy({ upstreamPort: s3.port });
  fixture = buildFixture('current');
  await s3.createBucket(SOURCE);
  await loadFixture(fixture, db.client, s3, SOURCE);
});

after(async () => {
  for (const config of configs) rmSync(config.dir, { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await s3?.stop();
});

/** A destination bucket of its own, and a config (with its checkpoint) pointing at it. */
async function destination(bucket: string) {
  await s3.createBucket(bucket);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: SOURCE },
    destination: { endpoint: proxy.endpoint, bucket },
    concurrency: 4,
    batchSize: 8,
  });
  configs.push(config);
  return config;
}

interface CronResult {
  readonly code: number | null;
  readonly stderr: string;
  readonly stdout: string;
  readonly total?: JobSummary;
}

async function cronRun(config: { dir: string }, ...extra: string[]): Promise<CronResult> {
  proxy.reset();
  const result = await runCli([...CRON, ...extra], { cwd: config.dir, env: SECOND_LOOK });
  const total = result.stdout.trim() === '' ? undefined : (JSON.parse(result.stdout) as { total: JobSummary }).total;
  return { ...result, total };
}

/** Object keys of `bucket` that requests of `operations` named. */
function requested(bucket: string, ...operations: string[]): string[] {
  return proxy.requests.filter((request) => request.bucket === bucket && request.key && operations.includes(request.operation)).map((request) => request.key!);
}

async function deleteKeys(bucket: string, keys: readonly string[]): Promise<void> {
  for (let start = 0; start < keys.length; start += 1000) {
    const Objects = keys.slice(start, start + 1000).map((Key) => ({ Key }));
    await s3.client.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects } }));
  }
  assert.deepEqual(
    (await s3.listKeys(bucket)).filter((key) => keys.includes(key)),
    [],
    'deleted',
  );
}

const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');

/** Every owned object with a source is at the destination, byte for byte with its type; nothing else is. */
async function assertComplete(bucket: string): Promise<void> {
  const owned = new Set(fixture.present.map((object) => object.key));
  for (const key of await s3.listKeys(bucket)) assert.ok(owned.has(key), `${key} is at the destination, but no row owns it`);
  for (const object of fixture.present) {
    const stored = await s3.getObject(bucket, object.key);
    assert.ok(stored, `${object.key} is owned and at the source, but not at the destination`);
    const source = fixture.sourceByKey.get(object.sourceKey!)!;
    assert.equal(md5(stored.body), md5(source.body), `${object.key}: bytes`);
    assert.equal(stored.contentType, source.contentType, `${object.key}: Content-Type`);
  }
}

/** The first cron night: everything is copied, exit 0. */
async function firstNight(config: { dir: string }, bucket: string): Promise<void> {
  const first = await cronRun(config);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  await assertComplete(bucket);
}

const STOP_LINE = new RegExp(
  `^mastosync: stopped: the destination s3://\\S+ at \\S+ lacks all (\\d+) of the \\1 objects asked for that the checkpoint records as copied \\(e\\.g\\. \\S+\\): ` +
    `it was emptied, or \\[destination\\] now names another bucket or prefix\\. Nothing was copied\\. ` +
    `To copy what it lacks: mastosync run all --resume --skip-existing \\(or mastosync verify all --repair\\); if \\[destination\\] is wrong, fix it$`,
);

test('a destination emptied between cron runs: --resume stops before copying, with one line and exit 1; --resume --skip-existing fills it again', async () => {
  const bucket = 'guard-emptied';
  const config = await destination(bucket);
  await firstNight(config, bucket);
  const checkpoint = readFileSync(config.checkpoint);

  await deleteKeys(bucket, await s3.listKeys(bucket));
  for (let night = 0; night < 2; night++) {
    const run = await cronRun(config);
    assert.equal(run.code, 1, `night ${night}: ${run.stderr}`);
    assert.match(run.stderr.trim(), STOP_LINE);
    const [, sampled] = STOP_LINE.exec(run.stderr.trim())!;
    assert.ok(Number(sampled) >= 2 && Number(sampled) <= SAMPLE_SIZE, `a few objects asked for: ${sampled}`);
    assert.equal(run.stdout, '', 'no summary: the run did not start');
    assert.deepEqual(requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), [], 'nothing was copied');
    assert.equal(requested(bucket, 'HeadObject').length, 2 * Number(sampled), 'only the sample was asked for, and again after a pause');
    assert.deepEqual(await s3.listKeys(bucket), []);
    assert.deepEqual(readFileSync(config.checkpoint), checkpoint, 'the checkpoint was not touched');
  }

  const refill = await cronRun(config, '--skip-existing');
  assert.equal(refill.code, 0, refill.stderr + refill.stdout);
  assert.equal(refill.stderr, '', 'the run that repairs mails nothing');
  const written = requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject').sort();
  assert.deepEqual(written, fixture.present.map((object) => object.key).sort(), 'every owned object is written again, once');
  assert.equal(refill.total!.copied + refill.total!.relocated, fixture.present.length);
  assert.equal(refill.total!.recopied, fixture.present.length, 'counted as copied again');
  await assertComplete(bucket);

  // Back to the plain cron line: quiet, exit 0, nothing written.
  const next = await cronRun(config);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.stderr, '');
  assert.deepEqual(requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), []);
});

test('a destination partly emptied: --resume warns on stderr and exits 1; --resume --skip-existing copies exactly the objects it lacks', async () => {
  const bucket = 'guard-partly';
  const config = await destination(bucket);
  await firstNight(config, bucket);
  // One job's objects are gone (a lifecycle rule on its folder): the sample takes every job, so some are missing, not all.
  const gone = (await s3.listKeys(bucket)).filter((key) => key.startsWith('media_attachments/'));
  assert.ok(gone.length > 0);
  await deleteKeys(bucket, gone);

  const run = await cronRun(config);
  assert.equal(run.code, 1, run.stderr + run.stdout);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(
    lines[0]!,
    /^mastosync: warning: the destination s3:\/\/\S+ at \S+ lacks (\d+) of the (\d+) objects asked for that the checkpoint records as copied \(e\.g\. media_attachments\/\S+\)\. --resume does not copy them again\. To copy what it lacks: mastosync run all --resume --skip-existing \(or mastosync verify all --repair\)$/,
  );
  const [, missing, sampled] = /lacks (\d+) of the (\d+)/.exec(lines[0]!)!;
  assert.ok(Number(missing) < Number(sampled));
  assert.ok(run.total !== undefined, 'the run went on, with its summary');
  assert.deepEqual(requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), []);

  const refill = await cronRun(config, '--skip-existing');
  assert.equal(refill.code, 0, refill.stderr + refill.stdout);
  assert.equal(refill.stderr, '');
  assert.deepEqual(requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject').sort(), [...gone].sort(), 'exactly the objects it lacked');
  assert.equal(refill.total!.recopied, gone.length);
  assert.equal(refill.total!.copied + refill.total!.relocated, gone.length);
  assert.equal(refill.total!.skipped, fixture.present.length - gone.length, 'the others are finished, and still there');
  await assertComplete(bucket);

  const next = await cronRun(config);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.stderr, '');
});

test("a sharded, windowed run whose destination was emptied: the stop line's commands, pasted into a shell in another folder, fill it again from the same checkpoint", async () => {
  const bucket = 'guard-delta-shard';
  const config = await destination(bucket);
  // The admin's own flags, the config and checkpoint named from the folder the run starts in (with a space to quote).
  const own = [
    '--config',
    'mastosync.toml',
    '--checkpoint',
    'delta shard.jsonl',
    '--shard',
    '1/2',
    '--until',
    '2100-01-01',
    '--min-id',
    '1',
    '--skip-remote-cache',
  ];
  const first = await cronRun(config, ...own);
  assert.equal(first.code, 0, first.stderr + first.stdout);
  const copied = (await s3.listKeys(bucket)).sort();
  assert.ok(copied.length > 0 && copied.length < fixture.present.length, `one shard's objects: ${copied.length}`);
  await deleteKeys(bucket, copied);

  const stopped = await cronRun(config, ...own);
  assert.equal(stopped.code, 1, stopped.stderr + stopped.stdout);
  const told = /To copy what it lacks: (mastosync run .*) \(or (mastosync verify .*)\); if \[destination\] is wrong, fix it$/.exec(stopped.stderr.trim());
  assert.ok(told, stopped.stderr);
  const elsewhere = mkdtempSync(join(tmpdir(), 'mastosync-elsewhere-'));
  configs.push({ dir: elsewhere });
  const paste = (line: string) => {
    assert.match(line, /^mastosync /);
    return runProgram('/bin/sh', ['-c', `'${process.execPath}' '${BIN}' ${line.slice('mastosync '.length)}`], { cwd: elsewhere });
  };
  proxy.reset();
  const refill = await paste(told[1]!);
  assert.equal(refill.code, 0, `${told[1]}: ${refill.stderr}${refill.stdout}`);
  assert.deepEqual((await s3.listKeys(bucket)).sort(), copied, "the shard's objects are back, and only those");
  assert.deepEqual(readdirSync(elsewhere), [], 'no checkpoint where it was pasted');
  assert.deepEqual(readdirSync(config.dir).sort(), ['delta shard.jsonl', 'mastosync.toml'], "the run's own checkpoint, no other");
  // It resumed that checkpoint: the admin's own line is quiet again, and copies nothing.
  const next = await cronRun(config, ...own);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(next.stderr, '');
  assert.deepEqual(requested(bucket, 'PutObject', 'CreateMultipartUpload', 'CopyObject'), []);
  // The other command given: verify over the same config and scope, which finds nothing left to repair.
  const verify = await paste(told[2]!);
  assert.equal(verify.code, 0, `${told[2]}: ${verify.stderr}${verify.stdout}`);
});

/** One cron run while the proxy answers the HEADs of `bucket`'s objects with `fault` (undefined: passed on). */
async function cronRunWithHeadFault(config: { dir: string }, bucket: string, fault: (key: string) => Fault | undefined): Promise<CronResult> {
  proxy.setFault((request) => (request.bucket === bucket && request.operation === 'HeadObject' && request.key !== undefined ? fault(request.key) : undefined));
  try {
    return await cronRun(config);
  } finally {
    proxy.setFault(undefined);
  }
}

test('a destination that refuses HEAD: one warning saying what to do, once per checkpoint, and the runs go on (exit 0)', async () => {
  const bucket = 'guard-nohead';
  const config = await destination(bucket);
  await firstNight(config, bucket);
  const owned = new Set(fixture.present.map((object) => object.key));
  const refused = () =>
    cronRunWithHeadFault(config, bucket, (key) =>
      owned.has(key) ? { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' } : undefined,
    );
  const run = await refused();
  assert.equal(run.code, 0, run.stderr + run.stdout);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, run.stderr);
  assert.match(
    lines[0]!,
    /could not ask the destination whether it still holds what the checkpoint records as copied: going on without that check\. To have it, let the destination credentials read objects .*Said once for this checkpoint/,
  );
  assert.ok(requested(bucket, 'HeadObject').length <= 4, 'no more asked for after the refusal than were in flight');
  // Write-only credentials are a choice: the next cron runs (each a mail when it writes to stderr) stay silent.
  for (let night = 0; night < 2; night++) {
    const again = await refused();
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.equal(again.stderr, '', 'said once, not at every run');
  }
  // Once the destination answers, a later refusal is news again.
  const answered = await cronRun(config);
  assert.equal(answered.code, 0, answered.stderr);
  assert.equal(answered.stderr, '');
  const later = await refused();
  assert.equal(later.stderr.trim().split('\n').length, 1, later.stderr);
  assert.match(later.stderr, /could not ask the destination/);
});

test('objects that show up a moment late (a store eventually consistent) are asked for again, not called missing', async () => {
  const bucket = 'guard-late';
  const config = await destination(bucket);
  await firstNight(config, bucket);
  const asked = new Set<string>();
  // Each object's first HEAD answers 404, as a replica that has not seen the write yet would.
  const run = await cronRunWithHeadFault(config, bucket, (key) => {
    if (asked.has(key)) return undefined;
    asked.add(key);
    return { kind: 'status', status: 404, code: 'NoSuchKey' };
  });
  assert.equal(run.code, 0, run.stderr + run.stdout);
  assert.equal(run.stderr, '', 'silent');
  assert.ok(asked.size >= 2, `asked for ${asked.size}`);
  assert.equal(requested(bucket, 'HeadObject').length, 2 * asked.size, 'each asked for twice');
});

test('a healthy destination: the check costs a few HEADs and nothing else, the run stays silent; rows deleted since (and their objects) are not asked for', async () => {
  const bucket = 'guard-healthy';
  const config = await destination(bucket);
  await firstNight(config, bucket);

  const run = await cronRun(config);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, '', 'silent');
  const heads = requested(bucket, 'HeadObject');
  assert.ok(heads.length >= 2 && heads.length <= SAMPLE_SIZE, `the check asked for ${heads.length} objects`);
  assert.equal(new Set(heads).size, heads.length, 'each once');
  assert.deepEqual(
    proxy.requests.filter((request) => request.bucket === bucket && request.key && request.operation !== 'HeadObject').map((request) => request.operation),
    [],
    'nothing but the HEADs',
  );

  // Mastodon deletes the newest media rows (statuses deleted), and a prune removes their objects at the destination:
  // not a loss the check may report.
  const newest = await db.client.query<{ id: string }>(`SELECT id::text FROM media_attachments ORDER BY id DESC LIMIT 3`);
  const ids = newest.rows.map((row) => row.id);
  const pruned = fixture.present.filter((object) => object.table === 'media_attachments' && ids.includes(object.rowId)).map((object) => object.key);
  assert.ok(pruned.length > 0);
  await db.client.query(`DELETE FROM media_attachments WHERE id = ANY($1::bigint[])`, [ids]);
  await deleteKeys(bucket, pruned);
  const after = await cronRun(config);
  assert.equal(after.code, 0, after.stderr);
  assert.equal(after.stderr, '', 'silent');
  const asked = requested(bucket, 'HeadObject');
  assert.ok(asked.length >= 2, `asked for ${asked.length}`);
  for (const key of asked) assert.ok(!pruned.includes(key), `${key}: its row is deleted, yet it was asked for`);
});
