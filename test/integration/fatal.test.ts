/**
 * What no retry can fix stops the run (issue 11): a full disk under a folder destination, a destination bucket that
 * vanishes mid-run. An admin sees exit 1, one `mastosync:` line naming the cause and the fix (the summary names it
 * too), a few failed objects at most (those in flight), not one failure per remaining object; and after the fix,
 * `run --resume` finishes the copy exactly. And a body the provider refuses for its size (413, as nginx's
 * client_max_body_size answers) is named, and its object copied again, once, as a multipart upload in smaller parts.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Fixture } from '../support/fixture.js';
import type { TestDatabase } from '../support/postgres.js';
import type { S3Server } from '../support/s3.js';
import { startFixtureWorld, type FixtureWorld } from '../support/fixtureWorld.js';
import type { Fault, HttpProxy } from '../support/httpProxy.js';
import { filesBelow } from '../support/files.js';
import { runCli, type CliResult, type ConfigSettings } from '../support/cli.js';

const CONCURRENCY = 3;
const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');

let world: FixtureWorld;
let s3: S3Server;
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;

before(async () => {
  // Latency keeps the run going long enough for the bucket to vanish part-way.
  world = await startFixtureWorld('fatal-source', { proxy: { latencyMs: 15 } });
  ({ s3, proxy, fixture, db } = world);
});

after(async () => {
  await world?.stop();
});

interface Line {
  key?: string;
  status?: string;
  error?: string;
}

function objectLines(checkpoint: string): Line[] {
  if (!existsSync(checkpoint)) return [];
  return readFileSync(checkpoint, 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('{"job"') && !line.includes('"watermark"'))
    .map((line) => JSON.parse(line) as Line);
}

/** The lines a person reads on stderr: mastosync's own, not the JSON log lines. */
function errorLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
}

/** stderr less the objects newly missing at the source, which a run says whatever else happens. */
function newsOf(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line !== '' && !line.includes('"msg":"missing at the source"'));
}

/** What the run's last stdout line (the --json summary) says stopped it. */
function summaryOf(result: CliResult): { stopped?: string; total: Record<string, number> } {
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { stopped?: string; total: Record<string, number> };
}

/** Calls `then` once the checkpoint records `count` objects. */
function once(checkpoint: string, count: number, then: () => void) {
  return (child: ChildProcess) => {
    const timer = setInterval(() => {
      if (objectLines(checkpoint).length < count) return;
      clearInterval(timer);
      then();
    }, 5);
    child.on('exit', () => clearInterval(timer));
  };
}

function assertStoppedOnce(result: CliResult, checkpoint: string, cause: RegExp, fix: RegExp): void {
  assert.equal(result.code, 1, result.stderr);
  const lines = errorLines(result);
  assert.equal(lines.length, 1, `one line names the cause:\n${result.stderr}`);
  assert.match(lines[0]!, cause);
  assert.match(lines[0]!, fix);
  assert.match(summaryOf(result).stopped ?? '', cause, 'the summary names the cause too');
  const objects = objectLines(checkpoint);
  const failed = objects.filter((line) => line.status === 'failed');
  assert.ok(failed.length >= 1 && failed.length <= 2 * CONCURRENCY, `${failed.length} objects recorded failed; at most the copies in flight may be`);
  for (const line of failed) assert.match(line.error ?? '', cause, `${line.key}: the checkpoint says why`);
  assert.ok(
    objects.length < fixture.expected.length,
    `the run stopped part-way (${objects.length} of ${fixture.expected.length} objects recorded), not walking every job`,
  );
}

describe('a fault no retry can fix stops the run', () => {
  test('folder destination on a full disk: exit 1, one line "is full … free space", then --resume after freeing space finishes exactly', async (t) => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'mastosync-full-'));
    world.onStop(() => rmSync(mountPoint, { recursive: true, force: true }));
    try {
      // About a third of the fixture's small objects fit; its 6 MiB video never does.
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=384k', 'tmpfs', mountPoint], { stdio: 'pipe' });
    } catch (error) {
      t.skip(`cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): ${String((error as Error).message).split('\n')[0]}`);
      return;
    }
    world.onStop(() => execFileSync('umount', [mountPoint]));
    const system = join(mountPoint, 'system');
    mkdirSync(system);
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { type: 'fs', path: system },
      concurrency: CONCURRENCY,
      batchSize: 5,
    });

    // As cron runs it: then the cause is the only line on stderr, not one per copy that was in flight.
    const full = await runCli(['run', 'all', '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
    assertStoppedOnce(full, config.checkpoint, /\[destination\] folder .* is full \(ENOSPC/, /free space on its file system, then run again with --resume/);
    assert.deepEqual(newsOf(full), errorLines(full), 'under cron, that one line is all stderr says besides objects newly missing');
    assert.deepEqual(
      filesBelow(system).filter((name) => name.endsWith('.tmp')),
      [],
      'no temporary file is left behind',
    );

    execFileSync('mount', ['-o', 'remount,size=64m', mountPoint]);
    const resumed = await runCli(['run', 'all', '--resume', '--json', '--quiet'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(filesBelow(system), fixture.present.map((object) => object.key).sort(), 'exactly the owned objects');
    for (const expected of fixture.present) assert.equal(sha256(readFileSync(join(system, expected.key))), expected.sha256, expected.key);
  });

  test('destination bucket gone mid-run: exit 1, one line "does not exist (NoSuchBucket …)", then --resume once it is back finishes exactly', async () => {
    await s3.createBucket('fatal-gone');
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'fatal-gone' },
      concurrency: CONCURRENCY,
      batchSize: 5,
    });
    proxy.reset();
    // From the 10th object on, the provider answers every request to the bucket as S3 does for a deleted one.
    const vanish = () =>
      proxy.setFault((request) =>
        request.bucket === 'fatal-gone' ? { kind: 'status', status: 404, code: 'NoSuchBucket', message: 'The specified bucket does not exist' } : undefined,
      );
    const gone = await runCli(['run', 'all', '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir, onSpawn: once(config.checkpoint, 10, vanish) });
    proxy.setFault(undefined);
    assert.deepEqual(newsOf(gone), errorLines(gone), 'under cron, that one line is all stderr says besides objects newly missing');
    assertStoppedOnce(
      gone,
      config.checkpoint,
      /\[destination\] bucket "fatal-gone" at .* does not exist \(NoSuchBucket on PUT /,
      /check bucket, endpoint and region/,
    );
    const refused = proxy.requests.filter((request) => request.fault === 'status');
    assert.ok(refused.length <= 2 * CONCURRENCY, `${refused.length} requests reached the vanished bucket: only the copies in flight may`);

    const resumed = await runCli(['run', 'all', '--resume', '--json', '--quiet'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual((await s3.listKeys('fatal-gone')).sort(), fixture.present.map((object) => object.key).sort(), 'exactly the owned objects');
    for (const expected of fixture.present) {
      const stored = await s3.getObject('fatal-gone', expected.key);
      assert.equal(sha256(stored!.body), expected.sha256, expected.key);
      assert.equal(stored!.contentType, expected.contentType, expected.key);
    }
  });
});

describe('a destination setting every write refuses stops the run at the first write, naming the setting', () => {
  /** The admin fixes the config (`settings`), and `run --resume` then copies every object, those failed included. */
  async function resumeWith(config: { dir: string; file: string }, settings: ConfigSettings): Promise<void> {
    const fixed = world.writeConfig(settings);
    writeFileSync(config.file, readFileSync(fixed.file));
    const resumed = await runCli(['run', 'all', '--resume', '--json', '--quiet'], { cwd: config.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    const bucket = settings.destination.bucket!;
    assert.deepEqual((await s3.listKeys(bucket)).sort(), fixture.present.map((object) => object.key).sort(), 'exactly the owned objects');
  }

  const modes = ['stream', 'server'] as const;
  for (const copyMode of modes) {
    const answer = copyMode === 'stream' ? "s3rver's own InvalidStorageClass" : 'InvalidStorageClass to CopyObject, as AWS answers (s3rver copies any)';
    test(`storage_class the provider lacks (${answer}, copy_mode = "${copyMode}"): one line naming it, then --resume once it is fixed finishes exactly`, async () => {
      const bucket = `fatal-class-${copyMode}`;
      await s3.createBucket(bucket);
      const settings = {
        databaseUrl: db.url,
        // On the provider, CopyObject reads the source through the destination's endpoint and credentials.
        source: { endpoint: copyMode === 'server' ? proxy.endpoint : s3.endpoint, bucket: 'fatal-source' },
        destination: { endpoint: proxy.endpoint, bucket, storageClass: 'bogus' },
        concurrency: CONCURRENCY,
        batchSize: 5,
        copyMode,
      };
      const config = world.writeConfig(settings);
      if (copyMode === 'stream') {
        // check writes nothing, and says what it leaves untested rather than pass for a proof the run can write.
        const checked = await runCli(['check'], { cwd: config.dir });
        assert.equal(checked.code, 0, checked.stdout + checked.stderr);
        assert.match(
          checked.stdout,
          /^ok {3}destination: s3:\/\/\S+ at \S+ answers a listing; writing with acl "public-read" and storage_class "bogus" not checked$/m,
        );
      }
      proxy.reset();
      proxy.setFault((request) =>
        request.operation === 'CopyObject' && request.headers['x-amz-storage-class'] === 'bogus'
          ? { kind: 'status', status: 400, code: 'InvalidStorageClass', message: 'The storage class you specified is not valid' }
          : undefined,
      );
      const refused = await runCli(['run', 'all', '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir }).finally(() => proxy.setFault(undefined));
      assert.deepEqual(newsOf(refused), errorLines(refused), 'under cron, that one line is all stderr says besides objects newly missing');
      assert.match(errorLines(refused)[0] ?? '', /^mastosync: stopped: \[destination\] storage_class "bogus" is refused by the provider/);
      assertStoppedOnce(
        refused,
        config.checkpoint,
        /\[destination\] storage_class "bogus" is refused by the provider: bucket "fatal-class-\w+" at .* answered InvalidStorageClass on (PUT|CopyObject) .*: The storage class you specified is not valid/,
        /set \[destination\] storage_class to a class this provider offers .*or to "" for the bucket's default, then run again with --resume/,
      );
      const writes = proxy.requests.filter((request) => request.bucket === bucket && (request.operation === 'PutObject' || request.operation === 'CopyObject'));
      assert.ok(writes.length <= 2 * CONCURRENCY, `${writes.length} writes sent: only the copies in flight may be`);
      assert.deepEqual(await s3.listKeys(bucket), [], 'nothing was written');

      // The fix: the setting the provider takes; --resume copies everything, those failed included.
      await resumeWith(config, { ...settings, destination: { ...settings.destination, storageClass: 'STANDARD_IA' } });
    });
  }

  const aclRefusals: Array<[name: string, fault: Fault, cause: RegExp, fix: RegExp]> = [
    [
      'an acl the provider refuses (400 InvalidArgument, ArgumentName x-amz-acl)',
      { kind: 'status', status: 400, code: 'InvalidArgument', message: '', detail: { ArgumentName: 'x-amz-acl', ArgumentValue: 'public-read' } },
      /\[destination\] acl "public-read" is refused by the provider: bucket "fatal-acl-0" at .* answered InvalidArgument on PUT /,
      /set \[destination\] acl to a canned ACL this provider accepts, or to "" to send none \(as Mastodon's S3_PERMISSION=""\)/,
    ],
    [
      'a bucket with ACLs disabled (400 AccessControlListNotSupported)',
      { kind: 'status', status: 400, code: 'AccessControlListNotSupported', message: 'The bucket does not allow ACLs' },
      /\[destination\] acl "public-read" is refused by the provider: bucket "fatal-acl-1" at .* has ACLs disabled \(Object Ownership "bucket owner enforced"\) \(AccessControlListNotSupported on PUT .*: The bucket does not allow ACLs\)/,
      /set \[destination\] acl = "" \(as Mastodon's S3_PERMISSION=""\) and let a bucket policy make the objects public, or enable ACLs on the bucket/,
    ],
  ];
  aclRefusals.forEach(([name, fault, cause, fix], index) => {
    test(`${name}: one line naming [destination] acl and the fix; acl = "" then finishes`, async () => {
      const bucket = `fatal-acl-${index}`;
      await s3.createBucket(bucket);
      const settings = {
        databaseUrl: db.url,
        source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
        destination: { endpoint: proxy.endpoint, bucket, acl: 'public-read' },
        concurrency: CONCURRENCY,
        batchSize: 5,
      };
      const config = world.writeConfig(settings);
      proxy.reset();
      // As such a provider answers: every write that carries x-amz-acl, and only those.
      proxy.setFault((request) => (request.bucket === bucket && request.method === 'PUT' && request.headers['x-amz-acl'] !== undefined ? fault : undefined));
      try {
        const refused = await runCli(['run', 'all', '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
        assert.deepEqual(newsOf(refused), errorLines(refused), 'under cron, that one line is all stderr says besides objects newly missing');
        assert.match(errorLines(refused)[0] ?? '', /^mastosync: stopped: \[destination\] acl "public-read" is refused by the provider/);
        assertStoppedOnce(refused, config.checkpoint, cause, fix);
        const writes = proxy.requests.filter((request) => request.bucket === bucket && request.operation === 'PutObject');
        assert.ok(writes.length <= 2 * CONCURRENCY, `${writes.length} PUTs sent: only the copies in flight may be`);

        await resumeWith(config, { ...settings, destination: { ...settings.destination, acl: '' } });
      } finally {
        proxy.setFault(undefined);
      }
    });
  });

  test('an InvalidArgument about one object (ArgumentName key), acl and storage_class set: that object fails, the run goes on', async () => {
    const bucket = 'fatal-one-argument';
    await s3.createBucket(bucket);
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { endpoint: proxy.endpoint, bucket, acl: 'public-read', storageClass: 'STANDARD_IA' },
      concurrency: CONCURRENCY,
      batchSize: 5,
    });
    const [refusedObject] = fixture.present;
    proxy.reset();
    proxy.setFault((request) =>
      request.bucket === bucket && request.operation === 'PutObject' && request.key === refusedObject!.key
        ? { kind: 'status', status: 400, code: 'InvalidArgument', message: 'Invalid key', detail: { ArgumentName: 'key', ArgumentValue: refusedObject!.key } }
        : undefined,
    );
    try {
      const result = await runCli(['run', 'all', '--json', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
      assert.equal(result.code, 1, result.stderr);
      assert.deepEqual(errorLines(result), [], 'no stop');
      assert.equal(summaryOf(result).stopped, undefined);
      const failed = objectLines(config.checkpoint).filter((line) => line.status === 'failed');
      assert.deepEqual(
        failed.map((line) => line.key),
        [refusedObject!.key],
        'that object alone failed',
      );
      assert.match(failed[0]!.error ?? '', /InvalidArgument/);
      assert.deepEqual(
        (await s3.listKeys(bucket)).sort(),
        fixture.present
          .map((object) => object.key)
          .filter((key) => key !== refusedObject!.key)
          .sort(),
        'every other object copied',
      );
    } finally {
      proxy.setFault(undefined);
    }
  });
});

describe('prune meets a fault no retry can fix', () => {
  test('--delete with credentials that may not delete: exit 1, one line "stopped: … denied access", nothing deleted', async () => {
    await s3.createBucket('fatal-prune');
    const orphans = ['media_attachments/files/999/999/998/original/x.jpg', 'media_attachments/files/999/999/999/original/y.jpg'];
    for (const key of orphans) await s3.put('fatal-prune', key, Buffer.from(key));
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'fatal-prune' },
    });
    proxy.setFault((request) =>
      request.operation === 'DeleteObjects' || request.operation === 'DeleteObject'
        ? { kind: 'status', status: 403, code: 'AccessDenied', message: 'Access Denied' }
        : undefined,
    );
    try {
      const result = await runCli(['prune', 'all', '--delete', '--max-delete', '100%'], { cwd: config.dir });
      assert.equal(result.code, 1, result.stderr);
      const lines = errorLines(result);
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0]!, /^mastosync: stopped: \[destination\] bucket "fatal-prune" at .* denied access \(AccessDenied/);
    } finally {
      proxy.setFault(undefined);
    }
    assert.deepEqual((await s3.listKeys('fatal-prune')).sort(), orphans);
  });
});

describe('a body the provider refuses for its size', () => {
  test('413 for bodies above 6 MiB (nginx client_max_body_size): named in the log, and the object is copied multipart in smaller parts', async () => {
    await s3.createBucket('fatal-limited');
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'fatal-limited' },
      concurrency: CONCURRENCY,
      // The 6 MiB video goes as one PUT first, as it would under the default 512 MiB.
      uploadCutoffMib: 64,
    });
    const limit = 6 * 1024 * 1024;
    proxy.reset();
    proxy.setFault((request) => (request.method === 'PUT' && Number(request.headers['content-length']) > limit ? { kind: 'refuse-body' } : undefined));
    try {
      const result = await runCli(['run', 'all', '--json', '--quiet'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      const video = fixture.present.find((object) => object.size > limit)!;
      const refusal = result.stderr.split('\n').find((line) => line.includes('the provider refused'));
      assert.ok(refusal, `the log names the refusal:\n${result.stderr}`);
      assert.match(
        refusal,
        new RegExp(
          `the provider refused a 6 MiB body \\(413\\): objects of ${video.size.toLocaleString('en')} bytes or more go as multipart uploads in 6 MiB parts from now on`,
        ),
      );
      const operations = proxy.requestsFor(video.key, 'fatal-limited').map((request) => `${request.operation} ${request.status ?? 'cut'}`);
      // The client may read the 413, or see only a reset while sending: then it asks again with 100-continue and reads it.
      const puts = operations.filter((operation) => operation.startsWith('PutObject'));
      assert.ok(puts.length >= 1 && puts.length <= 2 && puts.every((operation) => operation === 'PutObject 413'), `refused PUTs: ${puts.join(', ')}`);
      assert.deepEqual(
        operations.slice(puts.length).filter((operation) => !operation.startsWith('GetObject')),
        ['CreateMultipartUpload 200', 'UploadPart 200', 'UploadPart 200', 'CompleteMultipartUpload 200'],
        'then, once, a multipart upload in parts below the limit',
      );
      const stored = await s3.getObject('fatal-limited', video.key);
      assert.equal(sha256(stored!.body), video.sha256, 'the video arrived whole');
      assert.deepEqual((await s3.listKeys('fatal-limited')).sort(), fixture.present.map((object) => object.key).sort());
    } finally {
      proxy.setFault(undefined);
    }
  });

  test('a small body, sent whole in one write, whose PUT is reset unanswered: asked again with 100-continue, the 413 is read and named', async () => {
    await s3.createBucket('fatal-small-limit');
    const config = world.writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'fatal-source' },
      destination: { endpoint: proxy.endpoint, bucket: 'fatal-small-limit' },
      concurrency: CONCURRENCY,
    });
    // Small objects are read whole and sent with their headers in one write: a server that refuses such a body
    // (here bodies above 85 kB) and closes before its 413 can be read leaves only a reset, after all was sent.
    const limit = 85_000;
    const refused = fixture.present.filter((object) => object.size > limit && object.size < 256 * 1024);
    assert.equal(refused.length, 1, 'one small object above the limit');
    const [object] = refused;
    proxy.reset();
    proxy.setFault((request) =>
      request.method === 'PUT' && Number(request.headers['content-length']) > limit && Number(request.headers['content-length']) < 256 * 1024
        ? request.headers.expect === '100-continue'
          ? { kind: 'refuse-body' }
          : { kind: 'reset' }
        : undefined,
    );
    try {
      const result = await runCli(['run', 'all', '--json', '--quiet'], { cwd: config.dir });
      assert.equal(result.code, 1, result.stderr);
      const puts = proxy
        .requestsFor(object!.key, 'fatal-small-limit')
        .filter((request) => request.operation === 'PutObject')
        .map((request) => `${request.headers.expect ?? 'at once'} ${request.status ?? 'cut'}`);
      assert.deepEqual(puts, ['at once cut', '100-continue 413'], 'reset once, then asked first and refused: not retried further');
      const failure = objectLines(config.checkpoint).find((line) => line.key === object!.key);
      assert.equal(failure?.status, 'failed');
      assert.match(String(failure?.error), /the provider refused a .* body \(413\).*raise its limit on request bodies \(nginx: client_max_body_size\)/);
      // Every smaller object copied; larger bodies are known to be refused from then on (the video too, unless it
      // was copied before).
      const copied = new Set(await s3.listKeys('fatal-small-limit'));
      assert.deepEqual(
        fixture.present.filter((present) => present.size < object!.size && !copied.has(present.key)).map((present) => present.key),
        [],
        'every smaller object copied',
      );
      assert.ok(!copied.has(object!.key));
      assert.ok(summaryOf(result).total.failed! <= 2, result.stdout);
    } finally {
      proxy.setFault(undefined);
    }
  });
});
