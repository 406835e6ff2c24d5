/**
 * The direct requests (src/storage/s3Direct.ts) use neither the SDK's endpoint rules nor its signer, and s3rver
 * checks no signatures, so their correctness is proven here without a network: our endpoint rules give the SDK's URL
 * for every bucket, endpoint and region shape they cover, each request goes where the SDK would send the same
 * operation (host, port, path, query for every key shape), and its SigV4 signature is recomputed from the
 * specification, independently of the SDK's signer. Also the pure parts of server-side copy (src/storage/s3Copy.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { Agent as HttpAgent, createServer } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from '@aws-sdk/client-s3';
import { DirectRequests, credentialProvider, digestEtag, encodeKey, type CredentialProvider, type SdkRules } from '../../src/storage/s3Direct.js';
import { bucketUrl } from '../../src/storage/s3Endpoint.js';
import { decodeXml, parseListPage } from '../../src/storage/s3List.js';
import { HttpTransport, type HttpHandler, type OutgoingRequest } from '../../src/storage/s3Http.js';
import { TokenBucket } from '../../src/sync/rateLimit.js';
import { S3Store } from '../../src/storage/s3.js';
import { gateSdkRequests } from '../../src/storage/s3Sdk.js';
import { FsStore } from '../../src/storage/fs.js';
import { tmpdir } from 'node:os';
import { MAX_COPY_OBJECT, copyRanges, sameProvider } from '../../src/storage/s3Copy.js';
import type { S3StoreConfig } from '../../src/storage/s3Config.js';

type Sent = Omit<OutgoingRequest, 'body'>;

/** An S3Client whose handler records each request and answers 200 with `answer` as the body. */
function recordingClient(config: S3StoreConfig, answer = ''): { client: S3Client; sent: Sent[] } {
  const sent: Sent[] = [];
  const client = new S3Client({
    region: config.region,
    endpoint: config.endpoint,
    forcePathStyle: config.forcePathStyle,
    credentials: config.credentials,
    requestHandler: {
      handle: async (request: Sent) => {
        sent.push(request);
        return { response: { statusCode: 200, headers: {}, body: Readable.from([Buffer.from(answer)]) } };
      },
    },
  });
  return { client, sent };
}

/**
 * Direct requests for `config` whose handler records each request (its body read) and answers 200 with `answer`;
 * `sdkRulesAsked` counts the loads of the SDK's endpoint rules, which only configurations ours do not cover need.
 */
/** What S3 answers a quiet DeleteObjects that deleted every key (the other requests here ignore their answer's body). */
const QUIET_DELETE_RESULT = '<?xml version="1.0" encoding="UTF-8"?><DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></DeleteResult>';

function recordingDirect(
  config: S3StoreConfig,
  answer = '',
  credentials: CredentialProvider = credentialProvider(config),
): { requests: DirectRequests; sent: Array<Sent & { body?: Buffer }>; sdkRulesAsked: () => number } {
  const sent: Array<Sent & { body?: Buffer }> = [];
  let asked = 0;
  const handler: HttpHandler = {
    handle: async (request) => {
      const { body, ...rest } = request;
      const chunks: Buffer[] = [];
      if (body !== undefined) for await (const chunk of body) chunks.push(chunk as Buffer);
      sent.push(body === undefined ? rest : { ...rest, body: Buffer.concat(chunks) });
      return { response: { statusCode: 200, headers: {}, body: Readable.from([Buffer.from(answer)]) } };
    },
  };
  const sdkRules = async () => {
    asked++;
    return recordingClient(config).client.config as unknown as SdkRules;
  };
  return { requests: new DirectRequests(config, handler, credentials, sdkRules), sent, sdkRulesAsked: () => asked };
}

const CREDENTIALS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const STORES: Array<{ name: string; config: S3StoreConfig }> = [
  {
    name: 'a custom endpoint with a port, path style',
    config: { type: 's3', bucket: 'media', region: 'us-east-1', endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, credentials: CREDENTIALS },
  },
  {
    name: 'AWS, virtual-hosted style',
    config: { type: 's3', bucket: 'mastodon-media', region: 'eu-central-1', forcePathStyle: false, credentials: CREDENTIALS },
  },
  {
    name: 'AWS us-east-1, a bucket with dots (path style: no certificate covers it as a host)',
    config: { type: 's3', bucket: 'media.example.org', region: 'us-east-1', forcePathStyle: false, credentials: CREDENTIALS },
  },
  {
    name: 'a named endpoint with a path, virtual-hosted style',
    config: { type: 's3', bucket: 'media', region: 'fr-par', endpoint: 'https://s3.example.com/storage', forcePathStyle: false, credentials: CREDENTIALS },
  },
  {
    name: 'a named http endpoint, a bucket of dots, virtual-hosted style',
    config: { type: 's3', bucket: 'media.files', region: 'garage', endpoint: 'http://minio:9000', forcePathStyle: false, credentials: CREDENTIALS },
  },
  {
    name: "AWS China (another partition: the SDK's endpoint rules)",
    config: { type: 's3', bucket: 'media', region: 'cn-north-1', forcePathStyle: false, credentials: CREDENTIALS },
  },
  {
    name: 'an https provider with a session token',
    config: {
      type: 's3',
      bucket: 'media',
      region: 'auto',
      endpoint: 'https://account.r2.example.com',
      forcePathStyle: true,
      credentials: { ...CREDENTIALS, sessionToken: 'token/with+chars' },
    },
  },
];
const KEYS = [
  'cache/media_attachments/files/110/528/637/375/951/012/original/9a8b7c6d5e4f3a2b.jpeg',
  'media_attachments/files/000/000/012/original/My Photo + café 100% #1.jpg',
  "site_uploads/files/000/000/002/@1x/a!b'c(d)e*f~g.png",
  'pfx//accounts/avatars/000/000/001/original/a;b=c&d$e,f?g:h.png',
];

const rfc3986 = (text: string) =>
  [...Buffer.from(text, 'utf8')]
    .map((byte) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(byte)) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');

/** SigV4 from the AWS specification: the signature `request` must carry. */
function expectedSignature(request: Sent, secret: string): string {
  const authorization = request.headers.authorization!;
  const [, scope, signedHeaders] = /Credential=[^/]+\/([^,]+), SignedHeaders=([^,]+), Signature=/.exec(authorization)!;
  const [date, region, service] = scope!.split('/');
  const headerValue = (name: string) =>
    Object.entries(request.headers)
      .find(([key]) => key.toLowerCase() === name)![1]
      .trim()
      .replace(/\s+/g, ' '); // sequential spaces as one, as the SDK's signer folds them
  const canonical = [
    request.method,
    request.path, // S3: the path as sent, encoded once, not normalised
    // Names and values encoded per RFC 3986 (only unreserved characters kept), sorted by name.
    Object.entries(request.query)
      .map(([name, value]) => [rfc3986(name), rfc3986(value)])
      .sort(([a], [b]) => (a! < b! ? -1 : 1))
      .map(([name, value]) => `${name}=${value}`)
      .join('&'),
    ...signedHeaders!.split(';').map((name) => `${name}:${headerValue(name)}`),
    '',
    signedHeaders,
    headerValue('x-amz-content-sha256'),
  ].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', headerValue('x-amz-date'), scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  let key: Buffer = Buffer.from(`AWS4${secret}`);
  for (const part of [date!, region!, service!, 'aws4_request']) key = createHmac('sha256', key).update(part).digest();
  return createHmac('sha256', key).update(toSign).digest('hex');
}

for (const { name, config } of STORES) {
  test(`direct requests go where the SDK sends them, signed per SigV4: ${name}`, async () => {
    const sdk = recordingClient(config);
    const direct = recordingDirect(config);
    const { requests } = direct;
    for (const key of KEYS) {
      await sdk.client.send(new GetObjectCommand({ Bucket: config.bucket, Key: key }));
      await requests.get(key);
      await requests.put(key, Readable.from([Buffer.from('bytes')]), { 'content-length': '5', 'content-type': 'image/png', 'x-amz-acl': 'public-read' });
      await requests.copy('other-bucket', key, key, { 'x-amz-metadata-directive': 'COPY' });
    }
    for (const [index, key] of KEYS.entries()) {
      const expected = sdk.sent[index]!;
      for (const request of direct.sent.slice(index * 3, index * 3 + 3)) {
        const where = `${request.method} ${key}`;
        assert.equal(request.protocol, expected.protocol, `${where}: protocol`);
        assert.equal(request.hostname, expected.hostname, `${where}: host`);
        assert.equal(request.port, expected.port, `${where}: port`);
        assert.equal(request.path, expected.path, `${where}: path`);
        assert.deepEqual(request.query, {}, `${where}: query`);
        assert.equal(request.headers.host, expected.headers.host, `${where}: Host header`);
        const signature = /Signature=([0-9a-f]{64})$/.exec(request.headers.authorization!)?.[1];
        assert.equal(signature, expectedSignature(request, config.credentials!.secretAccessKey), `${where}: signature`);
        const scope = (authorization: string) => /Credential=([^,]+),/.exec(authorization)?.[1];
        assert.equal(scope(request.headers.authorization!), scope(expected.headers.authorization!), `${where}: credential scope (key, date, region, service)`);
        const signed = /SignedHeaders=([^,]+)/.exec(request.headers.authorization!)![1]!.split(';');
        for (const header of ['host', 'x-amz-content-sha256', 'x-amz-date']) assert.ok(signed.includes(header), `${where}: ${header} signed`);
        if (config.credentials?.sessionToken) assert.equal(request.headers['x-amz-security-token'], config.credentials.sessionToken);
      }
    }
    // The SDK's rules only where ours end (another partition), and then once.
    assert.equal(direct.sdkRulesAsked(), bucketUrl(config) === undefined ? 1 : 0);
  });

  test(`the bucket check, HEAD, deletes and an upload's abort go where the SDK sends them, signed per SigV4: ${name}`, async () => {
    const sdk = recordingClient(config);
    const direct = recordingDirect(config, QUIET_DELETE_RESULT);
    const { requests } = direct;
    const [key, other] = [KEYS[1]!, KEYS[2]!];
    const Bucket = config.bucket;
    await sdk.client.send(new ListObjectsCommand({ Bucket, MaxKeys: 1, Prefix: 'pfx/' }));
    await requests.listOne('pfx/');
    await sdk.client.send(new ListObjectsCommand({ Bucket, MaxKeys: 1 }));
    await requests.listOne(undefined);
    await sdk.client.send(new HeadObjectCommand({ Bucket, Key: key }));
    await requests.head(key);
    await sdk.client.send(new DeleteObjectCommand({ Bucket, Key: key }));
    await requests.delete(key);
    await sdk.client.send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId: 'upload/1+2' }));
    await requests.abortUpload(key, 'upload/1+2');
    await sdk.client.send(new DeleteObjectsCommand({ Bucket, Delete: { Quiet: true, Objects: [{ Key: key }, { Key: other }] } }));
    await requests.deleteMany([key, other]);
    assert.equal(direct.sent.length, sdk.sent.length);
    for (const [index, request] of direct.sent.entries()) {
      const expected = sdk.sent[index]!;
      const where = `${expected.method} ${JSON.stringify(expected.query)}`;
      assert.equal(request.method, expected.method, `${where}: method`);
      assert.equal(request.protocol, expected.protocol, `${where}: protocol`);
      assert.equal(request.hostname, expected.hostname, `${where}: host`);
      assert.equal(request.port, expected.port, `${where}: port`);
      assert.equal(request.path, expected.path, `${where}: path`);
      // The SDK sends a query name without a value (`?delete`) as null; S3 reads `delete=` alike.
      const query = Object.fromEntries(
        Object.entries(expected.query)
          .filter(([name]) => name !== 'x-id')
          .map(([name, value]) => [name, value ?? '']),
      );
      assert.deepEqual(request.query, query, `${where}: query`);
      assert.equal(request.headers.host, expected.headers.host, `${where}: Host header`);
      const signature = /Signature=([0-9a-f]{64})$/.exec(request.headers.authorization!)?.[1];
      assert.equal(signature, expectedSignature(request, config.credentials!.secretAccessKey), `${where}: signature`);
    }
    // DeleteObjects: the keys as XML, quiet, with the body's MD5 and SHA-256 (signed).
    const batch = direct.sent.at(-1)!;
    assert.equal(batch.headers['content-md5'], createHash('md5').update(batch.body!).digest('base64'));
    assert.equal(batch.headers['x-amz-content-sha256'], createHash('sha256').update(batch.body!).digest('hex'));
    assert.match(batch.body!.toString(), /<Quiet>true<\/Quiet>/);
    const keys = [...batch.body!.toString().matchAll(/<Key>([^<]*)<\/Key>/g)].map(([, text]) => decodeXml(text!));
    assert.deepEqual(keys, [key, other]);
  });
}

test('a request signs the same whatever the case of its header names, with values of spaces and a session token', async () => {
  const config = STORES.find(({ name }) => name.includes('session token'))!.config;
  const direct = recordingDirect(config);
  const key = KEYS[1]!;
  const headers = { 'content-length': '5', 'content-type': ' image/png ', 'x-amz-meta-note': 'a  b \t c', 'x-amz-acl': 'public-read' };
  // Every shape of white space a value may have folds as SigV4 folds it (checked per character for ASCII).
  const odd = ['\u00a0x', 'x\u00a0', 'x \u00a0y', 'é  ü', ' ', '\tx', 'x\n', 'a b', 'a\x01 b', 'a\x7f  b', 'x ', '  x'];
  for (const [index, value] of odd.entries()) {
    const recorded = recordingDirect(config);
    await recorded.requests.put(key, Readable.from([Buffer.from('bytes')]), { 'content-length': '5', 'x-amz-meta-odd': value, [`x-amz-meta-${index}`]: 'v' });
    const request = recorded.sent[0]!;
    assert.equal(
      /Signature=([0-9a-f]{64})$/.exec(request.headers.authorization!)?.[1],
      expectedSignature(request, config.credentials!.secretAccessKey),
      JSON.stringify(value),
    );
    // Signed in code-unit order, whatever order the names were given in (x-amz-meta-0… sorts among the others).
    const signed = /SignedHeaders=([^,]+)/.exec(request.headers.authorization!)![1]!.split(';');
    assert.deepEqual(signed, [...signed].sort());
    assert.equal(signed.length, 7);
  }
  const mixed = { 'Content-Length': '5', 'Content-Type': ' image/png ', 'X-Amz-Meta-Note': 'a  b \t c', 'x-amz-ACL': 'public-read' };
  await direct.requests.put(key, Readable.from([Buffer.from('bytes')]), headers);
  await direct.requests.put(key, Readable.from([Buffer.from('bytes')]), mixed);
  const [lower, upper] = direct.sent;
  for (const request of [lower!, upper!]) {
    const authorization = request.headers.authorization!;
    assert.equal(/Signature=([0-9a-f]{64})$/.exec(authorization)?.[1], expectedSignature(request, config.credentials!.secretAccessKey));
    assert.equal(
      /SignedHeaders=([^,]+)/.exec(authorization)?.[1],
      'content-length;content-type;host;x-amz-acl;x-amz-content-sha256;x-amz-date;x-amz-meta-note;x-amz-security-token',
    );
    assert.equal(request.headers['x-amz-security-token'], 'token/with+chars');
  }
  // Each header sent once, under its lower-case name.
  assert.deepEqual(Object.keys(upper!.headers).sort(), Object.keys(lower!.headers).sort());
});

test('our endpoint rules give the URL the SDK gives, for every bucket, endpoint and region shape they cover', () => {
  const buckets = ['media', 'mastodon-media', 'my.bucket.name', 'My_Bucket', 'ab', 'a'.repeat(63), 'a'.repeat(64), '192.168.1.1', 'bucket-', 'foo--bar'];
  const more = ['x.y', 'a..b', 'a.-b', 'sp ace', 'a!b', 'media--x-s3', 'media--ol-s3', 'arn:aws:s3:us-east-1:123456789012:accesspoint/ap'];
  const endpoints = [
    undefined,
    'http://127.0.0.1:9000',
    'https://s3.example.com',
    'http://localhost:4566',
    'http://[::1]:9000',
    'https://s3.example.com/prefix/',
    'http://minio:9000/',
    'HTTPS://S3.Example.COM:443',
    'https://s3.example.com:8443',
  ];
  const regions = [
    'us-east-1',
    'eu-central-1',
    'ap-southeast-2',
    'auto',
    'garage',
    'fr-par',
    'US-East-1',
    'cn-north-1',
    'us-gov-west-1',
    'aws-global',
    'us-east-1-fips',
  ];
  let covered = 0;
  for (const region of regions) {
    for (const endpoint of endpoints) {
      for (const forcePathStyle of [false, true]) {
        const rules = recordingClient({ type: 's3', bucket: 'media', region, endpoint, forcePathStyle, credentials: CREDENTIALS }).client
          .config as unknown as SdkRules;
        for (const bucket of [...buckets, ...more]) {
          const ours = bucketUrl({ bucket, region, endpoint, forcePathStyle });
          if (ours === undefined) continue;
          covered++;
          const params = {
            Bucket: bucket,
            Region: region,
            Endpoint: endpoint,
            ForcePathStyle: forcePathStyle,
            UseFIPS: false,
            UseDualStack: false,
            Accelerate: false,
          };
          const theirs = rules.endpointProvider(params);
          const where = JSON.stringify({ bucket, region, endpoint, forcePathStyle });
          // The path without its last slash: the direct requests append `/key`, as the SDK does.
          const bare = (url: URL) => `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, '')}`;
          assert.equal(bare(ours), bare(theirs.url), where);
          const scheme = theirs.properties?.authSchemes?.[0];
          assert.deepEqual(
            [scheme?.name, scheme?.signingName, scheme?.signingRegion],
            ['sigv4', 's3', region],
            `${where}: signed as plain SigV4 for the region`,
          );
        }
      }
    }
  }
  assert.ok(covered > 1500, `${covered} shapes compared`);
  // What ours leave to the SDK: ARNs, directory buckets and access point aliases, other partitions, pseudo-regions.
  const aws = { region: 'eu-central-1', endpoint: undefined, forcePathStyle: false };
  for (const bucket of more.slice(-3)) assert.equal(bucketUrl({ ...aws, bucket }), undefined, bucket);
  for (const region of ['cn-north-1', 'us-gov-west-1', 'aws-global', 'us-east-1-fips'])
    assert.equal(bucketUrl({ ...aws, bucket: 'media', region }), undefined, region);
});

for (const { name, config } of STORES) {
  test(`a direct listing page goes where the SDK sends ListObjectsV2, signed per SigV4: ${name}`, async () => {
    const sdk = recordingClient(config);
    const direct = recordingDirect(config);
    const { requests } = direct;
    const pages: Array<{ prefix: string; token?: string; startAfter?: string }> = [
      { prefix: 'media_attachments/files/' },
      { prefix: 'pfx/', token: '1ueGcx+/a=b&c==' },
      { prefix: 'pfx/', startAfter: KEYS[1]! },
      { prefix: '', startAfter: KEYS[2]! },
    ];
    for (const { prefix, token, startAfter } of pages) {
      await sdk.client.send(new ListObjectsV2Command({ Bucket: config.bucket, Prefix: prefix, ContinuationToken: token, StartAfter: startAfter }));
      await requests.list(prefix, token, startAfter);
    }
    for (const [index, request] of direct.sent.entries()) {
      const expected = sdk.sent[index]!;
      const where = `page ${index}`;
      assert.equal(request.method, 'GET');
      assert.equal(request.hostname, expected.hostname, `${where}: host`);
      assert.equal(request.port, expected.port, `${where}: port`);
      assert.equal(request.path, expected.path, `${where}: path`);
      assert.deepEqual(request.query, expected.query, `${where}: query`);
      assert.equal(request.headers.host, expected.headers.host, `${where}: Host header`);
      const signature = /Signature=([0-9a-f]{64})$/.exec(request.headers.authorization!)?.[1];
      assert.equal(signature, expectedSignature(request, config.credentials!.secretAccessKey), `${where}: signature`);
    }
  });
}

test('direct requests sign with rotated credentials once the old ones are due to expire, and ask for them no more often', async () => {
  const config = STORES[0]!.config;
  let asked = 0;
  let lifetimeMs = 60_000;
  // As an instance role's provider: new keys each time it is asked, each with an expiry.
  const { requests, sent } = recordingDirect(config, '', async () => {
    asked++;
    return { accessKeyId: `ROTATED${asked}`, secretAccessKey: `secret${asked}`, expiration: new Date(Date.now() + lifetimeMs) };
  });
  const keyId = (request: Sent) => /Credential=([^/]+)\//.exec(request.headers.authorization!)?.[1];
  const signedRight = (request: Sent) =>
    /Signature=([0-9a-f]{64})$/.exec(request.headers.authorization!)?.[1] === expectedSignature(request, keyId(request)!.replace('ROTATED', 'secret'));
  // Keys within five minutes of their expiry are asked for again before each request, as the SDK's signer does.
  for (const key of KEYS.slice(0, 3)) await requests.get(key);
  assert.equal(new Set(sent.map(keyId)).size, 3, 'new keys for each request');
  assert.ok(sent.every(signedRight));
  // Keys valid for an hour are asked for once, and sign every request after.
  lifetimeMs = 60 * 60_000;
  sent.length = 0;
  const askedBefore = asked;
  for (const key of KEYS) await requests.get(key);
  assert.equal(asked, askedBefore + 1);
  assert.deepEqual(new Set(sent.map(keyId)), new Set([`ROTATED${asked}`]));
  assert.ok(sent.every(signedRight));
});

test('without keys in the config, requests are signed with what the AWS default chain finds (here the environment)', async (t) => {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY, token: process.env.AWS_SESSION_TOKEN };
  t.after(() => {
    for (const [name, value] of [
      ['AWS_ACCESS_KEY_ID', saved.id],
      ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ['AWS_SESSION_TOKEN', saved.token],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: 'AKIAFROMENV', AWS_SECRET_ACCESS_KEY: 'secret-from-env', AWS_SESSION_TOKEN: 'token-from-env' });
  const config: S3StoreConfig = { ...STORES[0]!.config, credentials: undefined };
  const { requests, sent } = recordingDirect(config);
  await requests.get(KEYS[0]!);
  const [request] = sent;
  assert.match(request!.headers.authorization!, /Credential=AKIAFROMENV\//);
  assert.equal(request!.headers['x-amz-security-token'], 'token-from-env');
  assert.equal(/Signature=([0-9a-f]{64})$/.exec(request!.headers.authorization!)?.[1], expectedSignature(request!, 'secret-from-env'));
});

test("a listing page read from the XML as the SDK's parser reads it", async () => {
  const config = STORES[0]!.config;
  const xml =
    '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>media</Name><Prefix></Prefix>' +
    '<KeyCount>2</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>' +
    '<Contents><Key>a &amp; b + caf\u00e9 \u{1F418} &#x2603;&#13; &#38;.png</Key><ETag>&quot;9e107d9d372bb6826bd81d3542a419d6&quot;</ETag><Size>30</Size></Contents>' +
    '<Contents><Key>c&lt;d&gt;e&apos;f&quot;g</Key><ETag>"abc-2"</ETag><Size>7</Size><StorageClass>STANDARD</StorageClass></Contents>' +
    '<NextContinuationToken>tok+/&amp;=</NextContinuationToken></ListBucketResult>';
  const answer = await recordingClient(config, xml).client.send(new ListObjectsV2Command({ Bucket: config.bucket }));
  const page = parseListPage(await recordingDirect(config, xml).requests.list('', undefined, undefined));
  assert.deepEqual(
    page.contents,
    answer.Contents!.map((item) => {
      // The MD5 the SDK's ETag carries, where it is one (a multipart upload's is not).
      const md5 = /^"([0-9a-f]{32})"$/.exec(item.ETag ?? '')?.[1];
      return md5 === undefined ? { key: item.Key, size: item.Size } : { key: item.Key, size: item.Size, md5 };
    }),
  );
  assert.equal(page.isTruncated, answer.IsTruncated);
  assert.equal(page.nextContinuationToken, answer.NextContinuationToken);
});

test('the copy source names the source bucket and the key encoded once', async () => {
  const config = STORES[0]!.config;
  const { requests, sent } = recordingDirect(config);
  await requests.copy('old-media', 'a/My Photo + café.jpg', 'b/x.jpg', {});
  assert.equal(sent[0]!.headers['x-amz-copy-source'], 'old-media/a/My%20Photo%20%2B%20caf%C3%A9.jpg');
  assert.equal(encodeKey("a!b'c(d)e*f~g"), 'a%21b%27c%28d%29e%2Af~g');
});

test('a key of unreserved characters is sent as it is, and every other key encoded as before', () => {
  const before = (key: string) =>
    encodeURIComponent(key)
      .replaceAll('%2F', '/')
      .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const characters = [...Array.from({ length: 128 }, (_, code) => String.fromCharCode(code)), 'é', '\u00a0', '😀'];
  for (const character of characters)
    for (const key of [character, `accounts/avatars/110/${character}/original/a.png`]) assert.equal(encodeKey(key), before(key), key);
  const key = 'accounts/avatars/110/000/000/000/000/001/original/0a1B-c_d.e~f.png';
  assert.equal(encodeKey(key), key);
});

test("an answer's ETag loses its quotes, as the expression before did", () => {
  for (const etag of ['"abc"', 'abc', '"abc', 'abc"', '"', '""', '"""', '', 'a"b']) assert.equal(digestEtag({ etag }), etag.replace(/^"|"$/g, ''), etag);
  assert.equal(digestEtag({}), undefined);
});

test('a copy answered 200 with an <Error> body is an error (S3 reports late copy failures so)', async () => {
  const config = STORES[0]!.config;
  const { requests } = recordingDirect(
    config,
    '<?xml version="1.0"?><Error><Code>InternalError</Code><Message>We encountered an internal error</Message></Error>',
  );
  await assert.rejects(requests.copy('old', 'a', 'b', {}), (error: Error & { $metadata?: { httpStatusCode?: number } }) => {
    assert.equal(error.name, 'InternalError');
    assert.equal(error.$metadata?.httpStatusCode, 500);
    return true;
  });
});

test('server-side copy needs one endpoint, region and account', () => {
  const base: S3StoreConfig = {
    type: 's3',
    bucket: 'old',
    region: 'eu-central-1',
    endpoint: 'https://s3.example.com',
    forcePathStyle: true,
    credentials: CREDENTIALS,
  };
  assert.equal(sameProvider(base, { ...base, bucket: 'new' }), true);
  assert.equal(sameProvider(base, { ...base, bucket: 'new', endpoint: 'https://s3.other.example.com' }), false);
  assert.equal(sameProvider(base, { ...base, bucket: 'new', region: 'us-east-1' }), false);
  assert.equal(sameProvider(base, { ...base, bucket: 'new', credentials: { ...CREDENTIALS, secretAccessKey: 'another' } }), false);
  assert.equal(sameProvider(base, { ...base, bucket: 'new', credentials: undefined }), false);
  assert.equal(sameProvider({ ...base, credentials: undefined }, { ...base, bucket: 'new', credentials: undefined }), true, 'both from the default chain');
});

test('the destination copies on the provider from a store of one account, from any S3 store when forced, never from a folder', async () => {
  const config: S3StoreConfig = { ...STORES[0]!.config, bucket: 'old', credentials: CREDENTIALS };
  const options = { maxSockets: 1, partSize: 8 * 1024 * 1024, queueSize: 1 };
  const source = new S3Store(config, { ...options, role: 'source' });
  const destination = new S3Store({ ...config, bucket: 'new' }, { ...options, role: 'destination' });
  const elsewhere = new S3Store({ ...config, bucket: 'new', endpoint: 'http://127.0.0.1:9' }, { ...options, role: 'destination' });
  const folder = new FsStore(tmpdir(), 'source');
  try {
    assert.equal(destination.canCopyFrom(source), true);
    assert.equal(elsewhere.canCopyFrom(source), false, 'another endpoint: streamed under copy_mode = "auto"');
    assert.equal(elsewhere.canCopyFrom(source, { forced: true }), true, 'copy_mode = "server" asks anyway');
    assert.equal(destination.canCopyFrom(folder, { forced: true }), false);
    // Declined without a request: the caller streams (a request to port 9 would fail, not decline).
    assert.equal(await elsewhere.copyFrom(source, 'a/b.png', 'a/b.png', {}), 'declined');
    assert.equal(await destination.copyFrom(folder, 'a/b.png', 'a/b.png', { forced: true }), 'declined');
  } finally {
    for (const store of [source, destination, elsewhere]) store.close();
  }
});

test("a store whose configuration our endpoint rules leave to the SDK's loads them, and its requests go where they say", async () => {
  // aws-global: the SDK signs for us-east-1 (ours would sign for the region as written).
  const seen: Array<{ url?: string; authorization?: string }> = [];
  const server = createServer((request, response) => {
    seen.push({ url: request.url, authorization: request.headers.authorization });
    response.writeHead(200, { 'content-length': '2' }).end('ok');
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  const config: S3StoreConfig = {
    type: 's3',
    bucket: 'media',
    region: 'aws-global',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    credentials: CREDENTIALS,
  };
  assert.equal(bucketUrl(config), undefined);
  const store = new S3Store(config, { role: 'source', maxSockets: 1, partSize: 8 * 1024 * 1024, queueSize: 1 });
  try {
    const object = await store.read('a/b.png');
    for await (const chunk of object!.body) void chunk;
    assert.equal(seen[0]!.url, '/media/a/b.png');
    assert.match(seen[0]!.authorization!, /Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/s3\/aws4_request/);
  } finally {
    store.close();
    server.close();
  }
});

test('a copy in parts covers every byte once, in at most 10,000 parts', () => {
  for (const size of [MAX_COPY_OBJECT + 1, 7 * 1024 ** 3 + 12345, 6 * 1024 ** 4]) {
    const ranges = copyRanges(size);
    assert.ok(ranges.length <= 10_000, `${size}: ${ranges.length} parts`);
    assert.equal(ranges[0]!.first, 0);
    assert.equal(ranges.at(-1)!.last, size - 1);
    for (let index = 1; index < ranges.length; index++) assert.equal(ranges[index]!.first, ranges[index - 1]!.last + 1);
    for (const range of ranges.slice(0, -1)) assert.ok(range.last - range.first + 1 >= 5 * 1024 ** 2, 'parts of 5 MiB at least');
  }
});

test('--max-rps: a direct request hands its own abort signal to the rate gate', async () => {
  const config = STORES[0]!.config;
  const { requests: direct } = recordingDirect(config);
  let given: AbortSignal | undefined;
  direct.gate = async (signal) => {
    given = signal;
  };
  const copy = new AbortController();
  await direct.get('a/b.png', copy.signal);
  assert.equal(given, copy.signal);
});

test("--max-rps: the hard stop ends the SDK requests' wait for a turn, but not a multipart upload's abort", async () => {
  const config = STORES[0]!.config;
  const { client, sent } = recordingClient(config);
  const bucket = new TokenBucket(2);
  const hardStop = new AbortController();
  // As src/sync/rateLimit.ts builds the gate: a request without a signal of its own waits until the hard stop.
  gateSdkRequests(client, (signal) => bucket.take(signal ?? hardStop.signal));
  await bucket.take(); // the next turn is 500 ms away
  const waiting = client.send(new HeadObjectCommand({ Bucket: 'media', Key: 'a/b.png' }));
  const cleanup = client.send(new AbortMultipartUploadCommand({ Bucket: 'media', Key: 'a/big.mp4', UploadId: 'upload-1' }));
  hardStop.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  await cleanup;
  assert.deepEqual(
    sent.map((request) => `${request.method} ${request.query.uploadId ?? ''}`),
    ['DELETE upload-1'],
    'only the cleanup was sent',
  );
});

test("--max-rps: the hard stop ends a direct request's wait for a turn, but not a multipart upload's abort", async () => {
  const { requests, sent } = recordingDirect(STORES[0]!.config);
  const bucket = new TokenBucket(2);
  const hardStop = new AbortController();
  requests.gate = (signal) => bucket.take(signal ?? hardStop.signal);
  await bucket.take(); // the next turn is 500 ms away
  const waiting = requests.head('a/b.png');
  const cleanup = requests.abortUpload('a/big.mp4', 'upload-1');
  hardStop.abort();
  await assert.rejects(waiting, { name: 'AbortError' });
  await cleanup;
  assert.deepEqual(
    sent.map((request) => `${request.method} ${request.query.uploadId ?? ''}`),
    ['DELETE upload-1'],
    'only the cleanup was sent',
  );
});

test("the direct requests' node:http transport fails as the SDK's handler does (timeouts, aborts, resets)", async () => {
  // A server that answers /ok, stays silent on /silent, and resets the connection on /reset.
  const server = createServer((request, response) => {
    if (request.url === '/ok') response.writeHead(200, { etag: '"abc"', 'x-multi': ['a', 'b'] }).end('body');
    else if (request.url === '/reset') request.socket.destroy();
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  const agents = { httpAgent: new HttpAgent({ keepAlive: true }), httpsAgent: new HttpsAgent({ keepAlive: true }) };
  const handlers = {
    sdk: new NodeHttpHandler({ ...agents, connectionTimeout: 1000, socketTimeout: 200 }) as unknown as HttpHandler,
    transport: new HttpTransport({ ...agents, connectionTimeoutMs: 1000, socketTimeoutMs: 200 }),
  };
  const request = (path: string) => ({
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    method: 'GET',
    path,
    query: {},
    headers: { host: `127.0.0.1:${port}` },
  });
  const failure = (handler: HttpHandler, path: string, signal?: AbortSignal) =>
    handler.handle(request(path), { abortSignal: signal }).then(
      () => assert.fail(`${path} answered`),
      (error: Error & { code?: string; cause?: unknown }) => ({
        name: error.name,
        code: error.code,
        cause: error.cause,
        timedOut: /timed out/.test(error.message),
      }),
    );
  try {
    const answers = await Promise.all(Object.values(handlers).map((handler) => handler.handle(request('/ok'), {})));
    for (const { response } of answers) response.body.resume();
    assert.deepEqual(answers[1]!.response.statusCode, answers[0]!.response.statusCode);
    assert.equal(answers[1]!.response.headers.etag, '"abc"');
    const reason = new Error('copy aborted');
    const results: string[] = [];
    for (const path of ['/silent', '/reset', 'aborted before', 'aborted while waiting']) {
      // One stop under both requests (as the run's is under all), aborted before they go or while they wait.
      const stop = new AbortController();
      if (path === 'aborted before') stop.abort(reason);
      else setTimeout(() => stop.abort(reason), 50);
      const [sdk, ours] = await Promise.all(
        Object.values(handlers).map((handler) => (path.startsWith('aborted') ? failure(handler, '/silent', stop.signal) : failure(handler, path))),
      );
      assert.deepEqual(ours, sdk, path);
      results.push(`${path}: ${ours!.name}${ours!.code ? ` ${ours!.code}` : ''}`);
    }
    assert.deepEqual(results, ['/silent: TimeoutError', '/reset: TimeoutError ECONNRESET', 'aborted before: AbortError', 'aborted while waiting: AbortError']);
  } finally {
    agents.httpAgent.destroy();
    server.close();
  }
});

test("the direct requests' transport frames each body as the SDK's handler does: a length, never chunked (AWS answers a chunked PUT 501)", async () => {
  const seen: string[] = [];
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      seen.push(`${request.method} length=${request.headers['content-length']} chunked=${request.headers['transfer-encoding'] === 'chunked'}`);
      response.end();
    });
  });
  await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
  const { port } = server.address() as AddressInfo;
  const agents = { httpAgent: new HttpAgent({ keepAlive: true }), httpsAgent: new HttpsAgent({ keepAlive: true }) };
  const handlers = {
    sdk: new NodeHttpHandler({ ...agents, connectionTimeout: 1000, socketTimeout: 1000 }) as unknown as HttpHandler,
    transport: new HttpTransport({ ...agents, connectionTimeoutMs: 1000, socketTimeoutMs: 1000 }),
  };
  const shapes: { method: string; headers?: Record<string, string>; body?: () => Buffer | Readable }[] = [
    { method: 'PUT', headers: { 'x-amz-copy-source': 'bucket/key' } }, // CopyObject: no body, no length given
    { method: 'PUT', body: () => Buffer.from('held whole') },
    { method: 'PUT', headers: { 'content-length': '8' }, body: () => Readable.from([Buffer.from('streamed')]) },
    { method: 'POST', headers: { 'content-length': '5' }, body: () => Readable.from([Buffer.from('<xml>')]) },
    { method: 'DELETE' },
    { method: 'GET' },
  ];
  try {
    const framing: Record<string, string[]> = {};
    for (const [name, handler] of Object.entries(handlers)) {
      seen.length = 0;
      for (const { method, headers, body } of shapes) {
        const request: OutgoingRequest = {
          protocol: 'http:',
          hostname: '127.0.0.1',
          port,
          method,
          path: '/bucket/key',
          query: {},
          headers: { host: `127.0.0.1:${port}`, ...headers },
          body: body?.(),
        };
        (await handler.handle(request, {})).response.body.resume();
      }
      framing[name] = [...seen];
    }
    assert.deepEqual(framing.transport, framing.sdk);
    assert.deepEqual(framing.transport, [
      'PUT length=0 chunked=false',
      'PUT length=10 chunked=false',
      'PUT length=8 chunked=false',
      'POST length=5 chunked=false',
      'DELETE length=undefined chunked=false',
      'GET length=undefined chunked=false',
    ]);
  } finally {
    agents.httpAgent.destroy();
    server.close();
  }
});
