/**
 * The part-size study of the bench: copies the given keys with mastosync's own copy path (copyOwnedObject over
 * two S3Stores) under one choice of single-PUT limit, part size and part queue, in a process of its own so
 * /usr/bin/time measures that choice alone. Usage: node --import tsx bench/partsChild.ts '<json>'.
 */
import { S3Store } from '../src/storage/s3.js';
import { copyOwnedObject } from '../src/sync/copy.js';
import { BoundedPool } from '../src/sync/pool.js';
import { mediaOriginal } from '../test/support/objects.js';

interface Spec {
  readonly source: { endpoint: string; bucket: string };
  readonly destination: { endpoint: string; bucket: string };
  readonly keys: readonly string[];
  readonly singlePutLimit: number;
  readonly partSize: number;
  readonly queueSize: number;
  readonly concurrency: number;
}

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const spec = JSON.parse(process.argv[2]!) as Spec;
const store = (place: { endpoint: string; bucket: string }, role: 'source' | 'destination') =>
  new S3Store(
    {
      type: 's3',
      bucket: place.bucket,
      region: 'us-east-1',
      endpoint: place.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    },
    { role, maxSockets: spec.concurrency * spec.queueSize + 4, singlePutLimit: spec.singlePutLimit, partSize: spec.partSize, queueSize: spec.queueSize },
  );
const source = store(spec.source, 'source');
const destination = store(spec.destination, 'destination');
const pool = new BoundedPool(spec.concurrency);
let failed = 0;
for (const key of spec.keys) {
  const object = mediaOriginal(key, { contentType: null, size: null });
  await pool.submit(async () => {
    const result = await copyOwnedObject(object, { source, destination, acl: 'public-read', retries: 5 });
    if (result.status !== 'copied') {
      failed += 1;
      console.error(`${key}: ${result.status} ${result.error ?? ''}`);
    }
  });
}
await pool.drain();
source.close();
destination.close();
process.exitCode = failed === 0 ? 0 : 1;
