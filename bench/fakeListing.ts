/**
 * A listing server of the bench's own: two buckets that each "hold" the media files of ids 1..N
 * (`media_attachments/files/<partition>/original/<id>.mp3`, 30 bytes, one MD5 ETag), generated on the fly so that a
 * million keys cost no storage. It answers what verify and run --skip-existing send: ListObjectsV2 (1000 keys a
 * page, continuation tokens, start-after), the one-key bucket check (ListObjects) and HEAD; every answer after
 * LATENCY_MS, as a provider far away would; `GET /__requests` gives the requests counted so far, by kind. Prints `{"port":N}` once listening.
 * Usage: node --import tsx bench/fakeListing.ts N LATENCY_MS
 */
import http from 'node:http';

const count = Number(process.argv[2] ?? 1_000_000);
const latencyMs = Number(process.argv[3] ?? 30);
const FOLDER = 'media_attachments/files/';
const ETAG = '"0123456789abcdef0123456789abcdef"';
const SIZE = 30;
const PAGE = 1000;

const partition = (id: number) => (String(id).padStart(9, '0').match(/\d{3}/g) ?? []).join('/');
const keyOf = (id: number) => `${FOLDER}${partition(id)}/original/${id}.mp3`;
/** Ids below 10^9 partition in id order: the first id whose key sorts after `key`. */
function firstIdAfter(key: string): number {
  if (key < FOLDER) return 1;
  if (!key.startsWith(FOLDER)) return count + 1;
  const match = /^(\d{3})\/(\d{3})\/(\d{3})\/original\/(\d+)\.mp3$/.exec(key.slice(FOLDER.length));
  if (match === null) {
    // Between keys: the first id whose key sorts after it, by bisection.
    let low = 1;
    let high = count + 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if (keyOf(middle) > key) high = middle;
      else low = middle + 1;
    }
    return low;
  }
  return Number(match[4]) + 1;
}

function listing(query: URLSearchParams, bucket: string): string {
  const prefix = query.get('prefix') ?? '';
  const maxKeys = Math.min(Number(query.get('max-keys') ?? PAGE), PAGE);
  const token = query.get('continuation-token');
  const startAfter = query.get('start-after') ?? query.get('marker') ?? '';
  let from = token !== null ? Number(Buffer.from(token, 'base64').toString()) : firstIdAfter(startAfter);
  // Only the media folder (or a prefix of it) holds keys.
  if (!(FOLDER.startsWith(prefix) || prefix.startsWith(FOLDER))) from = count + 1;
  const contents: string[] = [];
  let id = from;
  for (; id <= count && contents.length < maxKeys; id++) {
    const key = keyOf(id);
    if (!key.startsWith(prefix)) {
      if (key > prefix) id = count;
      continue;
    }
    contents.push(
      `<Contents><Key>${key}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;${ETAG.slice(1, -1)}&quot;</ETag><Size>${SIZE}</Size><StorageClass>STANDARD</StorageClass></Contents>`,
    );
  }
  const truncated = id <= count && contents.length === maxKeys;
  const next = truncated ? `<NextContinuationToken>${Buffer.from(String(id)).toString('base64')}</NextContinuationToken>` : '';
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${prefix}</Prefix><KeyCount>${contents.length}</KeyCount><MaxKeys>${maxKeys}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${next}${contents.join('')}</ListBucketResult>`;
}

/** Requests answered, by kind; `GET /__requests` reads them and starts counting afresh. */
let requests: Record<string, number> = {};

const server = http.createServer((request, response) => {
  const url = new URL(request.url ?? '/', 'http://localhost');
  if (url.pathname === '/__requests') {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(requests));
    requests = {};
    return;
  }
  const kind =
    request.method === 'GET' && url.searchParams.get('list-type') === '2'
      ? 'ListObjectsV2'
      : request.method === 'GET' && url.pathname.split('/').filter(Boolean).length === 1
        ? 'ListObjects'
        : request.method!;
  requests[kind] = (requests[kind] ?? 0) + 1;
  setTimeout(() => {
    const [, bucket = '', ...rest] = url.pathname.split('/');
    const key = decodeURIComponent(rest.join('/'));
    if (request.method === 'GET' && key === '') {
      const body = listing(url.searchParams, bucket);
      response.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
    } else if (request.method === 'HEAD') {
      const match = /\/original\/(\d+)\.mp3$/.exec(key);
      const id = match === null ? 0 : Number(match[1]);
      if (id >= 1 && id <= count && keyOf(id) === key)
        response
          .writeHead(200, { 'content-length': SIZE, etag: ETAG, 'content-type': 'audio/mpeg', 'cache-control': 'public, max-age=315576000, immutable' })
          .end();
      else response.writeHead(404).end();
    } else {
      // Anything else (a GET or PUT of an object) would be a bug of the bench's subject: refused, and counted.
      process.stderr.write(`fakeListing: refused ${request.method} ${request.url}\n`);
      request.resume();
      response.writeHead(501).end();
    }
  }, latencyMs);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as { port: number }).port })}\n`));
process.on('SIGTERM', () => process.exit(0));
