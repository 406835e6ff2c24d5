/**
 * Retries: how each store classifies its failures, full-jitter backoff and Retry-After, and the one retry loop.
 * The S3 errors are first the real ones the AWS SDK raises, from a small local HTTP server answering like a
 * struggling S3 provider (throttling, 5xx, refusals, resets, a connection that goes silent, a body that ends
 * early), so a change in what the SDK exposes (e.g. where Retry-After is) fails here; then errors of the SDK's
 * shape for the answers that server does not give. The folder's are Node's errno errors.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsStore } from '../../src/storage/fs.js';
import { S3Store } from '../../src/storage/s3.js';
import { BodyRefusedError, FatalStoreError, IntegrityError } from '../../src/storage/errors.js';
import { retryAfterMs } from '../../src/storage/s3Errors.js';
import { backoffMs, classifyFailure, withRetries } from '../../src/sync/retry.js';
import { copyOwnedObject } from '../../src/sync/copy.js';
import { UsageError } from '../../src/errors.js';
import { mediaOriginal } from '../support/objects.js';

const BODY = Buffer.alloc(1000, 7);
const ETAG = createHash('md5').update(BODY).digest('hex');
/**
 * Short, so the silent cases end fast; long enough that a loaded machine (CI beside other work, a collection pause)
 * never lets it pass before the server's own answer: at 300 ms, 'slowdown' failed as a timeout once in four runs.
 */
const SOCKET_TIMEOUT_MS = 1000;

/** Requests per path so far: lets a path fail the first time and work the next. */
const hits = new Map<string, number>();
let server: http.Server;
let endpoint: string;
let closedEndpoint: string;

function s3Error(res: http.ServerResponse, status: number, code: string, headers: http.OutgoingHttpHeaders = {}): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...headers }).end(body);
}

function serveObject(res: http.ServerResponse, bytes: Buffer): void {
  res.writeHead(200, { 'content-length': BODY.length, etag: `"${ETAG}"`, 'content-type': 'image/png' });
  res.write(bytes);
}

before(async () => {
  server = http.createServer((req, res) => {
    const path = new URL(req.url!, 'http://x').pathname;
    const hit = (hits.get(path) ?? 0) + 1;
    hits.set(path, hit);
    switch (path) {
      case '/b/slowdown':
        return s3Error(res, 503, 'SlowDown', { 'retry-after': '2' });
      case '/b/throttled':
        return s3Error(res, 429, 'TooManyRequests');
      case '/b/internal':
        return s3Error(res, 500, 'InternalError');
      case '/b/denied':
        return s3Error(res, 403, 'AccessDenied');
      case '/b/reset':
        return req.socket.destroy();
      case '/b/silent':
        return; // never answers
      case '/b/stalls-mid-body':
        serveObject(res, BODY.subarray(0, 100)); // then silence
        return;
      case '/b/ends-early':
        serveObject(res, BODY.subarray(0, 500));
        return void setTimeout(() => req.socket.destroy(), 20);
      case '/b/stalls-once':
        if (hit === 1) return serveObject(res, BODY.subarray(0, 100));
        serveObject(res, BODY);
        return void res.end();
      case '/b/ends-early-once':
        if (hit === 1) {
          serveObject(res, BODY.subarray(0, 500));
          return void setTimeout(() => req.socket.destroy(), 20);
        }
        serveObject(res, BODY);
        return void res.end();
      default:
        return s3Error(res, 404, 'NoSuchKey');
    }
  });
  server.keepAliveTimeout = 100;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  closedEndpoint = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
  await new Promise((resolve) => closed.close(resolve));
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function store(at = endpoint): S3Store {
  return new S3Store(
    { type: 's3', bucket: 'b', region: 'us-east-1', endpoint: at, forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
    { role: 'source', maxSockets: 4, partSize: 8 * 1024 * 1024, queueSize: 1, socketTimeoutMs: SOCKET_TIMEOUT_MS },
  );
}

/** The error reading `key` raises, whether at the request or while its body streams. */
async function failureOf(key: string, at?: string): Promise<unknown> {
  const s3 = store(at);
  try {
    const object = await s3.read(key);
    for await (const _ of object!.body);
    return undefined;
  } catch (error) {
    return error;
  } finally {
    s3.close();
  }
}

describe('how S3 failures are classified', () => {
  const cases: Array<[key: string, kind: string]> = [
    ['slowdown', 'throttled'],
    ['throttled', 'throttled'],
    ['internal', 'retryable'],
    ['denied', 'fatal'],
    ['reset', 'retryable'],
    ['silent', 'retryable'],
    ['stalls-mid-body', 'retryable'],
    ['ends-early', 'retryable'],
  ];
  for (const [key, kind] of cases) {
    test(`${key}: ${kind}`, async () => {
      const error = await failureOf(key);
      assert.ok(error, `${key} must fail`);
      const s3 = store();
      assert.equal(s3.classify(error).kind, kind, `classify(${String(error)})`);
      s3.close();
    });
  }

  test('a connection refused is retried (the provider may be restarting)', async () => {
    assert.equal(store().classify(await failureOf('x', closedEndpoint)).kind, 'retryable');
  });

  test('a silent connection fails after the socket timeout, not never', async () => {
    const started = performance.now();
    const error = await failureOf('stalls-mid-body');
    assert.equal((error as Error).name, 'TimeoutError');
    assert.ok(performance.now() - started < 5 * SOCKET_TIMEOUT_MS);
  });

  /** An error as the SDK shapes a service's answer: name and Code, $metadata.httpStatusCode, the raw $response. */
  const sdkError = (status: number, code: string, headers: Record<string, string> = {}) =>
    Object.defineProperty(Object.assign(new Error(code), { name: code, Code: code, $metadata: { httpStatusCode: status } }), '$response', {
      value: { statusCode: status, headers },
    });
  const shaped: Array<[status: number, code: string, kind: string]> = [
    [503, 'ServiceUnavailable', 'throttled'],
    [400, 'ThrottlingException', 'throttled'],
    [502, 'BadGateway', 'retryable'],
    [408, 'RequestTimeout', 'retryable'],
    [400, 'BadDigest', 'retryable'],
    [400, 'IncompleteBody', 'retryable'],
    [403, 'RequestTimeTooSkewed', 'retryable'],
    [404, 'NoSuchKey', 'notFound'],
    [400, 'InvalidArgument', 'permanent'],
    [403, 'AccessDenied', 'permanent'],
  ];
  for (const [status, code, kind] of shaped) {
    test(`${status} ${code}: ${kind}`, () => {
      assert.equal(store().classify(sdkError(status, code)).kind, kind);
    });
  }

  test("an archived object (403 InvalidObjectState) is refused for its own state, whichever store's verdict comes first", () => {
    const archived = sdkError(403, 'InvalidObjectState');
    const s3 = store();
    assert.deepEqual(s3.classify(archived), { kind: 'permanent', ofObject: true });
    assert.deepEqual(classifyFailure([new FsStore(tmpdir(), 'destination'), s3], archived), { kind: 'permanent', ofObject: true });
    assert.deepEqual(s3.classify(sdkError(400, 'InvalidArgument')), { kind: 'permanent' }, 'any other refusal may be the store refusing everything');
    s3.close();
  });

  test("Retry-After is read where the SDK puts it (the error's hidden $response), and waited for at least", async () => {
    const error = await failureOf('slowdown');
    assert.equal(retryAfterMs(error), 2000);
    const failure = store().classify(error);
    assert.deepEqual(failure, { kind: 'throttled', afterMs: 2000 });
    assert.ok(backoffMs(0, failure.kind === 'throttled' ? failure.afterMs : undefined, 200, 20_000, () => 0) >= 2000);
  });

  test('Retry-After as an HTTP date, and unreadable values ignored', () => {
    const at = (value: string) => Object.defineProperty(new Error('x'), '$response', { value: { headers: { 'Retry-After': value } } });
    const date = new Date(Date.now() + 3000).toUTCString();
    assert.ok(Math.abs(retryAfterMs(at(date))! - 3000) < 1100);
    assert.equal(retryAfterMs(at('soon')), undefined);
  });

  test('corruption found by the integrity check is retried; a usage error is not', () => {
    assert.equal(store().classify(new IntegrityError('MD5 differs')).kind, 'retryable');
    assert.equal(store().classify(new UsageError('bad config')).kind, 'permanent');
  });

  test('a refused body is retried only when the next attempt can send a smaller one', () => {
    assert.equal(store().classify(new BodyRefusedError(20 << 20, 'refused', true, { cause: undefined })).kind, 'retryable');
    assert.equal(store().classify(new BodyRefusedError(4 << 20, 'refused', false, { cause: undefined })).kind, 'permanent');
  });
});

describe('how folder failures are classified', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });
  const folder = new FsStore(tmpdir(), 'destination');
  const cases: Array<[code: string, kind: string]> = [
    ['ENOENT', 'notFound'],
    ['ENOTDIR', 'notFound'],
    ['EISDIR', 'permanent'],
    ['ENAMETOOLONG', 'permanent'],
    ['ERR_STREAM_PREMATURE_CLOSE', 'retryable'],
  ];
  for (const [code, kind] of cases) {
    test(`${code}: ${kind}`, () => {
      assert.equal(folder.classify(errno(code)).kind, kind);
    });
  }

  test('a FatalStoreError (a full disk, made by the store) is fatal, and carried', () => {
    const fatal = new FatalStoreError('destination', '/srv/a', '[destination] folder /srv is full', 'free space', { cause: errno('ENOSPC') });
    assert.deepEqual(folder.classify(fatal), { kind: 'fatal', error: fatal });
  });
});

describe('backoff and the retry loop', () => {
  test('full jitter: a random wait between 0 and base × 2^attempt, capped', () => {
    assert.equal(
      backoffMs(3, undefined, 200, 20_000, () => 0),
      0,
    );
    assert.equal(
      backoffMs(3, undefined, 200, 20_000, () => 0.999999),
      1600 * 0.999999,
    );
    assert.equal(
      backoffMs(20, undefined, 200, 20_000, () => 0.5),
      10_000,
    );
  });

  test('a Retry-After is waited for at least, and absurd ones capped', () => {
    assert.equal(
      backoffMs(0, 2000, 200, 20_000, () => 0),
      2000,
    );
    assert.equal(
      backoffMs(0, 86_400_000, 200, 20_000, () => 0),
      100_000,
    );
  });

  test('of two stores, the one that knows the error decides: an S3 throttle during a copy into a folder', () => {
    const throttled = Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } });
    const s3 = store();
    assert.equal(classifyFailure([s3, new FsStore(tmpdir(), 'destination')], throttled).kind, 'throttled');
    assert.equal(classifyFailure([new FsStore(tmpdir(), 'destination'), s3], throttled).kind, 'throttled');
    s3.close();
  });

  test('the loop tries again while transient, tells about throttling, and stops at once on a permanent failure', async () => {
    const s3 = store();
    let throttles = 0;
    const transient = [Object.assign(new Error('SlowDown'), { name: 'SlowDown', $metadata: { httpStatusCode: 503 } }), new IntegrityError('cut short')];
    const result = await withRetries(
      [s3],
      async (attempt) => {
        if (attempt < transient.length) throw transient[attempt];
        return attempt;
      },
      { retries: 5, onThrottle: () => (throttles += 1) },
    );
    assert.equal(result, 2);
    assert.equal(throttles, 1);
    let calls = 0;
    const denied = Object.assign(new Error('AccessDenied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    await assert.rejects(
      withRetries(
        [s3],
        async () => {
          calls += 1;
          throw denied;
        },
        { retries: 5 },
      ),
      (error) => error === denied,
    );
    assert.equal(calls, 1);
    s3.close();
  });

  test('the loop gives up after its retries and throws the last error', async () => {
    let calls = 0;
    const folder = new FsStore(tmpdir(), 'source');
    await assert.rejects(
      withRetries(
        [folder],
        async () => {
          calls += 1;
          throw new IntegrityError(`read ${calls}`);
        },
        { retries: 2 },
      ),
      /read 3/,
    );
    assert.equal(calls, 3);
  });
});

describe('a copy retries from a fresh read', () => {
  const object = mediaOriginal('media_attachments/files/000/000/001/original/a.png', { contentType: 'image/png', size: BODY.length });

  for (const key of ['stalls-once', 'ends-early-once']) {
    test(`${key}: the second attempt copies the whole object`, async () => {
      const folder = mkdtempSync(join(tmpdir(), 'mastosync-retry-'));
      const source = store();
      // Read the failing path whatever key the copy asks for.
      const read = source.read.bind(source);
      source.read = (_key, signal) => read(key, signal);
      try {
        const result = await copyOwnedObject(object, { source, destination: new FsStore(folder, 'destination'), acl: 'public-read', retries: 2 });
        assert.equal(result.status, 'copied', result.error);
        assert.equal(result.attempts, 2);
        assert.ok(readFileSync(join(folder, object.key)).equals(BODY));
      } finally {
        source.close();
        rmSync(folder, { recursive: true, force: true });
      }
    });
  }
});
