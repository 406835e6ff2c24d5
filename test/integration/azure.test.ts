/**
 * Azure Blob Storage end to end, against Azurite (Microsoft's emulator), as an admin moving to or off Azure checks it:
 * - S3 → Azure → S3 round trip, exact: every owned object's bytes, Content-Type and Cache-Control, under a key
 *   prefix; objects above the upload cutoff go as staged blocks; each blob gets its Content-MD5; `check`, `verify`
 *   and `manifest` work on Azure;
 * - a public/system folder → Azure: the Content-Type Mastodon would have sent, its Cache-Control;
 * - faults through a proxy in front of Azurite (throttling, resets, a byte changed in a body going up or coming
 *   down, a cut download) are retried and the result is exact;
 * - a run killed part-way resumes without writing again what it finished;
 * - a wrong access key stops before anything is written (exit 2, one line); credentials refused mid-run stop the
 *   run at once (exit 1, one line naming the fix).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { CACHE_CONTROL } from '../support/fixture.js';
import { expectedContentType } from '../support/contentTypes.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy, type RecordedRequest } from '../support/httpProxy.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, endpointAt, startAzurite, type Azurite } from '../support/azurite.js';
import { createStore } from '../../src/storage/index.js';
import type { ListedObject } from '../../src/storage/types.js';
import { readJsonLines, runCli, writeConfig, type CliResult } from '../support/cli.js';

/** Jobs of small objects only: a run of them is quick. */
const SMALL_JOBS = ['accounts', 'custom_emojis', 'site_uploads'];
/** Azure's blob service URL through the proxy. */
const viaProxy = () => endpointAt(proxy.port);
const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');
const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');

let postgres: PostgresServer;
let s3: S3Server;
let azurite: Azurite;
/** In front of Azurite: records requests, injects faults. */
let proxy: HttpProxy;
let db: TestDatabase;
let world: IntegrityWorld;
const folders: string[] = [];

before(async () => {
  [postgres, s3, azurite] = await Promise.all([startPostgres(), startS3(), startAzurite()]);
  proxy = await startProxy({ upstreamPort: azurite.port });
  db = await createDatabase('current');
  await s3.createBucket('azure-source');
  // The fixture plus objects uploaded multipart (no MD5 ETag), two of them above the 8 MiB cutoff: staged blocks.
  world = await buildIntegrityWorld(db, s3, 'azure-source');
});

after(async () => {
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await azurite?.stop();
  await s3?.stop();
  await postgres?.stop();
});

/** A [source] or [destination] of type = "azure" in Azurite's account. */
function azure(container: string, options: { endpoint?: string; accessKey?: string; keyPrefix?: string } = {}): { lines: string[] } {
  const lines = [
    'type = "azure"',
    'account = "devstoreaccount1"',
    `access_key = ${JSON.stringify(options.accessKey ?? AZURITE_KEY)}`,
    `container = ${JSON.stringify(container)}`,
    `endpoint = ${JSON.stringify(options.endpoint ?? azurite.endpoint)}`,
  ];
  if (options.keyPrefix !== undefined) lines.push(`key_prefix = ${JSON.stringify(options.keyPrefix)}`);
  return { lines };
}

function config(source: Parameters<typeof writeConfig>[0]['source'], destination: Parameters<typeof writeConfig>[0]['destination'], retries?: number) {
  const written = writeConfig({ databaseUrl: db.url, source, destination, retries, batchSize: 10 });
  folders.push(written.dir);
  return written;
}

function summaryOf(result: CliResult): { total: Record<string, number>; stopped?: string } {
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number>; stopped?: string };
}

/** The container holds exactly the owned objects (under `prefix`), byte-exact, with their Content-MD5, type and cache control. */
async function assertContainerExact(container: string, prefix = '', wanted = world.wanted): Promise<void> {
  assert.deepEqual(
    (await azurite.listKeys(container)).sort(),
    wanted.map((object) => prefix + object.key).sort(),
    'the container must hold exactly the owned objects',
  );
  for (const object of wanted) {
    const blob = await azurite.getBlob(container, prefix + object.key);
    assert.ok(blob, `${object.key}: missing in ${container}`);
    assert.equal(sha256(blob.body), object.sha256, `${object.key}: bytes`);
    assert.equal(blob.contentType, object.contentType, `${object.key}: Content-Type`);
    assert.equal(blob.cacheControl, object.cacheControl, `${object.key}: Cache-Control`);
    assert.equal(blob.md5, md5(blob.body), `${object.key}: the blob's Content-MD5`);
  }
}

/** Requests to blobs of `container`, through the proxy (whose path style puts the account first). */
function blobRequests(container: string, match: (request: RecordedRequest) => boolean = () => true): RecordedRequest[] {
  return proxy.requests.filter((request) => request.key?.startsWith(`${container}/`) && match(request));
}
const blobOf = (container: string, request: RecordedRequest) => request.key!.slice(container.length + 1);
/** Put Blob (one request), Put Block, Put Block List: told apart by `comp`. */
const isPutBlob = (request: RecordedRequest) => request.method === 'PUT' && request.query.comp === undefined;
const isPutBlock = (request: RecordedRequest) => request.method === 'PUT' && request.query.comp === 'block';
const isCommit = (request: RecordedRequest) => request.method === 'PUT' && request.query.comp === 'blocklist';

describe('Azure Blob backend (Azurite)', () => {
  test('S3 → Azure → S3 through faults both ways: exact bytes, Content-Type, Cache-Control under a key prefix; check, verify, manifest', async () => {
    await azurite.createContainer('round-trip');
    const there = config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('round-trip', { endpoint: viaProxy(), keyPrefix: 'media' }), 3);
    const check = await runCli(['check'], { cwd: there.dir });
    assert.equal(check.code, 0, check.stderr + check.stdout);
    assert.match(check.stdout, /^ok {3}destination: azure:\/\/devstoreaccount1\/round-trip\/media at .* answers a listing; writing not checked$/m);

    // Up: throttled, a body changed on the way (the service refuses it by its Content-MD5), a block upload reset, a
    // commit failing: each object is copied again, and only whole, proven objects appear.
    const [small, other] = world.wanted.filter((object) => object.size > 2000 && !world.large.includes(object));
    assert.ok(small && other);
    const [video, seventeen, twelve] = world.large;
    const first = new Map<string, number>();
    const once = (name: string, matches: boolean) => matches && (first.set(name, (first.get(name) ?? 0) + 1), first.get(name) === 1);
    const blobIn = (request: RecordedRequest) => (request.key?.startsWith('round-trip/media/') ? request.key.slice('round-trip/media/'.length) : undefined);
    proxy.reset();
    proxy.setFault((request) => {
      const blob = blobIn(request);
      if (once('busy', isPutBlob(request) && blob === small.key))
        return { kind: 'status', status: 503, code: 'ServerBusy', message: 'Ingress is over the account limit.' };
      if (once('flip', isPutBlob(request) && blob === other.key)) return { kind: 'flip-request', atByte: 10 };
      if (once('reset', isPutBlock(request) && blob === seventeen.key)) return { kind: 'reset' };
      if (once('commit', isCommit(request) && blob === twelve.key)) return { kind: 'status', status: 500, code: 'InternalError' };
      return undefined;
    });
    const out = await runCli(['run', 'all', '--json', '--quiet'], { cwd: there.dir });
    proxy.setFault(undefined);
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(
      { ...proxy.faults },
      { status: 2, 'status:ServerBusy': 1, 'status:InternalError': 1, 'flip-request': 1, reset: 1 },
      'every fault took effect',
    );
    await assertContainerExact('round-trip', 'media/');
    // Above the cutoff in blocks, each with its Content-MD5; below it one Put Blob with the source's MD5, when known.
    const blocked = new Set(blobRequests('round-trip', isCommit).map((request) => blobOf('round-trip', request)));
    assert.deepEqual(
      [...blocked].sort(),
      world.wanted
        .filter((object) => object.size > 8 * 1024 * 1024)
        .map((object) => `media/${object.key}`)
        .sort(),
    );
    for (const request of blobRequests('round-trip', isPutBlock)) assert.ok(request.headers['content-md5'], `${request.url}: a block without Content-MD5`);
    for (const request of blobRequests('round-trip', isPutBlob)) {
      const object = world.wantedByKey.get(blobIn(request)!)!;
      if (world.large.includes(object)) continue; // uploaded multipart at the source: no MD5 there to send
      assert.equal(Buffer.from(request.headers['content-md5'] ?? '', 'base64').toString('hex'), md5(world.fixture.expectedByKey.get(object.key)!.body!));
    }

    const verified = await runCli(['verify', 'all', '--json'], { cwd: there.dir });
    assert.equal(verified.code, 0, verified.stderr + verified.stdout);
    assert.equal(summaryOf(verified).total.ok, world.wanted.length);

    // Down: a byte flipped in a download (the S3 destination refuses it by the blob's Content-MD5), a download cut
    // short, a throttled one.
    first.clear();
    proxy.reset();
    proxy.setFault((request) => {
      const blob = blobIn(request);
      if (request.method !== 'GET' || blob === undefined) return undefined;
      if (once('flip', blob === small.key)) return { kind: 'flip', atByte: 100 };
      if (once('truncate', blob === video.key)) return { kind: 'truncate', afterBytes: 1024 * 1024 };
      if (once('busy', blob === other.key)) return { kind: 'status', status: 503, code: 'ServerBusy' };
      return undefined;
    });
    await s3.createBucket('round-trip-back');
    const back = config(azure('round-trip', { endpoint: viaProxy(), keyPrefix: 'media' }), { endpoint: s3.endpoint, bucket: 'round-trip-back' }, 3);
    const home = await runCli(['run', 'all', '--json', '--quiet'], { cwd: back.dir });
    proxy.setFault(undefined);
    assert.equal(home.code, 0, home.stderr);
    assert.deepEqual({ ...proxy.faults }, { flip: 1, truncate: 1, status: 1, 'status:ServerBusy': 1 }, 'every fault took effect');
    await assertDestinationExact(s3, 'round-trip-back', world);

    const manifest = await runCli(['manifest', 'media_attachments', '--format', 'keys'], { cwd: back.dir });
    assert.equal(manifest.code, 0, manifest.stderr);
    const media = world.wanted.filter((object) => object.job === 'media_attachments').map((object) => `media/${object.key}`);
    for (const key of media) assert.ok(manifest.stdout.split('\n').includes(key), `manifest lists ${key} with the key prefix`);
  });

  test('bytes rotten at the source are told as the source GET (its body), not as Azure refusing them on every attempt', async () => {
    await azurite.createContainer('rotten-source');
    await azurite.createContainer('rotten-destination');
    const filled = await runCli(['run', 'accounts', '--quiet'], { cwd: config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('rotten-source')).dir });
    assert.equal(filled.code, 0, filled.stderr);
    // Every read of the source gives the same wrong bytes, which its MD5 does not match: Azure is sent that MD5 and
    // refuses them (the first attempt learns only that); the next attempts hash them here.
    proxy.setFault((request) => (request.method === 'GET' && request.key?.startsWith('rotten-source/') ? { kind: 'flip', atByte: 10 } : undefined));
    const copied = config(azure('rotten-source', { endpoint: viaProxy() }), azure('rotten-destination'), 2);
    try {
      const result = await runCli(['run', 'accounts', '--quiet'], { cwd: copied.dir });
      assert.equal(result.code, 1, result.stderr);
    } finally {
      proxy.setFault(undefined);
    }
    const failed = readJsonLines<{ key?: string; status?: string; error?: string }>(readFileSync(copied.checkpoint, 'utf8')).filter(
      (line) => line.status === 'failed',
    );
    assert.ok(failed.length > 0, 'the rotten objects failed');
    for (const line of failed) assert.match(line.error ?? '', /^source GET \(its body\): IntegrityError/, line.key);
    assert.deepEqual(await azurite.listKeys('rotten-destination'), [], 'nothing rotten stored');
  });

  test('verify finds a blob changed at the destination, and --repair copies it again', async () => {
    await azurite.createContainer('changed');
    const written = config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('changed'));
    const out = await runCli(['run', 'accounts', '--quiet'], { cwd: written.dir });
    assert.equal(out.code, 0, out.stderr);
    const victim = world.wanted.find((object) => object.job === 'accounts')!;
    await azurite.put('changed', victim.key, Buffer.from('not the avatar'), { contentType: victim.contentType, cacheControl: victim.cacheControl });

    const found = await runCli(['verify', 'accounts'], { cwd: written.dir });
    assert.equal(found.code, 1, found.stderr + found.stdout);
    assert.match(found.stdout, new RegExp(`^size differs +${victim.key.replace(/[.]/g, '\\.')} `, 'm'));
    const repaired = await runCli(['verify', 'accounts', '--repair'], { cwd: written.dir });
    assert.equal(repaired.code, 0, repaired.stderr + repaired.stdout);
    assert.equal(sha256((await azurite.getBlob('changed', victim.key))!.body), victim.sha256);
  });

  test('public/system folder → Azure: the Content-Type Mastodon would have sent, its Cache-Control, no orphan', async () => {
    const fixture = world.fixture;
    const system = join(mkdtempSync(join(tmpdir(), 'mastosync-azure-folder-')), 'system');
    folders.push(dirname(system));
    for (const object of fixture.sourceObjects) {
      mkdirSync(dirname(join(system, object.key)), { recursive: true });
      writeFileSync(join(system, object.key), object.body);
    }
    await azurite.createContainer('from-folder');
    const written = config({ type: 'fs', path: system }, azure('from-folder'));
    const result = await runCli(['run', 'all', '--quiet'], { cwd: written.dir });
    assert.equal(result.code, 0, result.stderr);
    const present = fixture.present;
    assert.deepEqual((await azurite.listKeys('from-folder')).sort(), present.map((object) => object.key).sort(), 'no orphan copied');
    for (const expected of present) {
      const blob = (await azurite.getBlob('from-folder', expected.key))!;
      assert.equal(sha256(blob.body), expected.sha256, `${expected.key}: bytes`);
      assert.equal(blob.cacheControl, CACHE_CONTROL, `${expected.key}: Cache-Control`);
      const contentType = expectedContentType(fixture, expected);
      if (contentType !== undefined) assert.equal(blob.contentType, contentType, `${expected.key}: Content-Type`);
    }
  });

  test('killed part-way, then --resume: the container exact, nothing finished written again', async () => {
    await azurite.createContainer('resumed');
    const written = config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('resumed', { endpoint: viaProxy() }));
    proxy.reset();
    proxy.setLatency(25);
    const killed = await runCli(['run', ...SMALL_JOBS], {
      cwd: written.dir,
      onSpawn: (child) => {
        const timer = setInterval(() => {
          if (finishedIn(written.checkpoint).size >= 10) child.kill('SIGKILL');
        }, 10);
        child.on('exit', () => clearInterval(timer));
      },
    });
    proxy.setLatency(0);
    assert.equal(killed.signal, 'SIGKILL');
    const finished = finishedIn(written.checkpoint);
    const wanted = world.wanted.filter((object) => SMALL_JOBS.includes(object.job));
    assert.ok(finished.size >= 10 && finished.size < wanted.length, `killed part-way (${finished.size} finished)`);

    proxy.reset();
    const resumed = await runCli(['run', ...SMALL_JOBS, '--resume'], { cwd: written.dir });
    assert.equal(resumed.code, 0, resumed.stderr);
    const rewritten = blobRequests('resumed', (request) => request.method === 'PUT')
      .map((request) => blobOf('resumed', request))
      .filter((key) => finished.has(key));
    assert.deepEqual(rewritten, [], 'objects finished before the kill must not be uploaded again');
    await assertContainerExact('resumed', '', wanted);
  });

  test('Azure → Azure in one account: copied by the service (Copy Blob, no bytes through mastosync), exact', async () => {
    await azurite.createContainer('copied');
    const written = config(azure('round-trip', { keyPrefix: 'media', endpoint: viaProxy() }), azure('copied', { endpoint: viaProxy() }));
    writeFileSync(written.file, readFileSync(written.file, 'utf8').replace('copy_mode = "stream"', 'copy_mode = "auto"'));
    proxy.reset();
    const result = await runCli(['run', ...SMALL_JOBS, '--json', '--quiet'], { cwd: written.dir });
    assert.equal(result.code, 0, result.stderr);
    const wanted = world.wanted.filter((object) => SMALL_JOBS.includes(object.job));
    await assertContainerExact('copied', '', wanted);
    const copies = blobRequests('copied', (request) => request.method === 'PUT' && request.headers['x-ms-copy-source'] !== undefined && request.status! < 300);
    // A relocated object's copy is tried from its exact key first, which answers 404.
    assert.equal(copies.length, wanted.length, 'one successful Copy Blob per object');
    assert.deepEqual(
      // Azurite itself reads the copy source at the URL given, through the proxy too: its requests are not ours.
      proxy.requests.filter(
        (request) => request.method === 'GET' && request.key?.startsWith('round-trip/') && request.headers['user-agent']?.includes('azsdk-js'),
      ),
      [],
      'no blob read through mastosync',
    );
  });

  test("Azure → Azure in one account from blobs without Cache-Control (as Mastodon writes them): each copy gets Mastodon's, as a streamed one would; Content-Type, Content-MD5 and a source's own Cache-Control kept", async () => {
    await azurite.createContainer('bare');
    await azurite.createContainer('bare-copied');
    const wanted = world.wanted.filter((object) => SMALL_JOBS.includes(object.job));
    const own = wanted[0]!;
    for (const object of wanted)
      await azurite.put('bare', object.key, (await s3.getObject('azure-source', object.sourceKey))!.body, {
        contentType: object.contentType,
        cacheControl: object === own ? 'max-age=60' : undefined,
      });
    assert.equal((await azurite.getBlob('bare', wanted[1]!.key))!.cacheControl, undefined);
    const written = config(azure('bare', { endpoint: viaProxy() }), azure('bare-copied', { endpoint: viaProxy() }));
    writeFileSync(written.file, readFileSync(written.file, 'utf8').replace('copy_mode = "stream"', 'copy_mode = "auto"'));
    proxy.reset();
    const result = await runCli(['run', ...SMALL_JOBS, '--json', '--quiet'], { cwd: written.dir });
    assert.equal(result.code, 0, result.stderr);
    const copies = blobRequests(
      'bare-copied',
      (request) => request.method === 'PUT' && request.headers['x-ms-copy-source'] !== undefined && request.status! < 300,
    );
    assert.equal(copies.length, wanted.length, 'one successful Copy Blob per object');
    for (const object of wanted) {
      const [source, copied] = [(await azurite.getBlob('bare', object.key))!, (await azurite.getBlob('bare-copied', object.key))!];
      assert.equal(sha256(copied.body), object.sha256, `${object.key}: bytes`);
      assert.equal(copied.contentType, object.contentType, `${object.key}: Content-Type`);
      assert.equal(copied.md5, source.md5, `${object.key}: Content-MD5 as the source has it`);
      assert.equal(copied.cacheControl, object === own ? 'max-age=60' : 'public, max-age=315576000, immutable', `${object.key}: Cache-Control`);
    }
  });

  test('objects typed application/octet-stream at the source (a tool that knew no type wrote them) arrive with the type their row names: one Put Blob, staged blocks, and Copy Blob', async () => {
    // The media whose row names a type (the database's for an original, the style's format): the fixture's and the large ones.
    const rowTyped = world.wanted
      .filter((object) => object.job === 'media_attachments')
      .map((object) => {
        const expected = world.fixture.present.find((candidate) => candidate.key === object.key);
        return { object, type: expected === undefined ? object.contentType : expectedContentType(world.fixture, expected) };
      })
      .filter((typed): typed is { object: (typeof world.wanted)[number]; type: string } => typed.type !== undefined);
    await s3.createBucket('typeless-source');
    for (const name of ['typeless', 'typed', 'typed-copied']) await azurite.createContainer(name);
    for (const { object } of rowTyped) {
      const body = (await s3.getObject('azure-source', object.sourceKey))!.body;
      await s3.put('typeless-source', object.sourceKey, body, { contentType: 'application/octet-stream', cacheControl: object.cacheControl });
      await azurite.put('typeless', object.sourceKey, body, { contentType: 'application/octet-stream' });
    }
    const sizes = rowTyped.map(({ object }) => object.size);
    assert.ok(
      sizes.some((size) => size > 8 * 1024 * 1024) && sizes.some((size) => size <= 8 * 1024 * 1024),
      'objects above the upload cutoff (staged blocks) and below it',
    );
    const streamed = config({ endpoint: s3.endpoint, bucket: 'typeless-source' }, azure('typed'));
    const onCopy = config(azure('typeless', { endpoint: viaProxy() }), azure('typed-copied', { endpoint: viaProxy() }));
    writeFileSync(onCopy.file, readFileSync(onCopy.file, 'utf8').replace('copy_mode = "stream"', 'copy_mode = "auto"'));
    proxy.reset();
    for (const written of [streamed, onCopy]) {
      const result = await runCli(['run', 'media_attachments', '--quiet'], { cwd: written.dir });
      assert.equal(result.code, 0, result.stderr);
    }
    assert.equal(blobRequests('typed-copied', (request) => request.headers['x-ms-copy-source'] !== undefined && request.status! < 300).length, rowTyped.length);
    for (const container of ['typed', 'typed-copied'])
      for (const { object, type } of rowTyped) {
        const blob = (await azurite.getBlob(container, object.key))!;
        assert.equal(sha256(blob.body), object.sha256, `${container}/${object.key}: bytes`);
        assert.equal(blob.contentType, type, `${container}/${object.key}: Content-Type`);
        assert.equal(blob.cacheControl, CACHE_CONTROL, `${container}/${object.key}: Cache-Control`);
      }
  });

  test("list and delete on the store: under the key prefix only, prefix removed, in the service's order, size and MD5, resumed after a key", async () => {
    await azurite.createContainer('listing');
    // Azure (and Azurite) list in UTF-16 code unit order: U+1F600 (a surrogate pair, D83D…) before U+FF5E, which
    // UTF-8 byte order puts the other way round. Every other pair here sorts alike either way.
    const keys = ['a.png', 'a0', 'b/c/d.png', 'z', 'é/x', '\u{1F600}.png', '\uFF5E.png'];
    for (const key of [...keys.map((key) => `pfx/${key}`), 'pfxx/a.png', 'pf', 'other/pfx/a.png'])
      await azurite.put('listing', key, Buffer.from(`body of ${key}`));
    const store = createStore(
      {
        type: 'azure',
        account: AZURITE_ACCOUNT,
        credentials: { kind: 'key', accessKey: AZURITE_KEY },
        container: 'listing',
        endpoint: azurite.endpoint,
        keyPrefix: 'pfx',
      },
      { role: 'destination', concurrency: 2 },
    );
    const collect = async (listing: AsyncIterable<ListedObject>) => {
      const listed: ListedObject[] = [];
      for await (const object of listing) listed.push(object);
      return listed;
    };
    const listed = await collect(store.list!(''));
    assert.deepEqual(
      listed,
      keys.map((key) => ({ key, size: Buffer.byteLength(`body of pfx/${key}`), md5: md5(Buffer.from(`body of pfx/${key}`)) })),
    );
    assert.deepEqual(
      (await collect(store.list!('', { startAfter: 'a0' }))).map((object) => object.key),
      keys.slice(2),
    );
    assert.deepEqual(
      (await collect(store.list!('', { startAfter: '\u{1F600}.png' }))).map((object) => object.key),
      ['\uFF5E.png'],
    );
    assert.deepEqual(
      (await collect(store.list!('b/'))).map((object) => object.key),
      ['b/c/d.png'],
    );
    assert.deepEqual(await store.delete!(['a0', 'z', 'not/there.png']), []);
    assert.deepEqual(await azurite.listKeys('listing'), [
      'other/pfx/a.png',
      'pf',
      'pfx/a.png',
      'pfx/b/c/d.png',
      'pfx/é/x',
      'pfx/\u{1F600}.png',
      'pfx/\uFF5E.png',
      'pfxx/a.png',
    ]);
    store.close();
  });

  test('a wrong access key: exit 2 before anything is written, one line naming access_key', async () => {
    await azurite.createContainer('wrong-key');
    const wrong = Buffer.from('not the account key').toString('base64');
    const written = config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('wrong-key', { accessKey: wrong }));
    const result = await runCli(['run', ...SMALL_JOBS], { cwd: written.dir });
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /\[destination\] container "wrong-key" .* refused the credentials .*check access_key/);
    assert.deepEqual(await azurite.listKeys('wrong-key'), []);
  });

  test('credentials refused mid-run (a key rotated): the run stops at once, exit 1, one line naming the fix', async () => {
    await azurite.createContainer('rotated');
    const written = config({ endpoint: s3.endpoint, bucket: 'azure-source' }, azure('rotated', { endpoint: viaProxy() }));
    let writes = 0;
    proxy.reset();
    proxy.setFault((request) =>
      request.method === 'PUT' && request.key?.startsWith('rotated/') && ++writes > 5
        ? { kind: 'status', status: 403, code: 'AuthenticationFailed', message: 'Server failed to authenticate the request.' }
        : undefined,
    );
    const result = await runCli(['run', ...SMALL_JOBS, '--json', '--quiet'], { cwd: written.dir });
    proxy.setFault(undefined);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stderr.split('\n').filter((line) => line.startsWith('mastosync:'));
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0]!, /\[destination\] container "rotated" .* refused the credentials \(AuthenticationFailed on PUT .*\): check access_key/);
    const refused = proxy.requests.filter((request) => request.status === 403).length;
    assert.ok(refused <= 16, `the run stopped at once, not after ${refused} refused requests`);
    assert.ok((summaryOf(result).total.copied ?? 0) < world.wanted.length, 'stopped part-way');
  });
});

/** The keys the checkpoint records as finished. */
function finishedIn(checkpoint: string): Set<string> {
  if (!existsSync(checkpoint)) return new Set();
  const keys = new Set<string>();
  for (const line of readFileSync(checkpoint, 'utf8').split('\n')) {
    try {
      const parsed = JSON.parse(line) as { key?: string; status?: string };
      if (parsed.key !== undefined && (parsed.status === 'copied' || parsed.status === 'relocated')) keys.add(parsed.key);
    } catch {
      // A torn last line.
    }
  }
  return keys;
}
