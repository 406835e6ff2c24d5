/**
 * The floor under any Node copier (issue 15), run by the bucket scenarios as the tool `node-floor`: a bucket copied
 * as rclone's `copy --fast-list` copies it (the source listed, then a GET and a PUT per object), with nothing but
 * node:http on two keep-alive agents and a minimal SigV4 signature (unsigned payload, the signing key derived once a
 * day). No SDK, no database, no checkpoint, no progress: each GET's body is piped into its PUT, with
 * Content-Type, Cache-Control, the ACL and Content-MD5 (from a plain MD5 ETag) as mastosync writes them. Whatever
 * CPU and memory this spends, a Node copier of the same bucket spends too.
 *
 * The bench compiles it to plain JavaScript (no loader at start) and runs it as the launcher runs mastosync, with no
 * V8 flag on Node's line (which would cost every built-in module its code cache) and the young generation kept at
 * two 2 MiB semi-spaces from inside (as src/cli/heap.ts keeps mastosync's):
 * `node floorCopier.mjs --source URL/BUCKET --destination URL/BUCKET --concurrency N [--acl ACL] [--limit N]`, the keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. `--limit 0` lists and copies
 * nothing: the floor's start. A copy that fails is tried again from a fresh GET, twice at most (as rclone's low-level
 * retries do: the proxies answer 502 when s3rver closed a kept-alive connection under them); exits 1 if it still fails.
 */
import { createHash, createHmac } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import { parseArgs } from 'node:util';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

const { values } = parseArgs({
  options: {
    source: { type: 'string' },
    destination: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    acl: { type: 'string', default: '' },
    limit: { type: 'string', default: '' },
    region: { type: 'string', default: 'us-east-1' },
  },
});
const ACCESS_KEY = process.env.AWS_ACCESS_KEY_ID ?? '';
const SECRET_KEY = process.env.AWS_SECRET_ACCESS_KEY ?? '';
const REGION = values.region;
const concurrency = Number(values.concurrency);

interface Place {
  readonly host: string;
  readonly port: number;
  readonly hostHeader: string;
  readonly bucket: string;
  readonly agent: http.Agent;
}

function place(url: string | undefined): Place {
  if (url === undefined) throw new Error('--source and --destination are URL/BUCKET');
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 80),
    hostHeader: parsed.host,
    bucket: parsed.pathname.slice(1),
    agent: new http.Agent({ keepAlive: true, maxSockets: concurrency }),
  };
}
const source = place(values.source);
const destination = place(values.destination);

let signingDay = '';
let signingKey = Buffer.alloc(0);
const hmac = (key: Buffer | string, text: string) => createHmac('sha256', key).update(text).digest();

/** RFC 3986 as SigV4 wants it: encodeURIComponent leaves !'()* alone. */
const encode = (text: string) => encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** Signs with an unsigned payload; `headers` are lower-case and all signed. Returns them with the signature. */
function sign(method: string, where: Place, path: string, query: string, headers: Record<string, string>): Record<string, string> {
  const date = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = date.slice(0, 8);
  if (day !== signingDay) {
    signingKey = hmac(hmac(hmac(hmac(`AWS4${SECRET_KEY}`, day), REGION), 's3'), 'aws4_request');
    signingDay = day;
  }
  headers.host = where.hostHeader;
  headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
  headers['x-amz-date'] = date;
  const names = Object.keys(headers).sort();
  let canonical = `${method}\n${path}\n${query}\n`;
  for (const name of names) canonical += `${name}:${headers[name]}\n`;
  const signed = names.join(';');
  canonical += `\n${signed}\nUNSIGNED-PAYLOAD`;
  const scope = `${day}/${REGION}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${date}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
  const signature = createHmac('sha256', signingKey).update(toSign).digest('hex');
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${ACCESS_KEY}/${scope}, SignedHeaders=${signed}, Signature=${signature}`;
  return headers;
}

/** One signed request; resolves with the response once its head arrived, rejects on any status but 200. */
function send(method: string, where: Place, key: string, query: string, headers: Record<string, string>, body?: IncomingMessage): Promise<IncomingMessage> {
  const path = `/${where.bucket}/${key.split('/').map(encode).join('/')}`.replace(/\/$/, '');
  return new Promise((resolve, reject) => {
    const request = http.request(
      {
        host: where.host,
        port: where.port,
        method,
        path: query ? `${path}?${query}` : path,
        agent: where.agent,
        headers: sign(method, where, path || '/', query, headers),
      },
      (response) => {
        if (response.statusCode === 200) return resolve(response);
        response.resume();
        reject(new Error(`${method} ${path}: HTTP ${response.statusCode}`));
      },
    );
    request.on('error', reject);
    if (body === undefined) request.end();
    else {
      body.on('error', (error) => request.destroy(error));
      body.pipe(request);
    }
  });
}

function readAll(response: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    response.on('data', (chunk: Buffer) => chunks.push(chunk));
    response.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    response.on('error', reject);
  });
}

const XML_ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
/** The five named entities and numeric ones (s3rver writes an apostrophe as &#x27;). */
const unescapeXml = (text: string) =>
  text.includes('&')
    ? text.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, name: string) =>
        name[0] === '#' ? String.fromCodePoint(name[1] === 'x' || name[1] === 'X' ? parseInt(name.slice(2), 16) : Number(name.slice(1))) : XML_ENTITIES[name]!,
      )
    : text;

/** The source's keys, as `--fast-list` has them: ListObjectsV2 pages of 1000, no delimiter. */
async function listSource(): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    // Canonical query: names sorted, values encoded.
    const query = `${token === undefined ? '' : `continuation-token=${encode(token)}&`}list-type=2&max-keys=1000`;
    const page = await readAll(await send('GET', source, '', query, {}));
    for (const match of page.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(unescapeXml(match[1]!));
    const truncated = /<IsTruncated>true<\/IsTruncated>/.test(page);
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(page)?.[1];
    token = truncated && next !== undefined ? unescapeXml(next) : undefined;
  } while (token !== undefined);
  return keys;
}

let bytes = 0;

async function copy(key: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await copyOnce(key);
    } catch (error) {
      if (attempt === 2) throw error;
    }
  }
}

async function copyOnce(key: string): Promise<void> {
  const object = await send('GET', source, key, '', {});
  const headers: Record<string, string> = { 'content-length': object.headers['content-length'] ?? '0' };
  if (object.headers['content-type'] !== undefined) headers['content-type'] = object.headers['content-type'];
  if (object.headers['cache-control'] !== undefined) headers['cache-control'] = object.headers['cache-control'];
  if (values.acl) headers['x-amz-acl'] = values.acl;
  const md5 = /^"([0-9a-f]{32})"$/.exec(object.headers.etag ?? '')?.[1];
  if (md5 !== undefined) headers['content-md5'] = Buffer.from(md5, 'hex').toString('base64');
  const answer = await send('PUT', destination, key, '', headers, object).catch((error: unknown) => {
    object.destroy();
    throw error;
  });
  answer.resume();
  await new Promise((resolve, reject) => answer.on('end', resolve).on('error', reject));
  bytes += Number(headers['content-length']);
}

let youngGenerationStopped = false;
/**
 * mastosync's run stops V8 growing its young generation once its code is loaded, when it is two 2 MiB semi-spaces
 * (src/cli/heap.ts). This copier loads next to nothing, so its young generation is still at V8's first 1 MiB then:
 * it stops the growth once the copying has grown it to the same size, neither smaller (more collections) nor larger.
 */
function stopYoungGenerationAt2MiB(): void {
  if (youngGenerationStopped) return;
  const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space');
  if (young === undefined || young.space_size < 4 * 1024 * 1024) return;
  setFlagsFromString('--semi-space-growth-factor=1');
  youngGenerationStopped = true;
}

async function main(): Promise<void> {
  const keys = values.limit === '0' ? [] : await listSource();
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < keys.length; index = next++) {
      await copy(keys[index]!);
      stopYoungGenerationAt2MiB();
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  source.agent.destroy();
  destination.agent.destroy();
  process.stdout.write(`${JSON.stringify({ objects: keys.length, bytes })}\n`);
}

main().catch((error: unknown) => {
  console.error(`floor copier: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
