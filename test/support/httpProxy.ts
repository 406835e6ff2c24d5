/**
 * A loopback HTTP proxy (reverse proxy) to put in front of s3rver (or Azurite): records every request, adds latency and injects
 * faults. Bodies are piped chunk by chunk, never buffered. Keep-alive works on both sides.
 *
 * Point an S3Client at `endpoint` (path style) instead of the s3rver endpoint.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';

export type S3Operation =
  | 'ListBuckets'
  | 'CreateBucket'
  | 'HeadBucket'
  | 'DeleteBucket'
  | 'ListObjects'
  | 'ListObjectsV2'
  | 'ListMultipartUploads'
  | 'DeleteObjects'
  | 'GetObject'
  | 'HeadObject'
  | 'PutObject'
  | 'CopyObject'
  | 'DeleteObject'
  | 'GetObjectAcl'
  | 'PutObjectAcl'
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'UploadPartCopy'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'ListParts'
  | 'Other';

export interface RecordedRequest {
  /** Arrival order, from 1. */
  seq: number;
  method: string;
  /** The raw request target as received (path + '?' + query). */
  url: string;
  /** Raw path, still URL-encoded, without the query. */
  path: string;
  /** Raw query string without '?' ('' when none). */
  rawQuery: string;
  /** Decoded query parameters (last value wins; valueless params such as `uploads` map to ''). */
  query: Record<string, string>;
  /** Request headers, names lower-cased, repeated headers joined with ', '. */
  headers: Record<string, string>;
  /** Path style: the decoded first path segment. */
  bucket?: string;
  /** Path style: the decoded object key (everything after `/bucket/`). */
  key?: string;
  operation: S3Operation;
  /** The status sent to the client; undefined while running or when the connection was cut before a response. */
  status?: number;
  /** The fault injected into this request, if any (its `kind`), and whether it actually took effect. */
  fault?: FaultKind;
  faultApplied?: boolean;
  /** Bytes of request body received from the client, and of response body sent to it. */
  requestBytes: number;
  responseBytes: number;
  startedAt: number;
  finishedAt?: number;
}

export type Fault =
  /** Answer without forwarding, with an S3-style XML error body (and optional Retry-After header, in seconds). */
  | {
      kind: 'status';
      status: number;
      code: string;
      message?: string;
      retryAfter?: number | string;
      /** More elements of the error's XML, in order, as S3 adds them (`ArgumentName`, `ArgumentValue`, `Header`). */
      detail?: Record<string, string>;
    }
  /** Destroy the client socket without any response. */
  | { kind: 'reset' }
  /** Forward the upstream response head (incl. Content-Length) but cut its body after n bytes and destroy the socket. */
  | { kind: 'truncate'; afterBytes: number }
  /** XOR byte n of the response body with `mask` (default 0x01). */
  | { kind: 'flip'; atByte: number; mask?: number }
  /** Forward only the first n bytes of the request body upstream, then destroy both connections. */
  | { kind: 'truncate-request'; afterBytes: number }
  /** XOR byte n of the request body going upstream with `mask` (default 0x01). */
  | { kind: 'flip-request'; atByte: number; mask?: number }
  /**
   * Refuse the request body as nginx's client_max_body_size does: answer 413 with an HTML page at once, without
   * reading the body, and close the connection, so the client may see the answer or only a reset while sending.
   */
  | { kind: 'refuse-body' }
  /** Answer nothing, and keep the connection open: a request the store takes and never answers. */
  | { kind: 'silent' }
  /** Forward the response head and its body's first n bytes, then nothing more, the connection open: a body too slow to wait for. */
  | { kind: 'stall'; afterBytes: number };

export type FaultKind = Fault['kind'];
export type FaultFn = (req: Readonly<RecordedRequest>) => Fault | undefined;

export interface ProxyOptions {
  upstreamPort: number;
  upstreamHost?: string;
  /** Added before forwarding (or faulting) each request. */
  latencyMs?: number;
  fault?: FaultFn;
  /** Upstream response headers (lower case) to leave out of the answer to `request`: a provider that sends fewer. */
  dropResponseHeaders?: (request: Readonly<RecordedRequest>) => readonly string[];
  /**
   * Keep each object's canned ACL as S3 does and answer GetObjectAcl and PutObjectAcl from it (s3rver stores no ACL:
   * it refuses PutObjectAcl and answers GetObjectAcl with the owner's grant alone).
   */
  objectAcls?: boolean;
}

export interface UploadHeaders {
  operation: 'PutObject' | 'CopyObject' | 'CreateMultipartUpload';
  acl: string | undefined;
  contentType: string | undefined;
  cacheControl: string | undefined;
  storageClass: string | undefined;
  request: RecordedRequest;
}

export interface HttpProxy {
  port: number;
  endpoint: string;
  /** Every request, in arrival order (live array). */
  requests: RecordedRequest[];
  /**
   * Faults that took effect, by kind ('status', 'reset', 'truncate', 'flip', 'truncate-request', 'flip-request'),
   * plus 'status:<Code>' per status code. truncate/flip count only when the body reached the byte.
   */
  faults: Record<string, number>;
  /** Client connections accepted so far (keep-alive check: far fewer than requests). */
  readonly connections: number;
  /** Replace the fault function / latency at runtime. */
  setFault(fault: FaultFn | undefined): void;
  setLatency(ms: number): void;
  /** Forget recorded requests and fault counts. */
  reset(): void;
  /** All recorded requests on this decoded object key (optionally only in `bucket`). */
  requestsFor(key: string, bucket?: string): RecordedRequest[];
  /** The upload (PutObject, CopyObject, or CreateMultipartUpload) that created each key: last 2xx one wins. */
  uploadsByKey(bucket?: string): Map<string, UploadHeaders>;
  /** Key → the `x-amz-acl` header of the upload that created it (undefined when none was sent). */
  aclByKey(bucket?: string): Map<string, string | undefined>;
  /** With `objectAcls`: the canned ACL `key` has now (its upload's, or the last PutObjectAcl's), over every reset. */
  objectAcl(bucket: string, key: string): string | undefined;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'expect']);

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function classifyS3Request(
  method: string,
  bucket: string | undefined,
  key: string | undefined,
  query: Record<string, string>,
  headers: Record<string, string>,
): S3Operation {
  const q = (name: string) => Object.prototype.hasOwnProperty.call(query, name);
  if (!bucket) return method === 'GET' ? 'ListBuckets' : 'Other';
  if (key === undefined || key === '') {
    switch (method) {
      case 'PUT':
        return 'CreateBucket';
      case 'HEAD':
        return 'HeadBucket';
      case 'DELETE':
        return 'DeleteBucket';
      case 'POST':
        return q('delete') ? 'DeleteObjects' : 'Other';
      case 'GET':
        if (q('uploads')) return 'ListMultipartUploads';
        return query['list-type'] === '2' ? 'ListObjectsV2' : 'ListObjects';
      default:
        return 'Other';
    }
  }
  switch (method) {
    case 'GET':
      if (q('acl')) return 'GetObjectAcl';
      if (q('uploadId')) return 'ListParts';
      return 'GetObject';
    case 'HEAD':
      return 'HeadObject';
    case 'DELETE':
      return q('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    case 'POST':
      if (q('uploads')) return 'CreateMultipartUpload';
      if (q('uploadId')) return 'CompleteMultipartUpload';
      return 'Other';
    case 'PUT':
      if (q('acl')) return 'PutObjectAcl';
      if (q('partNumber') && q('uploadId')) return headers['x-amz-copy-source'] ? 'UploadPartCopy' : 'UploadPart';
      return headers['x-amz-copy-source'] ? 'CopyObject' : 'PutObject';
    default:
      return 'Other';
  }
}

function parseTarget(url: string): Pick<RecordedRequest, 'path' | 'rawQuery' | 'query' | 'bucket' | 'key'> {
  const qi = url.indexOf('?');
  const path = qi < 0 ? url : url.slice(0, qi);
  const rawQuery = qi < 0 ? '' : url.slice(qi + 1);
  const query: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(rawQuery)) query[k] = v;
  const rest = path.startsWith('/') ? path.slice(1) : path;
  const slash = rest.indexOf('/');
  const out: Pick<RecordedRequest, 'path' | 'rawQuery' | 'query' | 'bucket' | 'key'> = { path, rawQuery, query };
  if (rest !== '') {
    out.bucket = safeDecode(slash < 0 ? rest : rest.slice(0, slash));
    if (slash >= 0) out.key = safeDecode(rest.slice(slash + 1));
  }
  return out;
}

function flatHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const DEFAULT_MESSAGES: Record<string, string> = {
  SlowDown: 'Please reduce your request rate.',
  InternalError: 'We encountered an internal error. Please try again.',
  ServiceUnavailable: 'Service is unable to handle request.',
};

/**
 * Pipe `src` into `dst` chunk by chunk with backpressure, optionally flipping one byte and/or cutting after n bytes.
 * `onCut(part)` is called instead of writing when the cut point is reached (the caller flushes `part` and kills the
 * connections); `onFlip()` when the flip happens. Returns nothing; `dst.end()` is called when `src` ends uncut.
 */
function pipeWithFaults(
  src: Readable,
  dst: Writable,
  opts: {
    flipAt?: number;
    mask?: number;
    cutAfter?: number;
    onFlip?: () => void;
    onCut?: (part: Buffer) => void;
    onBytes?: (n: number) => void;
  },
): void {
  let pos = 0;
  let cut = false;
  const onDrain = () => src.resume();
  src.on('data', (chunk: Buffer) => {
    if (cut) return;
    let out = chunk;
    const len = chunk.length;
    if (opts.flipAt !== undefined && opts.flipAt >= pos && opts.flipAt < pos + len) {
      out = Buffer.from(chunk);
      out[opts.flipAt - pos] = (out[opts.flipAt - pos] ?? 0) ^ (opts.mask ?? 0x01);
      opts.onFlip?.();
    }
    if (opts.cutAfter !== undefined && pos + len > opts.cutAfter) {
      cut = true;
      const part = out.subarray(0, Math.max(0, opts.cutAfter - pos));
      opts.onBytes?.(part.length);
      src.pause();
      opts.onCut?.(part);
      return;
    }
    pos += len;
    opts.onBytes?.(len);
    if (!dst.write(out)) {
      src.pause();
      dst.once('drain', onDrain);
    }
  });
  src.on('end', () => {
    if (!cut) dst.end();
  });
}

export async function startProxy(options: ProxyOptions): Promise<HttpProxy> {
  const upstreamHost = options.upstreamHost ?? '127.0.0.1';
  let latencyMs = options.latencyMs ?? 0;
  let faultFn = options.fault;
  const requests: RecordedRequest[] = [];
  const faults: Record<string, number> = {};
  let seq = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity, maxFreeSockets: 256 });
  const sockets = new Set<Socket>();
  let closing = false;
  let connections = 0;

  const count = (rec: RecordedRequest, name: string, sub?: string) => {
    rec.faultApplied = true;
    faults[name] = (faults[name] ?? 0) + 1;
    if (sub) faults[`${name}:${sub}`] = (faults[`${name}:${sub}`] ?? 0) + 1;
  };

  /** bucket/key → canned ACL ('' when none was sent), with `objectAcls`. */
  const objectAcls = new Map<string, string>();
  const aclKey = (bucket: string, key: string) => `${bucket}/${key}`;
  const GROUPS: Record<string, string> = { 'public-read': 'AllUsers', 'public-read-write': 'AllUsers', 'authenticated-read': 'AuthenticatedUsers' };
  /** Answers an ACL request itself, or records an upload's ACL once it succeeded; true when it answered. */
  const answerAcl = (rec: RecordedRequest, req: http.IncomingMessage, res: http.ServerResponse): boolean => {
    const name = aclKey(rec.bucket!, rec.key!);
    if (rec.operation === 'PutObject' || rec.operation === 'CopyObject' || rec.operation === 'CreateMultipartUpload') {
      res.on('finish', () => {
        if (res.statusCode >= 200 && res.statusCode < 300) objectAcls.set(name, rec.headers['x-amz-acl'] ?? '');
      });
      return false;
    }
    const known = objectAcls.get(name);
    if (rec.operation === 'PutObjectAcl' && known !== undefined) {
      objectAcls.set(name, rec.headers['x-amz-acl'] ?? '');
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-length': 0 }).end());
      return true;
    }
    if (rec.operation === 'GetObjectAcl' && known !== undefined) {
      const group = GROUPS[known];
      const grant = (grantee: string, permission: string) => `<Grant>${grantee}<Permission>${permission}</Permission></Grant>`;
      const body = Buffer.from(
        '<?xml version="1.0" encoding="UTF-8"?><AccessControlPolicy xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Owner><ID>owner</ID></Owner><AccessControlList>' +
          grant('<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>owner</ID></Grantee>', 'FULL_CONTROL') +
          (group === undefined
            ? ''
            : grant(
                `<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://acs.amazonaws.com/groups/global/${group}</URI></Grantee>`,
                'READ',
              )) +
          '</AccessControlList></AccessControlPolicy>',
      );
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/xml', 'content-length': body.length }).end(body));
      return true;
    }
    if (rec.operation === 'PutObjectAcl' || rec.operation === 'GetObjectAcl') {
      const body = Buffer.from(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>',
      );
      req.resume();
      req.on('end', () => res.writeHead(404, { 'content-type': 'application/xml', 'content-length': body.length }).end(body));
      return true;
    }
    return false;
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, expectsContinue = false) => {
    const url = req.url ?? '/';
    const target = parseTarget(url);
    const headers = flatHeaders(req.headers);
    const rec: RecordedRequest = {
      seq: ++seq,
      method: req.method ?? 'GET',
      url,
      ...target,
      headers,
      operation: classifyS3Request(req.method ?? 'GET', target.bucket, target.key, target.query, headers),
      requestBytes: 0,
      responseBytes: 0,
      startedAt: Date.now(),
    };
    requests.push(rec);
    res.on('finish', () => {
      rec.status = res.statusCode;
      rec.finishedAt = Date.now();
    });

    let fault: Fault | undefined;
    try {
      fault = faultFn?.(rec);
    } catch (e) {
      res.writeHead(599, { 'content-type': 'text/plain' }).end(`proxy fault function threw: ${String(e)}`);
      return;
    }
    if (fault) {
      rec.fault = fault.kind;
      rec.faultApplied = false;
    }

    if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
    if (req.destroyed) return;
    // As nginx does: a body it will refuse is never asked for (no 100 Continue), any other is.
    if (expectsContinue && fault?.kind !== 'refuse-body') res.writeContinue();

    if (fault?.kind === 'silent') {
      count(rec, 'silent');
      return;
    }
    if (fault?.kind === 'reset') {
      count(rec, 'reset');
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'refuse-body') {
      count(rec, 'refuse-body');
      const page = Buffer.from(
        '<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n',
      );
      rec.status = 413;
      rec.responseBytes = page.length;
      res.writeHead(413, { 'content-type': 'text/html', 'content-length': page.length, connection: 'close' });
      // Without the body asked for (100-continue), nothing is left unread and the connection closes cleanly; else
      // the client is still sending, and closing under it is a reset the client may see before the answer.
      if (expectsContinue) res.end(page);
      else res.end(page, () => req.socket.destroy());
      return;
    }
    if (fault?.kind === 'status') {
      count(rec, 'status', fault.code);
      const requestId = randomBytes(8).toString('hex').toUpperCase();
      const body = Buffer.from(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
          `<Code>${xmlEscape(fault.code)}</Code>` +
          `<Message>${xmlEscape(fault.message ?? DEFAULT_MESSAGES[fault.code] ?? fault.code)}</Message>` +
          Object.entries(fault.detail ?? {})
            .map(([name, value]) => `<${name}>${xmlEscape(value)}</${name}>`)
            .join('') +
          `<Resource>${xmlEscape(target.path)}</Resource><RequestId>${requestId}</RequestId></Error>`,
      );
      const h: http.OutgoingHttpHeaders = {
        'content-type': 'application/xml',
        'content-length': body.length,
        'x-amz-request-id': requestId,
        // Azure's SDK reads the code from this header (its XML body has the same <Error><Code> shape); a HEAD has no body.
        'x-ms-error-code': fault.code,
      };
      if (fault.retryAfter !== undefined) h['retry-after'] = String(fault.retryAfter);
      // Read (and discard) the request body so the keep-alive connection stays usable.
      req.on('data', (c: Buffer) => {
        rec.requestBytes += c.length;
      });
      req.on('end', () => {
        rec.status = fault.status;
        res.writeHead(fault.status, h);
        if (rec.method === 'HEAD') res.end();
        else {
          rec.responseBytes = body.length;
          res.end(body);
        }
      });
      req.resume();
      return;
    }

    if (options.objectAcls && rec.bucket !== undefined && rec.key !== undefined && answerAcl(rec, req, res)) return;

    const fwdHeaders: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v !== undefined && !HOP_BY_HOP.has(k)) fwdHeaders[k] = v;
    }
    const upstream = http.request({
      host: upstreamHost,
      port: options.upstreamPort,
      method: rec.method,
      path: url,
      headers: fwdHeaders,
      agent,
    });
    let cutRequest = false;

    upstream.on('response', (ures) => {
      if (cutRequest || res.destroyed) {
        ures.resume();
        return;
      }
      const resHeaders: http.OutgoingHttpHeaders = {};
      const dropped = options.dropResponseHeaders?.(rec) ?? [];
      for (const [k, v] of Object.entries(ures.headers)) {
        if (v !== undefined && !HOP_BY_HOP.has(k) && k !== 'transfer-encoding' && !dropped.includes(k)) resHeaders[k] = v;
      }
      rec.status = ures.statusCode ?? 502;
      res.writeHead(rec.status, ures.statusMessage, resHeaders);
      const truncate = fault?.kind === 'truncate' || fault?.kind === 'stall' ? fault : undefined;
      const flip = fault?.kind === 'flip' ? fault : undefined;
      if (truncate) res.flushHeaders();
      ures.on('error', () => res.destroy());
      res.on('close', () => {
        if (!ures.complete) ures.destroy();
      });
      pipeWithFaults(ures, res, {
        ...(flip ? { flipAt: flip.atByte, mask: flip.mask ?? 0x01 } : {}),
        ...(truncate ? { cutAfter: truncate.afterBytes } : {}),
        onFlip: () => count(rec, 'flip'),
        onBytes: (n) => {
          rec.responseBytes += n;
        },
        onCut: (part) => {
          if (truncate?.kind === 'stall') {
            count(rec, 'stall');
            ures.destroy();
            if (part.length > 0) res.write(part);
            return;
          }
          count(rec, 'truncate');
          ures.destroy();
          const kill = () => {
            rec.finishedAt = Date.now();
            res.socket?.destroy();
            res.destroy();
          };
          if (part.length > 0) res.write(part, kill);
          else kill();
        },
      });
    });
    upstream.on('error', (err) => {
      if (cutRequest) return;
      if (!res.headersSent) {
        const msg = Buffer.from(`proxy: upstream error: ${err.message}`);
        res.writeHead(502, { 'content-type': 'text/plain', 'content-length': msg.length });
        res.end(msg);
      } else {
        res.destroy();
      }
    });
    req.on('error', () => upstream.destroy());
    req.on('aborted', () => upstream.destroy());

    const truncateReq = fault?.kind === 'truncate-request' ? fault : undefined;
    const flipReq = fault?.kind === 'flip-request' ? fault : undefined;
    pipeWithFaults(req, upstream, {
      ...(flipReq ? { flipAt: flipReq.atByte, mask: flipReq.mask ?? 0x01 } : {}),
      ...(truncateReq ? { cutAfter: truncateReq.afterBytes } : {}),
      onFlip: () => count(rec, 'flip-request'),
      onBytes: (n) => {
        rec.requestBytes += n;
      },
      onCut: (part) => {
        count(rec, 'truncate-request');
        cutRequest = true;
        const kill = () => {
          upstream.destroy();
          rec.finishedAt = Date.now();
          req.socket.destroy();
        };
        if (part.length > 0) upstream.write(part, kill);
        else kill();
      },
    });
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
      else res.destroy();
    });
  });
  server.on('checkContinue', (req, res) => {
    handle(req, res, true).catch((e: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e));
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 30_000;
  server.headersTimeout = 60_000;
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    if (closing) {
      s.destroy();
      return;
    }
    sockets.add(s);
    connections++;
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => {
    socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const matches = (r: RecordedRequest, bucket?: string) => bucket === undefined || r.bucket === bucket;

  const uploadsByKey = (bucket?: string): Map<string, UploadHeaders> => {
    const best = new Map<string, UploadHeaders & { ok: boolean }>();
    for (const r of requests) {
      if (r.key === undefined || !matches(r, bucket)) continue;
      if (r.operation !== 'PutObject' && r.operation !== 'CopyObject' && r.operation !== 'CreateMultipartUpload') continue;
      const ok = r.status !== undefined && r.status >= 200 && r.status < 300;
      const prev = best.get(r.key);
      if (prev && prev.ok && !ok) continue;
      best.set(r.key, {
        operation: r.operation,
        acl: r.headers['x-amz-acl'],
        contentType: r.headers['content-type'],
        cacheControl: r.headers['cache-control'],
        storageClass: r.headers['x-amz-storage-class'],
        request: r,
        ok,
      });
    }
    const out = new Map<string, UploadHeaders>();
    for (const [k, { ok: _ok, ...v }] of best) out.set(k, v);
    return out;
  };

  return {
    port,
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    faults,
    get connections() {
      return connections;
    },
    setFault(f) {
      faultFn = f;
    },
    setLatency(ms) {
      latencyMs = ms;
    },
    reset() {
      requests.length = 0;
      for (const k of Object.keys(faults)) delete faults[k];
    },
    requestsFor(key, bucket) {
      return requests.filter((r) => r.key === key && matches(r, bucket));
    },
    uploadsByKey,
    objectAcl(bucket, key) {
      const acl = objectAcls.get(aclKey(bucket, key));
      return acl === '' ? undefined : acl;
    },
    aclByKey(bucket) {
      const out = new Map<string, string | undefined>();
      for (const [k, u] of uploadsByKey(bucket)) out.set(k, u.acl);
      return out;
    },
    async stop() {
      if (closing) return;
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      agent.destroy();
      await closed;
    },
  };
}

/** A fault function that injects `fault` into the first `times` requests matching `match`. */
export function faultFirst(times: number, match: (r: Readonly<RecordedRequest>) => boolean, fault: Fault): FaultFn {
  let left = times;
  return (r) => {
    if (left > 0 && match(r)) {
      left--;
      return fault;
    }
    return undefined;
  };
}
