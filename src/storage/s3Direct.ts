/**
 * The requests a copy sends for every object (GET, PUT, CopyObject), and listing pages (ListObjectsV2), without the SDK's per-request middleware
 * stack, which costs about 0.7 ms of CPU per request, several times the HTTP work itself (docs/performance.md).
 * The URL comes from the client's own endpoint rules; the signature from a SigV4 signer of ours (the client's for
 * schemes other than plain SigV4); the request goes through `handler` (S3Store gives s3Http.ts's node:http
 * transport on the client's own agents, with the SDK handler's timeouts, abort and error shapes). Bucket checks,
 * multipart uploads and deletes still go through the SDK, and listings where the signer is the SDK's.
 *
 * An answer other than 2xx becomes an S3ResponseError (s3Errors.ts), shaped like the SDK's S3ServiceException (name = the S3 error code,
 * `$metadata.httpStatusCode`, `$response`), so retry and not-found handling cannot tell the difference.
 */
import { createHash, createHmac } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { S3StoreConfig } from './s3Config.js';
import type { DirectResponse, HttpHandler, OutgoingRequest } from './s3Http.js';
import { responseError } from './s3Errors.js';

interface Signer {
  sign(request: OutgoingRequest, options: { signingDate: Date; signingRegion?: string; signingService?: string }): Promise<OutgoingRequest>;
}

type Credentials = Awaited<ReturnType<ResolvedConfig['credentials']>>;

/** The parts of the SDK's resolved client config used here (all public). */
interface ResolvedConfig {
  endpointProvider(params: Record<string, unknown>): {
    url: URL;
    properties?: { authSchemes?: Array<{ name?: string; signingRegion?: string; signingName?: string }> };
  };
  signer(authScheme?: unknown): Promise<Signer>;
  /** The client's credential provider (it caches and refreshes). */
  credentials(): Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken?: string; expiration?: Date }>;
  requestHandler: HttpHandler;
  systemClockOffset?: number;
}

interface Target {
  readonly url: URL;
  /** The URL's path without its last slash: `/bucket` in path style, '' on a virtual host. */
  readonly base: string;
  readonly signer: Signer;
  readonly signingRegion?: string;
  readonly signingService: string;
}

export class DirectRequests {
  private target: Promise<Target> | undefined;
  /** The target once resolved: each request then starts without an await. */
  private resolved: Target | undefined;
  /**
   * For requests that ask first (`expect: 100-continue`): the client's handler has agents of its own, and the SDK then
   * sends the body at once without waiting for the server's go-ahead, racing a refusal (413) into a reset.
   */
  private askingFirst: HttpHandler | undefined;
  /** Awaited before each request (a request-rate limit); rejects if `signal` aborts first. */
  gate?: (signal?: AbortSignal) => Promise<void>;

  constructor(
    private readonly client: S3Client,
    private readonly config: Pick<S3StoreConfig, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>,
    /** What sends the requests; by default the client's own HTTP handler. */
    private readonly handler: HttpHandler = (client.config as unknown as ResolvedConfig).requestHandler,
  ) {}

  /** GET of a whole object; the body streams. */
  get(key: string, signal?: AbortSignal): Promise<DirectResponse> {
    return this.send('GET', key, {}, undefined, signal);
  }

  /** A single PUT streaming `body`; `headers` must carry content-length. Resolves once the server answered. */
  async put(key: string, body: Readable, headers: Record<string, string>, signal?: AbortSignal): Promise<DirectResponse> {
    const response = await this.send('PUT', key, headers, body, signal);
    response.body.resume();
    return response;
  }

  /**
   * CopyObject from `sourceBucket`/`sourceKey` (on the same provider) to `key` of this bucket. S3 may answer 200
   * and still have failed (an <Error> body), so the body is read.
   */
  async copy(sourceBucket: string, sourceKey: string, key: string, headers: Record<string, string>, signal?: AbortSignal): Promise<DirectResponse> {
    const response = await this.send('PUT', key, { ...headers, 'x-amz-copy-source': `${sourceBucket}/${encodeKey(sourceKey)}` }, undefined, signal);
    const text = await readText(response.body);
    if (text.includes('<Error>')) throw responseError(500, response.headers, text);
    return response;
  }

  /**
   * Whether list() may be used: only where the signature is ours (plain SigV4), whose canonical query we build;
   * otherwise (AWS's multi-region access points) the caller lists through the SDK.
   */
  async listsDirectly(): Promise<boolean> {
    return (await (this.target ??= this.resolveTarget())).signer instanceof UnsignedPayloadSigner;
  }

  /**
   * One ListObjectsV2 page (up to 1000 keys) as the XML the server answered; s3List.ts reads what a listing
   * needs from it. `token` continues a listing, `startAfter` starts one after a key (S3 takes either).
   */
  async list(prefix: string, token: string | undefined, startAfter: string | undefined, signal?: AbortSignal): Promise<Buffer> {
    const query: Record<string, string> = { 'list-type': '2', prefix };
    if (token !== undefined) query['continuation-token'] = token;
    if (startAfter !== undefined) query['start-after'] = startAfter;
    // The bucket's own path ('' as the key): `/bucket/` in path style, `/` on a virtual host, as the SDK sends it.
    const response = await this.send('GET', '', {}, undefined, signal, query);
    return readAll(response.body);
  }

  private async send(
    method: string,
    key: string,
    headers: Record<string, string>,
    body: Readable | undefined,
    signal?: AbortSignal,
    query: Record<string, string> = {},
  ): Promise<DirectResponse> {
    // Each await is a turn of the microtask queue and a promise: a request awaits only what is not known yet.
    const target = this.resolved ?? (this.resolved = await (this.target ??= this.resolveTarget()));
    if (this.gate !== undefined) await this.gate(signal);
    const { url } = target;
    const config = this.client.config as unknown as ResolvedConfig;
    const request: OutgoingRequest = {
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port === '' ? undefined : Number(url.port),
      method,
      path: `${target.base}/${encodeKey(key)}`,
      query,
      // S3 takes an unsigned payload, so a streamed body needs no hashing before it is sent.
      headers: { ...headers, host: url.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' },
      body,
    };
    const options = {
      signingDate: new Date(Date.now() + (config.systemClockOffset ?? 0)),
      signingRegion: target.signingRegion,
      signingService: target.signingService,
    };
    const { signer } = target;
    const signed =
      signer instanceof UnsignedPayloadSigner
        ? (signer.signNow(request, options) ?? (await signer.sign(request, options)))
        : await signer.sign(request, options);
    const handler =
      headers.expect === '100-continue'
        ? (this.askingFirst ??= new NodeHttpHandler({ connectionTimeout: 10_000, socketTimeout: 60_000 }) as unknown as HttpHandler)
        : this.handler;
    const { response } = await handler.handle(signed, { abortSignal: signal });
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    const text = await readText(response.body).catch(() => '');
    const error = responseError(response.statusCode, response.headers, text);
    if (error.name === 'RequestTimeTooSkewed') this.correctClock(response.headers.date);
    throw error;
  }

  /** The bucket's URL and signing parameters, as the SDK's endpoint rules give them for this config. */
  private async resolveTarget(): Promise<Target> {
    const config = this.client.config as unknown as ResolvedConfig;
    const endpoint = config.endpointProvider({
      Bucket: this.config.bucket,
      Region: this.config.region,
      Endpoint: this.config.endpoint,
      ForcePathStyle: this.config.forcePathStyle,
      UseFIPS: false,
      UseDualStack: false,
      Accelerate: false,
    });
    const scheme = endpoint.properties?.authSchemes?.[0];
    const signingRegion = scheme?.signingRegion ?? this.config.region;
    const signingService = scheme?.signingName ?? 's3';
    // Plain SigV4 (every provider but AWS's multi-region access points) is signed here: the SDK's signer costs
    // several times as much per request (docs/performance.md). Anything else keeps the SDK's.
    const signer =
      scheme === undefined || scheme.name === 'sigv4'
        ? new UnsignedPayloadSigner(() => config.credentials(), signingRegion, signingService)
        : await config.signer(scheme);
    return { url: endpoint.url, base: endpoint.url.pathname.replace(/\/$/, ''), signer, signingRegion, signingService };
  }

  /** As the SDK does: sign later requests with the server's clock. */
  private correctClock(date: string | undefined): void {
    const server = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isNaN(server)) (this.client.config as unknown as ResolvedConfig).systemClockOffset = server - Date.now();
  }
}

/** Headers never signed, as the SDK's signer leaves them out (a proxy on the way may change them). */
const UNSIGNABLE = new Set([
  'authorization',
  'cache-control',
  'connection',
  'expect',
  'from',
  'keep-alive',
  'max-forwards',
  'pragma',
  'referer',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'user-agent',
  'x-amzn-trace-id',
]);

/**
 * AWS Signature Version 4 in headers, for S3 requests whose payload is unsigned (x-amz-content-sha256:
 * UNSIGNED-PAYLOAD) and a query only on listings: one SHA-256 and one HMAC per request, the signing key derived once
 * a day. The path is signed as sent (S3 encodes it once and never normalises it). test/unit/s3Direct.test.ts
 * checks each signature against one recomputed from the specification.
 */
class UnsignedPayloadSigner implements Signer {
  private key: { readonly scope: string; readonly secret: string; readonly value: Buffer } | undefined;
  /**
   * The provider's last credentials and until when they sign without asking it again (its promise costs a turn of
   * the microtask queue per request): forever for keys without an expiry, else until five minutes before it, when
   * the SDK's provider refreshes them.
   */
  private held: { readonly credentials: Credentials; readonly until: number } | undefined;

  constructor(
    private readonly credentials: ResolvedConfig['credentials'],
    private readonly region: string,
    private readonly service: string,
  ) {}

  async sign(request: OutgoingRequest, options: { signingDate: Date }): Promise<OutgoingRequest> {
    const credentials = await this.credentials();
    const { expiration } = credentials;
    this.held = { credentials, until: expiration === undefined ? Number.POSITIVE_INFINITY : expiration.getTime() - 5 * 60_000 };
    return this.signWith(credentials, request, options);
  }

  /** Signs at once with the credentials held; undefined when there are none or they are due for a refresh (sign()). */
  signNow(request: OutgoingRequest, options: { signingDate: Date }): OutgoingRequest | undefined {
    const held = this.held;
    return held !== undefined && Date.now() < held.until ? this.signWith(held.credentials, request, options) : undefined;
  }

  /** Signs `request` in place (its headers replaced by the signed ones) and returns it. */
  private signWith({ accessKeyId, secretAccessKey, sessionToken }: Credentials, request: OutgoingRequest, options: { signingDate: Date }): OutgoingRequest {
    const time = options.signingDate.toISOString().replace(/[-:]|\.\d{3}/g, '');
    const scope = `${time.slice(0, 8)}/${this.region}/${this.service}/aws4_request`;
    const headers: Record<string, string> = { ...request.headers, 'x-amz-date': time };
    if (sessionToken !== undefined) headers['x-amz-security-token'] = sessionToken;
    let signedHeaders = '';
    let lines = '';
    for (const name of Object.keys(headers)
      .map((header) => header.toLowerCase())
      .sort()) {
      if (UNSIGNABLE.has(name) || name.startsWith('proxy-') || name.startsWith('sec-')) continue;
      signedHeaders += signedHeaders === '' ? name : `;${name}`;
      lines += `${name}:${canonicalValue(headerValue(headers, name))}\n`;
    }
    const canonical = `${request.method}\n${request.path}\n${canonicalQuery(request.query)}\n${lines}\n${signedHeaders}\n${headerValue(headers, 'x-amz-content-sha256')}`;
    const toSign = `AWS4-HMAC-SHA256\n${time}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
    const signature = createHmac('sha256', this.signingKey(scope, secretAccessKey)).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    request.headers = headers;
    return request;
  }

  private signingKey(scope: string, secret: string): Buffer {
    if (this.key?.scope === scope && this.key.secret === secret) return this.key.value;
    let value: Buffer = Buffer.from(`AWS4${secret}`);
    for (const part of scope.split('/')) value = createHmac('sha256', value).update(part).digest();
    this.key = { scope, secret, value };
    return value;
  }
}

/** A header value as SigV4 signs it: trimmed, runs of spaces as one (tested first: most values have none to fold). */
function canonicalValue(value: string): string {
  return /^\s|\s$|\s\s|[\t\n\r\f\v]/.test(value) ? value.trim().replace(/\s+/g, ' ') : value;
}

/** SigV4's canonical query: names and values encoded as RFC 3986 asks (encodeKey with slashes too), sorted by name. */
function canonicalQuery(query: Readonly<Record<string, string>>): string {
  return Object.entries(query)
    .map(([name, value]) => [encodeQueryPart(name), encodeQueryPart(value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/** A query name or value encoded as S3 and SigV4 expect: every character but RFC 3986's unreserved ones. */
export function encodeQueryPart(text: string): string {
  return encodeKey(text).replaceAll('/', '%2F');
}

/** A header's value whatever the case of its name. */
function headerValue(headers: Readonly<Record<string, string>>, lowerCaseName: string): string {
  if (headers[lowerCaseName] !== undefined) return headers[lowerCaseName];
  return Object.entries(headers).find(([name]) => name.toLowerCase() === lowerCaseName)?.[1] ?? '';
}

/** Each segment percent-encoded as S3 (and the SDK) expects, slashes kept: RFC 3986 unreserved characters stay. */
export function encodeKey(key: string): string {
  // Most keys need nothing beyond encodeURIComponent: skip the second pass for them (it runs twice per object).
  const encoded = encodeURIComponent(key).replaceAll('%2F', '/');
  return /[!'()*]/.test(encoded) ? encoded.replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`) : encoded;
}

/** Whether a key travels percent-encoded (as in x-amz-copy-source), where servers have been seen to decode it wrongly. */
export function needsEncoding(key: string): boolean {
  return encodeKey(key) !== key;
}

/** A whole body's bytes. */
async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const MAX_ERROR_BODY = 64 * 1024;

async function readText(body: Readable): Promise<string> {
  let text = '';
  for await (const chunk of body) if (text.length < MAX_ERROR_BODY) text += String(chunk);
  return text;
}
