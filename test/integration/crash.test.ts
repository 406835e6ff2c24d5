/**
 * Crash safety: `run all` is killed with SIGKILL at random moments (seeded), then `run all --resume` finishes it.
 * After each kill the checkpoint must be consistent (every line whole but perhaps the last, every object it calls
 * copied really at the destination, byte-exact); after the resume the destination must be exact, and nothing the
 * checkpoint recorded as done may have been copied again. SIGINT stops a run gracefully: exit 130, the copies in
 * flight finish and are recorded, and --resume completes the rest.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig } from '../support/cli.js';
import { buildFixture } from '../support/fixture.js';
import { assertCheckpointTrue, assertDestinationExact, assertObjectExact, buildIntegrityWorld, readCheckpoint, type IntegrityWorld } from '../support/exact.js';
import { seededRandom } from '../support/random.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let proxy: HttpProxy;
let world: IntegrityWorld;
const dirs: string[] = [];

/** Copies take a few milliseconds each through this proxy, so a run lasts long enough to be killed mid-way. */
const LATENCY_MS = 10;
const SEED = Number(process.env.MASTOSYNC_TEST_SEED ?? 20240601);
/** The object lines a whole run writes (every owned key, missing ones included, and the large objects). */
const OBJECT_LINES = buildFixture('current').expected.length + 2;

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('crash-source');
  world = await buildIntegrityWorld(db, s3, 'crash-source');
  proxy = await startProxy({ upstreamPort: s3.port, latencyMs: LATENCY_MS });
});

after(async () => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await proxy?.stop();
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

/**
 * Source and destination share one endpoint and credentials, so by default (copy_mode "auto") objects are copied
 * on the provider; `stream` makes the bytes pass through mastosync (GET into PUT or multipart upload).
 */
async function newDestination(name: string, copyMode: 'auto' | 'stream' = 'stream') {
  await s3.createBucket(name);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: 'crash-source' },
    destination: { endpoint: proxy.endpoint, bucket: name },
    concurrency: 8,
    copyMode,
  });
  dirs.push(config.dir);
  return config;
}

function objectLines(path: string): number {
  return existsSync(path)
    ? readFileSync(path, 'utf8')
        .split('\n')
        .filter((line) => line.startsWith('{"job"') && !line.includes('"watermark"')).length
    : 0;
}

/** Sends `signal` once the checkpoint holds `afterObjects` object lines and `extraMs` more have passed. */
function signalWhen(checkpoint: string, afterObjects: number, extraMs: number, signal: NodeJS.Signals) {
  return (child: ChildProcess) => {
    void (async () => {
      while (child.exitCode === null && child.signalCode === null && objectLines(checkpoint) < afterObjects) await sleep(5);
      await sleep(extraMs);
      child.kill(signal);
    })();
  };
}

/** The keys a run recorded as finished (copied, relocated or missing at the source). */
function finishedKeys(checkpoint: string): Set<string> {
  return new Set(
    readCheckpoint(checkpoint)
      .objects.filter((line) => line.status !== 'failed')
      .map((line) => line.key),
  );
}

describe('SIGKILL at random moments, then --resume', () => {
  const random = seededRandom(SEED);
  // Four trials, each its own case: killed by the clock, copying on the provider, a torn last line, killed again
  // while resuming. (A fifth, a plain kill at another random point, checked nothing the third and fourth do not,
  // which are plain kills before their own step: it was a ninth of this file's time.)
  const trials = Array.from({ length: 4 }, (_, index) => ({
    index,
    // Most trials stream the bytes; the second copies on the provider (CopyObject).
    copyMode: index === 1 ? ('auto' as const) : ('stream' as const),
    // Trial 0 is killed by the clock alone (maybe before the first copy); the others after a random share of the copies.
    afterObjects: index === 0 ? 0 : Math.floor(random() * 0.8 * OBJECT_LINES),
    extraMs: Math.floor(random() * (index === 0 ? 900 : 60)),
  }));

  for (const trial of trials) {
    test(`trial ${trial.index + 1} (${trial.copyMode === 'stream' ? 'streamed' : 'copied on the provider'}): killed after ${trial.afterObjects} objects + ${trial.extraMs} ms; resume ends exact`, async () => {
      const bucket = `crash-destination-${trial.index + 1}`;
      const config = await newDestination(bucket, trial.copyMode);

      const killed = await runCli(['run', 'all'], { cwd: config.dir, onSpawn: signalWhen(config.checkpoint, trial.afterObjects, trial.extraMs, 'SIGKILL') });
      assert.equal(killed.signal, 'SIGKILL', `the run must have been killed, not ${killed.code === null ? 'stopped' : `finished (exit ${killed.code})`}`);

      let done = new Set<string>();
      if (existsSync(config.checkpoint)) {
        const checkpoint = readCheckpoint(config.checkpoint);
        await assertCheckpointTrue(s3, bucket, world, checkpoint);
        done = finishedKeys(config.checkpoint);
        if (trial.index === 2 && checkpoint.objects.length > 0) {
          // A kill mid-write (power loss) can leave half a line: cut the last one in two.
          const text = readFileSync(config.checkpoint, 'utf8');
          const lastLine = text.slice(text.lastIndexOf('\n', text.length - 2) + 1);
          truncateSync(config.checkpoint, text.length - Math.ceil(lastLine.length / 2));
          done = finishedKeys(config.checkpoint);
        }
      }

      if (trial.index === 3) {
        // Killed again while resuming.
        const again = await runCli(['run', 'all', '--resume'], {
          cwd: config.dir,
          onSpawn: signalWhen(config.checkpoint, objectLines(config.checkpoint) + 5, 0, 'SIGKILL'),
        });
        assert.equal(again.signal, 'SIGKILL');
        await assertCheckpointTrue(s3, bucket, world, readCheckpoint(config.checkpoint));
        done = finishedKeys(config.checkpoint);
      }

      proxy.reset();
      const resumed = await runCli(['run', 'all', '--resume'], { cwd: config.dir });
      assert.equal(resumed.code, 0, resumed.stderr);
      await assertDestinationExact(s3, bucket, world);
      const checkpoint = readCheckpoint(config.checkpoint);
      assert.equal(checkpoint.torn, undefined, 'a resumed run must not leave a torn line behind');
      await assertCheckpointTrue(s3, bucket, world, checkpoint);
      assert.equal(checkpoint.objects.filter((line) => line.status === 'failed').length, 0);

      // Resume redoes at most what was in flight: nothing recorded as finished is uploaded again.
      const uploadedAgain = proxy.requests
        .filter((request) => request.bucket === bucket && ['PutObject', 'CreateMultipartUpload', 'CopyObject'].includes(request.operation))
        .map((request) => request.key!)
        .filter((key) => done.has(key));
      assert.deepEqual(uploadedAgain, [], 'objects the checkpoint recorded as finished were copied again');
    });
  }
});

describe('SIGINT', () => {
  test('stops reading, lets the copies in flight finish and record, exits 130; --resume completes the rest', async () => {
    const bucket = 'crash-destination-sigint';
    const config = await newDestination(bucket);
    proxy.reset();
    const stopped = await runCli(['run', 'all'], { cwd: config.dir, onSpawn: signalWhen(config.checkpoint, 15, 0, 'SIGINT') });
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(stopped.stdout, /interrupted: run again with --resume/);

    // Every copy that had started finished: each object read from the source is recorded, and no upload was cut.
    const checkpoint = readCheckpoint(config.checkpoint);
    assert.equal(checkpoint.torn, undefined);
    const recorded = new Map(checkpoint.objects.map((line) => [line.key, line.status]));
    const sourceKeyToKey = new Map(world.wanted.map((object) => [object.sourceKey, object.key]));
    const started = proxy.requests
      .filter((request) => request.bucket === 'crash-source' && request.operation === 'GetObject' && request.status === 200)
      .map((request) => sourceKeyToKey.get(request.key!)!);
    assert.ok(started.length >= 15 && started.length < world.wanted.length, `the run must stop mid-way (${started.length} of ${world.wanted.length} read)`);
    for (const key of started)
      assert.match(recorded.get(key) ?? 'not recorded', /^(copied|relocated)$/, `${key} was in flight and must have been finished and recorded`);
    const cut = proxy.requests.filter((request) => request.bucket === bucket && request.method === 'PUT' && request.status !== 200);
    assert.deepEqual(
      cut.map((request) => `${request.operation} ${request.key}`),
      [],
      'no upload in flight may be cut short',
    );
    await assertCheckpointTrue(s3, bucket, world, checkpoint);

    const resumed = await runCli(['run', 'all', '--resume'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    await assertDestinationExact(s3, bucket, world);
  });
});

describe('stopping a rate-limited run (--max-rps)', () => {
  // At 4 requests a second with 2 copies in flight, copies wait in the queue and at the rate limit when the
  // signal comes: a stop must not start them, and a hard stop must not wait for their turns.
  const limited = ['run', 'all', '--max-rps', '4', '--concurrency', '2'];

  test('SIGINT starts no queued copy: only the copies in flight are finished', async () => {
    const config = await newDestination('crash-destination-queued');
    let recordedAtSignal = -1;
    const stopped = await runCli(limited, {
      cwd: config.dir,
      onSpawn: (child) => {
        void (async () => {
          while (child.exitCode === null && objectLines(config.checkpoint) < 3) await sleep(5);
          recordedAtSignal = objectLines(config.checkpoint);
          child.kill('SIGINT');
        })();
      },
    });
    assert.equal(stopped.code, 130, stopped.stderr);
    // The 2 in flight, and perhaps one more finished in the same turn of the event loop as the signal; the old code
    // also started the 2 queued copies and the rest of a row (5 in all).
    const finishedAfter = objectLines(config.checkpoint) - recordedAtSignal;
    assert.ok(finishedAfter <= 3, `${finishedAfter} objects were finished after the signal; only those in flight may be`);
    const resumed = await runCli(['run', 'all', '--resume'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    await assertDestinationExact(s3, 'crash-destination-queued', world);
  });

  test('a second SIGINT aborts the copies in flight without calling them failed; --resume copies them', async () => {
    const config = await newDestination('crash-destination-aborted');
    const stopped = await runCli([...limited, '--log-level', 'debug'], {
      cwd: config.dir,
      onSpawn: (child) => {
        void (async () => {
          while (child.exitCode === null && objectLines(config.checkpoint) < 3) await sleep(5);
          child.kill('SIGINT');
        })();
        // The second signal once the first has been taken, while the copies in flight wait for their turns.
        let stderr = '';
        child.stderr!.on('data', (chunk: Buffer) => {
          const seen = stderr.includes('"stopping:');
          stderr += String(chunk);
          if (!seen && stderr.includes('"stopping:')) child.kill('SIGINT');
        });
      },
    });
    assert.equal(stopped.code, 130, stopped.stderr);
    assert.match(stopped.stderr, /second signal: aborting the copies in flight/);
    assert.match(stopped.stderr, /copy aborted by the stop/, 'some copy must have been in flight to abort');
    assert.doesNotMatch(stopped.stderr, /copy failed/, 'an aborted copy is not a failed one');
    const checkpoint = readCheckpoint(config.checkpoint);
    assert.deepEqual(
      checkpoint.objects.filter((line) => line.status === 'failed').map((line) => line.key),
      [],
    );
    await assertCheckpointTrue(s3, 'crash-destination-aborted', world, checkpoint);
    const resumed = await runCli(['run', 'all', '--resume'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    await assertDestinationExact(s3, 'crash-destination-aborted', world);
  });
});

describe('--retry-failed', () => {
  test('reruns exactly the objects the checkpoint records as failed, not their rows, not anything else', async () => {
    const bucket = 'crash-destination-retry';
    const config = await newDestination(bucket);
    // Three objects the source refuses for themselves (403 InvalidObjectState, as for an archived object: not
    // retried, and not a reason to stop the run): an emoji's original (its static sibling copies fine), a media
    // thumbnail and a preview card.
    const refused = [
      world.wanted.find((object) => object.job === 'custom_emojis' && object.key.includes('/original/'))!,
      world.wanted.find((object) => object.key.startsWith('media_attachments/thumbnails/'))!,
      world.wanted.find((object) => object.job === 'preview_cards')!,
    ];
    const refusedSources = new Set(refused.map((object) => object.sourceKey));
    proxy.setFault((request) =>
      request.bucket === 'crash-source' && refusedSources.has(request.key!) ? { kind: 'status', status: 403, code: 'InvalidObjectState' } : undefined,
    );
    try {
      const first = await runCli(['run', 'all'], { cwd: config.dir });
      assert.equal(first.code, 1, 'some objects failed');
    } finally {
      proxy.setFault(undefined);
    }
    const failed = readCheckpoint(config.checkpoint)
      .objects.filter((line) => line.status === 'failed')
      .map((line) => line.key)
      .sort();
    assert.deepEqual(failed, refused.map((object) => object.key).sort());
    // An object lost at the destination since: not failed, so --retry-failed must leave it alone.
    const lost = world.wanted.find((object) => object.job === 'site_uploads')!;
    await s3.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: lost.key }));

    proxy.reset();
    const retried = await runCli(['run', 'all', '--retry-failed', '--json'], { cwd: config.dir });
    assert.equal(retried.code, 0, retried.stderr);
    const uploads = proxy.requests
      .filter((request) => request.bucket === bucket && request.method === 'PUT')
      .map((request) => request.key)
      .sort();
    assert.deepEqual(uploads, failed, 'only the failed objects are copied');
    // Objects missing at the source are outstanding too: --retry-failed probes them again (and only them).
    const probed = (key: string) =>
      world.fixture.missing.some((object) => key.replace(/^cache\//, '').startsWith(object.key.replace(/^cache\//, '').replace(/\/[^/]+\/[^/]+$/, '/')));
    const reads = proxy.requests.filter((request) => request.bucket === 'crash-source' && request.operation === 'GetObject').map((request) => request.key!);
    assert.deepEqual(reads.filter((key) => !probed(key)).sort(), [...refusedSources].sort(), 'only the failed (and the missing) objects are read');
    const summary = JSON.parse(retried.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
    assert.equal(summary.total.copied, 3);
    assert.equal(summary.total.failed, 0);

    assert.deepEqual(
      readCheckpoint(config.checkpoint).objects.filter((line) => line.status === 'failed'),
      [],
      'no failure left to retry',
    );
    for (const object of refused) await assertObjectExact(s3, bucket, object);
    assert.equal(await s3.getObject(bucket, lost.key), null, 'an object that did not fail is not touched');

    proxy.reset();
    const again = await runCli(['run', 'all', '--retry-failed'], { cwd: config.dir });
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(
      proxy.requests.filter((request) => request.method === 'PUT' || (request.operation === 'GetObject' && !probed(request.key!))),
      [],
      'nothing failed any more',
    );
  });
});
