/**
 * A run through faults on both sides: one proxy in front of the source and one in front of the destination (the
 * same s3rver behind both) inject 503 SlowDown with Retry-After, 500, connection resets, bodies cut short and
 * bytes flipped, in responses (source) and in requests (destination), over the Mastodon fixture plus large
 * objects uploaded multipart. Afterwards the destination must be byte-exact and complete, no corrupted object
 * may have stayed, every multipart upload must be completed or aborted, and Retry-After honoured.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { S3RVER_CREDENTIALS, startS3, type S3Server } from '../support/s3.js';
import { mediaOriginal } from '../support/objects.js';
import { S3Store } from '../../src/storage/s3.js';
import { copyOwnedObject } from '../../src/sync/copy.js';
import { startProxy, type Fault, type HttpProxy, type RecordedRequest } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, uploadsKept, type IntegrityWorld } from '../support/exact.js';
import { seededRandom } from '../support/random.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
let sourceProxy: HttpProxy;
let destinationProxy: HttpProxy;
let world: IntegrityWorld;
let dir: string | undefined;

const MiB = 1024 * 1024;
const FAULT_RATE = 0.3;
/**
 * Faults per object at most: with the default 5 retries every object can still make it, even the one whose
 * multipart ETag cannot be recomputed and so needs one more read.
 */
const FAULTS_PER_KEY = 3;

/**
 * The fault plan. Every kind comes round in turn at first (so each is sure to be injected), then at random.
 * Body faults land at a random byte of the object (or of the request body).
 */
function faultPlan(keyOf: (request: Readonly<RecordedRequest>) => string | undefined) {
  const random = seededRandom(4);
  const perKey = new Map<string, number>();
  const turns = new Map<string, number>();
  /** `forced`, when given, is injected now (it counts against the object's faults). */
  return (request: Readonly<RecordedRequest>, kinds: Array<(bodySize: number) => Fault>, bodySize: number, forced?: Fault): Fault | undefined => {
    const key = keyOf(request);
    if (key === undefined || (perKey.get(key) ?? 0) >= FAULTS_PER_KEY) return undefined;
    if (forced !== undefined) {
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
      return forced;
    }
    const turn = turns.get(request.operation) ?? 0;
    if (turn >= kinds.length && random() >= FAULT_RATE) return undefined;
    turns.set(request.operation, turn + 1);
    perKey.set(key, (perKey.get(key) ?? 0) + 1);
    const kind = turn < kinds.length ? kinds[turn]! : kinds[Math.floor(random() * kinds.length)]!;
    return kind(Math.max(1, bodySize));
  };
}

const FAULT_KINDS = ['status', 'reset', 'truncate', 'flip', 'truncate-request', 'flip-request'];

const slowDown = (): Fault => ({ kind: 'status', status: 503, code: 'SlowDown', retryAfter: 1 });
const internalError = (): Fault => ({ kind: 'status', status: 500, code: 'InternalError' });
const reset = (): Fault => ({ kind: 'reset' });

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('faults-source');
  await s3.createBucket('faults-destination');
  world = await buildIntegrityWorld(db, s3, 'faults-source');

  const random = seededRandom(7);
  const at = (size: number) => Math.floor(random() * size);
  const destinationKeyOf = new Map(world.wanted.map((object) => [object.sourceKey, object.key]));
  const plan = faultPlan((request) => (request.bucket === 'faults-source' ? destinationKeyOf.get(request.key ?? '') : request.key));

  // The objects uploaded multipart get scripted faults, by attempt (the number of reads so far), so that each
  // path is sure to be taken: a flipped read of a multipart-ETag source, a flipped part, a failed completion,
  // and the second read an unusual part size needs. The 6 MiB video (one PUT at the destination) gets a flipped
  // first read, then random faults like every other object.
  const [video, fivePart, sevenPart] = world.large;
  const reads = new Map<string, number>();
  const flippedPart = new Set<number>();
  sourceProxy = await startProxy({
    upstreamPort: s3.port,
    fault: (request) => {
      if (request.operation === 'ListObjects' && request.seq === 1) return slowDown();
      if (request.operation !== 'GetObject') return undefined;
      const size = world.sourceSizes.get(request.key ?? '');
      if (size === undefined) return undefined; // a legacy alternate that is not there
      const key = destinationKeyOf.get(request.key!)!;
      const attempt = (reads.get(key) ?? 0) + 1;
      reads.set(key, attempt);
      if (key === fivePart.key) return attempt === 1 ? { kind: 'flip', atByte: at(size) } : undefined;
      if (key === sevenPart.key) return undefined;
      const forced: Fault | undefined = key === video.key && attempt === 1 ? { kind: 'flip', atByte: at(size) } : undefined;
      return plan(
        request,
        [slowDown, internalError, reset, (n) => ({ kind: 'truncate', afterBytes: at(n) }), (n) => ({ kind: 'flip', atByte: at(n) })],
        size,
        forced,
      );
    },
  });
  destinationProxy = await startProxy({
    upstreamPort: s3.port,
    fault: (request) => {
      if (request.operation === 'ListObjects' && request.seq === 1) return internalError();
      const attempt = reads.get(request.key ?? '');
      if (request.key === fivePart.key) {
        if (request.operation !== 'UploadPart' || attempt !== 2 || flippedPart.has(attempt)) return undefined;
        flippedPart.add(attempt);
        return { kind: 'flip-request', atByte: at(Number(request.headers['content-length'])) };
      }
      if (request.key === sevenPart.key) return request.operation === 'CompleteMultipartUpload' && attempt === 2 ? reset() : undefined;
      if (request.key === video.key && attempt === 1) return undefined; // the flipped read must be read to its end
      const length = Number(request.headers['content-length'] ?? 0);
      switch (request.operation) {
        case 'PutObject':
        case 'UploadPart':
          return plan(
            request,
            [slowDown, internalError, reset, (n) => ({ kind: 'truncate-request', afterBytes: at(n) }), (n) => ({ kind: 'flip-request', atByte: at(n) })],
            length,
          );
        case 'CreateMultipartUpload':
        case 'CompleteMultipartUpload':
          return plan(request, [slowDown, internalError, reset], length);
        default:
          return undefined;
      }
    },
  });
});

after(async () => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  await sourceProxy?.stop();
  await destinationProxy?.stop();
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

describe('a run through dozens of faults on both sides', () => {
  let result: Awaited<ReturnType<typeof runCli>>;

  before(async () => {
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: sourceProxy.endpoint, bucket: 'faults-source' },
      destination: { endpoint: destinationProxy.endpoint, bucket: 'faults-destination' },
    });
    dir = config.dir;
    result = await runCli(['run', 'all', '--json'], { cwd: config.dir });
  });

  test('finishes with every object copied: none failed, none lost, none corrupted', async () => {
    assert.equal(result.code, 0, result.stderr);
    const { total } = readJsonLines<{ total: { copied: number; relocated: number; failed: number } }>(result.stdout).at(-1)!;
    assert.equal(total.failed, 0);
    assert.equal(total.copied + total.relocated, world.wanted.length);
    const faults = { source: { ...sourceProxy.faults }, destination: { ...destinationProxy.faults } };
    const injected = Object.values(faults).reduce((sum, side) => sum + FAULT_KINDS.reduce((kinds, kind) => kinds + (side[kind] ?? 0), 0), 0);
    let lost = 0;
    let corrupted = 0;
    for (const object of world.wanted) {
      const stored = await s3.getObject('faults-destination', object.key);
      if (stored === null) lost += 1;
      else if (createHash('sha256').update(stored.body).digest('hex') !== object.sha256) corrupted += 1;
    }
    console.log(`# faults: ${JSON.stringify({ injected, ...faults, objects: world.wanted.length, lost, corrupted })}`);
    await assertDestinationExact(s3, 'faults-destination', world);
    assert.ok(injected >= 36, `dozens of faults must have been injected, not ${injected}`);
    for (const kind of ['status:SlowDown', 'status:InternalError', 'reset', 'truncate', 'flip']) {
      assert.ok((faults.source[kind] ?? 0) >= 2, `source: ${kind} injected ${faults.source[kind] ?? 0} times`);
    }
    for (const kind of ['status:SlowDown', 'status:InternalError', 'reset', 'truncate-request', 'flip-request']) {
      assert.ok((faults.destination[kind] ?? 0) >= 2, `destination: ${kind} injected ${faults.destination[kind] ?? 0} times`);
    }
  });

  test('no upload fed by a cut source body was ever completed; an altered one stayed only until the destination showed it ignores Content-MD5', () => {
    const destinationKeyOf = new Map(world.wanted.map((object) => [object.sourceKey, object.key]));
    const gets = sourceProxy.requests.filter((request) => request.operation === 'GetObject' && destinationKeyOf.has(request.key!));
    const bad = gets.filter((request) => request.faultApplied && (request.fault === 'truncate' || request.fault === 'flip'));
    assert.ok(bad.length >= 4);
    const [video, fivePart] = world.large;
    for (const object of [video, fivePart])
      assert.ok(
        bad.some((get) => get.key === object.sourceKey && get.fault === 'flip'),
        `${object.key}: a read with a flipped byte`,
      );
    // A provider that checks Content-MD5 refuses an altered body, so mastosync does not hash single PUTs itself.
    // s3rver ignores the header: the first ETag that disagrees with it (a DeleteObject follows) shows that, and
    // from then on every object is hashed on the way, its last chunk held back.
    const deletes = destinationProxy.requests.filter((request) => request.operation === 'DeleteObject');
    assert.ok(deletes.length >= 1, 'an altered body stored by s3rver must have been found and deleted');
    const ignoredFrom = Math.min(...deletes.map((request) => request.startedAt));
    for (const get of bad) {
      const key = destinationKeyOf.get(get.key!)!;
      const nextGet = gets.find((request) => request.key === get.key && request.seq > get.seq)?.startedAt ?? Number.POSITIVE_INFINITY;
      const completed = destinationProxy.requests.filter(
        (request) =>
          request.key === key &&
          (request.operation === 'PutObject' || request.operation === 'CompleteMultipartUpload') &&
          request.startedAt >= get.startedAt &&
          request.startedAt < nextGet &&
          (request.status ?? 0) >= 200 &&
          (request.status ?? 0) < 300,
      );
      if (completed.length === 0) continue;
      const what = `a ${get.fault} read of ${get.key} completed ${completed.map((request) => request.operation).join(', ')}`;
      assert.equal(get.fault, 'flip', `${what}: a body cut short must never complete`);
      assert.deepEqual(
        completed.map((request) => request.operation),
        ['PutObject'],
        `${what}: a multipart upload is always hashed`,
      );
      assert.ok(get.startedAt < ignoredFrom, `${what} after the destination was known to ignore Content-MD5`);
      assert.ok(
        deletes.some((request) => request.key === key && request.seq > completed[0]!.seq),
        `${what}, and it was not deleted`,
      );
    }
    const warnings = result.stderr.split('\n').filter((line) => line.includes('differs from the Content-MD5 sent'));
    assert.equal(warnings.length, 1, 'the run says once that the destination ignores Content-MD5');
  });

  test('bytes altered on the way to the destination never stay: a stored bad object is deleted, a bad part never completes', () => {
    const requests = destinationProxy.requests;
    const flipped = requests.filter((request) => request.fault === 'flip-request' && request.faultApplied);
    assert.ok(flipped.length >= 2);
    for (const put of flipped) {
      if (put.operation === 'UploadPart') {
        const uploadId = put.query.uploadId;
        assert.ok(
          !requests.some((request) => request.operation === 'CompleteMultipartUpload' && request.query.uploadId === uploadId && request.status === 200),
          `upload ${uploadId} with a flipped part was completed`,
        );
        assert.ok(
          requests.some((request) => request.operation === 'AbortMultipartUpload' && request.query.uploadId === uploadId),
          `upload ${uploadId} with a flipped part was not aborted`,
        );
      } else if (put.status === 200) {
        // s3rver ignores Content-MD5 and stored the altered bytes; the ETag it answered gave them away.
        assert.ok(
          requests.some((request) => request.operation === 'DeleteObject' && request.key === put.key && request.seq > put.seq),
          `${put.key}: the altered object was not deleted`,
        );
      }
    }
  });

  test('every multipart upload was completed or aborted; none is left open', () => {
    const requests = destinationProxy.requests;
    const completed = new Set(
      requests.filter((request) => request.operation === 'CompleteMultipartUpload' && request.status === 200).map((request) => request.query.uploadId),
    );
    const aborted = new Set(requests.filter((request) => request.operation === 'AbortMultipartUpload').map((request) => request.query.uploadId));
    assert.ok(
      completed.size >= 2,
      `the large objects went multipart: ${JSON.stringify(requests.filter((request) => request.query.uploadId !== undefined || request.operation === 'CreateMultipartUpload').map((request) => [request.seq, request.operation, request.key?.slice(-12), request.query.uploadId?.slice(0, 6), request.status, request.fault]))}`,
    );
    // A flipped read and a flipped part of one, a first read that cannot be verified and a failed completion of the other.
    assert.ok(aborted.size >= 4, `faults must have failed at least 4 multipart uploads, not ${aborted.size}`);
    // s3rver keeps what was created and not completed (it cannot abort): every one of them must have been aborted.
    const kept = uploadsKept(s3, 'faults-destination');
    assert.deepEqual(
      kept.filter((uploadId) => !aborted.has(uploadId)),
      [],
      'multipart uploads left open without an abort',
    );
    for (const uploadId of requests.filter((request) => request.operation === 'UploadPart').map((request) => request.query.uploadId)) {
      assert.ok(completed.has(uploadId) || aborted.has(uploadId), `upload ${uploadId} neither completed nor aborted`);
    }
  });

  test('Retry-After is honoured: after a SlowDown, the object is read again no sooner than the second it asked for', () => {
    const destinationKeyOf = new Map(world.wanted.map((object) => [object.sourceKey, object.key]));
    const gets = sourceProxy.requests.filter((request) => request.operation === 'GetObject' && destinationKeyOf.has(request.key!));
    const slowed = [
      ...gets
        .filter((request) => request.fault === 'status' && request.status === 503)
        .map((request) => ({ key: destinationKeyOf.get(request.key!)!, at: request.startedAt })),
      ...destinationProxy.requests
        .filter((request) => request.operation === 'PutObject' && request.fault === 'status' && request.status === 503)
        .map((request) => ({ key: request.key!, at: request.startedAt })),
    ];
    assert.ok(slowed.length >= 4);
    for (const { key, at } of slowed) {
      const next = gets.find((request) => destinationKeyOf.get(request.key!) === key && request.startedAt > at);
      assert.ok(next, `${key} was not read again after a SlowDown`);
      assert.ok(next.startedAt - at >= 1000, `${key} was read again ${next.startedAt - at} ms after a SlowDown asking for 1 s`);
    }
  });

  test('throttling cut the copies in flight and logged each change once', () => {
    const changes = readJsonLines<{ msg?: string; concurrency?: number }>(
      result.stderr
        .split('\n')
        .filter((line) => line.startsWith('{"level"'))
        .join('\n'),
    ).filter((line) => line.concurrency !== undefined);
    assert.ok(
      changes.some((line) => line.msg?.includes('throttling')),
      'a SlowDown must reduce the concurrency',
    );
    for (let index = 1; index < changes.length; index++) {
      assert.notEqual(changes[index]!.concurrency, changes[index - 1]!.concurrency, 'one log line per change, not per SlowDown');
    }
  });
});

/** The most requests in flight at any moment a request of `requests` started, among those starting in [from, to). */
function peakInFlight(requests: readonly RecordedRequest[], from: number, to: number): number {
  let peak = 0;
  for (const request of requests) {
    if (request.startedAt < from || request.startedAt >= to) continue;
    const inFlight = requests.filter((other) => other.startedAt <= request.startedAt && (other.finishedAt ?? Number.POSITIVE_INFINITY) > request.startedAt);
    peak = Math.max(peak, inFlight.length);
  }
  return peak;
}

describe('throttling and --max-rps', () => {
  const runThrough = async (proxy: HttpProxy, bucket: string, args: string[]) => {
    await s3.createBucket(bucket);
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: proxy.endpoint, bucket: 'faults-source' },
      destination: { endpoint: proxy.endpoint, bucket },
    });
    try {
      return await runCli(['run', ...args], { cwd: config.dir });
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  };

  test('SlowDown halves the copies in flight, which then recover one at a time, each change logged once', async () => {
    let slowDowns = 0;
    const proxy = await startProxy({
      upstreamPort: s3.port,
      latencyMs: 40,
      fault: (request) =>
        request.operation === 'GetObject' && request.bucket === 'faults-source' && slowDowns++ < 4
          ? { kind: 'status', status: 503, code: 'SlowDown' }
          : undefined,
    });
    try {
      const result = await runThrough(proxy, 'throttle-destination', ['all', '--concurrency', '8']);
      assert.equal(result.code, 0, result.stderr);
      const gets = proxy.requests.filter((request) => request.operation === 'GetObject' && request.bucket === 'faults-source');
      const throttledAt = Math.max(...gets.filter((request) => request.status === 503).map((request) => request.finishedAt!));
      const before = peakInFlight(gets, 0, throttledAt);
      // Once the first copies (those in flight at the SlowDowns, retries included) are done, at most 4 run (5 once recovery starts).
      const first = new Set(gets.slice(0, 8).map((request) => request.key));
      const settled = Math.max(...gets.filter((request) => first.has(request.key)).map((request) => request.finishedAt!));
      const after = peakInFlight(gets, settled, settled + 250);
      console.log(`# throttling: ${JSON.stringify({ before, after })}`);
      assert.ok(before >= 7, `before the SlowDowns, ${before} reads in flight (8 copies)`);
      assert.ok(after <= 5, `after the SlowDowns, ${after} reads in flight; the copies in flight must have been halved`);

      const changes = result.stderr
        .split('\n')
        .filter((line) => line.includes('"concurrency"'))
        .map((line) => JSON.parse(line) as { concurrency: number; msg: string });
      assert.equal(changes[0]?.concurrency, 4, 'halved once for the burst of SlowDowns (at most once a second)');
      for (let index = 1; index < changes.length; index++)
        assert.equal(changes[index]!.concurrency, changes[index - 1]!.concurrency + 1, 'recovers one copy at a time');
      assert.ok(changes.length >= 2, 'recovery must have started');
    } finally {
      await proxy.stop();
    }
  });

  test('--max-rps caps the requests of the whole run, both sides together', async () => {
    const proxy = await startProxy({ upstreamPort: s3.port });
    try {
      const perSecond = 40;
      const capped = await runThrough(proxy, 'rps-destination', ['accounts', 'custom_emojis', 'site_uploads', '--max-rps', String(perSecond)]);
      assert.equal(capped.code, 0, capped.stderr);
      const starts = proxy.requests.map((request) => request.startedAt).sort((a, b) => a - b);
      const busiest = Math.max(...starts.map((start) => starts.filter((other) => other >= start && other < start + 1000).length));
      const seconds = (starts.at(-1)! - starts[0]!) / 1000;
      console.log(`# max-rps ${perSecond}: ${JSON.stringify({ requests: starts.length, busiestSecond: busiest, seconds })}`);
      assert.ok(starts.length > 2 * perSecond, 'enough requests to measure');
      assert.ok(busiest <= perSecond + 1, `${busiest} requests in one second with --max-rps ${perSecond}`);
      assert.ok(seconds >= (starts.length - 2) / perSecond, `${starts.length} requests in ${seconds} s`);

      proxy.reset();
      const free = await runThrough(proxy, 'rps-destination-free', ['accounts', 'custom_emojis', 'site_uploads']);
      assert.equal(free.code, 0, free.stderr);
      const freeStarts = proxy.requests.map((request) => request.startedAt).sort((a, b) => a - b);
      const freeBusiest = Math.max(...freeStarts.map((start) => freeStarts.filter((other) => other >= start && other < start + 1000).length));
      assert.ok(freeBusiest > perSecond + 1, `without --max-rps the same run sends ${freeBusiest} requests in its busiest second`);
    } finally {
      await proxy.stop();
    }
  });
});

describe('a destination that answers PUTs without an ETag', () => {
  test('unhashed copies in flight are copied again, hashed, and the run says once that the bytes are not proven there', async () => {
    const destinationKeyOf = new Map(world.wanted.map((object) => [object.sourceKey, object.key]));
    // Nothing in such an answer shows what was stored. The first small objects read get a flipped byte: eight
    // copies start at once and the destination answers 100 ms later, so their bodies are not hashed on the way
    // (nothing has shown yet that they must be), and s3rver stores them.
    const flipped: RecordedRequest[] = [];
    const source = await startProxy({
      upstreamPort: s3.port,
      fault: (request) => {
        const size = world.sourceSizes.get(request.key ?? '');
        if (request.operation !== 'GetObject' || flipped.length >= 3 || size === undefined || size > 1024 * 1024) return undefined;
        if (flipped.some((earlier) => earlier.key === request.key)) return undefined;
        flipped.push(request);
        return { kind: 'flip', atByte: Math.floor(size / 2) };
      },
    });
    const destination = await startProxy({
      upstreamPort: s3.port,
      latencyMs: 100,
      dropResponseHeaders: (request) => (request.operation === 'PutObject' ? ['etag'] : []),
    });
    await s3.createBucket('no-etag-destination');
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: source.endpoint, bucket: 'faults-source' },
      destination: { endpoint: destination.endpoint, bucket: 'no-etag-destination' },
    });
    try {
      const result = await runCli(['run', 'all', '--concurrency', '8', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      assert.equal(flipped.length, 3, 'three reads must have been altered');
      await assertDestinationExact(s3, 'no-etag-destination', world);
      for (const read of flipped) {
        const key = destinationKeyOf.get(read.key!)!;
        const written = destination.requests.filter(
          (request) => request.key === key && request.operation === 'PutObject' && request.status === 200 && request.startedAt > read.startedAt,
        );
        assert.ok(written.length >= 2, `${key}: written ${written.length} time(s) after its altered read; the unproven copy must have been replaced`);
      }
      const warnings = result.stderr.split('\n').filter((line) => line.includes('answered a PUT with no ETag'));
      assert.equal(warnings.length, 1, 'the run says once that the destination answers PUTs without an ETag');
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
      await source.stop();
      await destination.stop();
    }
  });
});

describe('a part altered on the way to the destination, with no retry left', () => {
  test('is recorded as the integrity failure it is, not as the abort of the upload it caused', async () => {
    // lib-storage aborts the body of an upload whose part failed (ABORT_ERR); the copy's error, which the log line
    // and the checkpoint carry, must be the part's failed check.
    const key = 'media_attachments/files/000/000/001/original/altered-part.bin';
    await s3.createBucket('altered-part-source');
    await s3.createBucket('altered-part-destination');
    await s3.put('altered-part-source', key, Buffer.alloc(12 * MiB, 7), { multipart: true });
    const proxy = await startProxy({
      upstreamPort: s3.port,
      fault: (request) => (request.operation === 'UploadPart' && request.query.partNumber === '1' ? { kind: 'flip-request', atByte: 100 } : undefined),
    });
    const store = (bucket: string, endpoint: string, role: 'source' | 'destination') =>
      new S3Store(
        { type: 's3', bucket, region: 'us-east-1', endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS },
        { role, maxSockets: 4, partSize: 5 * MiB, queueSize: 1, singlePutLimit: 5 * MiB },
      );
    const source = store('altered-part-source', s3.endpoint, 'source');
    const destination = store('altered-part-destination', proxy.endpoint, 'destination');
    try {
      const result = await copyOwnedObject(mediaOriginal(key, { contentType: null, size: null }), { source, destination, acl: '', retries: 0 });
      assert.equal(result.status, 'failed');
      assert.match(result.error ?? '', /^IntegrityError: the destination stored part 1 with MD5 [0-9a-f]{32}, not the [0-9a-f]{32} sent$/);
      assert.deepEqual(result.failedAt, { side: 'destination', operation: 'PUT' });
    } finally {
      source.close();
      destination.close();
      await proxy.stop();
    }
  });
});
