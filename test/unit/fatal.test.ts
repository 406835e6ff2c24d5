/**
 * Which store errors no retry can fix (issue 11): each store classifies its own, and a copy that meets one fails at
 * once, unretried, carrying the side, the key and the fix. The S3 errors are the real ones the store raises, from a
 * small local HTTP server answering as a provider does; the folder errors are errno errors as Node gives them.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FatalStoreError } from '../../src/storage/errors.js';
import { FsStore, KeyOutsideFolderError, fatalFsError } from '../../src/storage/fs.js';
import { S3Store } from '../../src/storage/s3.js';
import { copyOwnedObject } from '../../src/sync/copy.js';
import { mediaOriginal } from '../support/objects.js';

/** Path → [status, code, more of the error's XML] the server answers, for any method. */
const ANSWERS: Record<string, [number, string, string?]> = {
  '/b/no-bucket': [404, 'NoSuchBucket'],
  '/b/no-key': [404, 'NoSuchKey'],
  '/b/bad-key-id': [403, 'InvalidAccessKeyId'],
  '/b/bad-signature': [403, 'SignatureDoesNotMatch'],
  '/b/denied': [403, 'AccessDenied'],
  '/b/skewed': [403, 'RequestTimeTooSkewed'],
  '/b/archived': [403, 'InvalidObjectState'],
  '/b/quota': [403, 'QuotaExceeded'],
  '/b/minio-full': [507, 'XMinioStorageFull'],
  '/b/slowdown': [503, 'SlowDown'],
  '/b/internal': [500, 'InternalError'],
  // Buckets whose check (a one-key listing) is refused.
  '/list-denied': [403, 'AccessDenied'],
  '/list-bad-key': [403, 'InvalidAccessKeyId'],
  '/list-expired': [400, 'ExpiredToken'],
  // A setting every write carries, refused (AWS's answers, with the header they name), and requests refused for
  // themselves alone.
  '/b/bad-class': [400, 'InvalidStorageClass'],
  '/b/class-argument': [400, 'InvalidArgument', '<ArgumentName>x-amz-storage-class</ArgumentName><ArgumentValue>bogus</ArgumentValue>'],
  '/b/acl-argument': [400, 'InvalidArgument', '<ArgumentName>x-amz-acl</ArgumentName><ArgumentValue>public-read</ArgumentValue>'],
  '/b/acl-not-implemented': [501, 'NotImplemented', '<Header>x-amz-acl</Header>'],
  '/b/acls-disabled': [400, 'AccessControlListNotSupported'],
  '/b/key-argument': [400, 'InvalidArgument', '<ArgumentName>key</ArgumentName><ArgumentValue>x</ArgumentValue>'],
  '/b/type-argument': [400, 'InvalidArgument', '<ArgumentName>Content-Type</ArgumentName>'],
  '/b/bare-argument': [400, 'InvalidArgument'],
};
let server: http.Server;
let endpoint: string;
let requests = 0;

before(async () => {
  server = http.createServer((req, res) => {
    requests += 1;
    // A bucket's own path comes with a slash after it (a listing).
    const [status, code, more = ''] = ANSWERS[new URL(req.url!, 'http://x').pathname.replace(/\/$/, '')] ?? [400, 'InvalidRequest'];
    const body = `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message>${more}</Error>`;
    req.resume().on('end', () => res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function store(role: 'source' | 'destination', singlePutLimit?: number): S3Store {
  return new S3Store(
    { type: 's3', bucket: 'b', region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
    { role, maxSockets: 4, partSize: 8 * 1024 * 1024, queueSize: 1, singlePutLimit },
  );
}

async function readFailure(key: string): Promise<unknown> {
  const s3 = store('source');
  try {
    return await s3.read(key).then(
      () => undefined,
      (error: unknown) => error,
    );
  } finally {
    s3.close();
  }
}

/** The error of a write of 100 bytes; `multipart`: as a multipart upload, through the SDK. */
async function writeFailure(key: string, sent: { acl?: string; storageClass?: string } = {}, multipart = false): Promise<unknown> {
  const s3 = store('destination', multipart ? 10 : undefined);
  try {
    const body = Buffer.alloc(100, 1);
    return await s3.write(key, Readable.from([body]), { contentLength: body.length, ...sent }).then(
      () => undefined,
      (error: unknown) => error,
    );
  } finally {
    s3.close();
  }
}

describe('the bucket check', () => {
  const checked = async (bucket: string) => {
    const s3 = new S3Store(
      { type: 's3', bucket, region: 'us-east-1', endpoint, forcePathStyle: true, credentials: { accessKeyId: 'k', secretAccessKey: 's' } },
      { role: 'destination', maxSockets: 4, partSize: 8 * 1024 * 1024, queueSize: 1 },
    );
    try {
      return await s3.check().then(
        () => undefined,
        (error: unknown) => error as Error,
      );
    } finally {
      s3.close();
    }
  };

  test('credentials the provider does not accept: says so, with its code', async () => {
    const error = await checked('list-bad-key');
    assert.match(error?.message ?? '', /bucket "list-bad-key" .* refused the credentials \(InvalidAccessKeyId\): check access_key_id, secret_access_key/);
  });

  test('an expired session token, which AWS answers with 400: the credentials, not the region', async () => {
    const error = await checked('list-expired');
    assert.match(error?.message ?? '', /bucket "list-expired" .* refused the credentials \(ExpiredToken\): check .*session_token/);
  });

  test('valid credentials without the permission to list: names s3:ListBucket, not the keys', async () => {
    const error = await checked('list-denied');
    assert.match(error?.message ?? '', /bucket "list-denied" .* denied listing it \(AccessDenied\): give the credentials s3:ListBucket/);
    assert.doesNotMatch(error?.message ?? '', /refused the credentials/);
  });
});

describe('S3 answers no retry can fix', () => {
  const fatal: Array<[key: string, problem: RegExp, fix: RegExp]> = [
    ['no-bucket', /\[source\] bucket "b" at http:\/\/127\.0\.0\.1:\d+ does not exist \(NoSuchBucket on GET no-bucket\)/, /check bucket, endpoint and region/],
    ['bad-key-id', /refused the credentials \(InvalidAccessKeyId/, /check access_key_id, secret_access_key/],
    ['bad-signature', /refused the credentials \(SignatureDoesNotMatch/, /check access_key_id, secret_access_key/],
    ['denied', /denied access \(AccessDenied on GET denied\)/, /without s3:ListBucket, S3 answers 403 instead of 404 for a key that does not exist/],
    ['quota', /is over its storage quota \(QuotaExceeded/, /raise the bucket's or the account's quota/],
    ['minio-full', /is over its storage quota \(XMinioStorageFull/, /or free space/],
  ];
  for (const [key, problem, fix] of fatal) {
    test(`${key} on a GET: fatal, naming the source, the key and the fix`, async () => {
      const error = await readFailure(key);
      assert.ok(error instanceof FatalStoreError, `${String(error)} must be a FatalStoreError`);
      assert.equal(error.side, 'source');
      assert.equal(error.key, key);
      assert.match(error.message, problem);
      assert.match(error.fix, fix);
      assert.match(error.message, /then run again with --resume/);
      assert.ok(error.cause, 'the cause is kept');
    });
  }

  test('a PUT into a bucket that is gone is fatal for the destination, and says what a deleted bucket means for --resume', async () => {
    const error = await writeFailure('no-bucket');
    assert.ok(error instanceof FatalStoreError);
    assert.equal(error.side, 'destination');
    assert.match(error.message, /\[destination\] bucket "b" .* does not exist \(NoSuchBucket on PUT no-bucket\)/);
    assert.match(error.fix, /if the bucket was deleted, create it and run again with --fresh/);
  });

  test('a PUT refused with 403 names the permissions a write needs and, when it sends one, the configured ACL and its key', async () => {
    const withAcl = await writeFailure('denied', { acl: 'public-read' });
    assert.ok(withAcl instanceof FatalStoreError);
    assert.match(
      withAcl.fix,
      /^give the credentials s3:PutObject and s3:PutObjectAcl on the bucket, and let it take public ACLs \(Block Public Access off\): each PUT carries \[destination\] acl = "public-read"; or change \[destination\] acl to "" .*bucket policy/,
    );
    const without = await writeFailure('denied');
    assert.ok(without instanceof FatalStoreError);
    assert.match(without.fix, /^give the credentials s3:PutObject on the bucket, then/);
    assert.doesNotMatch(without.fix, /acl/, 'no ACL was sent: none to blame');
  });

  const sent = { acl: 'public-read', storageClass: 'bogus' };
  const settingsRefused: Array<[key: string, problem: RegExp, fix: RegExp]> = [
    [
      'bad-class',
      /^\[destination\] storage_class "bogus" is refused by the provider: bucket "b" at http:\/\/127\.0\.0\.1:\d+ answered InvalidStorageClass on PUT bad-class/,
      /set \[destination\] storage_class to a class this provider offers .*or to "" for the bucket's default, then run again with --resume/,
    ],
    ['class-argument', /^\[destination\] storage_class "bogus" is refused by the provider: .*InvalidArgument on PUT class-argument/, /storage_class/],
    [
      'acl-argument',
      /^\[destination\] acl "public-read" is refused by the provider: .*InvalidArgument on PUT acl-argument/,
      /set \[destination\] acl to a canned ACL this provider accepts, or to "" to send none/,
    ],
    ['acl-not-implemented', /^\[destination\] acl "public-read" is refused by the provider: .*NotImplemented on PUT/, /acl/],
    [
      'acls-disabled',
      /^\[destination\] acl "public-read" is refused by the provider: bucket "b" .* has ACLs disabled \(Object Ownership "bucket owner enforced"\) \(AccessControlListNotSupported on PUT acls-disabled\)/,
      /set \[destination\] acl = "" \(as Mastodon's S3_PERMISSION=""\) and let a bucket policy make the objects public, or enable ACLs on the bucket/,
    ],
  ];
  for (const [key, problem, fix] of settingsRefused) {
    for (const multipart of [false, true]) {
      test(`${key} on a ${multipart ? 'multipart upload' : 'PUT'} carrying acl and storage_class: fatal, naming the setting`, async () => {
        const error = await writeFailure(key, sent, multipart);
        assert.ok(error instanceof FatalStoreError, `${String(error)} must be a FatalStoreError`);
        assert.equal(error.side, 'destination');
        assert.match(error.message, problem);
        assert.match(error.fix, fix);
      });
    }
  }

  for (const key of ['bad-class', 'class-argument', 'acl-argument', 'acls-disabled']) {
    test(`${key} on a PUT that carried neither setting: not blamed on one`, async () => {
      const error = await writeFailure(key);
      assert.ok(error !== undefined && !(error instanceof FatalStoreError), `${String(error)} must not stop the run`);
    });
  }

  for (const key of ['key-argument', 'type-argument', 'bare-argument']) {
    test(`${key}: an InvalidArgument about anything but a setting is the object's alone, not fatal`, async () => {
      const error = await writeFailure(key, sent);
      assert.ok(error !== undefined && !(error instanceof FatalStoreError), `${String(error)} must not stop the run`);
    });
  }

  for (const key of ['skewed', 'archived', 'slowdown', 'internal']) {
    test(`${key}: about one request or transient, not fatal`, async () => {
      const error = await readFailure(key);
      assert.ok(error !== undefined && !(error instanceof FatalStoreError), `${String(error)} must not stop the run`);
    });
  }

  test('a key that does not exist is missing, not fatal', async () => {
    const s3 = store('source');
    try {
      assert.equal(await s3.read('no-key'), undefined);
    } finally {
      s3.close();
    }
  });
});

describe('folder errors no retry can fix', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: something`), { code });
  const cases: Array<[code: string, side: 'source' | 'destination', problem: RegExp, fix: RegExp]> = [
    ['ENOSPC', 'destination', /\[destination\] folder \/srv\/system is full \(ENOSPC at \/srv\/system\/a\)/, /free space/],
    ['EDQUOT', 'destination', /over this user's disk quota/, /raise the quota/],
    ['EROFS', 'destination', /read-only file system/, /mount it read-write/],
    ['EACCES', 'destination', /not writable by this user/, /run as the user who owns it/],
    ['EPERM', 'destination', /not writable by this user/, /immutable flag/],
    ['EACCES', 'source', /\[source\] folder .* not readable by this user/, /fix its owner and modes/],
  ];
  for (const [code, side, problem, fix] of cases) {
    test(`${code} (${side}): fatal`, () => {
      const error = fatalFsError(errno(code), side, '/srv/system', '/srv/system/a');
      assert.ok(error instanceof FatalStoreError);
      assert.equal(error.side, side);
      assert.equal(error.key, '/srv/system/a');
      assert.match(error.message, problem);
      assert.match(error.fix, fix);
    });
  }

  test('EACCES on one source file in a readable folder (a root-run tootctl left it): that object fails, the run goes on', () => {
    const root = tmpdir();
    assert.equal(fatalFsError(errno('EACCES'), 'source', root, join(root, 'x.png')), undefined);
  });

  for (const code of ['ENOENT', 'EIO', 'EMFILE']) {
    test(`${code}: not fatal`, () => assert.equal(fatalFsError(errno(code), 'destination', '/srv/system', '/srv/system/a'), undefined));
  }
});

test('a copy meeting a fatal error fails at once, unretried, and carries it', async () => {
  const object = mediaOriginal('no-bucket', { contentType: 'image/png', size: 100 });
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-fatal-'));
  const source = store('source');
  try {
    const before = requests;
    const result = await copyOwnedObject(object, { source, destination: new FsStore(folder, 'destination'), acl: 'public-read', retries: 5 });
    assert.equal(result.status, 'failed');
    assert.equal(result.attempts, 1);
    assert.equal(requests - before, 1, 'one request, no retry');
    assert.ok(result.fatal instanceof FatalStoreError);
    assert.match(result.error ?? '', /does not exist \(NoSuchBucket/);
  } finally {
    source.close();
    rmSync(folder, { recursive: true, force: true });
  }
});

test('a crafted file name that climbs out of a folder fails that object alone, unretried, and touches nothing outside', async () => {
  const parent = mkdtempSync(join(tmpdir(), 'mastosync-outside-'));
  const root = join(parent, 'system');
  mkdirSync(root);
  writeFileSync(join(parent, 'precious.png'), 'precious');
  const key = 'media_attachments/files/000/000/001/original/../../../../../../../precious.png';
  const object = mediaOriginal(key, { contentType: 'image/png', size: 8 });
  try {
    const folder = new FsStore(root, 'source');
    assert.equal(folder.locate(key), join(parent, 'precious.png'), 'named, for messages and the checkpoint, without throwing');
    await assert.rejects(folder.head(key), KeyOutsideFolderError);
    const destination = new FsStore(root, 'destination');
    const result = await copyOwnedObject(object, { source: new FsStore(parent, 'source'), destination, acl: 'public-read', retries: 5 });
    assert.equal(result.status, 'failed');
    assert.equal(result.attempts, 1, 'permanent: not retried');
    assert.equal(result.fatal, undefined, 'not a stop of the whole run');
    assert.match(result.error ?? '', /points outside/);
    assert.deepEqual(await destination.delete([key]), [{ key, error: new KeyOutsideFolderError(key, root).message }]);
    assert.equal(readFileSync(join(parent, 'precious.png'), 'utf8'), 'precious');
  } finally {
    rmSync(parent, { recursive: true, force: true });
  }
});

test("check: a destination folder on a read-only mount says so and how to fix it, not that this user can't write (EROFS refuses root too)", async (t) => {
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-ro-'));
  // A read-only tmpfs needs root (CAP_SYS_ADMIN): elsewhere there is nothing to mount.
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'none', folder]).status !== 0) {
    rmSync(folder, { recursive: true, force: true });
    t.skip('cannot mount a read-only tmpfs here (not root)');
    return;
  }
  try {
    await assert.rejects(
      new FsStore(folder, 'destination').check(),
      /\[destination\] path .* is on a read-only file system \(EROFS\): remount it read-write \(mount -o remount,rw\)/,
    );
  } finally {
    spawnSync('umount', [folder]);
    rmSync(folder, { recursive: true, force: true });
  }
});
