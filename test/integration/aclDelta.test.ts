/**
 * A migration's delta pass (`run all --since T --checkpoint delta.jsonl`) stopped after its first rows and resumed with
 * `--resume`, as its summary tells the admin: an account suspended or a status discarded in between makes their media
 * private. The resumed run copies only the rows in its window; those above its watermark and outside the window are
 * copied by no pass of it, so the ACL pass must set them (review1 MED-1: they stayed public-read, exit 0).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ExpectedObject } from '../support/fixture.js';
import { startAclWorld, type AclWorld } from '../support/aclWorld.js';
import { runCli, type writeConfig } from '../support/cli.js';

const DESTINATION = 'delta-acl-destination';
/** Fixture: the live status of account 1, which owns most of its media (rows 5 to 112233445566778899). */
const LIVE_STATUS = '109349205816500002';
/** Fixture: a remote media row of account 42 with a low id, below most of account 1's rows. */
const EARLY_ROW = '60';

let world: AclWorld;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  world = await startAclWorld('delta-acl-source', DESTINATION);
  config = world.writeConfig({ concurrency: 4, batchSize: 4 });
});

after(async () => {
  await world?.stop();
});

const run = async (...args: string[]) => {
  world.proxy.reset();
  const result = await runCli(['run', 'all', '--quiet', '--log-level', 'warn', ...args], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr + result.stdout);
  return result;
};

/** The media objects copied of account 1's rows of the live status. */
function mediaOfLiveStatus(): ExpectedObject[] {
  const rows = new Map((world.fixture.rowsByTable.media_attachments ?? []).map((row) => [String(row.id), row]));
  return world.fixture.present.filter((object) => object.table === 'media_attachments' && String(rows.get(object.rowId)?.status_id) === LIVE_STATUS);
}

/**
 * The bulk copy made (or kept) current, then a delta pass since now that reads one row, the early row whose file
 * Mastodon fetched again, and stops (--limit 1 leaves its checkpoint as a stop after that row does): its watermark is
 * that row, below the objects of `objects`, which lie outside its window. Returns the checkpoint's name.
 */
async function deltaStoppedEarly(name: string, objects: readonly ExpectedObject[]): Promise<string> {
  await run('--resume');
  for (const object of objects) assert.equal(world.proxy.objectAcl(DESTINATION, object.key), 'public-read', object.key);
  assert.ok(
    objects.some((object) => BigInt(object.rowId) > BigInt(EARLY_ROW)),
    'fixture: objects above the early row',
  );
  const since = (await world.db.client.query<{ now: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS now`)).rows[0]!.now;
  await new Promise((resolve) => setTimeout(resolve, 1100));
  await world.db.client.query(`UPDATE media_attachments SET file_updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`, [EARLY_ROW]);
  const checkpoint = `${name}.jsonl`;
  await run('--since', since, '--checkpoint', checkpoint, '--limit', '1');
  await new Promise((resolve) => setTimeout(resolve, 1100));
  return `--since=${since}`;
}

test('an account suspended before a stopped delta pass is resumed: all its media private, those outside the window too', async () => {
  const objects = mediaOfLiveStatus();
  const since = await deltaStoppedEarly('delta-suspension', objects);
  await world.db.client.query(`UPDATE accounts SET suspended_at = (now() AT TIME ZONE 'UTC'), updated_at = (now() AT TIME ZONE 'UTC') WHERE id = 1`);
  await run(since, '--checkpoint', 'delta-suspension.jsonl', '--resume');
  const publicStill = objects.filter((object) => world.proxy.objectAcl(DESTINATION, object.key) !== 'private').map((object) => object.key);
  assert.deepEqual(publicStill, [], "a suspended account's media stayed public-read");
  // None of them is in the window: set, not copied again.
  assert.deepEqual(
    world.proxy.requests.filter((request) => request.bucket === DESTINATION && request.operation === 'PutObject').map((request) => request.key),
    [],
  );
});

test('a status discarded before a stopped delta pass is resumed: all its media private, those outside the window too', async () => {
  // Account 1 as before the test above, its media public again (the cron run in deltaStoppedEarly sets them).
  await world.db.client.query(`UPDATE accounts SET suspended_at = NULL, updated_at = (now() AT TIME ZONE 'UTC') WHERE id = 1`);
  const objects = mediaOfLiveStatus();
  const since = await deltaStoppedEarly('delta-discard', objects);
  await world.db.client.query(`UPDATE statuses SET deleted_at = (now() AT TIME ZONE 'UTC'), updated_at = (now() AT TIME ZONE 'UTC') WHERE id = $1`, [
    LIVE_STATUS,
  ]);
  await run(since, '--checkpoint', 'delta-discard.jsonl', '--resume');
  const publicStill = objects.filter((object) => world.proxy.objectAcl(DESTINATION, object.key) !== 'private').map((object) => object.key);
  assert.deepEqual(publicStill, [], "a discarded status's media stayed public-read");
});
