/**
 * A batch delete answered 200 without a DeleteResult (a proxy's error page, an empty body) deleted nothing that
 * anyone knows of: prune must not count its keys as deleted (found in review: it counted every one).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { S3Store } from '../../src/storage/s3.js';

for (const [what, body] of [
  ['a proxy page', '<html><body>502 Bad Gateway</body></html>'],
  ['an empty body', ''],
] as const) {
  test(`a batch delete answered 200 with ${what} is not a deletion`, async () => {
    const server = createServer((request, response) => {
      request.resume();
      response.writeHead(200, { 'content-type': 'text/html', 'content-length': String(Buffer.byteLength(body)) }).end(body);
    });
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    const { port } = server.address() as AddressInfo;
    const store = new S3Store(
      {
        type: 's3',
        bucket: 'media',
        region: 'us-east-1',
        endpoint: `http://127.0.0.1:${port}`,
        forcePathStyle: true,
        credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret' },
      },
      { role: 'destination', maxSockets: 2, partSize: 8 * 1024 * 1024, queueSize: 1 },
    );
    try {
      await assert.rejects(store.delete(['cache/a.png', 'cache/b.png']), /DeleteResult/);
    } finally {
      store.close();
      server.close();
    }
  });
}
