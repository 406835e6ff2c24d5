/**
 * SIGTERM while copying, as a node drain sends it to a pod: the copies in flight get `[sync] stop_grace` seconds to
 * finish, and then are aborted, so the run ends (exit 130, lock released) within the pod's grace period (Kubernetes'
 * default: 30 s) instead of being SIGKILLed with its lock left behind (every later pod of that shard then exits 75).
 * What is aborted is recorded as not done, leaves no object and no multipart upload behind, and --resume copies it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { BIG_OBJECT_SIZE, type Fixture } from '../support/fixture.js';
import type { TestDatabase } from '../support/postgres.js';
import type { S3Server } from '../support/s3.js';
import type { HttpProxy } from '../support/httpProxy.js';
import { startFixtureWorld, type FixtureWorld } from '../support/fixtureWorld.js';
import { runCli, writeConfig } from '../support/cli.js';
import { readCheckpoint } from '../support/exact.js';

let world: FixtureWorld;
let s3: S3Server;
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;
const cleanups: Array<() => void> = [];
const SOURCE = 'grace-source';
const DESTINATION = 'grace-destination';

before(async () => {
  world = await startFixtureWorld(SOURCE);
  ({ s3, proxy, fixture, db } = world);
  await s3.createBucket(DESTINATION);
});

after(async () => {
  for (const cleanup of cleanups) cleanup();
  await world?.stop();
});

test('SIGTERM with a large body in flight: the run ends within the grace, the copy is aborted cleanly, and --resume finishes it', async () => {
  const big = fixture.present.find((object) => object.size === BIG_OBJECT_SIZE && object.table === 'media_attachments')!;
  assert.ok(big, 'the fixture has a large video');
  // Its GET sends the first MiB, then nothing more: a large video on a slow link, far longer than a pod may wait.
  proxy.setFault((request) =>
    request.bucket === SOURCE && request.key === big.sourceKey && request.operation === 'GetObject' ? { kind: 'stall', afterBytes: 1024 * 1024 } : undefined,
  );
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: SOURCE },
    destination: { endpoint: proxy.endpoint, bucket: DESTINATION },
    // Multipart from 5 MiB: the large video's upload is one, which an abort must not leave behind.
    uploadCutoffMib: 5,
    extra: 'stop_grace = 2',
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));

  let signalledAt = 0;
  const stalled = () => proxy.requests.some((request) => request.key === big.sourceKey && request.operation === 'GetObject' && request.responseBytes > 0);
  const run = runCli(['run', 'all', '--quiet'], {
    cwd: config.dir,
    onSpawn: (child) => {
      const poll = setInterval(() => {
        if (!stalled()) return;
        clearInterval(poll);
        signalledAt = Date.now();
        child.kill('SIGTERM');
      }, 20);
      // Without the bound the run waits for the stalled body for good: a pod would be SIGKILLed, its lock left behind.
      setTimeout(() => child.kill('SIGKILL'), 20_000).unref();
      child.once('exit', () => clearInterval(poll));
    },
  });
  const result = await run;
  const tookMs = Date.now() - signalledAt;
  assert.ok(signalledAt > 0, 'the large body was never in flight');
  assert.equal(result.signal, null, `killed: the run did not end after SIGTERM\n${result.stderr}`);
  assert.equal(result.code, 130, result.stderr);
  assert.ok(tookMs < 10_000, `the run ended ${tookMs} ms after SIGTERM, with a 2 s grace`);
  assert.match(result.stderr, /copies still in flight after 2 s: aborting them/);
  assert.equal(existsSync(`${config.checkpoint}.lock`), false, 'the checkpoint lock is left behind');

  // Nothing partial: no object at its key, its multipart upload aborted, and the checkpoint does not record it as copied.
  assert.equal(await s3.getObject(DESTINATION, big.key), null, 'a partial object was left');
  const created = proxy.requests.filter(
    (request) => request.bucket === DESTINATION && request.key === big.key && request.operation === 'CreateMultipartUpload',
  );
  const aborted = proxy.requests.filter((request) => request.bucket === DESTINATION && request.key === big.key && request.operation === 'AbortMultipartUpload');
  assert.equal(aborted.length, created.length, 'every multipart upload of the aborted copy is aborted');
  const lines = readCheckpoint(config.checkpoint).objects.filter((line) => line.key === big.key);
  assert.ok(
    lines.every((line) => line.status !== 'copied'),
    `recorded as copied: ${JSON.stringify(lines)}`,
  );

  proxy.setFault(undefined);
  const resumed = await runCli(['run', 'all', '--resume', '--quiet'], { cwd: config.dir });
  assert.ok(resumed.code === 0 || resumed.code === 1, resumed.stderr);
  const stored = await s3.getObject(DESTINATION, big.key);
  assert.equal(stored && createHash('sha256').update(stored.body).digest('hex'), big.sha256, '--resume copies the aborted object');
});
