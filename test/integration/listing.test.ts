/**
 * Listing and deleting on the stores, as prune, verify and skip-existing rely on them:
 * - S3 (s3rver behind the recording proxy): every key under the key prefix and none outside it, the prefix
 *   removed, in ascending byte order (unicode keys included), size and plain-MD5 ETag, more than 1000 keys in ⌈n/1000⌉ ListObjectsV2 requests, resuming after a key, a narrower prefix;
 *   DeleteObjects sends Content-MD5 (no CRC32 header), deletes exactly what it is given, a missing key included;
 * - a folder: the same order although directories list in no order (a folder `a` sorts as `a/`, between `a.png`
 *   and `a0`), temporary files of writes skipped, resuming after a key; deleting removes the folders left empty,
 *   up to but not including the root.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createStore } from '../../src/storage/index.js';
import type { ListedObject, ObjectStore } from '../../src/storage/types.js';
import { S3RVER_CREDENTIALS, startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';

const BUCKET = 'listing';
const PREFIX = 'pfx';
/** Past one page of 1000: the listing must follow continuation tokens. */
const MANY = 1003;

let s3: S3Server;
let proxy: HttpProxy;
const folders: string[] = [];
const stores: ObjectStore[] = [];

const md5 = (body: Buffer | string) => createHash('md5').update(body).digest('hex');
const byteOrder = (keys: readonly string[]) => [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
const bodyOf = (key: string) => Buffer.from(`body of ${key}`);

/**
 * Keys that sort differently by UTF-16 code unit than by UTF-8 byte (U+FF5E before U+1F600 in bytes). s3rver
 * lists a folder's entries by name, so a key below `a/` comes before `a-b/c` and `a.png` there (S3 sorts `/` after
 * `-` and `.`): those keys are tested on folders only. Mastodon's keys never mix a file and a folder, or two folders
 * one of which is a prefix of the other, at one level.
 */
const TRICKY = ['a.png', 'a0', 'é/x', '\u{1F600}.png', '\uFF5E.png', 'z'];
const FOLDER_TRICKY = [...TRICKY, 'a/b.png', 'a-b/c'];
const manyKeys = Array.from(
  { length: MANY },
  (_, index) => `media_attachments/files/000/${String(index).padStart(3, '0').slice(-3)}/${String(index).padStart(4, '0')}/original/${index}.png`,
);

async function collect(listing: AsyncIterable<ListedObject>): Promise<ListedObject[]> {
  const listed: ListedObject[] = [];
  for await (const object of listing) listed.push(object);
  return listed;
}

function s3Store(keyPrefix: string | undefined): ObjectStore {
  const store = createStore(
    {
      type: 's3',
      bucket: BUCKET,
      region: 'us-east-1',
      endpoint: proxy.endpoint,
      forcePathStyle: true,
      credentials: { ...S3RVER_CREDENTIALS },
      ...(keyPrefix !== undefined && { keyPrefix }),
    },
    { role: 'destination', concurrency: 4 },
  );
  stores.push(store);
  return store;
}

before(async () => {
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
  await s3.createBucket(BUCKET);
  const keys = [...manyKeys, ...TRICKY].map((key) => `${PREFIX}/${key}`);
  // Around the prefix, never to be listed under it.
  keys.push('pfxx/a.png', 'pf', 'other/pfx/a.png');
  for (let start = 0; start < keys.length; start += 32) {
    await Promise.all(keys.slice(start, start + 32).map((key) => s3.put(BUCKET, key, bodyOf(key))));
  }
  await s3.put(BUCKET, `${PREFIX}/multipart.bin`, Buffer.alloc(6 * 1024 * 1024, 1), { multipart: true });
});

after(async () => {
  for (const store of stores) store.close();
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  await proxy?.stop();
  await s3?.stop();
});

describe('S3 listing and deleting', () => {
  test('lists every key under the key prefix, prefix removed, in byte order, with size and MD5, one request per 1000 keys', async () => {
    const store = s3Store(PREFIX);
    proxy.reset();
    const listed = await collect(store.list!(''));
    const expected = byteOrder([...manyKeys, ...TRICKY, 'multipart.bin']);
    assert.deepEqual(
      listed.map((object) => object.key),
      expected,
    );
    const lists = proxy.requests.filter((request) => request.operation === 'ListObjectsV2');
    assert.equal(lists.length, Math.ceil(expected.length / 1000));
    assert.equal(proxy.requests.length, lists.length, 'nothing but listings');
    for (const object of listed) {
      if (object.key === 'multipart.bin') {
        assert.equal(object.size, 6 * 1024 * 1024);
        // s3rver answers the whole object's MD5 where S3 answers `<md5 of part MD5s>-2`: either way, never a wrong MD5.
        assert.ok(object.md5 === undefined || object.md5 === md5(Buffer.alloc(6 * 1024 * 1024, 1)));
      } else {
        assert.equal(object.size, bodyOf(`${PREFIX}/${object.key}`).length);
        assert.equal(object.md5, md5(bodyOf(`${PREFIX}/${object.key}`)));
      }
    }
  });

  test('resumes after a key, and lists a narrower prefix', async () => {
    const store = s3Store(PREFIX);
    const all = byteOrder([...manyKeys, ...TRICKY, 'multipart.bin']);
    const resumed = await collect(store.list!('', { startAfter: all[997]! }));
    assert.deepEqual(
      resumed.map((object) => object.key),
      all.slice(998),
    );
    const narrow = await collect(store.list!('media_attachments/files/000/00'));
    assert.deepEqual(
      narrow.map((object) => object.key),
      all.filter((key) => key.startsWith('media_attachments/files/000/00')),
    );
    assert.ok(narrow.length > 0 && narrow.length < 100);
  });

  test('without a key prefix, lists the whole bucket', async () => {
    const listed = await collect(s3Store(undefined).list!('p'));
    const under = [...manyKeys, ...TRICKY, 'multipart.bin'].map((key) => `${PREFIX}/${key}`);
    assert.deepEqual(
      listed.map((object) => object.key),
      byteOrder([...under, 'pf', 'pfxx/a.png']),
    );
  });

  test('a stop while the next page is asked for ahead, its caller busy elsewhere, is no unhandled rejection', async () => {
    // The caller holds the listing after its first key (as a join does while it reads rows or the other store) when
    // SIGINT aborts the stop: the page asked for ahead fails with the abort, and nobody awaits it yet.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      proxy.reset();
      proxy.setLatency(300);
      const stop = new AbortController();
      const listing = s3Store('pfx').list!('', { signal: stop.signal })[Symbol.asyncIterator]();
      assert.equal((await listing.next()).done, false);
      await new Promise((resolve) => setTimeout(resolve, 50)); // the second page's request is out
      assert.ok(
        proxy.requests.some((request) => request.query['continuation-token'] !== undefined),
        'the next page was asked for ahead',
      );
      stop.abort();
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.deepEqual(unhandled, []);
      await listing.return?.();
    } finally {
      proxy.setLatency(0);
      process.off('unhandledRejection', onUnhandled);
    }
  });

  test('deletes exactly the keys given, with Content-MD5, a missing key counting as deleted', async () => {
    const store = s3Store(PREFIX);
    proxy.reset();
    const failures = await store.delete!(['a.png', '\u{1F600}.png', 'never-there.png']);
    assert.deepEqual(failures, []);
    const [request, ...more] = proxy.requests;
    assert.equal(more.length, 0);
    assert.equal(request!.operation, 'DeleteObjects');
    assert.match(request!.headers['content-md5'] ?? '', /^[A-Za-z0-9+/]{22}==$/);
    assert.equal(
      Object.keys(request!.headers).find((name) => name.startsWith('x-amz-checksum-')),
      undefined,
    );
    assert.equal(await s3.getObject(BUCKET, `${PREFIX}/a.png`), null);
    assert.equal(await s3.getObject(BUCKET, `${PREFIX}/\u{1F600}.png`), null);
    assert.ok(await s3.getObject(BUCKET, `${PREFIX}/a0`));
    assert.ok(await s3.getObject(BUCKET, 'pfxx/a.png'));
    const listed = await collect(store.list!(''));
    assert.equal(listed.length, MANY + TRICKY.length + 1 - 2);
  });
});

describe('folder listing and deleting', () => {
  function folderWith(keys: readonly string[]): string {
    const root = mkdtempSync(join(tmpdir(), 'mastosync-listing-'));
    folders.push(root);
    for (const key of keys) {
      mkdirSync(dirname(join(root, key)), { recursive: true });
      writeFileSync(join(root, key), bodyOf(key));
    }
    return root;
  }

  const keys = [...FOLDER_TRICKY, 'cache/accounts/avatars/000/000/001/original/a.png', 'accounts/avatars/109/349/205/816/583/424/original/b.gif'];

  test('lists every file in byte order of keys, skipping the temporary files of writes', async () => {
    const root = folderWith(keys);
    writeFileSync(join(root, 'a', '.mastosync-0123456789ab.tmp'), 'half');
    const store = createStore({ type: 'fs', path: root }, { role: 'destination', concurrency: 1 });
    const listed = await collect(store.list!(''));
    assert.deepEqual(
      listed.map((object) => object.key),
      byteOrder(keys),
    );
    for (const object of listed) assert.equal(object.size, bodyOf(object.key).length);
    assert.deepEqual(
      (await collect(store.list!('a'))).map((object) => object.key),
      ['a-b/c', 'a.png', 'a/b.png', 'a0', 'accounts/avatars/109/349/205/816/583/424/original/b.gif'],
    );
    assert.deepEqual(
      (await collect(store.list!('cache/'))).map((object) => object.key),
      ['cache/accounts/avatars/000/000/001/original/a.png'],
    );
    assert.deepEqual(
      (await collect(store.list!('', { startAfter: 'a/b.png' }))).map((object) => object.key),
      byteOrder(keys).slice(byteOrder(keys).indexOf('a/b.png') + 1),
    );
    assert.deepEqual(await collect(store.list!('nothing/here/')), []);
  });

  test('deletes files and the folders they leave empty, never the root', async () => {
    const root = folderWith(keys);
    const store = createStore({ type: 'fs', path: root }, { role: 'destination', concurrency: 1 });
    const failures = await store.delete!(['cache/accounts/avatars/000/000/001/original/a.png', 'a/b.png', 'gone.png']);
    assert.deepEqual(failures, []);
    assert.equal(existsSync(join(root, 'cache')), false, 'the emptied folders are removed');
    assert.equal(existsSync(join(root, 'a')), false);
    assert.ok(existsSync(join(root, 'a.png')));
    assert.ok(existsSync(join(root, 'accounts/avatars/109/349/205/816/583/424/original/b.gif')));
    const rest = keys.filter((key) => key !== 'a/b.png' && !key.startsWith('cache/'));
    assert.equal(rest.length, keys.length - 2);
    assert.ok((await store.delete!(rest)).length === 0);
    assert.ok(existsSync(root), 'the root stays');
    assert.deepEqual(await collect(store.list!('')), []);
  });
});
