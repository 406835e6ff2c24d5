/**
 * `run --skip-existing` on a destination filled by something else (a lost checkpoint's run, another machine, `aws s3
 * sync --acl public-read`): the private objects it finds present (backups, the media of a suspended account) get the
 * ACL Mastodon gives them, one PutObjectAcl each and none for the public ones, and the summary says so. One whose ACL
 * cannot be set is failed, not present, and a --resume sets it. The proxy keeps ACLs as S3 does (s3rver does not).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PutObjectAclCommand } from '@aws-sdk/client-s3';
import { makeS3Client } from '../support/s3.js';
import { startAclWorld, type AclWorld } from '../support/aclWorld.js';
import { runCli, type writeConfig } from '../support/cli.js';
import type { JobSummary } from '../../src/sync/run.js';

const SOURCE = 'skip-acl-source';
const DESTINATION = 'skip-acl-destination';

let world: AclWorld;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  world = await startAclWorld(SOURCE, DESTINATION);
  config = world.writeConfig({ concurrency: 4, retries: 0 });
  // The destination filled, then its checkpoint lost: the next runs name another one.
  const copy = await runCli(['run', 'all', '--quiet'], { cwd: config.dir });
  assert.equal(copy.code, 0, copy.stderr + copy.stdout);
});

after(async () => {
  await world?.stop();
});

const privateKeys = () =>
  world.fixture.present
    .filter((object) => object.acl === 'private')
    .map((object) => object.key)
    .sort();
const destinationRequests = (operation: string) => world.proxy.requests.filter((request) => request.bucket === DESTINATION && request.operation === operation);

/** What `aws s3 sync --acl public-read` leaves: every object public, the private ones too. */
async function exposePrivateObjects(): Promise<void> {
  const client = makeS3Client(world.proxy.endpoint);
  try {
    for (const key of privateKeys()) await client.send(new PutObjectAclCommand({ Bucket: DESTINATION, Key: key, ACL: 'public-read' }));
  } finally {
    client.destroy();
  }
  for (const key of privateKeys()) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'public-read');
  world.proxy.reset();
}

test('--skip-existing sets the ACL of the private objects it finds present to private, and asks nothing of the public ones', async () => {
  const exposed = privateKeys();
  assert.ok(
    exposed.some((key) => key.startsWith('backups/')) && exposed.some((key) => key.startsWith('media_attachments/')),
    'fixture: private backups and media',
  );
  await exposePrivateObjects();

  const run = await runCli(['run', 'all', '--skip-existing', '--checkpoint', 'lost.jsonl', '--quiet'], { cwd: config.dir });
  assert.equal(run.code, 0, run.stderr + run.stdout);
  for (const key of exposed) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'private', key);
  // One PutObjectAcl per private object, none for a public one, no read of any ACL, no byte copied.
  assert.deepEqual(
    destinationRequests('PutObjectAcl')
      .map((request) => request.key)
      .sort(),
    exposed,
  );
  assert.deepEqual(destinationRequests('GetObjectAcl'), []);
  assert.deepEqual(destinationRequests('PutObject'), []);
  assert.match(run.stdout, new RegExp(`^${exposed.length} private objects found present: ACL set to private `, 'm'));

  const check = await runCli(['verify', 'all', '--acl', '--quiet'], { cwd: config.dir });
  assert.equal(check.code, 0, check.stderr + check.stdout);
});

test('--skip-existing: a private object whose ACL cannot be set is failed, not present, and --resume sets it', async () => {
  const exposed = privateKeys();
  await exposePrivateObjects();
  world.proxy.setFault((request) =>
    request.bucket === DESTINATION && request.operation === 'PutObjectAcl' ? { kind: 'status', status: 500, code: 'InternalError' } : undefined,
  );
  let run;
  try {
    run = await runCli(['run', 'all', '--skip-existing', '--checkpoint', 'refused.jsonl', '--quiet', '--json'], { cwd: config.dir });
  } finally {
    world.proxy.setFault(undefined);
  }
  assert.equal(run.code, 1, run.stderr + run.stdout);
  const total = (JSON.parse(run.stdout) as { total: Omit<JobSummary, 'job' | 'ms'> }).total;
  assert.equal(total.failed, exposed.length);
  assert.equal(total.present, world.fixture.present.length - exposed.length);
  assert.equal(total.presentMadePrivate, 0);

  const resumed = await runCli(['run', 'all', '--resume', '--skip-existing', '--checkpoint', 'refused.jsonl', '--quiet', '--json'], { cwd: config.dir });
  assert.equal(resumed.code, 0, resumed.stderr + resumed.stdout);
  for (const key of exposed) assert.equal(world.proxy.objectAcl(DESTINATION, key), 'private', key);
});
