/**
 * The OpenStack Swift backend against a real Swift (Debian's packages, tempauth, one replica; test/support/swift.ts),
 * as an admin moving onto or off Swift would check it:
 * - s3 → swift → s3 exact: bytes, Content-Type and Cache-Control; objects above segment_size arrive as static large
 *   objects; check, plan, manifest and verify work on Swift;
 * - swift → swift in one account: the cluster copies (X-Copy-From), no byte passes through mastosync;
 * - faults through the fault proxy in front of Swift (503, resets, a byte altered on the way, a refused token) are
 *   retried and the destination ends exact; a full cluster (507) stops the run with one line; a run killed mid-way
 *   and resumed rewrites nothing it had finished;
 * - the store's listing (ascending, key prefix removed, MD5s) and deletes (bulk, or one by one without bulk delete).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buildFixture, loadFixture, type ExpectedObject, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy, type RecordedRequest } from '../support/httpProxy.js';
import { isSwiftAvailable, startSwift, swiftSection, SWIFT_KEY, SWIFT_USER, type SwiftServer } from '../support/swift.js';
import { expectedContentType } from '../support/contentTypes.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';
import { createStore } from '../../src/storage/index.js';

const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');
const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');
/** Swift lists in byte order of the UTF-8 names. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

const available = isSwiftAvailable();
let postgres: PostgresServer;
let s3: S3Server;
let swift: SwiftServer;
/** In front of Swift: records every request, adds latency and faults on demand. */
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;
const dirs: string[] = [];

interface Summary {
  total: Record<string, number>;
}

describe('OpenStack Swift', { skip: !available && 'Debian swift packages are not installed (CI installs them and never skips)' }, () => {
  before(async () => {
    [postgres, s3, swift] = await Promise.all([startPostgres(), startS3(), startSwift()]);
    proxy = await startProxy({ upstreamPort: swift.port });
    fixture = buildFixture('current');
    db = await createDatabase('current');
    await s3.createBucket('swift-source');
    await loadFixture(fixture, db.client, s3, 'swift-source');
  });

  after(async () => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await db?.drop();
    await proxy?.stop();
    await Promise.all([swift?.stop(), s3?.stop(), postgres?.stop()]);
  });

  const throughProxy = () => `http://127.0.0.1:${proxy.port}/auth/v1.0`;

  function config(
    source: { lines?: string[]; bucket?: string },
    destination: { lines?: string[]; bucket?: string },
    extra: { copyMode?: 'auto' | 'stream'; concurrency?: number; retries?: number } = {},
  ) {
    const store = (side: { lines?: string[]; bucket?: string }) =>
      side.lines !== undefined ? { lines: side.lines } : { endpoint: s3.endpoint, bucket: side.bucket };
    const written = writeConfig({ databaseUrl: db.url, source: store(source), destination: store(destination), ...extra });
    dirs.push(written.dir);
    return written;
  }

  async function run(dir: string, ...args: string[]) {
    const result = await runCli(['run', 'all', '--json', '--quiet', ...args], { cwd: dir });
    const summary = result.code === 0 || result.code === 1 ? readJsonLines<Summary>(result.stdout).at(-1) : undefined;
    return { ...result, summary };
  }

  async function assertSwiftExact(container: string, objects: readonly ExpectedObject[] = fixture.present): Promise<void> {
    assert.deepEqual((await swift.listKeys(container)).sort(byteOrder), objects.map((object) => object.key).sort(byteOrder), 'exactly the owned objects');
    for (const expected of objects) {
      const stored = (await swift.getObject(container, expected.key))!;
      assert.equal(sha256(stored.body), expected.sha256, `${expected.key}: bytes`);
      assert.equal(stored.contentType, expected.contentType, `${expected.key}: Content-Type`);
      assert.equal(stored.cacheControl, expected.cacheControl, `${expected.key}: Cache-Control`);
    }
  }

  /** The object key of a request to `container` through the proxy (/v1/<account>/<container>/<key>), if it names one. */
  function keyIn(container: string, request: RecordedRequest): string | undefined {
    const [, version, , named, ...rest] = request.path.split('/');
    if (version !== 'v1' || named !== container || rest.length === 0) return undefined;
    return rest.map(decodeURIComponent).join('/');
  }

  test('s3 → swift → s3: bytes, Content-Type, Cache-Control exact; large objects as SLO segments; check, plan, manifest, verify', async () => {
    await swift.createContainer('media');
    const there = config({ bucket: 'swift-source' }, { lines: swiftSection(swift.authUrl, 'media', { segmentSizeMib: 1 }) });
    const checked = await runCli(['check'], { cwd: there.dir });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /swift:\/\/media at .* answers: the container exists/);

    const out = await run(there.dir);
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.summary!.total.missing, fixture.missing.length);
    await assertSwiftExact('media');
    const large = fixture.present.filter((object) => object.size > 1024 * 1024);
    assert.ok(large.length >= 1, 'the fixture has objects above 1 MiB');
    for (const object of large) {
      const stored = (await swift.getObject('media', object.key))!;
      assert.equal(stored.headers.get('x-static-large-object'), 'True', `${object.key} is a static large object`);
      const segments = await swift.listKeys('media_segments', `${object.key}/slo/`);
      assert.equal(segments.length, Math.ceil(object.size / (1024 * 1024)), `${object.key}: 1 MiB segments`);
    }
    const verified = await runCli(['verify', 'all', '--json'], { cwd: there.dir });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    // The same from the two listings joined with the rows (what verify does above 2000 objects).
    const listed = await runCli(['verify', 'all', '--by-listing', '--json'], { cwd: there.dir });
    assert.equal(listed.code, 0, listed.stdout + listed.stderr);

    await s3.createBucket('swift-back');
    const back = config({ lines: swiftSection(swift.authUrl, 'media') }, { bucket: 'swift-back' });
    const planned = await runCli(['plan', 'all', '--json'], { cwd: back.dir });
    assert.equal(planned.code, 0, planned.stderr);
    const manifest = await runCli(['manifest', 'all', '--format', 'keys'], { cwd: back.dir });
    assert.equal(manifest.code, 0, manifest.stderr);
    const manifested = new Set(manifest.stdout.split('\n'));
    for (const object of fixture.present) assert.ok(manifested.has(object.key), `manifest lists ${object.key}`);

    const returned = await run(back.dir);
    assert.equal(returned.code, 0, returned.stderr);
    assert.equal(returned.summary!.total.missing, fixture.missing.length);
    assert.deepEqual((await s3.listKeys('swift-back')).sort(), fixture.present.map((object) => object.key).sort());
    for (const expected of fixture.present) {
      const stored = (await s3.getObject('swift-back', expected.key))!;
      assert.equal(sha256(stored.body), expected.sha256, `${expected.key}: bytes`);
      assert.equal(stored.contentType, expected.contentType, `${expected.key}: Content-Type`);
      assert.equal(stored.cacheControl, expected.cacheControl, `${expected.key}: Cache-Control`);
    }
  });

  test("init --from-env maps Mastodon's SWIFT_* settings onto a [source] that check reaches", async () => {
    const dir = config({ bucket: 'swift-source' }, { bucket: 'swift-back' }).dir;
    writeFileSync(
      join(dir, '.env.production'),
      [
        `DATABASE_URL=${db.url}`,
        'SWIFT_ENABLED=true',
        `SWIFT_AUTH_URL=${swift.authUrl}`,
        `SWIFT_USERNAME=${SWIFT_USER}`,
        `SWIFT_PASSWORD=${SWIFT_KEY}`,
        'SWIFT_TENANT=test',
        'SWIFT_CONTAINER=media',
        `SWIFT_OBJECT_URL=${swift.storageUrl}/media`,
        '',
      ].join('\n'),
    );
    const init = await runCli(['init', '--from-env', '.env.production', '--out', 'from-env.toml'], { cwd: dir });
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /source: {3}swift:\/\/media at http:\/\/127\.0\.0\.1:\d+\/auth\/v1\.0/);
    const checked = await runCli(['check', '--config', 'from-env.toml'], {
      cwd: dir,
      env: {
        MASTOSYNC_DESTINATION_ENDPOINT: s3.endpoint,
        MASTOSYNC_DESTINATION_BUCKET: 'swift-back',
        MASTOSYNC_DESTINATION_ACCESS_KEY_ID: 'S3RVER',
        MASTOSYNC_DESTINATION_SECRET_ACCESS_KEY: 'S3RVER',
      },
    });
    assert.equal(checked.code, 0, checked.stdout + checked.stderr);
    assert.match(checked.stdout, /^ok {3}source: swift:\/\/media at .* answers: the container exists$/m);
  });

  test('swift → swift in one account: the cluster copies every object (X-Copy-From), no object is read through mastosync', async () => {
    await swift.createContainer('copied');
    proxy.reset();
    const copy = config({ lines: swiftSection(throughProxy(), 'media') }, { lines: swiftSection(throughProxy(), 'copied') }, { copyMode: 'auto' });
    const out = await run(copy.dir);
    assert.equal(out.code, 0, out.stderr);
    // Legacy alternates are tried in turn: a copy from one the source lacks answers 404.
    const puts = proxy.requests.filter((request) => request.method === 'PUT' && request.status === 201 && keyIn('copied', request) !== undefined);
    assert.equal(puts.length, fixture.present.length);
    for (const put of puts) assert.match(put.headers['x-copy-from'] ?? '', /^\/media\//, `${keyIn('copied', put)}: copied by the cluster`);
    assert.deepEqual(
      proxy.requests.filter((request) => request.method === 'GET' && keyIn('media', request) !== undefined),
      [],
      'no GET of a source object',
    );
    await assertSwiftExact('copied');
  });

  test("swift → swift in one account from objects without Cache-Control (as Mastodon writes them), media typed application/octet-stream (a tool that knew no type): each copy gets Mastodon's Cache-Control and the row's type, as a streamed one would; a source's own are kept", async () => {
    await swift.createContainer('bare');
    await swift.createContainer('bare-copied');
    const own = fixture.present.find((object) => object.table === 'accounts')!;
    const untyped = new Set(
      fixture.present
        .filter((object) => object.table === 'media_attachments' && expectedContentType(fixture, object) !== undefined)
        .map((object) => object.key),
    );
    assert.ok(untyped.size > 0);
    for (const object of fixture.present) {
      const type = untyped.has(object.key) ? 'application/octet-stream' : object.contentType;
      const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
      if (object === own) headers['cache-control'] = 'max-age=60';
      await swift.putObject('bare', object.key, object.body!, headers);
    }
    assert.equal((await swift.getObject('bare', fixture.present.find((object) => object !== own)!.key))!.cacheControl, undefined);
    proxy.reset();
    const copy = config({ lines: swiftSection(throughProxy(), 'bare') }, { lines: swiftSection(throughProxy(), 'bare-copied') }, { copyMode: 'auto' });
    const out = await run(copy.dir);
    assert.equal(out.code, 0, out.stderr);
    const puts = proxy.requests.filter((request) => request.method === 'PUT' && request.status === 201 && keyIn('bare-copied', request) !== undefined);
    assert.equal(puts.length, fixture.present.length);
    for (const put of puts) assert.match(put.headers['x-copy-from'] ?? '', /^\/bare\//, `${keyIn('bare-copied', put)}: copied by the cluster`);
    for (const object of fixture.present) {
      const stored = (await swift.getObject('bare-copied', object.key))!;
      assert.equal(sha256(stored.body), object.sha256, `${object.key}: bytes`);
      const type = untyped.has(object.key) ? expectedContentType(fixture, object) : object.contentType;
      if (type !== undefined) assert.equal(stored.contentType, type, `${object.key}: Content-Type`);
      assert.equal(stored.cacheControl, object === own ? 'max-age=60' : 'public, max-age=315576000, immutable', `${object.key}: Cache-Control`);
    }
  });

  test('503s, resets, a byte altered on the way and a refused token are retried: the destination ends exact', async () => {
    await swift.createContainer('faulty');
    proxy.reset();
    const seen = new Map<string, number>();
    let tokenRefused = false;
    proxy.setFault((request) => {
      const key = keyIn('faulty', request);
      if (request.method !== 'PUT' || key === undefined) return undefined;
      const attempt = (seen.get(key) ?? 0) + 1;
      seen.set(key, attempt);
      if (attempt > 1) return undefined;
      const index = fixture.present.findIndex((object) => object.key === key);
      if (!tokenRefused) {
        tokenRefused = true;
        return { kind: 'status', status: 401, code: 'Unauthorized' };
      }
      if (index % 4 === 0) return { kind: 'status', status: 503, code: 'ServiceUnavailable' };
      if (index % 4 === 1) return { kind: 'reset' };
      if (index % 4 === 2 && fixture.present[index]!.size > 64) return { kind: 'flip-request', atByte: 40 };
      return undefined;
    });
    try {
      const faulty = config({ bucket: 'swift-source' }, { lines: swiftSection(throughProxy(), 'faulty') });
      const out = await run(faulty.dir);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.summary!.total.failed, 0);
    } finally {
      proxy.setFault(undefined);
    }
    for (const kind of ['status:ServiceUnavailable', 'reset', 'flip-request', 'status:Unauthorized']) {
      assert.ok((proxy.faults[kind] ?? 0) >= 1, `${kind} injected (${JSON.stringify(proxy.faults)})`);
    }
    // An altered body never stays: Swift refuses it against the ETag sent (422), and the copy is sent again.
    assert.ok(
      proxy.requests.some((request) => request.status === 422 && keyIn('faulty', request) !== undefined),
      'Swift refused an altered body',
    );
    assert.ok(proxy.requests.filter((request) => request.path.endsWith('/auth/v1.0')).length >= 2, 'a refused token was renewed');
    await assertSwiftExact('faulty');
  });

  test('a full cluster (507): exit 1 with one line naming the quota', async () => {
    await swift.createContainer('full');
    let puts = 0;
    proxy.setFault((request) =>
      request.method === 'PUT' && keyIn('full', request) !== undefined && ++puts > 5 ? { kind: 'status', status: 507, code: 'InsufficientStorage' } : undefined,
    );
    const full = config({ bucket: 'swift-source' }, { lines: swiftSection(throughProxy(), 'full') }, { concurrency: 2 });
    try {
      const out = await run(full.dir);
      assert.equal(out.code, 1, out.stderr);
      assert.match(out.stderr, /\[destination\] container "full" at .* is over its storage quota or out of space \(507 on PUT /);
    } finally {
      proxy.setFault(undefined);
    }
    assert.ok((await swift.listKeys('full')).length <= 5 + 2, 'the run stopped at once: no more than the copies in flight went on');
  });

  test('SIGKILL mid-run, then --resume: destination exact, nothing finished is written again', async () => {
    await swift.createContainer('resumed');
    proxy.setLatency(30);
    const world = config({ bucket: 'swift-source' }, { lines: swiftSection(throughProxy(), 'resumed') }, { concurrency: 2 });
    const finished = () =>
      existsSync(world.checkpoint)
        ? readFileSync(world.checkpoint, 'utf8')
            .split('\n')
            .flatMap((line) => {
              try {
                const parsed = JSON.parse(line) as { key?: string; status?: string };
                return parsed.status === 'copied' || parsed.status === 'relocated' ? [parsed.key!] : [];
              } catch {
                return [];
              }
            })
        : [];
    try {
      const killed = await runCli(['run', 'all'], {
        cwd: world.dir,
        onSpawn: (child) => {
          const timer = setInterval(() => {
            if (finished().length >= 10) {
              clearInterval(timer);
              child.kill('SIGKILL');
            }
          }, 10);
          child.on('exit', () => clearInterval(timer));
        },
      });
      assert.equal(killed.signal, 'SIGKILL');
    } finally {
      proxy.setLatency(0);
    }
    const done = new Set(finished());
    assert.ok(done.size >= 10 && done.size < fixture.present.length, `killed part-way (${done.size} finished)`);
    proxy.reset();
    const resumed = await run(world.dir, '--resume');
    assert.equal(resumed.code, 0, resumed.stderr);
    const rewritten = proxy.requests.filter((request) => request.method === 'PUT' && done.has(keyIn('resumed', request) ?? ''));
    assert.deepEqual(
      rewritten.map((request) => request.path),
      [],
      'nothing finished is written again',
    );
    await assertSwiftExact('resumed');
  });

  test('the store lists in ascending order without its key prefix, with MD5s, and deletes (bulk, or one by one)', async () => {
    await swift.createContainer('listing');
    const store = createStore(
      {
        type: 'swift',
        authUrl: throughProxy(),
        username: SWIFT_USER,
        password: SWIFT_KEY,
        container: 'listing',
        keyPrefix: 'backup',
        segmentSize: 1024 * 1024,
      },
      { role: 'destination', concurrency: 2 },
    );
    try {
      const bodies = new Map<string, Buffer>([
        ['b/2.png', Buffer.from('two')],
        ['a/1.png', Buffer.from('one')],
        ['b/10 +x.png', Buffer.from('ten')],
        ['big.mp4', Buffer.alloc(1024 * 1024 + 10, 3)],
      ]);
      for (const [key, body] of bodies) await store.write(key, Readable.from([body]), { contentType: 'image/png', contentLength: body.length });
      await swift.putObject('listing', 'elsewhere.png', Buffer.from('not under the prefix'));
      proxy.reset();
      const listed = [];
      for await (const entry of store.list!('')) listed.push(entry);
      const pages = proxy.requests.filter((request) => request.method === 'GET' && request.query.format === 'json');
      assert.equal(pages.length, 1, 'a page short of the limit is the last: no request more');
      const keys = [...bodies.keys()].sort(byteOrder);
      assert.deepEqual(
        listed.map((entry) => entry.key),
        keys,
      );
      for (const entry of listed) {
        assert.equal(entry.size, bodies.get(entry.key)!.length, `${entry.key}: size`);
        // A static large object's listed hash is its manifest's: no MD5 of the bytes.
        assert.equal(entry.md5, entry.key === 'big.mp4' ? undefined : md5(bodies.get(entry.key)!), `${entry.key}: MD5`);
      }
      const after = [];
      for await (const entry of store.list!('b/', { startAfter: 'b/10 +x.png' })) after.push(entry.key);
      assert.deepEqual(after, ['b/2.png']);

      assert.deepEqual(await store.delete!(['a/1.png', 'big.mp4', 'not/there.png']), []);
      assert.deepEqual(await swift.listKeys('listing_segments', 'backup/big.mp4/'), [], "the large object's segments went with it");
      // Without bulk delete (no /info), one DELETE per object.
      proxy.reset();
      proxy.setFault((request) => (request.path === '/info' ? { kind: 'status', status: 404, code: 'NotFound' } : undefined));
      const fallback = createStore(
        { type: 'swift', authUrl: throughProxy(), username: SWIFT_USER, password: SWIFT_KEY, container: 'listing', keyPrefix: 'backup' },
        { role: 'destination', concurrency: 2 },
      );
      try {
        assert.deepEqual(await fallback.delete!(['b/2.png', 'b/10 +x.png'], undefined), []);
      } finally {
        fallback.close();
        proxy.setFault(undefined);
      }
      assert.equal(proxy.requests.filter((request) => request.method === 'DELETE').length, 2);
      assert.deepEqual(await swift.listKeys('listing'), ['elsewhere.png']);
    } finally {
      store.close();
    }
  });
});
