/**
 * A trivial S3 stand-in for the request-cost study: every GET answers the same body with its MD5 as ETag, every
 * PUT answers the MD5 of what it received. Cheap on purpose, so the client's own CPU is what is measured.
 * Prints `{"port":N}` once listening. Usage: node --import tsx bench/fakeS3.ts BODY_BYTES
 */
import { createHash } from 'node:crypto';
import http from 'node:http';

const body = Buffer.alloc(Number(process.argv[2] ?? 40_000), 7);
const etag = `"${createHash('md5').update(body).digest('hex')}"`;
const server = http.createServer((request, response) => {
  if (request.method === 'GET' || request.method === 'HEAD') {
    response.writeHead(200, { 'content-length': body.length, etag, 'content-type': 'image/jpeg', 'cache-control': 'public, max-age=315576000, immutable' });
    response.end(request.method === 'GET' ? body : undefined);
    return;
  }
  const hash = createHash('md5');
  request.on('data', (chunk: Buffer) => hash.update(chunk));
  request.on('end', () => {
    response.writeHead(200, { etag: `"${hash.digest('hex')}"`, 'content-length': 0 });
    response.end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`));
process.on('SIGTERM', () => process.exit(0));
