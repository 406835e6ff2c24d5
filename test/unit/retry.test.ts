/**
 * Retries: which failures are transient, full-jitter backoff and Retry-After. The errors are the real ones the
 * AWS SDK raises, from a small local HTTP server answering like a struggling S3 provider (throttling, 5xx,
 * refusals, resets, a connection that goes silent, a body that ends early), so a change in what the SDK exposes
 * (e.g. where Retry-After is) fails here.
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
import { IntegrityError } from '../../src/sync/integrity.js';
import { backoffMs, isRetryable, isThrottle, retryAfterMs } from '../../src/sync/retry.js';
import { copyOwnedObject } from '../../src/sync/copy.js';
import { UsageError } from '../../src/errors.js';
import type { OwnedObject } from '../../src/mastodon/keys.js';

const BODY = Buffer.alloc(1000, 7);
const ETAG = createHash('md5').update(BODY).digest('hex');
const SOCKET_TIMEOUT_MS = 300;

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

describe('which failures are retried', () => {
  const cases: Array<[key: string, retryable: boolean, throttle: boolean]> = [
    ['slowdown', true, true],
    ['throttled', true, true],
    ['internal', true, false],
    ['denied', false, false],
    ['reset', true, false],
    ['silent', true, false],
    ['stalls-mid-body', true, false],
    ['ends-early', true, false],
  ];
  for (const [key, retryable, throttle] of cases) {
    test(`${key}: ${retryable ? 'retried' : 'not retried'}${throttle ? ', and slows the run down' : ''}`, async () => {
      const error = await failureOf(key);
      assert.ok(error, `${key} must fail`);
      assert.equal(isRetryable(error), retryable, `isRetryable(${String(error)})`);
      assert.equal(isThrottle(error), throttle, `isThrottle(${String(error)})`);
    });
  }

  test('a connection refused is retried (the provider may be restarting)', async () => {
    assert.equal(isRetryable(await failureOf('x', closedEndpoint)), true);
  });

  test('a silent connection fails after the socket timeout, not never', async () => {
    const started = performance.now();
    const error = await failureOf('stalls-mid-body');
    assert.equal((error as Error).name, 'TimeoutError');
    assert.ok(performance.now() - started < 5 * SOCKET_TIMEOUT_MS);
  });

  test('corruption found by the integrity check is retried; a usage error is not', () => {
    assert.equal(isRetryable(new IntegrityError('MD5 differs')), true);
    assert.equal(isRetryable(new UsageError('bad config')), false);
  });
});

describe('backoff', () => {
  test('full jitter: a random wait between 0 and base × 2^attempt, capped', () => {
    assert.equal(
      backoffMs(3, new Error('x'), 200, 20_000, () => 0),
      0,
    );
    assert.equal(
      backoffMs(3, new Error('x'), 200, 20_000, () => 0.999999),
      1600 * 0.999999,
    );
    assert.equal(
      backoffMs(20, new Error('x'), 200, 20_000, () => 0.5),
      10_000,
    );
  });

  test("Retry-After is read where the SDK puts it (the error's hidden $response), and waited for at least", async () => {
    const error = await failureOf('slowdown');
    assert.equal(retryAfterMs(error), 2000);
    assert.ok(backoffMs(0, error, 200, 20_000, () => 0) >= 2000);
  });

  test('Retry-After as an HTTP date, and absurd values capped', () => {
    const at = (value: string) => Object.defineProperty(new Error('x'), '$response', { value: { headers: { 'Retry-After': value } } });
    const date = new Date(Date.now() + 3000).toUTCString();
    assert.ok(Math.abs(retryAfterMs(at(date))! - 3000) < 1100);
    assert.equal(
      backoffMs(0, at('86400'), 200, 20_000, () => 0),
      100_000,
    );
    assert.equal(retryAfterMs(at('soon')), undefined);
  });
});

describe('a copy retries from a fresh read', () => {
  const object: OwnedObject = {
    job: 'media_attachments',
    id: '1',
    attachment: 'file',
    style: 'original',
    key: 'media_attachments/files/000/000/001/original/a.png',
    alternates: [],
    visibility: 'default',
    storedContentType: 'image/png',
    storedSize: BODY.length,
    underCache: false,
  };

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
