/**
 * The ACL pass of a resumed run against a destination that answers yet fails every ACL request (a proxy or WAF in
 * front of it refusing PutObjectAcl with 500s): it stops the run as a destination failing every PUT does, with one
 * line naming the destination and the ACL requests, exit 1, instead of failing every object of every changed account
 * in turn; once the requests go through again, --resume sets them all.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { startAclWorld, type AclWorld } from '../support/aclWorld.js';
import { fixtureBytes } from '../support/fixture.js';
import { readJsonLines, runCli, type writeConfig } from '../support/cli.js';

const SOURCE = 'access-stop-source';
const DESTINATION = 'access-stop-destination';
/** One local account whose media rows own MEDIA × 2 objects (original and small). */
const ACCOUNT = '900';
const MEDIA = 150;
const CONCURRENCY = 4;
/** Stands for the 5 minutes (MASTOSYNC_TEST_STORE_PATIENCE_MS). */
const PATIENCE_MS = 2000;
/** Objects failed in a row before the stop, at CONCURRENCY (src/sync/failureStreak.ts, streakObjects). */
const STREAK = 100;

let world: AclWorld;
let config: ReturnType<typeof writeConfig>;
let keys: string[];

before(async () => {
  world = await startAclWorld(SOURCE, DESTINATION);
  config = world.writeConfig({ concurrency: CONCURRENCY, retries: 1 });
  const { client } = world.db;
  await client.query(`INSERT INTO accounts (id, username, created_at, updated_at) VALUES ($1, 'many', now(), now())`, [ACCOUNT]);
  await client.query(
    `INSERT INTO media_attachments (id, account_id, file_file_name, file_content_type, file_file_size, file_updated_at, created_at, updated_at, type)
     SELECT 900000 + g, $1, 'm' || g || '.png', 'image/png', 1000, now(), now(), now(), 0 FROM generate_series(1, ${MEDIA}) AS g`,
    [ACCOUNT],
  );
  // The keys Mastodon's rows imply, as a dry run lists them, put at the source.
  const plan = await runCli(['run', 'media_attachments', '--dry-run', '--json', '--quiet', '--min-id', '900001', '--max-id', '900150'], { cwd: config.dir });
  assert.equal(plan.code, 0, plan.stderr);
  keys = readJsonLines<{ source?: string }>(plan.stdout).flatMap((line) => (line.source === undefined ? [] : [line.source]));
  assert.equal(keys.length, MEDIA * 2, plan.stdout.slice(0, 500));
  for (const key of keys) await world.s3.put(SOURCE, key, fixtureBytes(key, 1000, 'image/png'), { contentType: 'image/png' });
  const copy = await runCli(['run', 'all', '--quiet'], { cwd: config.dir });
  assert.equal(copy.code, 0, copy.stderr + copy.stdout);
  for (const key of keys) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'public-read', key);
});

after(async () => {
  rmSync(config?.dir ?? '/nonexistent', { recursive: true, force: true });
  await world?.stop();
});

test('a destination failing every PutObjectAcl stops the ACL pass and the run with one line, exit 1; --resume then sets every ACL', async () => {
  // As Account#suspend! does: every media object of the account is to be private.
  await world.db.client.query(`UPDATE accounts SET suspended_at = (now() AT TIME ZONE 'UTC'), updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`, [
    ACCOUNT,
  ]);
  world.proxy.reset();
  world.proxy.setFault((request) =>
    request.bucket === DESTINATION && request.operation === 'PutObjectAcl' ? { kind: 'status', status: 500, code: 'InternalError' } : undefined,
  );
  let result;
  try {
    result = await runCli(['run', 'all', '--resume', '--json', '--quiet', '--log-level', 'error'], {
      cwd: config.dir,
      env: { MASTOSYNC_TEST_STORE_PATIENCE_MS: String(PATIENCE_MS) },
    });
  } finally {
    world.proxy.setFault(undefined);
  }
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
  assert.equal(lines.length, 1, `one line names the cause:\n${result.stderr}`);
  assert.match(
    lines[0]!,
    new RegExp(
      `^mastosync: stopped: the destination s3://${DESTINATION} at ${world.proxy.endpoint.replaceAll('.', '\\.')} failed the ACL request of each of the last (\\d+) objects, ` +
        `for \\d+ s, none done in between \\(the last: .*InternalError.*\\): it answers, yet every ACL request fails: .*` +
        `once ACL requests go through again, run again with --resume$`,
    ),
  );
  const stoppedAfter = Number(/each of the last (\d+) objects/.exec(lines[0]!)?.[1]);
  assert.ok(stoppedAfter >= STREAK, `stopped after ${stoppedAfter} objects`);
  const tried = new Set(world.proxy.requests.filter((request) => request.operation === 'PutObjectAcl').map((request) => request.key));
  assert.ok(tried.size >= stoppedAfter && tried.size <= stoppedAfter + CONCURRENCY, `${tried.size} objects tried, stopped after ${stoppedAfter}`);
  assert.ok(tried.size < keys.length, `stopped part-way: ${tried.size} of ${keys.length} objects`);

  const resumed = await runCli(['run', 'all', '--resume', '--json', '--quiet', '--log-level', 'error'], { cwd: config.dir });
  assert.equal(resumed.code, 0, resumed.stderr);
  for (const key of keys) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'private', key);
});

test('verify --acl where every object Mastodon makes public reads private (as MinIO reads each one): stops after the first 100 with one line, exit 1; --repair on a store that keeps ACLs sets them all', async () => {
  // Unsuspended: its objects are to be public again, and each reads private, as a store keeping no ACL reads them.
  await world.db.client.query(`UPDATE accounts SET suspended_at = NULL, updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`, [ACCOUNT]);
  const scope = ['media_attachments', '--by-head', '--min-id', '900001', '--max-id', '900150', '--acl', '--json', '--quiet'];
  const result = await runCli(['verify', ...scope], { cwd: config.dir });
  assert.equal(result.code, 1, result.stderr);
  const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
  assert.deepEqual(lines.length, 1, result.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `^mastosync: stopped: the destination s3://${DESTINATION} at ${world.proxy.endpoint.replaceAll('.', '\\.')} reads each of the first ${STREAK} objects Mastodon makes public-read as private, and not one as public-read: ` +
        'it keeps no per-object ACL \\(as MinIO, or a bucket whose Object Ownership is "bucket owner enforced"\\), or every object there was written without one: ' +
        'where it keeps ACLs, verify --acl --repair sets them; else verify without --acl$',
    ),
  );
  const problems = readJsonLines<{ problem?: string }>(result.stdout).filter((line) => line.problem === 'acl');
  assert.ok(problems.length >= STREAK && problems.length <= STREAK + CONCURRENCY, `${problems.length} lines`);

  const repaired = await runCli(['verify', ...scope, '--repair'], { cwd: config.dir });
  assert.equal(repaired.code, 0, repaired.stderr);
  assert.equal(readJsonLines<{ repair?: string }>(repaired.stdout).filter((line) => line.repair === 'acl').length, keys.length);
  for (const key of keys) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'public-read', key);
});
