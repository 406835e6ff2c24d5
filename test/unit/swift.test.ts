/**
 * The pure parts of the Swift backend: which auth an auth_url speaks and the request it gets (Keystone v3's JSON,
 * v1's headers), what an answer gives (token, storage URL from the catalog, expiry) or why it is refused, how
 * failures are judged, the segments of a large object, and the TOML mapping of type = "swift".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SwiftAuthError, authRequest, authVersion, parseAuthAnswer } from '../../src/storage/swiftAuth.js';
import type { SwiftStoreConfig } from '../../src/storage/swiftConfig.js';
import { SwiftHttpError, classifySwiftError, fatalSwiftAnswer } from '../../src/storage/swiftErrors.js';
import { SegmentReader, segmentNames, segmentSizeFor } from '../../src/storage/swiftLarge.js';
import { IntegrityError } from '../../src/storage/errors.js';
import { loadConfig } from '../../src/cli/config.js';
import { UsageError } from '../../src/errors.js';

const BASE: SwiftStoreConfig = { type: 'swift', authUrl: 'https://auth.example.com/v3', username: 'mastodon', password: 'secret', container: 'media' };

test('auth_url names the version: /auth/v1.0 and /v1.0 are v1, /v3 and a bare host Keystone v3, v2.0 is refused with the v3 URL', () => {
  assert.equal(authVersion('http://127.0.0.1:8080/auth/v1.0'), 'v1');
  assert.equal(authVersion('https://swift.example.com/v1.0/'), 'v1');
  assert.equal(authVersion('https://auth.cloud.ovh.net/v3/'), 'v3');
  assert.equal(authVersion('https://keystone.example.com:5000'), 'v3');
  assert.throws(() => authVersion('https://keystone.example.com:5000/v2.0'), /removed in 2018: use the v3 URL \(https:\/\/keystone\.example\.com:5000\/v3\)/);
  assert.throws(() => authVersion('keystone.example.com'), UsageError);
});

test('v1: X-Auth-User is account:user (the tenant as account when the name has none), X-Auth-Key the password', () => {
  const v1 = { ...BASE, authUrl: 'http://127.0.0.1:8080/auth/v1.0' };
  assert.deepEqual(authRequest({ ...v1, username: 'test:tester' }), {
    version: 'v1',
    url: 'http://127.0.0.1:8080/auth/v1.0',
    method: 'GET',
    headers: { 'x-auth-user': 'test:tester', 'x-auth-key': 'secret' },
  });
  assert.equal(authRequest({ ...v1, tenant: 'test' }).headers['x-auth-user'], 'test:mastodon');
});

test('v3: a password for the user in its domain, scoped to the project by name (with the domain) or by id', () => {
  const byName = authRequest({ ...BASE, tenant: 'social', domain: 'Customers' });
  assert.equal(byName.url, 'https://auth.example.com/v3/auth/tokens');
  assert.equal(byName.method, 'POST');
  assert.deepEqual(JSON.parse(byName.body!), {
    auth: {
      identity: { methods: ['password'], password: { user: { name: 'mastodon', domain: { name: 'Customers' }, password: 'secret' } } },
      scope: { project: { name: 'social', domain: { name: 'Customers' } } },
    },
  });
  // No domain: the default domain, by its id (its name differs between installations: "Default", "default").
  const byId = authRequest({ ...BASE, authUrl: 'https://keystone.example.com:5000/', projectId: 'abc123', tenant: 'ignored' });
  assert.equal(byId.url, 'https://keystone.example.com:5000/v3/auth/tokens');
  const body = JSON.parse(byId.body!) as { auth: { identity: { password: { user: { domain: unknown } } }; scope: unknown } };
  assert.deepEqual(body.auth.identity.password.user.domain, { id: 'default' });
  assert.deepEqual(body.auth.scope, { project: { id: 'abc123' } });
  assert.throws(() => authRequest(BASE), /needs a project .* set tenant .* or project_id/);
});

const v3 = authRequest({ ...BASE, tenant: 'social' });
const catalog = (endpoints: object[]) =>
  JSON.stringify({
    token: {
      expires_at: '2030-01-02T03:04:05.000000Z',
      catalog: [
        { type: 'identity', endpoints: [{ interface: 'public', region_id: 'GRA', url: 'https://auth.example.com/v3' }] },
        { type: 'object-store', endpoints },
      ],
    },
  });

test('v3 answer: X-Subject-Token, the public object-store URL of the region asked, and the expiry', () => {
  const endpoints = [
    { interface: 'internal', region_id: 'GRA', url: 'http://10.0.0.1/v1/AUTH_p' },
    { interface: 'public', region_id: 'GRA', region: 'GRA', url: 'https://storage.gra.example.com/v1/AUTH_p/' },
    { interface: 'public', region_id: 'BHS', region: 'BHS', url: 'https://storage.bhs.example.com/v1/AUTH_p' },
  ];
  const answer = { status: 201, headers: { 'x-subject-token': 'gAAAA-token' }, body: catalog(endpoints) };
  assert.deepEqual(parseAuthAnswer(v3, answer, 'BHS'), {
    token: 'gAAAA-token',
    storageUrl: 'https://storage.bhs.example.com/v1/AUTH_p',
    expiresAt: Date.parse('2030-01-02T03:04:05Z'),
  });
  assert.equal(parseAuthAnswer(v3, answer, 'GRA').storageUrl, 'https://storage.gra.example.com/v1/AUTH_p', 'the trailing slash dropped');
  assert.throws(() => parseAuthAnswer(v3, answer, undefined), /several regions: set region \(SWIFT_REGION\) to one of GRA, BHS/);
  assert.throws(() => parseAuthAnswer(v3, answer, 'SBG'), /no object-store endpoint in region "SBG": choose one of GRA, BHS/);
  // One region: no need to name it.
  assert.equal(parseAuthAnswer(v3, { ...answer, body: catalog(endpoints.slice(0, 2)) }, undefined).storageUrl, 'https://storage.gra.example.com/v1/AUTH_p');
  assert.throws(() => parseAuthAnswer(v3, { ...answer, body: catalog(endpoints.slice(0, 1)) }, undefined), /no public object-store endpoint/);
  assert.throws(() => parseAuthAnswer(v3, { ...answer, headers: {} }, undefined), /without X-Subject-Token/);
});

test('v1 answer: X-Auth-Token, X-Storage-Url and X-Auth-Token-Expires; a refusal is about the credentials, a 5xx is not', () => {
  const v1 = authRequest({ ...BASE, authUrl: 'http://127.0.0.1:8080/auth/v1.0' });
  const before = Date.now();
  const session = parseAuthAnswer(
    v1,
    { status: 200, headers: { 'x-auth-token': 'AUTH_tk1', 'x-storage-url': 'http://127.0.0.1:8080/v1/AUTH_test', 'x-auth-token-expires': '86400' }, body: '' },
    undefined,
  );
  assert.equal(session.token, 'AUTH_tk1');
  assert.equal(session.storageUrl, 'http://127.0.0.1:8080/v1/AUTH_test');
  assert.ok(session.expiresAt! >= before + 86_400_000 && session.expiresAt! <= Date.now() + 86_400_000);
  const refused = (() => {
    try {
      parseAuthAnswer(v1, { status: 401, headers: {}, body: 'Unauthorized' }, undefined);
    } catch (error) {
      return error;
    }
  })();
  assert.ok(refused instanceof SwiftAuthError && refused.credentials);
  assert.throws(
    () => parseAuthAnswer(v1, { status: 503, headers: {}, body: 'memcached' }, undefined),
    (error: unknown) => error instanceof SwiftAuthError && !error.credentials,
  );
  assert.throws(() => parseAuthAnswer(v1, { status: 200, headers: {}, body: '' }, undefined), /without X-Auth-Token and X-Storage-Url/);
});

test('failures: 429 and 498 throttle (with Retry-After), 5xx and resets are retried, 404 is not found, 4xx fail the object', () => {
  const error = (status: number, retryAfterMs?: number) => new SwiftHttpError(status, 'PUT', 'media/a.png', '', retryAfterMs);
  assert.deepEqual(classifySwiftError(error(429, 3000)), { kind: 'throttled', afterMs: 3000 });
  assert.deepEqual(classifySwiftError(error(498)), { kind: 'throttled', afterMs: undefined });
  assert.deepEqual(classifySwiftError(error(503)), { kind: 'retryable', afterMs: undefined });
  assert.deepEqual(classifySwiftError(error(401)), { kind: 'retryable', afterMs: undefined }, 'a refused token is renewed');
  assert.deepEqual(classifySwiftError(error(404)), { kind: 'notFound' });
  assert.deepEqual(classifySwiftError(error(400)), { kind: 'permanent' });
  assert.deepEqual(classifySwiftError(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })), { kind: 'retryable', noAnswer: true });
  assert.deepEqual(classifySwiftError(error(504)), { kind: 'retryable', afterMs: undefined, noAnswer: true }, 'a gateway found no store behind it');
  assert.deepEqual(classifySwiftError(new IntegrityError('422')), { kind: 'retryable' });
  assert.deepEqual(classifySwiftError(new Error('something else')), { kind: 'permanent' });
});

test('fatal answers: a fresh token refused, 403, 507 or a quota, a PUT into a container that is gone', () => {
  const fatal = (status: number, method = 'PUT', detail = '', fresh = false) =>
    fatalSwiftAnswer(new SwiftHttpError(status, method, 'a.png', detail), 'destination', '[destination] container "media"', 'a.png', fresh);
  assert.match(fatal(401, 'GET', '', true)!.message, /refused a fresh token .*: check username, password, tenant and domain/);
  assert.equal(fatal(401, 'GET'), undefined, 'an expired token is renewed first');
  assert.match(fatal(403)!.message, /denied access \(403 on PUT a\.png\): give the user write access/);
  assert.match(fatal(507)!.message, /over its storage quota or out of space \(507 on PUT a\.png\)/);
  assert.match(fatal(413, 'PUT', 'Upload exceeds quota.')!.message, /over its storage quota/);
  assert.equal(fatal(413, 'PUT', 'Your request is too large.'), undefined, 'an object too large fails alone');
  assert.match(fatal(404)!.message, /does not exist .*create the container/);
  assert.equal(fatal(404, 'GET'), undefined, 'a GET 404 is an object not there');
});

test('large objects: segments named as python-swiftclient names them, at most 1000, cut from the body at exact lengths', async () => {
  assert.deepEqual(segmentNames('a/b.mp4', 25, 10, 1_700_000_000_123), [
    'a/b.mp4/slo/1700000000.123000/25/10/00000000',
    'a/b.mp4/slo/1700000000.123000/25/10/00000001',
    'a/b.mp4/slo/1700000000.123000/25/10/00000002',
  ]);
  assert.equal(segmentSizeFor(10 * 1024 ** 3, 1024 ** 2), Math.ceil((10 * 1024 ** 3) / 1000), '1000 segments at most');
  assert.equal(segmentSizeFor(100, 1024), 1024);

  const body = Buffer.from('0123456789abcdefghijklmnopqrstuvwxy');
  const collect = async (stream: Readable) => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString();
  };
  const reader = new SegmentReader(Readable.from([body.subarray(0, 7), body.subarray(7, 8), body.subarray(8)]));
  assert.deepEqual(
    [await collect(reader.take(10)), await collect(reader.take(10)), await collect(reader.take(10)), await collect(reader.take(5))],
    ['0123456789', 'abcdefghij', 'klmnopqrst', 'uvwxy'],
  );
  await reader.end();
  const short = new SegmentReader(Readable.from([body.subarray(0, 5)]));
  await assert.rejects(collect(short.take(10)), /ended 5 bytes before the end of a segment/);
  const long = new SegmentReader(Readable.from([body]));
  await collect(long.take(10));
  await assert.rejects(long.end(), /more bytes than its announced length/);
});

test('type = "swift" in TOML: Mastodon\'s SWIFT_* settings, segment_size in MiB, no per-object ACL', () => {
  const file = (text: string) => {
    const path = join(mkdtempSync(join(tmpdir(), 'mastosync-config-')), 'mastosync.toml');
    writeFileSync(path, `[database]\nurl = "postgres://mastodon@127.0.0.1/m"\n[source]\nbucket = "old"\n${text}`);
    return path;
  };
  const swift = `[destination]
type = "swift"
auth_url = "https://auth.cloud.ovh.net/v3"
username = "user-abc"
password = "pw"
tenant = "1234567890"
project_id = "p-id"
domain = "Default"
region = "GRA"
container = "media"
segment_size = 1024
`;
  const config = loadConfig(file(swift), {});
  assert.deepEqual(config.destination, {
    type: 'swift',
    authUrl: 'https://auth.cloud.ovh.net/v3',
    username: 'user-abc',
    password: 'pw',
    tenant: '1234567890',
    projectId: 'p-id',
    domain: 'Default',
    region: 'GRA',
    container: 'media',
    keyPrefix: undefined,
    segmentSize: 1024 ** 3,
    acl: '',
    storageClass: undefined,
  });
  const fromEnv = loadConfig(file(swift), { MASTOSYNC_DESTINATION_PASSWORD: 'from-env' }).destination;
  assert.equal(fromEnv.type === 'swift' ? fromEnv.password : undefined, 'from-env', 'a secret may come from the environment');
  assert.throws(() => loadConfig(file(`${swift}acl = "public-read"\n`), {}), /acl does not apply to Swift, which has no per-object ACL/);
  assert.throws(() => loadConfig(file(swift.replace('container = "media"\n', '')), {}), /type = "swift" needs container/);
  assert.throws(() => loadConfig(file(`${swift}bucket = "x"\n`), {}), /bucket is not a Swift setting/);
  assert.throws(() => loadConfig(file(swift.replace('segment_size = 1024', 'segment_size = 6000')), {}), /segment_size is in MiB and at most 5120/);
  assert.throws(() => loadConfig(file('[destination]\nbucket = "new"\ncontainer = "media"\n'), {}), /container is a Swift setting: set type = "swift"/);
});
