/**
 * The request-cost study: CPU per object (one GET and one streamed PUT, 40 KB, 16 in flight) of the same S3Store
 * either through the SDK's commands or through its direct requests (src/storage/s3Direct.ts), against the
 * trivial server of bench/fakeS3.ts. Only the copy loop is timed (process.cpuUsage), after a warm-up.
 * Usage: node --import tsx bench/requestCost.ts sdk|direct PORT OBJECTS; prints {"cpuMsPerObject":…}.
 */
import type { Readable } from 'node:stream';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { S3Store } from '../src/storage/s3.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const [mode, port, count] = process.argv.slice(2) as ['sdk' | 'direct', string, string];
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

async function copyOne(key: string): Promise<void> {
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
  const object = await store.client.send(new GetObjectCommand({ Bucket: 'bench', Key: key }));
  const contentMd5 = Buffer.from(object.ETag!.replaceAll('"', ''), 'hex').toString('base64');
  await store.client.send(
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
