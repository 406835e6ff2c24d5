/**
 * Smoke test of the test support library: PostgreSQL (+ DDL), s3rver, the recording/faulting proxy and the fixture.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createDatabase, startPostgres, type PostgresServer } from '../support/postgres.js';
import { makeS3Client, s3Helpers, startS3, type S3Server, type S3Helpers } from '../support/s3.js';
import { faultFirst, startProxy, type HttpProxy, type RecordedRequest } from '../support/httpProxy.js';
import { buildFixture, loadFixture, withPrefix, CACHE_CONTROL, BIG_OBJECT_SIZE, type Fixture } from '../support/fixture.js';
import { SCHEMA_FEATURES, type SchemaName } from '../support/schema.js';

let pgServer: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
let viaProxy: S3Helpers;

before(async () => {
  pgServer = await startPostgres();
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
  viaProxy = s3Helpers(makeS3Client(proxy.endpoint));
});

after(async () => {
  viaProxy?.client.destroy();
  await proxy?.stop();
  await s3?.stop();
  await pgServer?.stop();
});

async function columns(db: import('pg').Client, table: string): Promise<Set<string>> {
  const { rows } = await db.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`,
    [table],
  );
  return new Set(rows.map((r) => r.column_name));
}

async function checkLoaded(schema: SchemaName, bucket: string, prefix?: string): Promise<Fixture> {
  const fixture = buildFixture(schema);
  const db = await createDatabase(schema);
  try {
    // DDL matches the schema's features.
    const media = await columns(db.client, 'media_attachments');
    const f = SCHEMA_FEATURES[schema];
    assert.equal(media.has('file_storage_schema_version'), f.storageSchemaVersion);
    assert.equal(media.has('thumbnail_file_name'), f.thumbnailColumns);
    assert.equal(media.has('thumbnail_storage_schema_version'), f.thumbnailStorageSchemaVersion);
    assert.equal((await columns(db.client, 'imports')).size > 0, f.imports);
    assert.equal((await columns(db.client, 'preview_card_providers')).size > 0, f.previewCardProviders);
    assert.equal((await columns(db.client, 'statuses')).has('deleted_at'), f.statusesDeletedAt);
    assert.ok((await columns(db.client, 'accounts')).has('suspended_at'));

    await s3.createBucket(bucket);
    proxy.reset();
    const res = await loadFixture(fixture, db.client, viaProxy, bucket, prefix);
    assert.equal(res.objects, fixture.sourceObjects.length);

    // Rows are there; bigint ids come back as strings.
    for (const [table, rows] of Object.entries(fixture.rowsByTable)) {
      const { rows: got } = await db.client.query<{ id: string }>(`SELECT id FROM ${table} ORDER BY id`);
      assert.deepEqual(got.map((r) => r.id).sort(), rows.map((r) => String(r.id)).sort(), table);
    }

    // The source bucket holds exactly the fixture's source objects.
    const keys = await s3.listKeys(bucket);
    assert.deepEqual([...keys].sort(), fixture.sourceObjects.map((o) => withPrefix(o.key, prefix)).sort());
    // Paginated listing (truncated ListObjectsV2 pages need the DES shim in s3.ts) gives the same keys.
    assert.deepEqual(await s3.listKeys(bucket, undefined, 7), keys);
    for (const o of fixture.sourceObjects) {
      const got = await s3.getObject(bucket, withPrefix(o.key, prefix));
      assert.ok(got, o.key);
      assert.equal(got.body.length, o.body.length, o.key);
      assert.ok(got.body.equals(o.body), `bytes of ${o.key}`);
      assert.equal(got.contentType, o.contentType, o.key);
      assert.equal(got.cacheControl, CACHE_CONTROL, o.key);
    }
    // Missing objects are really missing.
    for (const m of fixture.missing) assert.equal(await s3.getObject(bucket, withPrefix(m.key, prefix)), null, m.key);

    // The proxy saw every PUT with its headers, keyed by decoded key.
    const uploads = proxy.uploadsByKey(bucket);
    assert.equal(uploads.size, fixture.sourceObjects.length);
    for (const o of fixture.sourceObjects) {
      const u = uploads.get(withPrefix(o.key, prefix));
      assert.ok(u, `upload of ${o.key}`);
      assert.equal(u.operation, 'PutObject');
      assert.equal(u.acl, o.acl, o.key);
      assert.equal(u.contentType, o.contentType, o.key);
      assert.equal(u.cacheControl, CACHE_CONTROL, o.key);
      assert.equal(u.request.status, 200);
      assert.match(u.request.path, new RegExp(`^/${bucket}/`));
    }
    assert.equal(proxy.aclByKey(bucket).get(withPrefix(fixture.sourceObjects[0]!.key, prefix)), fixture.sourceObjects[0]!.acl);
    return fixture;
  } finally {
    await db.drop();
  }
}

describe('support library', () => {
  test('postgres answers', async () => {
    const c = new (await import('pg')).default.Client({ connectionString: pgServer.adminUrl });
    await c.connect();
    const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version') AS v");
    await c.end();
    assert.ok(rows[0]?.v);
    console.log(`postgres: ${pgServer.kind} ${rows[0]?.v} on port ${pgServer.port}`);
  });

  test('current fixture loads (no prefix)', async () => {
    const fx = await checkLoaded('current', 'src-current');
    // traps present
    assert.ok(fx.expected.some((e) => e.acl === 'private' && e.table === 'backups'));
    assert.ok(fx.expected.some((e) => e.key === 'accounts/avatars/000/000/original/f00dfacecafebeef.png'));
    assert.equal(fx.relocated.length, 3);
    assert.ok(fx.missing.length >= 3);
    assert.ok(fx.present.some((e) => e.size === BIG_OBJECT_SIZE));
    assert.ok(fx.expected.some((e) => e.key.includes('%') && e.key.includes('+') && e.key.includes('#')));
    const raw = proxy.requestsFor('media_attachments/files/000/000/012/original/My Photo + café 100% #1.jpg', 'src-current');
    assert.equal(raw.length, 1);
    assert.equal(raw[0]!.path, '/src-current/media_attachments/files/000/000/012/original/My%20Photo%20%2B%20caf%C3%A9%20100%25%20%231.jpg');
  });

  test('v4.3 fixture loads (prefix "mastodon")', async () => {
    const fx = await checkLoaded('v4.3', 'src-v43', 'mastodon');
    assert.ok(fx.expected.some((e) => e.table === 'imports'));
  });

  test('old fixture loads', async () => {
    const fx = await checkLoaded('old', 'src-old');
    assert.ok(fx.expected.every((e) => !e.cache));
    assert.ok(fx.orphans.some((o) => o.key.startsWith('cache/')));
  });
});

describe('proxy faults', () => {
  const bucket = 'faults';
  const key = 'some dir/obj + 1.bin';
  const body = Buffer.alloc(100_000);
  for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
  let p: HttpProxy;
  const isGet = (r: Readonly<RecordedRequest>) => r.method === 'GET' && r.key === key;
  const isPut = (r: Readonly<RecordedRequest>) => r.method === 'PUT' && r.key !== undefined;

  before(async () => {
    await s3.createBucket(bucket);
    await s3.put(bucket, key, body, { contentType: 'application/octet-stream' });
    p = await startProxy({ upstreamPort: s3.port });
  });
  after(async () => {
    await p.stop();
  });

  /** Raw GET through the proxy: status, headers, bytes received and any socket error. */
  function rawGet(path: string): Promise<{ status?: number; headers?: http.IncomingHttpHeaders; bytes: Buffer; error?: string }> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let status: number | undefined;
      let headers: http.IncomingHttpHeaders | undefined;
      const req = http.get({ host: '127.0.0.1', port: p.port, path, agent: false }, (res) => {
        status = res.statusCode;
        headers = res.headers;
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status, headers, bytes: Buffer.concat(chunks) }));
        res.on('error', (e) => resolve({ status, headers, bytes: Buffer.concat(chunks), error: String(e) }));
        res.on('aborted', () => resolve({ status, headers, bytes: Buffer.concat(chunks), error: 'aborted' }));
      });
      req.on('error', (e) => resolve({ status, headers, bytes: Buffer.concat(chunks), error: String(e) }));
    });
  }
  const objPath = `/${bucket}/${encodeURIComponent('some dir')}/${encodeURIComponent('obj + 1.bin')}`;

  test('status 503 SlowDown with Retry-After, then the SDK retries', async () => {
    p.setFault(faultFirst(1, isGet, { kind: 'status', status: 503, code: 'SlowDown', retryAfter: 1 }));
    const raw = await rawGet(objPath);
    assert.equal(raw.status, 503);
    assert.equal(raw.headers?.['retry-after'], '1');
    assert.match(raw.bytes.toString(), /<Code>SlowDown<\/Code>/);
    assert.equal(p.faults.status, 1);
    assert.equal(p.faults['status:SlowDown'], 1);

    const noRetry = makeS3Client(p.endpoint, { maxAttempts: 1 });
    p.setFault(faultFirst(1, isGet, { kind: 'status', status: 503, code: 'SlowDown' }));
    await assert.rejects(
      noRetry.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
      (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => e.name === 'SlowDown' && e.$metadata?.httpStatusCode === 503,
    );
    noRetry.destroy();

    p.setFault(faultFirst(1, isGet, { kind: 'status', status: 503, code: 'SlowDown' }));
    const helpers = s3Helpers(makeS3Client(p.endpoint));
    const got = await helpers.getObject(bucket, key);
    assert.ok(got?.body.equals(body));
    assert.equal(p.faults['status:SlowDown'], 3);
    helpers.client.destroy();
  });

  test('status 500 InternalError', async () => {
    p.setFault(faultFirst(1, isGet, { kind: 'status', status: 500, code: 'InternalError' }));
    const c = makeS3Client(p.endpoint, { maxAttempts: 1 });
    await assert.rejects(
      c.send(new GetObjectCommand({ Bucket: bucket, Key: key })),
      (e: { name?: string; $metadata?: { httpStatusCode?: number } }) => e.name === 'InternalError' && e.$metadata?.httpStatusCode === 500,
    );
    c.destroy();
    assert.equal(p.faults['status:InternalError'], 1);
  });

  test('reset destroys the socket before any response', async () => {
    p.setFault(faultFirst(1, isGet, { kind: 'reset' }));
    const raw = await rawGet(objPath);
    assert.equal(raw.status, undefined);
    assert.match(raw.error ?? '', /socket hang up|ECONNRESET/);
    assert.equal(p.faults.reset, 1);
  });

  test('truncate keeps Content-Length but cuts the body', async () => {
    p.setFault(faultFirst(1, isGet, { kind: 'truncate', afterBytes: 1000 }));
    const raw = await rawGet(objPath);
    assert.equal(raw.status, 200);
    assert.equal(raw.headers?.['content-length'], String(body.length));
    assert.equal(raw.bytes.length, 1000);
    assert.ok(raw.error, 'the client sees a premature close');
    assert.ok(raw.bytes.equals(body.subarray(0, 1000)));
    assert.equal(p.faults.truncate, 1);

    // Through the SDK (no retries of the body stream): reading fails or is short.
    p.setFault(faultFirst(1, isGet, { kind: 'truncate', afterBytes: 5000 }));
    const helpers = s3Helpers(makeS3Client(p.endpoint, { maxAttempts: 1 }));
    const outcome = await helpers.getObject(bucket, key).then(
      (o) => o?.body.length,
      (e: unknown) => e,
    );
    assert.ok(outcome instanceof Error || (typeof outcome === 'number' && outcome < body.length), `got ${String(outcome)}`);
    helpers.client.destroy();
  });

  test('flip changes exactly one bit of the response body', async () => {
    p.setFault(faultFirst(1, isGet, { kind: 'flip', atByte: 12345 }));
    const helpers = s3Helpers(makeS3Client(p.endpoint));
    const got = await helpers.getObject(bucket, key);
    assert.ok(got);
    assert.equal(got.body.length, body.length);
    assert.ok(!got.body.equals(body));
    const diff = [...got.body].flatMap((b, i) => (b !== body[i] ? [i] : []));
    assert.deepEqual(diff, [12345]);
    assert.equal(got.body[12345]! ^ body[12345]!, 1);
    assert.equal(p.faults.flip, 1);
    helpers.client.destroy();
  });

  test('flip-request corrupts the uploaded object (server ETag != MD5 of what was sent)', async () => {
    p.setFault(faultFirst(1, isPut, { kind: 'flip-request', atByte: 10 }));
    const c = makeS3Client(p.endpoint);
    const res = await c.send(new PutObjectCommand({ Bucket: bucket, Key: 'flipped', Body: body }));
    c.destroy();
    const md5 = createHash('md5').update(body).digest('hex');
    assert.notEqual(res.ETag?.replace(/"/g, ''), md5);
    const stored = await s3.getObject(bucket, 'flipped');
    assert.equal(stored?.body.length, body.length);
    assert.equal(stored!.body[10]! ^ body[10]!, 1);
    assert.equal(p.faults['flip-request'], 1);
  });

  test('truncate-request cuts the upload and the connection', async () => {
    p.setFault(faultFirst(1, isPut, { kind: 'truncate-request', afterBytes: 5000 }));
    const c = makeS3Client(p.endpoint, { maxAttempts: 1 });
    await assert.rejects(c.send(new PutObjectCommand({ Bucket: bucket, Key: 'cut', Body: body })));
    c.destroy();
    assert.equal(p.faults['truncate-request'], 1);
    const rec = p.requestsFor('cut', bucket);
    assert.equal(rec.length, 1);
    assert.equal(rec[0]!.requestBytes, 5000);
    const stored = await s3.getObject(bucket, 'cut');
    assert.ok(stored === null || stored.body.length < body.length, 'no complete object was stored');
  });

  test('multipart upload through the proxy: ACL recorded from CreateMultipartUpload; 503 on a big PUT is retried', async () => {
    p.setFault(undefined);
    const helpers = s3Helpers(makeS3Client(p.endpoint));
    const big = Buffer.alloc(BIG_OBJECT_SIZE, 7);
    await helpers.put(bucket, 'big/multi part.bin', big, { multipart: true, acl: 'private', contentType: 'video/mp4', cacheControl: CACHE_CONTROL });
    const up = p.uploadsByKey(bucket).get('big/multi part.bin');
    assert.equal(up?.operation, 'CreateMultipartUpload');
    assert.equal(up?.acl, 'private');
    assert.equal(up?.contentType, 'video/mp4');
    assert.equal(p.requestsFor('big/multi part.bin', bucket).filter((r) => r.operation === 'UploadPart').length, 2);
    const got = await s3.getObject(bucket, 'big/multi part.bin');
    assert.ok(got?.body.equals(big));
    // s3rver divergence: a multipart object's ETag is the plain MD5 of the whole body (AWS: "<md5 of md5s>-2").
    assert.equal(got?.etag, `"${createHash('md5').update(big).digest('hex')}"`);

    p.setFault(faultFirst(1, isPut, { kind: 'status', status: 503, code: 'SlowDown' }));
    await helpers.put(bucket, 'big/single.bin', big, { acl: 'public-read' });
    const reqs = p.requestsFor('big/single.bin', bucket);
    assert.deepEqual(
      reqs.map((r) => r.status),
      [503, 200],
    );
    assert.equal(p.aclByKey(bucket).get('big/single.bin'), 'public-read');
    assert.ok((await s3.getObject(bucket, 'big/single.bin'))?.body.equals(big));
    helpers.client.destroy();
  });

  test('latency, keep-alive and many concurrent requests', async () => {
    p.setFault(undefined);
    const lp = await startProxy({ upstreamPort: s3.port, latencyMs: 30 });
    const helpers = s3Helpers(makeS3Client(lp.endpoint));
    try {
      const t0 = Date.now();
      await helpers.getObject(bucket, key);
      assert.ok(Date.now() - t0 >= 30);
      const n = 200;
      const results = await Promise.all(Array.from({ length: n }, () => helpers.getObject(bucket, key)));
      assert.ok(results.every((r) => r?.body.equals(body)));
      assert.equal(lp.requests.length, n + 1);
      assert.ok(lp.connections < n, `keep-alive: ${lp.connections} connections for ${n + 1} requests`);
      assert.deepEqual(lp.faults, {});
      // sequential requests reuse one connection
      const before = lp.connections;
      for (let i = 0; i < 10; i++) await helpers.getObject(bucket, key);
      assert.ok(lp.connections - before <= 1, `sequential: ${lp.connections - before} new connections`);
    } finally {
      helpers.client.destroy();
      await lp.stop();
    }
  });
});
