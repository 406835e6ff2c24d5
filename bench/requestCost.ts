/**
 * The request-cost study: CPU per object (one GET and one streamed PUT, 40 KB, 16 in flight) of the same S3Store
 * either through the SDK's commands or through its direct requests (src/storage/s3Direct.ts), against the
 * trivial server of bench/fakeS3.ts; and the floor under both, what Node itself costs for the same two requests:
 * bare node:http with a keep-alive agent, signed by a minimal SigV4 (one SHA-256 and one HMAC per request, the
 * signing key derived once) or not signed at all; and above both, `copy`: the whole copy of one object as a run
 * makes it (copyOwnedObject: retries, the integrity check, the stream into the PUT), without rows or checkpoint.
 * Only the copy loop is timed (process.cpuUsage), after a warm-up.
 * Usage: node --import tsx bench/requestCost.ts sdk|direct|copy|bare|unsigned PORT OBJECTS; prints {"cpuMsPerObject":…}.
 */
import { createHash, createHmac } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import http from 'node:http';
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Store } from '../src/storage/s3.js';
import { copyOwnedObject } from '../src/sync/copy.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const [mode, port, count] = process.argv.slice(2) as ['sdk' | 'direct' | 'copy' | 'bare' | 'unsigned', string, string];
const store = new S3Store(
  {
    type: 's3',
    bucket: 'bench',
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
  },
  { role: 'destination', maxSockets: 40, partSize: 8 * 1024 * 1024, queueSize: 2 },
);

const agent = new http.Agent({ keepAlive: true, maxSockets: 40 });
/** As a run has one: its hard stop, which every copy listens to. */
const stop = new AbortController();
setMaxListeners(0, stop.signal);
const REGION = 'us-east-1';
const AMZ_DATE = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
const SCOPE = `${AMZ_DATE.slice(0, 8)}/${REGION}/s3/aws4_request`;
const hmac = (key: Buffer | string, text: string) => createHmac('sha256', key).update(text).digest();
const SIGNING_KEY = hmac(hmac(hmac(hmac('AWS4S3RVER', AMZ_DATE.slice(0, 8)), REGION), 's3'), 'aws4_request');

/** SigV4 headers for a request with an unsigned payload; `headers` are lower-case and signed, host included. */
function sign(method: string, path: string, headers: Record<string, string>): Record<string, string> {
  const all: Record<string, string> = { ...headers, host: `127.0.0.1:${port}`, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': AMZ_DATE };
  const names = Object.keys(all).sort();
  const canonical = [method, path, '', ...names.map((name) => `${name}:${all[name]}`), '', names.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const toSign = `AWS4-HMAC-SHA256\n${AMZ_DATE}\n${SCOPE}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac('sha256', SIGNING_KEY).update(toSign).digest('hex');
  all.authorization = `AWS4-HMAC-SHA256 Credential=S3RVER/${SCOPE}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
  return all;
}

/** One request with node:http alone; resolves with the response once its head arrived. */
function bareRequest(method: string, path: string, headers: Record<string, string>, body?: Readable): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, method, path, agent, headers: mode === 'bare' ? sign(method, path, headers) : headers }, resolve);
    request.on('error', reject);
    if (body) body.pipe(request);
    else request.end();
  });
}

async function copyOne(key: string): Promise<void> {
  if (mode === 'bare' || mode === 'unsigned') {
    const path = `/bench/${key}`;
    const object = await bareRequest('GET', path, {});
    const headers = {
      'content-length': object.headers['content-length']!,
      'content-type': object.headers['content-type']!,
      'cache-control': object.headers['cache-control']!,
      'content-md5': Buffer.from(object.headers.etag!.replaceAll('"', ''), 'hex').toString('base64'),
      'x-amz-acl': 'public-read',
    };
    const answer = await bareRequest('PUT', path, headers, object);
    answer.resume();
    await new Promise((resolve) => answer.on('end', resolve));
    return;
  }
  if (mode === 'copy') {
    const object = { job: 'media_attachments', id: '1', attachment: 'file', style: 'original', key, alternates: [], visibility: 'default' } as const;
    const owned = { ...object, storedContentType: null, storedSize: null, underCache: false };
    const result = await copyOwnedObject(owned, { source: store, destination: store, acl: 'public-read', retries: 0, signal: stop.signal });
    if (result.status !== 'copied') throw new Error(`${key}: ${result.status} ${result.error ?? ''}`);
    return;
  }
  if (mode === 'direct') {
    const object = (await store.read(key))!;
    const contentMd5 = Buffer.from(object.etag!, 'hex').toString('base64');
    await store.write(key, object.body, {
      contentLength: object.contentLength,
      contentType: object.contentType,
      cacheControl: object.cacheControl,
      acl: 'public-read',
      contentMd5,
    });
    return;
  }
  const client = await store.sdkClient();
  const object = await client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }));
  const contentMd5 = Buffer.from(object.ETag!.replaceAll('"', ''), 'hex').toString('base64');
  await client.send(
    new PutObjectCommand({
      Bucket: 'bench',
      Key: key,
      Body: object.Body as Readable,
      ContentLength: object.ContentLength,
      ContentType: object.ContentType,
      CacheControl: object.CacheControl,
      ACL: 'public-read',
      ContentMD5: contentMd5,
    }),
  );
}

async function copyAll(objects: number): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < objects; index = next++)
      await copyOne(`media_attachments/files/110/000/001/000/000/${index}/original/0123456789abcdef.jpeg`);
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

await copyAll(200); // warm-up: connections, JIT
const before = process.cpuUsage();
await copyAll(Number(count));
const used = process.cpuUsage(before);
process.stdout.write(`${JSON.stringify({ mode, cpuMsPerObject: (used.user + used.system) / 1000 / Number(count) })}\n`);
store.close();
agent.destroy();
