/**
 * The requests the S3 backend sends itself — each object's GET, single PUT, HEAD and CopyObject, listing pages, the
 * bucket check, deletes (one key, or DeleteObjects' batch) and the abort of a multipart upload — without the SDK's
 * per-request middleware stack, which costs about 0.7 ms of CPU per request, several times the HTTP work itself
 * (docs/performance.md), and without loading the SDK at all where it is not needed (17 MB of RSS, 0.16 s of CPU).
 * The URL comes from our endpoint rules (s3Endpoint.ts), the signature from a SigV4 signer of ours; a configuration
 * those rules do not cover takes the SDK's endpoint rules and signer (`sdkRules`, loaded then). The request goes
 * through `handler` (S3Store gives s3Http.ts's node:http transport on its keep-alive agents, with the SDK handler's
 * timeouts, abort and error shapes). Multipart uploads and copies in parts go through the SDK (s3Sdk.ts).
 *
 * An answer other than 2xx becomes an S3ResponseError (s3Errors.ts), shaped like the SDK's S3ServiceException (name =
 * the S3 error code, `$metadata.httpStatusCode`, `$response`), so retry and not-found handling cannot tell the difference.
 */
import { createHash, createHmac } from 'node:crypto';
import { Readable } from 'node:stream';
import type { S3StoreConfig } from './s3Config.js';
import { bucketUrl } from './s3Endpoint.js';
import type { DirectResponse, HttpHandler, OutgoingRequest } from './s3Http.js';
import { responseError } from './s3Errors.js';

interface Signer {
  sign(request: OutgoingRequest, options: { signingDate: Date; signingRegion?: string; signingService?: string }): Promise<OutgoingRequest>;
}

interface Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
  readonly expiration?: Date;
}

/** Gives the credentials to sign with; a provider that refreshes them gives each with its expiry. */
export type CredentialProvider = () => Promise<Credentials>;

/** The parts of the SDK's resolved client config used where our endpoint rules end (all public). */
export interface SdkRules {
  endpointProvider(params: Record<string, unknown>): {
    url: URL;
    properties?: { authSchemes?: Array<{ name?: string; signingRegion?: string; signingName?: string }> };
  };
  signer(authScheme?: unknown): Promise<Signer>;
}

/**
 * The credentials of the config when it has keys; else the AWS default chain (environment, profile, container or
 * instance role), loaded when first asked: only its provider, not the client. It caches and refreshes what it gives.
 */
export function credentialProvider({ credentials, region }: Pick<S3StoreConfig, 'credentials' | 'region'>): CredentialProvider {
  if (credentials !== undefined) return () => Promise.resolve(credentials);
  let chain: Promise<CredentialProvider> | undefined;
  return async () => {
    // The region as the SDK's client hands it: a role's STS client must be in the bucket's partition.
    // Silent, as the SDK's client was given it: its warnings (AWS_PROFILE beside AWS_ACCESS_KEY_ID) went to the console, into cron mail.
    chain ??= import('@aws-sdk/credential-provider-node').then(({ defaultProvider }) =>
      defaultProvider({ parentClientConfig: { region }, logger: SILENT_SDK_LOGGER }),
    );
    return (await chain)();
  };
}

/** A logger for the SDK's parts that says nothing: what matters reaches our log as errors. */
export const SILENT_SDK_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

interface Target {
  /** protocol, host and port of every request; the URL's path is `base`. */
  readonly url: URL;
  /** The URL's parts every request names, read once: each of URL's getters makes a new string per call. */
  readonly protocol: string;
  readonly hostname: string;
  readonly port?: number;
  /** host[:port], the Host header. */
  readonly host: string;
  /** The URL's path without its last slash: `/bucket` in path style, '' on a virtual host. */
  readonly base: string;
  readonly signer: Signer;
  readonly signingRegion?: string;
  readonly signingService: string;
}

/** Handed to the gate for a request that must go even after a hard stop: the abort of a multipart upload cleans up. */
export const NEVER_ABORTED = new AbortController().signal;

interface SendOptions {
  readonly headers?: Record<string, string>;
  readonly body?: Readable | Buffer;
  readonly signal?: AbortSignal;
  readonly query?: Record<string, string>;
  /** Waits for the rate gate even after a hard stop (cleanup). */
  readonly mustGo?: boolean;
}

export class DirectRequests {
  private target: Promise<Target> | undefined;
  /** The target once resolved: each request then starts without an await. */
  private resolved: Target | undefined;
  /** Milliseconds to add to our clock to sign with the server's, learnt from a RequestTimeTooSkewed (as the SDK does). */
  clockOffset = 0;
  /**
   * For requests that ask first (`expect: 100-continue`): the SDK's handler with agents of its own, which sends the
   * body only after the server's go-ahead (our transport on a shared agent would race a refusal, 413, into a reset).
   */
  private askingFirst: Promise<HttpHandler> | undefined;
  /** Awaited before each request (a request-rate limit); rejects if `signal` aborts first. */
  gate?: (signal?: AbortSignal) => Promise<void>;

  constructor(
    private readonly config: Pick<S3StoreConfig, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>,
    /** What sends the requests. */
    private readonly handler: HttpHandler,
    private readonly credentials: CredentialProvider,
    /** The SDK's endpoint rules and signer, asked only for a configuration bucketUrl() does not cover. */
    private readonly sdkRules: () => Promise<SdkRules>,
  ) {}

  /** GET of a whole object; the body streams. */
  get(key: string, signal?: AbortSignal): Promise<DirectResponse> {
    return this.send('GET', key, { signal });
  }

  /** HEAD of an object: its headers. */
  async head(key: string, signal?: AbortSignal): Promise<DirectResponse> {
    const response = await this.send('HEAD', key, { signal });
    response.body.resume();
    return response;
  }

  /** A single PUT of `body`, streamed or held whole; `headers` must carry content-length. Resolves once the server answered. */
  async put(key: string, body: Readable | Buffer, headers: Record<string, string>, signal?: AbortSignal): Promise<DirectResponse> {
    const response = await this.send('PUT', key, { headers, body, signal });
    response.body.resume();
    return response;
  }

  /** DeleteObject of one key (S3 answers 204 whether it existed or not; some providers 404). */
  async delete(key: string, signal?: AbortSignal): Promise<void> {
    (await this.send('DELETE', key, { signal })).body.resume();
  }

  /**
   * DeleteObjects of up to 1000 keys, in quiet mode (only failures are answered), with Content-MD5 as S3 and most
   * providers require (the SDK would send a CRC32 header instead, which some refuse). Every key must be one XML
   * carries as it is (S3Store sends the others alone). Resolves to the answer's XML (a DeleteResult).
   */
  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<Buffer> {
    const objects = keys.map((key) => `<Object><Key>${escapeXml(key)}</Key></Object>`).join('');
    const xml = Buffer.from(
      `<?xml version="1.0" encoding="UTF-8"?><Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet>${objects}</Delete>`,
    );
    const headers = {
      'content-type': 'application/xml',
      'content-length': String(xml.length),
      'content-md5': createHash('md5').update(xml).digest('base64'),
      // A small body: signed, as the SDK signs it, rather than sent as an unsigned payload.
      'x-amz-content-sha256': createHash('sha256').update(xml).digest('hex'),
    };
    const response = await this.send('POST', '', { headers, body: Readable.from([xml]), signal, query: { delete: '' } });
    const text = await readAll(response.body);
    // A failure of the whole request that S3 answered late, with 200; or no DeleteResult at all (a proxy's page, an
    // empty body), which would otherwise read as every key deleted.
    if (!text.includes('<DeleteResult'))
      throw responseError(
        500,
        response.headers,
        text.includes('<Error>') ? text.toString() : '<Code>NoDeleteResult</Code><Message>the answer to DeleteObjects held no DeleteResult</Message>',
      );
    return text;
  }

  /** GetObjectAcl: the AccessControlPolicy XML. */
  async getAcl(key: string, signal?: AbortSignal): Promise<string> {
    return readText((await this.send('GET', key, { signal, query: { acl: '' } })).body);
  }

  /** PutObjectAcl with a canned ACL (no body). */
  async putAcl(key: string, acl: string, signal?: AbortSignal): Promise<void> {
    (await this.send('PUT', key, { headers: { 'x-amz-acl': acl, 'content-length': '0' }, signal, query: { acl: '' } })).body.resume();
  }

  /** AbortMultipartUpload: sent even after a hard stop (the parts cost storage until it is). */
  async abortUpload(key: string, uploadId: string): Promise<void> {
    (await this.send('DELETE', key, { query: { uploadId }, mustGo: true })).body.resume();
  }

  /**
   * CopyObject from `sourceBucket`/`sourceKey` (on the same provider) to `key` of this bucket. S3 may answer 200
   * and still have failed (an <Error> body), so the body is read.
   */
  async copy(sourceBucket: string, sourceKey: string, key: string, headers: Record<string, string>, signal?: AbortSignal): Promise<DirectResponse> {
    const response = await this.send('PUT', key, { headers: { ...headers, 'x-amz-copy-source': `${sourceBucket}/${encodeKey(sourceKey)}` }, signal });
    const text = await readText(response.body);
    if (text.includes('<Error>')) throw responseError(500, response.headers, text);
    return response;
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
    const response = await this.send('GET', '', { signal, query });
    return readAll(response.body);
  }

  /**
   * A ListObjects (version 1) page of one key under `prefix`: the bucket check. Version 1, because s3rver encrypts
   * a version-2 page token with DES, which Node 20's OpenSSL lacks: it answers 500 for any bucket of two keys or more.
   */
  async listOne(prefix: string | undefined, signal?: AbortSignal): Promise<void> {
    const query: Record<string, string> = { 'max-keys': '1' };
    if (prefix !== undefined) query.prefix = prefix;
    await readAll((await this.send('GET', '', { signal, query })).body);
  }

  private async send(method: string, key: string, options: SendOptions): Promise<DirectResponse> {
    const { headers = NO_FIELDS, body, signal, query = NO_FIELDS } = options;
    // Each await is a turn of the microtask queue and a promise: a request awaits only what is not known yet.
    const target = this.resolved ?? (this.resolved = await (this.target ??= this.resolveTarget()));
    if (this.gate !== undefined) await this.gate(options.mustGo === true ? NEVER_ABORTED : signal);
    const request: OutgoingRequest = {
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method,
      path: `${target.base}/${encodeKey(key)}`,
      query,
      // S3 takes an unsigned payload, so a streamed body needs no hashing before it is sent.
      headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...headers, host: target.host },
      body,
    };
    const { signer } = target;
    const now = Date.now() + this.clockOffset;
    // Our signer signs at once from the time alone (no Date, no options object per request) while its keys hold.
    const signed =
      (signer instanceof SigV4Signer ? signer.signNow(request, now) : undefined) ??
      (await signer.sign(request, { signingDate: new Date(now), signingRegion: target.signingRegion, signingService: target.signingService }));
    const handler = headers.expect === '100-continue' ? await (this.askingFirst ??= askingFirstHandler()) : this.handler;
    const { response } = await handler.handle(signed, { abortSignal: signal });
    if (response.statusCode >= 200 && response.statusCode < 300) return response;
    const text = await readText(response.body).catch(() => '');
    const error = responseError(response.statusCode, response.headers, text);
    if (error.name === 'RequestTimeTooSkewed') this.correctClock(response.headers.date);
    throw error;
  }

  /** The bucket's URL and signing parameters: by our rules, or as the SDK's endpoint rules give them. */
  private async resolveTarget(): Promise<Target> {
    const url = bucketUrl(this.config);
    if (url !== undefined) {
      const signer = new SigV4Signer(this.credentials, this.config.region, 's3');
      return { ...urlParts(url), signer, signingRegion: this.config.region, signingService: 's3' };
    }
    const rules = await this.sdkRules();
    const endpoint = rules.endpointProvider({
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
    // Plain SigV4 (every provider but AWS's multi-region access points and directory buckets) is signed here: the
    // SDK's signer costs several times as much per request (docs/performance.md). Anything else keeps the SDK's.
    const signer =
      scheme === undefined || scheme.name === 'sigv4' ? new SigV4Signer(this.credentials, signingRegion, signingService) : await rules.signer(scheme);
    return { ...urlParts(endpoint.url), signer, signingRegion, signingService };
  }

  /** As the SDK does: sign later requests with the server's clock. */
  private correctClock(date: string | undefined): void {
    const server = date === undefined ? Number.NaN : Date.parse(date);
    if (!Number.isNaN(server)) this.clockOffset = server - Date.now();
  }
}

/** No headers, or no query: one shared empty record rather than a new one per request. */
const NO_FIELDS: Readonly<Record<string, string>> = Object.freeze({});

/** What every request to `url` names of it. */
function urlParts(url: URL): Pick<Target, 'url' | 'protocol' | 'hostname' | 'port' | 'host' | 'base'> {
  return {
    url,
    protocol: url.protocol,
    hostname: url.hostname,
    port: url.port === '' ? undefined : Number(url.port),
    host: url.host,
    base: url.pathname.replace(/\/$/, ''),
  };
}

/** The SDK's handler, loaded for the rare request that asks first (after a reset while sending that object). */
async function askingFirstHandler(): Promise<HttpHandler> {
  const { NodeHttpHandler } = await import('@smithy/node-http-handler');
  return new NodeHttpHandler({ connectionTimeout: 10_000, socketTimeout: 60_000 }) as unknown as HttpHandler;
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
 * AWS Signature Version 4 in headers, with the payload hash the request carries in x-amz-content-sha256
 * (UNSIGNED-PAYLOAD for objects, the body's SHA-256 for a batch delete) and its query, if any: one SHA-256 and one
 * HMAC per request, the signing key derived once a day. The path is signed as sent (S3 encodes it once and never normalises it). test/unit/s3Direct.test.ts
 * checks each signature against one recomputed from the specification.
 */
class SigV4Signer implements Signer {
  private key: { readonly scope: string; readonly secret: string; readonly value: Buffer } | undefined;
  /**
   * The provider's last credentials and until when they sign without asking it again (its promise costs a turn of
   * the microtask queue per request): forever for keys without an expiry, else until five minutes before it, when
   * the SDK's provider refreshes them.
   */
  private held: { readonly credentials: Credentials; readonly until: number } | undefined;
  private stamp: { readonly second: number; readonly time: string; readonly scope: string } | undefined;

  constructor(
    private readonly credentials: CredentialProvider,
    private readonly region: string,
    private readonly service: string,
  ) {}

  async sign(request: OutgoingRequest, options: { signingDate: Date }): Promise<OutgoingRequest> {
    const credentials = await this.credentials();
    const { expiration } = credentials;
    this.held = { credentials, until: expiration === undefined ? Number.POSITIVE_INFINITY : expiration.getTime() - 5 * 60_000 };
    return this.signWith(credentials, request, options.signingDate.getTime());
  }

  /**
   * Signs at once, as at `time` (ms since the epoch), with the credentials held; undefined when there are none or
   * they are due for a refresh (sign()).
   */
  signNow(request: OutgoingRequest, time: number): OutgoingRequest | undefined {
    const held = this.held;
    return held !== undefined && Date.now() < held.until ? this.signWith(held.credentials, request, time) : undefined;
  }

  /**
   * Signs `request` in place (x-amz-date, the token and authorization added to its headers) and returns it. Our
   * callers name every header in lower case, so that a request's canonical headers are its own, sorted by name; a
   * name in another case is lower-cased first (of two names differing only in case, the later one is sent).
   */
  private signWith({ accessKeyId, secretAccessKey, sessionToken }: Credentials, request: OutgoingRequest, at: number): OutgoingRequest {
    const { time, scope } = this.stampOf(at);
    const headers = hasUpperCaseName(request.headers) ? lowerCaseNames(request.headers) : request.headers;
    headers['x-amz-date'] = time;
    if (sessionToken !== undefined) headers['x-amz-security-token'] = sessionToken;
    let signedHeaders = '';
    let lines = '';
    for (const name of sortedNames(headers)) {
      if (UNSIGNABLE.has(name) || name.startsWith('proxy-') || name.startsWith('sec-')) continue;
      signedHeaders += signedHeaders === '' ? name : `;${name}`;
      lines += `${name}:${canonicalValue(headers[name]!)}\n`;
    }
    const canonical = `${request.method}\n${request.path}\n${canonicalQuery(request.query)}\n${lines}\n${signedHeaders}\n${headers['x-amz-content-sha256'] ?? ''}`;
    const toSign = `AWS4-HMAC-SHA256\n${time}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
    const signature = createHmac('sha256', this.signingKey(scope, secretAccessKey)).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    request.headers = headers;
    return request;
  }

  /** The signing time (ISO 8601 basic, to the second) and credential scope: made once a second, not per request. */
  private stampOf(at: number): { readonly second: number; readonly time: string; readonly scope: string } {
    const second = Math.floor(at / 1000);
    if (this.stamp?.second === second) return this.stamp;
    const time = new Date(second * 1000).toISOString().replace(/[-:]|\.\d{3}/g, '');
    this.stamp = { second, time, scope: `${time.slice(0, 8)}/${this.region}/${this.service}/aws4_request` };
    return this.stamp;
  }

  private signingKey(scope: string, secret: string): Buffer {
    if (this.key?.scope === scope && this.key.secret === secret) return this.key.value;
    let value: Buffer = Buffer.from(`AWS4${secret}`);
    for (const part of scope.split('/')) value = createHmac('sha256', value).update(part).digest();
    this.key = { scope, secret, value };
    return value;
  }
}

/**
 * The header names in SigV4's order (by code unit, as Array.prototype.sort orders strings), sorted in place by
 * insertion: about eight names per request, and sort() makes a work array per call (a fifth of signing's garbage).
 */
function sortedNames(headers: Readonly<Record<string, string>>): string[] {
  const names = Object.keys(headers);
  for (let index = 1; index < names.length; index++) {
    const name = names[index]!;
    let at = index;
    for (; at > 0 && names[at - 1]! > name; at--) names[at] = names[at - 1]!;
    names[at] = name;
  }
  return names;
}

/** A header value as SigV4 signs it: trimmed, runs of spaces as one (tested first: most values have none to fold). */
function canonicalValue(value: string): string {
  return needsFolding(value) ? value.trim().replace(/\s+/g, ' ') : value;
}

/** White space that canonicalValue trims or folds: at either end, two in a row, or any but a plain space. */
const FOLDABLE = /^\s|\s$|\s\s|[\t\n\r\f\v]/;

/**
 * FOLDABLE's answer, per character for ASCII (about eight values are signed per request); a value with any other
 * character is left to the expression, whose \s also knows Unicode's spaces.
 */
function needsFolding(value: string): boolean {
  let afterSpace = true;
  for (let index = 0; index < value.length; index++) {
    const code = value.charCodeAt(index);
    if (code === 32) {
      if (afterSpace) return true;
      afterSpace = true;
    } else if (code >= 9 && code <= 13) return true;
    else if (code >= 127) return FOLDABLE.test(value);
    else afterSpace = false;
  }
  return afterSpace && value.length > 0;
}

/** SigV4's canonical query: names and values encoded as RFC 3986 asks (encodeKey with slashes too), sorted by name. */
function canonicalQuery(query: Readonly<Record<string, string>>): string {
  // Only listings, deletes and aborts have a query: an object's GET and PUT skip the five arrays below.
  if (isEmpty(query)) return '';
  return Object.entries(query)
    .map(([name, value]) => [encodeQueryPart(name), encodeQueryPart(value)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

/** Whether `record` has no key (without the array of Object.keys). */
export function isEmpty(record: Readonly<Record<string, unknown>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return false;
  return true;
}

/** A query name or value encoded as S3 and SigV4 expect: every character but RFC 3986's unreserved ones. */
export function encodeQueryPart(text: string): string {
  return encodeKey(text).replaceAll('/', '%2F');
}

/** Whether a header name has a capital letter (checked per character: a regex or toLowerCase() per name costs more). */
function hasUpperCaseName(headers: Readonly<Record<string, string>>): boolean {
  // for…in: no array of names per request (the caller's records have no inherited enumerable keys).
  for (const name in headers)
    for (let index = 0; index < name.length; index++) {
      const code = name.charCodeAt(index);
      if (code >= 65 && code <= 90) return true;
    }
  return false;
}

function lowerCaseNames(headers: Readonly<Record<string, string>>): Record<string, string> {
  const lower: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) lower[name.toLowerCase()] = value;
  return lower;
}

/** Each segment percent-encoded as S3 (and the SDK) expects, slashes kept: RFC 3986 unreserved characters stay. */
export function encodeKey(key: string): string {
  // Mastodon's keys are letters, digits, `/`, `.`, `_` and `-`, which stay as they are: no new string for them (this
  // runs twice per object).
  if (isUnreservedPath(key)) return key;
  // Most other keys need nothing beyond encodeURIComponent: skip the second pass for them.
  const encoded = encodeURIComponent(key).replaceAll('%2F', '/');
  return /[!'()*]/.test(encoded) ? encoded.replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`) : encoded;
}

/** Whether every character of `key` is `/` or one RFC 3986 leaves unreserved (A–Z, a–z, 0–9, `-._~`). */
function isUnreservedPath(key: string): boolean {
  for (let index = 0; index < key.length; index++) {
    const code = key.charCodeAt(index);
    const unreserved = (code >= 97 && code <= 122) || (code >= 45 && code <= 57) || (code >= 65 && code <= 90) || code === 95 || code === 126;
    if (!unreserved) return false;
  }
  return true;
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

/** An answer's text, its first 64 KiB (an error's, or a copy's): the rest is read and dropped. */
async function readText(body: Readable): Promise<string> {
  let text = '';
  for await (const chunk of body) if (text.length < MAX_ERROR_BODY) text += String(chunk);
  return text;
}

/** A key as XML text: the five characters XML escapes. */
function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (character) => XML_ENTITIES[character]!);
}

const XML_ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/**
 * The ETag when it can be a digest of the bytes: with SSE-KMS or customer keys it is not an MD5 even when it looks
 * like one, and comparing it would fail every copy.
 */
export function digestEtag(headers: Readonly<Record<string, string | undefined>>): string | undefined {
  const kms = headers['x-amz-server-side-encryption']?.startsWith('aws:kms') ?? false;
  if (headers['x-amz-server-side-encryption-customer-algorithm'] !== undefined || kms) return undefined;
  return unquote(headers.etag);
}

/** The ETag without its quotes (sliced, not by a regular expression: two ETags are read per object). */
function unquote(etag: string | undefined): string | undefined {
  if (etag === undefined) return undefined;
  const start = etag.startsWith('"') ? 1 : 0;
  const end = etag.length > start && etag.endsWith('"') ? etag.length - 1 : etag.length;
  return start === 0 && end === etag.length ? etag : etag.slice(start, end);
}
