/**
 * A suspension after the copy reaches the copy: Mastodon makes every media object of a suspended account private
 * (UpdateMediaAttachmentsPermissionsService), and public again when it unsuspends it, touching the account's row only.
 * A cron `run all --resume` then gives the objects it copied before the ACL Mastodon gave them; a profile edit
 * re-applies nothing (one GetObjectAcl for the account, no write). The proxy keeps ACLs as S3 does (s3rver does not).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExpectedObject, Fixture } from '../support/fixture.js';
import type { TestDatabase } from '../support/postgres.js';
import type { HttpProxy } from '../support/httpProxy.js';
import { startAclWorld, type AclWorld } from '../support/aclWorld.js';
import { runCli, type writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';

const SOURCE = 'acl-source';
const DESTINATION = 'acl-destination';
/** Fixture: account 1 (local, with media) and account 7 (suspended, remote media); a discarded and a live status of 1. */
const DISCARDED_STATUS = '109349205816500001';
const LIVE_STATUS = '109349205816500002';

let world: AclWorld;
let proxy: HttpProxy;
let db: TestDatabase;
let fixture: Fixture;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  world = await startAclWorld(SOURCE, DESTINATION);
  ({ proxy, db, fixture } = world);
  config = world.writeConfig({ concurrency: 4, batchSize: 4 });
});

after(async () => {
  await world?.stop();
});

async function cronRun(): Promise<{ media: JobSummary }> {
  proxy.reset();
  // With --metrics: the observed destination keeps its access.
  const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json', '--metrics', '127.0.0.1:0'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  const report = JSON.parse(result.stdout) as { jobs: JobSummary[] };
  return { media: report.jobs.find((job) => job.job === 'media_attachments')! };
}

/** The media objects copied of `account`'s rows, less those of `excluded` statuses (private whatever the account). */
function mediaOf(account: string, ...excluded: string[]): ExpectedObject[] {
  const rows = new Map((fixture.rowsByTable.media_attachments ?? []).map((row) => [String(row.id), row]));
  return fixture.present.filter((object) => {
    const row = object.table === 'media_attachments' ? rows.get(object.rowId) : undefined;
    return row !== undefined && String(row.account_id) === account && !excluded.includes(String(row.status_id));
  });
}

const aclOf = (object: ExpectedObject) => proxy.objectAcl(DESTINATION, object.key);
const requests = (operation: string) => proxy.requests.filter((request) => request.bucket === DESTINATION && request.operation === operation);
/** As Account#suspend! and #unsuspend! do: update! sets updated_at. */
const setSuspended = (account: string, suspended: boolean) =>
  db.client.query(
    `UPDATE accounts SET suspended_at = ${suspended ? "(now() AT TIME ZONE 'UTC')" : 'NULL'}, updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`,
    [account],
  );

test('suspending, unsuspending and discarding after the copy: --resume re-applies the ACLs Mastodon changed, and a profile edit none', async () => {
  const first = await cronRun();
  assert.equal(first.media.aclsReapplied, 0);
  const ofOne = mediaOf('1', DISCARDED_STATUS);
  const ofSeven = mediaOf('7');
  assert.ok(ofOne.length >= 4 && ofSeven.length >= 3, `fixture: ${ofOne.length} objects of account 1, ${ofSeven.length} of account 7`);
  for (const object of ofOne) assert.equal(aclOf(object), 'public-read', object.key);
  for (const object of ofSeven) assert.equal(aclOf(object), 'private', object.key);

  // Account 1 suspended, account 7 unsuspended: each object flips, none is copied again.
  await setSuspended('1', true);
  await setSuspended('7', false);
  const second = await cronRun();
  for (const object of ofOne) assert.equal(aclOf(object), 'private', `${object.key}: suspended account`);
  for (const object of ofSeven) assert.equal(aclOf(object), 'public-read', `${object.key}: unsuspended account`);
  for (const object of mediaOf('1').filter((object) => !ofOne.includes(object))) assert.equal(aclOf(object), 'private', `${object.key}: discarded status`);
  // One PutObjectAcl per object the destination holds (a style missing at the source was found at a legacy key).
  const set = requests('PutObjectAcl').filter((request) => request.status === 200);
  assert.equal(second.media.aclsReapplied, set.length);
  assert.ok(set.length >= ofOne.length + ofSeven.length);
  assert.equal(second.media.copied, 0);
  assert.deepEqual(requests('PutObject'), [], 'no object is copied again');

  // A profile edit of account 7 (a remote account fetched again): its one probe matches, nothing is written.
  await db.client.query(`UPDATE accounts SET username = username || 'x', updated_at = (now() AT TIME ZONE 'UTC') WHERE id = 7`);
  const edit = await cronRun();
  assert.equal(edit.media.aclsReapplied, 0);
  assert.deepEqual(requests('PutObjectAcl'), []);
  assert.ok(requests('GetObjectAcl').length <= 3, `a probe per account changed since the last sync: ${requests('GetObjectAcl').length}`);

  // Unsuspended: public again. A status discarded (reported, kept): its media private.
  await setSuspended('1', false);
  await db.client.query(`UPDATE statuses SET deleted_at = (now() AT TIME ZONE 'UTC'), updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`, [LIVE_STATUS]);
  const third = await cronRun();
  const ofLive = new Set(mediaOf('1').filter((object) => !mediaOf('1', LIVE_STATUS).includes(object)));
  assert.ok(ofLive.size > 0, 'fixture: the live status of account 1 has media');
  for (const object of ofOne) assert.equal(aclOf(object), ofLive.has(object) ? 'private' : 'public-read', object.key);
  assert.ok(third.media.aclsReapplied >= ofOne.length - ofLive.size, 'the media of the discarded status were private already');
  assert.equal(third.media.aclsReapplied, requests('PutObjectAcl').filter((request) => request.status === 200).length);

  // A migration's delta pass (`--since` the bulk copy's start, its own checkpoint): an account suspended meanwhile.
  const now = (await db.client.query<{ now: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS now`)).rows[0]!.now;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await setSuspended('7', true);
  proxy.reset();
  const delta = await runCli(['run', 'all', '--since', now, '--checkpoint', 'delta.jsonl', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
  assert.equal(delta.code, 0, delta.stderr + delta.stdout);
  for (const object of ofSeven) assert.equal(aclOf(object), 'private', `${object.key}: suspended during a migration`);
  // What the admin reads: a column beside skipped, the job's count in it, and a line saying what they are.
  const reapplied = requests('PutObjectAcl').length;
  assert.match(delta.stdout, /^job +rows +changed +objects +copied +relocated +missing +failed +skipped +ACLs re-applied +bytes +time$/m);
  assert.match(delta.stdout, new RegExp(`^media_attachments( +\\d+){8} +${reapplied} +\\S+ \\S+ +\\S+ \\S+$`, 'm'));
  assert.match(delta.stdout, new RegExp(`^${reapplied} ACLs re-applied: objects copied before whose account was suspended or unsuspended`, 'm'));
  assert.deepEqual(requests('PutObject'), []);
});

test('credentials that may not read or set ACLs: --resume warns once and copies on, as before ACLs were re-applied', async () => {
  await setSuspended('1', true);
  proxy.setFault((request) =>
    request.operation === 'GetObjectAcl' || request.operation === 'PutObjectAcl' ? { kind: 'status', status: 403, code: 'AccessDenied' } : undefined,
  );
  try {
    proxy.reset();
    const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const report = JSON.parse(result.stdout) as { jobs: JobSummary[] };
    const media = report.jobs.find((job) => job.job === 'media_attachments')!;
    assert.equal(media.aclsReapplied, 0);
    assert.equal(media.failed, 0);
    const warnings = result.stderr.split('\n').filter((line) => line.includes('may not read or set ACLs'));
    assert.equal(warnings.length, 1, result.stderr);
    assert.match(warnings[0]!, /s3:GetObjectAcl and s3:PutObjectAcl/);
    assert.ok(requests('GetObjectAcl').length >= 1, 'the pass asked');
  } finally {
    proxy.setFault(undefined);
  }
});

test('a suspension after an interrupted run: the objects it finished above its watermark get the ACL too', async () => {
  // Account 1 public again (the test above left it suspended), every object of it as the run sets it.
  await setSuspended('1', false);
  await cronRun();
  // The media of account 1 whose access follows the account (both statuses are discarded by now).
  const ofOne = mediaOf('1', DISCARDED_STATUS, LIVE_STATUS);
  for (const object of ofOne) assert.equal(aclOf(object), 'public-read', object.key);
  // As an interrupted run leaves it: rows above the watermark finished ("done"), the watermark lower.
  const ids = [...new Set(ofOne.map((o) => BigInt(o.rowId)))].sort((a, b) => (a < b ? -1 : 1));
  const low = String(ids[0]! - 1n);
  const path = join(config.dir, 'mastosync.checkpoint.jsonl');
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => !(line.includes('"watermark":') && line.includes('media_attachments')) && !line.includes('"synced":'));
  lines.splice(
    1,
    0,
    `{"job":"media_attachments","watermark":"${low}"}`,
    ...ofOne.map((o) => JSON.stringify({ job: 'media_attachments', id: o.rowId, key: o.key, status: 'copied', bytes: 1, ms: 1 })),
  );
  writeFileSync(path, lines.join('\n'));
  await new Promise((r) => setTimeout(r, 1100));
  await setSuspended('1', true);
  const second = await cronRun();
  assert.ok(second.media.aclsReapplied >= ofOne.length, `re-applied ${second.media.aclsReapplied}`);
  const wrong = ofOne.filter((object) => aclOf(object) !== 'private');
  assert.deepEqual(wrong, [], "a suspended account's objects stay public-read");
});

test('one object refused its ACL after the pass set others: that object fails, the pass goes on (the credentials may)', async () => {
  // The first test left account 7 suspended (its delta pass), its objects private: unsuspended, each goes public-read.
  const ofSeven = mediaOf('7');
  assert.ok(ofSeven.length >= 3, `fixture: account 7 has ${ofSeven.length} objects`);
  for (const object of ofSeven) assert.equal(aclOf(object), 'private', object.key);
  await setSuspended('7', false);
  // The account's probe is asked first (GetObjectAcl, which succeeds) and set last: the first PutObjectAcl is another
  // object's, after an ACL request of the pass succeeded.
  let refused: string | undefined;
  proxy.setFault((request) => {
    if (request.operation !== 'PutObjectAcl') return undefined;
    refused ??= request.key;
    return request.key === refused ? { kind: 'status', status: 403, code: 'AccessDenied' } : undefined;
  });
  try {
    proxy.reset();
    const result = await runCli(['run', 'all', '--resume', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
    assert.equal(proxy.faults['status:AccessDenied'], 1, 'the refusal was answered');
    const acls = requests('GetObjectAcl').concat(requests('PutObjectAcl'));
    assert.ok(
      acls.some((request) => request.status === 200 && request.seq < requests('PutObjectAcl').find((put) => put.key === refused)!.seq),
      'an ACL request of the pass succeeded before the refusal',
    );
    assert.equal(result.code, 1, result.stderr + result.stdout);
    const media = (JSON.parse(result.stdout) as { jobs: JobSummary[] }).jobs.find((job) => job.job === 'media_attachments')!;
    assert.equal(media.failed, 1, 'the refused object is a failure');
    assert.doesNotMatch(result.stderr, /may not read or set ACLs/, 'not read as credentials without the ACL permissions');
    assert.match(result.stderr, /could not re-apply the ACL/);
    // Every other object is set but the probe, left differing for the next run to find the account by.
    const notSet = ofSeven.filter((object) => aclOf(object) !== 'public-read').map((object) => object.key);
    assert.equal(notSet.length, 2, `the refused object and the probe: ${notSet.join(', ')}`);
    assert.ok(notSet.includes(refused!));
  } finally {
    proxy.setFault(undefined);
  }
  // The next run finds the account again (its probe still differs) and finishes it.
  await cronRun();
  for (const object of ofSeven) assert.equal(aclOf(object), 'public-read', object.key);
});

/**
 * The checkpoint as a run interrupted before `objects` leaves it: their lines gone and the media watermark below
 * their rows. Returns their keys a second later, so that a row changed next is seen as changed after the checkpoint.
 */
async function undoneInCheckpoint(objects: readonly ExpectedObject[]): Promise<Set<string>> {
  const ids = [...new Set(objects.map((o) => BigInt(o.rowId)))].sort((a, b) => (a < b ? -1 : 1));
  const keys = new Set(objects.map((o) => o.key));
  const path = join(config.dir, 'mastosync.checkpoint.jsonl');
  const lines = readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => !(line.includes('"watermark":') && line.includes('media_attachments')))
    .filter((line) => line.trim() === '' || !keys.has((JSON.parse(line) as { key?: string }).key ?? ''));
  lines.splice(1, 0, `{"job":"media_attachments","watermark":"${ids[0]! - 1n}"}`);
  writeFileSync(path, lines.join('\n'));
  await new Promise((r) => setTimeout(r, 1100));
  return keys;
}

test('a suspension while rows above the watermark wait to be copied: the pass leaves them to the copy, which writes them private', async () => {
  // Account 7 public again (the test above), every object of it copied and done. As an interrupted run leaves it:
  // the watermark below account 7's rows, which are not done yet.
  const ofSeven = mediaOf('7');
  for (const object of ofSeven) assert.equal(aclOf(object), 'public-read', object.key);
  const keys = await undoneInCheckpoint(ofSeven);
  await setSuspended('7', true);
  const run = await cronRun();
  for (const object of ofSeven) assert.equal(aclOf(object), 'private', `${object.key}: copied private`);
  assert.ok(run.media.copied + run.media.relocated >= ofSeven.length, `copied ${run.media.copied}`);
  // Not asked nor set before its copy: a wasted request, and a 403 for a missing key without s3:ListBucket.
  const asked = [...requests('GetObjectAcl'), ...requests('PutObjectAcl')].filter((request) => keys.has(request.key ?? ''));
  assert.deepEqual(
    asked.map((request) => `${request.operation} ${request.key}`),
    [],
  );
  assert.equal(run.media.aclsReapplied, 0);
});

test('the same with --skip-existing: the objects the destination holds are not written again, so the pass sets their ACL', async () => {
  // Account 7 private (the test above), every object of it at the destination. The watermark below its rows again,
  // which are not done; then it is unsuspended.
  const ofSeven = mediaOf('7');
  for (const object of ofSeven) assert.equal(aclOf(object), 'private', object.key);
  const keys = await undoneInCheckpoint(ofSeven);
  await setSuspended('7', false);
  proxy.reset();
  const result = await runCli(['run', 'all', '--resume', '--skip-existing', '--quiet', '--log-level', 'warn', '--json'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  // Listed as held: none of them written again, each given the ACL Mastodon now gives it.
  assert.deepEqual(
    requests('PutObject').filter((request) => keys.has(request.key ?? '')),
    [],
  );
  for (const object of ofSeven) assert.equal(aclOf(object), 'public-read', `${object.key}: public again`);
});
