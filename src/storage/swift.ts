/**
 * The OpenStack Swift backend, through Swift's own HTTP API: a token from Keystone v3 or v1 auth (swiftAuth.ts),
 * then GET, HEAD and PUT of objects under the account's storage URL. A PUT streams the body with the source's MD5
 * in the ETag header, so Swift itself refuses bytes that changed on the way (422), and the ETag it answers is
 * compared too; objects above the segment size become static large objects (swiftLarge.ts). Swift has no
 * per-object ACL: a container's X-Container-Read decides who reads (README).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';
import { applyKeyPrefix } from '../mastodon/keys.js';
import { UnavailableError, UsageError, describeError } from '../errors.js';
import { FatalStoreError, IntegrityError, mayPassWithTime, md5FromEtag } from './errors.js';
import { SwiftAuthError, authRequest, authVersion, parseAuthAnswer, type SwiftSession } from './swiftAuth.js';
import type { SwiftStoreConfig } from './swiftConfig.js';
import { SwiftHttpError, classifySwiftError, fatalSwiftAnswer, retryAfterMs } from './swiftErrors.js';
import { drain, encodePath, flatHeaders, keepAliveAgents, readText, send, type Agents } from './swiftHttp.js';
import { MAX_SEGMENT_SIZE, SegmentReader, segmentNames, segmentSizeFor, type ManifestEntry } from './swiftLarge.js';
import type {
  FailureKind,
  ListedObject,
  ObjectInfo,
  ObjectStore,
  ReadObject,
  RequestGate,
  ServerCopyOptions,
  ServerCopyOutcome,
  StoreOptions,
  WriteOptions,
} from './types.js';
import { typeToWrite } from './types.js';

/** Keys per listing page (Swift's default container_listing_limit is 10,000). */
const PAGE = 1000;
/** Objects deleted at once when the cluster has no bulk delete. */
const DELETES_IN_FLIGHT = 8;
/** A token this close to its expiry is renewed before use. */
const RENEW_BEFORE_MS = 60_000;

export class SwiftStore implements ObjectStore {
  readonly description: string;
  private readonly agents: Agents;
  private readonly segmentSize: number;
  private gate: RequestGate | undefined;
  /** The session requests use; undefined until the first, and again once its token was refused. */
  private session: Promise<SwiftSession> | undefined;
  /** A session fetched because a token was refused, until a request succeeds with it: refused too, it is fatal. */
  private unproven: SwiftSession | undefined;
  private renewing = false;
  /** False once an answer has not shown the MD5 of what was stored (see provesWrites). */
  private answersProve = true;
  private bulkDelete: Promise<boolean> | undefined;
  private segmentContainerReady: Promise<void> | undefined;

  constructor(
    readonly config: SwiftStoreConfig,
    private readonly options: StoreOptions,
  ) {
    try {
      authVersion(config.authUrl);
    } catch (error) {
      throw new UsageError(`[${options.role}] ${(error as Error).message}`);
    }
    this.segmentSize = Math.min(config.segmentSize ?? MAX_SEGMENT_SIZE, MAX_SEGMENT_SIZE);
    this.agents = keepAliveAgents(options.maxSockets);
    this.description = `swift://${config.container}${config.keyPrefix ? `/${config.keyPrefix}` : ''} at ${config.authUrl}`;
  }

  locate(key: string): string {
    return applyKeyPrefix(this.config.keyPrefix, key);
  }

  /** `[destination] container "media" at https://…`, for messages. */
  get where(): string {
    return `[${this.options.role}] container "${this.config.container}" at ${this.config.authUrl}`;
  }

  private get segmentContainer(): string {
    return `${this.config.container}_segments`;
  }

  async check(): Promise<void> {
    try {
      await this.currentSession();
    } catch (error) {
      throw this.authUsageError(error);
    }
    let response: IncomingMessage;
    try {
      response = await this.request('HEAD', `/${encodeURIComponent(this.config.container)}`, {});
    } catch (error) {
      if (error instanceof FatalStoreError) throw new UsageError(`${error.problem}: ${error.fix}`, { cause: error });
      if (mayPassWithTime(error, undefined)) {
        throw new UnavailableError(
          `${this.where} does not answer (${describeError(error)})`,
          'check the storage URL the auth answered, and the network; nothing was written, run again later',
          {
            cause: error,
          },
        );
      }
      throw new UsageError(`${this.where} is unreachable (${describeError(error)}): check the storage URL the auth answered, and the network`, {
        cause: error,
      });
    }
    await drain(response);
    const status = response.statusCode!;
    if (status >= 200 && status < 300) return;
    const storageUrl = (await this.currentSession()).storageUrl;
    if (status === 404) {
      throw new UsageError(`${this.where} does not exist in ${storageUrl}: create it (swift post ${this.config.container}), or check container and region`);
    }
    if (status === 403) throw new UsageError(`${this.where} denied access (403): give the user a role on the project, or check tenant / project_id`);
    if (mayPassWithTime(undefined, status)) {
      throw new UnavailableError(`${this.where} answered ${status} in ${storageUrl}`, 'the cluster fails for now; nothing was written, run again later', {
        cause: undefined,
      });
    }
    throw new UsageError(`${this.where} answered ${status} in ${storageUrl}: check container and region`);
  }

  private authUsageError(error: unknown): UsageError | UnavailableError {
    if (error instanceof UsageError) return new UsageError(`[${this.options.role}] ${error.message}`, { cause: error });
    if (error instanceof SwiftAuthError && error.credentials) {
      return new UsageError(`[${this.options.role}] ${error.message}: check username, password, tenant / project_id and domain`, { cause: error });
    }
    if (error instanceof SwiftAuthError && mayPassWithTime(error, error.status)) {
      return new UnavailableError(`[${this.options.role}] ${error.message}`, 'the auth service fails for now; nothing was written, run again later', {
        cause: error,
      });
    }
    if (error instanceof SwiftAuthError) return new UsageError(`[${this.options.role}] ${error.message}: check auth_url`, { cause: error });
    if (mayPassWithTime(error, undefined)) {
      return new UnavailableError(
        `[${this.options.role}] auth_url ${this.config.authUrl} does not answer (${describeError(error)})`,
        'check auth_url and network; nothing was written, run again later',
        {
          cause: error,
        },
      );
    }
    return new UsageError(`[${this.options.role}] auth_url ${this.config.authUrl} is unreachable (${describeError(error)}): check auth_url and network`, {
      cause: error,
    });
  }

  async read(key: string, signal?: AbortSignal): Promise<ReadObject | undefined> {
    const name = this.locate(key);
    const response = await this.request('GET', this.objectPath(name), {}, { signal, key: name });
    if (response.statusCode === 404) {
      await drain(response);
      return undefined;
    }
    if (!ok(response)) throw await this.failure(response, 'GET', name);
    return { body: response, ...objectInfo(response) };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const name = this.locate(key);
    const response = await this.request('HEAD', this.objectPath(name), {}, { key: name });
    await drain(response);
    if (response.statusCode === 404) return undefined;
    if (!ok(response)) throw await this.failure(response, 'HEAD', name);
    return objectInfo(response);
  }

  async write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    const name = this.locate(key);
    const size = options.contentLength;
    if (size !== undefined && size > this.segmentSize) {
      await this.writeLarge(name, body, size, options);
      return;
    }
    const headers: Record<string, string> = {};
    if (options.contentType !== undefined) headers['content-type'] = options.contentType;
    if (options.cacheControl !== undefined) headers['cache-control'] = options.cacheControl;
    const claimed = options.contentMd5 === undefined ? undefined : Buffer.from(options.contentMd5, 'base64').toString('hex');
    await this.putChecked(this.config.container, name, body, size, headers, { claimed, proofRequired: options.proofRequired, signal: options.signal });
  }

  /**
   * A single PUT sends the source's MD5 as ETag, which Swift checks (422 for other bytes), and answers the MD5 of
   * what it stored, compared here. A static large object's segments are checked one by one against bytes that are
   * hashed on their way (the copier then hashes the whole).
   */
  provesWrites(contentLength: number | undefined): boolean {
    return this.answersProve && contentLength !== undefined && contentLength <= this.segmentSize;
  }

  /**
   * One streamed PUT of `body` to `name` in `container`; returns the MD5 stored. With `claimed` (the source's MD5) as
   * ETag, Swift refuses other bytes; without, the bytes are hashed on the way. The answered ETag must be that MD5:
   * an object stored with other bytes is deleted.
   */
  private async putChecked(
    container: string,
    name: string,
    body: Readable,
    length: number | undefined,
    headers: Record<string, string>,
    options: { readonly claimed?: string; readonly proofRequired?: boolean; readonly signal?: AbortSignal },
  ): Promise<string> {
    const { claimed } = options;
    const hash = claimed === undefined ? createHash('md5') : undefined;
    let sent = body;
    if (hash !== undefined) {
      sent = body.pipe(new Transform({ transform: (chunk: Buffer, _encoding, done) => (hash.update(chunk), done(null, chunk)) }));
      body.once('error', (error) => sent.destroy(error));
    }
    const path = `/${encodeURIComponent(container)}/${encodePath(name)}`;
    const response = await this.request(
      'PUT',
      path,
      {
        ...headers,
        ...(length === undefined ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(length) }),
        ...(claimed !== undefined && { etag: claimed }),
      },
      { body: sent, signal: options.signal, key: name },
    );
    await drain(response);
    if (response.statusCode === 422) {
      throw new IntegrityError(`the ${this.options.role} refused the bytes of ${name}: their MD5 is not the source's ${claimed ?? ''} (changed on the way)`);
    }
    if (!ok(response)) throw await this.failure(response, 'PUT', name);
    const stored = md5FromEtag(unquote(response.headers.etag));
    const md5 = claimed ?? hash!.digest('hex');
    if (stored === md5) return md5;
    if (stored === undefined) {
      this.stopRelyingOnAnswers(name, `answered a PUT with ${response.headers.etag === undefined ? 'no ETag' : `the ETag ${response.headers.etag}`}`);
      if (options.proofRequired) {
        throw new IntegrityError(
          "the destination's answer does not show the MD5 of what it stored, and the bytes were not hashed on the way: copying again, hashed",
        );
      }
      return md5;
    }
    const deleted = await this.deleteObjects(container, [name]).then(
      (failures) => (failures.length === 0 ? 'the object was deleted' : `deleting it failed too (${failures[0]!.error}); the next attempt overwrites it`),
      (error: unknown) => `deleting it failed too (${describeError(error)}); the next attempt overwrites it`,
    );
    throw new IntegrityError(`the ${this.options.role} stored ${name} with MD5 ${stored}, not the ${md5} sent; ${deleted}`);
  }

  private stopRelyingOnAnswers(key: string, why: string): void {
    if (!this.answersProve) return;
    this.answersProve = false;
    this.options.warn?.(`the ${this.options.role} ${why}: from now on every object is hashed on the way`, { key });
  }

  /** An object above the segment size: its segments streamed one after another, then the manifest. */
  private async writeLarge(name: string, body: Readable, size: number, options: WriteOptions): Promise<void> {
    await this.ensureSegmentContainer(options.signal);
    const segmentSize = segmentSizeFor(size, this.segmentSize);
    const names = segmentNames(name, size, segmentSize, Date.now());
    const reader = new SegmentReader(body);
    const entries: ManifestEntry[] = [];
    let started = 0;
    try {
      for (const [index, segment] of names.entries()) {
        const length = Math.min(segmentSize, size - index * segmentSize);
        started++;
        const etag = await this.putChecked(this.segmentContainer, segment, reader.take(length), length, {}, { signal: options.signal });
        entries.push({ path: `/${this.segmentContainer}/${segment}`, etag, size_bytes: length });
      }
      await reader.end();
      const manifest = Buffer.from(JSON.stringify(entries));
      const headers: Record<string, string> = { 'content-length': String(manifest.length) };
      if (options.contentType !== undefined) headers['content-type'] = options.contentType;
      if (options.cacheControl !== undefined) headers['cache-control'] = options.cacheControl;
      const response = await this.request('PUT', `${this.objectPath(name)}?multipart-manifest=put`, headers, {
        body: manifest,
        signal: options.signal,
        key: name,
      });
      const detail = ok(response) ? (await drain(response), '') : await readText(response, 500);
      if (!ok(response)) throw this.failed(response, 'PUT', name, detail);
    } catch (error) {
      await this.removeSegments(name, names.slice(0, started));
      throw error;
    }
  }

  private ensureSegmentContainer(signal?: AbortSignal): Promise<void> {
    const ready = (this.segmentContainerReady ??= (async () => {
      const response = await this.request(
        'PUT',
        `/${encodeURIComponent(this.segmentContainer)}`,
        { 'content-length': '0' },
        { signal, key: this.segmentContainer },
      );
      if (!ok(response)) throw await this.failure(response, 'PUT', this.segmentContainer);
      await drain(response);
    })());
    // A failure is asked again by the next large object.
    ready.catch(() => {
      if (this.segmentContainerReady === ready) this.segmentContainerReady = undefined;
    });
    return ready;
  }

  private async removeSegments(name: string, segments: readonly string[]): Promise<void> {
    if (segments.length === 0) return;
    const failures = await this.deleteObjects(this.segmentContainer, segments).catch((error: unknown) =>
      segments.map((key) => ({ key, error: describeError(error) })),
    );
    if (failures.length > 0) {
      this.options.warn?.(`segments of a failed large object could not be deleted from ${this.segmentContainer}: they cost storage until deleted`, {
        key: name,
        segments: failures.map((failure) => failure.key),
      });
    }
  }

  classify(error: unknown): FailureKind {
    return classifySwiftError(error);
  }

  async *list(prefix: string, options: { readonly startAfter?: string; readonly signal?: AbortSignal } = {}): AsyncIterable<ListedObject> {
    const strip = this.config.keyPrefix === undefined ? 0 : this.locate('').length;
    const marker = options.startAfter === undefined ? undefined : this.locate(options.startAfter);
    for await (const entry of this.listEntries(this.config.container, this.locate(prefix), marker, options.signal)) {
      if (entry.name === undefined) continue;
      // A static large object's hash is the MD5 of its manifest, not of its bytes.
      yield { key: entry.name.slice(strip), size: entry.bytes ?? 0, md5: entry.slo_etag === undefined ? md5FromEtag(entry.hash) : undefined };
    }
  }

  /** The listing of `container` under `prefix` after `marker`, in the container's (ascending byte) order. */
  private async *listEntries(container: string, prefix: string, marker: string | undefined, signal?: AbortSignal): AsyncIterable<ListingEntry> {
    const path = `/${encodeURIComponent(container)}`;
    for (;;) {
      const query = new URLSearchParams({ format: 'json', limit: String(PAGE), prefix });
      if (marker !== undefined) query.set('marker', marker);
      const response = await this.request('GET', `${path}?${query}`, { accept: 'application/json' }, { signal, key: container });
      if (!ok(response)) {
        const error = await this.failure(response, 'GET', container);
        if (response.statusCode === 404)
          throw new FatalStoreError(
            this.options.role,
            container,
            `[${this.options.role}] container "${container}" does not exist`,
            'check container and region',
            {
              cause: error,
            },
          );
        throw error;
      }
      const page = JSON.parse(await readText(response, Number.MAX_SAFE_INTEGER)) as ListingEntry[];
      if (page.length === 0) return;
      yield* page;
      // A page short of the limit is the last: asking on would cost each folder a request more.
      if (page.length < PAGE) return;
      marker = page.at(-1)!.name;
    }
  }

  /**
   * Deletes the objects, and the segments of those that were large objects (in `<container>_segments` under
   * `<name>/slo/`, where they were written): a deleted manifest leaves its segments behind otherwise.
   */
  async delete(keys: readonly string[], signal?: AbortSignal): Promise<ReadonlyArray<{ readonly key: string; readonly error: string }>> {
    const names = new Map(keys.map((key) => [this.locate(key), key]));
    const failures = await this.deleteObjects(this.config.container, [...names.keys()], signal);
    const failed = new Set(failures.map((failure) => failure.key));
    const deleted = [...names.keys()].filter((name) => !failed.has(name));
    if (deleted.length > 0 && (await this.hasSegmentContainer(signal))) {
      for (const name of deleted) {
        const segments: string[] = [];
        for await (const segment of this.listNames(this.segmentContainer, `${name}/slo/`, signal)) segments.push(segment);
        await this.removeSegments(name, segments);
      }
    }
    return failures.map((failure) => ({ key: names.get(failure.key) ?? failure.key, error: failure.error }));
  }

  private async hasSegmentContainer(signal?: AbortSignal): Promise<boolean> {
    const response = await this.request('HEAD', `/${encodeURIComponent(this.segmentContainer)}`, {}, { signal, key: this.segmentContainer });
    await drain(response);
    return ok(response);
  }

  /** Every object name in `container` under `prefix`, page by page. */
  private async *listNames(container: string, prefix: string, signal?: AbortSignal): AsyncIterable<string> {
    for await (const entry of this.listEntries(container, prefix, undefined, signal)) if (entry.name !== undefined) yield entry.name;
  }

  /** Deletes objects of `container` (a missing one counts as deleted): with one bulk request when the cluster offers it. */
  private async deleteObjects(container: string, names: readonly string[], signal?: AbortSignal): Promise<Array<{ key: string; error: string }>> {
    if (names.length === 0) return [];
    if (await this.offersBulkDelete()) {
      const paths = new Map(names.map((name) => [`/${container}/${name}`, name]));
      const body = Buffer.from(names.map((name) => `/${encodeURIComponent(container)}/${encodePath(name)}`).join('\n'));
      const response = await this.request(
        'POST',
        '?bulk-delete',
        { 'content-type': 'text/plain', accept: 'application/json', 'content-length': String(body.length) },
        { body, signal, key: container },
      );
      if (!ok(response)) throw await this.failure(response, 'POST', `${container} (bulk delete)`);
      const result = JSON.parse(await readText(response)) as BulkDeleteAnswer;
      const errors = (result.Errors ?? []).map(([path, status]) => ({ key: paths.get(path) ?? paths.get(safeDecode(path)) ?? path, error: status }));
      const status = Number.parseInt(result['Response Status'] ?? '200', 10);
      if (errors.length === 0 && status >= 300) {
        throw new SwiftHttpError(status, 'POST', `${container} (bulk delete)`, result['Response Body'] ?? '', undefined);
      }
      return errors;
    }
    const failures: Array<{ key: string; error: string }> = [];
    let next = 0;
    const worker = async () => {
      for (let index = next++; index < names.length; index = next++) {
        const name = names[index]!;
        try {
          const response = await this.request('DELETE', `/${encodeURIComponent(container)}/${encodePath(name)}`, {}, { signal, key: name });
          if (ok(response) || response.statusCode === 404) await drain(response);
          else failures.push({ key: name, error: (await this.failure(response, 'DELETE', name)).message });
        } catch (error) {
          failures.push({ key: name, error: describeError(error) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETES_IN_FLIGHT, names.length) }, worker));
    return failures;
  }

  /** Whether the cluster's /info lists bulk_delete (asked once; no answer means no). */
  private offersBulkDelete(): Promise<boolean> {
    return (this.bulkDelete ??= (async () => {
      try {
        const { storageUrl } = await this.currentSession();
        // /info sits at the proxy's root, before /v1/<account>.
        const url = new URL(`${storageUrl.replace(/\/v1(\/[^/]*)?$/, '')}/info`);
        await this.gate?.();
        const response = await send({ method: 'GET', url, headers: {}, agents: this.agents, timeoutMs: this.timeoutMs });
        if (!ok(response)) {
          await drain(response);
          return false;
        }
        const info = JSON.parse(await readText(response)) as Record<string, unknown>;
        return 'bulk_delete' in info;
      } catch {
        return false;
      }
    })());
  }

  /**
   * Another Swift store's objects can be copied here by the cluster when one token reads both: the same auth,
   * user and project (the same account). `forced` (copy_mode = "server") trusts the admin that this user may
   * read the source's account too (X-Copy-From-Account).
   */
  canCopyFrom(source: ObjectStore, options?: { readonly forced?: boolean }): boolean {
    return source instanceof SwiftStore && (options?.forced === true || sameAccount(source.config, this.config));
  }

  async copyFrom(source: ObjectStore, sourceKey: string, key: string, options: ServerCopyOptions): Promise<ServerCopyOutcome> {
    if (!(source instanceof SwiftStore) || !this.canCopyFrom(source, options)) return 'declined';
    const [from, to] = await Promise.all([source.currentSession(), this.currentSession()]);
    // Another cluster (another proxy) cannot read the source at all.
    if (new URL(from.storageUrl).origin !== new URL(to.storageUrl).origin) return 'declined';
    const name = this.locate(key);
    const headers: Record<string, string> = {
      'x-copy-from': `/${encodeURIComponent(source.config.container)}/${encodePath(source.locate(sourceKey))}`,
      'content-length': '0',
    };
    const fromAccount = accountOf(from.storageUrl);
    if (fromAccount !== accountOf(to.storageUrl)) headers['x-copy-from-account'] = fromAccount;
    // The cluster's copy keeps the source's headers, and a header sent here replaces one: Mastodon's Cache-Control
    // goes only on an object whose source has none (as Mastodon writes them to Swift), and the row's type only on one
    // whose type says nothing (saysNothing in types.ts), as a streamed copy does.
    if (options.cacheControl !== undefined || options.contentType !== undefined) {
      const found = await source.head(sourceKey);
      if (found === undefined) return 'missing';
      if (found.cacheControl === undefined && options.cacheControl !== undefined) headers['cache-control'] = options.cacheControl;
      const contentType = typeToWrite(found.contentType, options.contentType);
      if (contentType !== found.contentType && contentType !== undefined) headers['content-type'] = contentType;
    }
    const response = await this.request('PUT', this.objectPath(name), headers, { signal: options.signal, key: name });
    if (ok(response)) {
      await drain(response);
      return 'copied';
    }
    // 404: the source object, or this container, is missing; a HEAD tells which (a missing container then fails the PUT of the stream).
    if (response.statusCode === 404) {
      await drain(response);
      return (await source.head(sourceKey)) === undefined ? 'missing' : 'declined';
    }
    // 413: larger than the cluster's max_file_size, which a copy cannot split: streamed as a large object instead.
    if (response.statusCode === 413) {
      const detail = await readText(response, 500);
      if (!/quota/i.test(detail)) return 'declined';
      throw this.failed(response, 'PUT', name, detail);
    }
    throw await this.failure(response, 'PUT', name);
  }

  limitRequests(gate: RequestGate): void {
    this.gate = gate;
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private get timeoutMs(): number {
    return this.options.socketTimeoutMs ?? 60_000;
  }

  private objectPath(name: string): string {
    return `/${encodeURIComponent(this.config.container)}/${encodePath(name)}`;
  }

  /** The session to use now: renewed when its token is about to expire or was refused. */
  private currentSession(): Promise<SwiftSession> {
    const known = this.session;
    if (known !== undefined) {
      return known.then((session) => {
        if (session.expiresAt === undefined || session.expiresAt - Date.now() > RENEW_BEFORE_MS) return session;
        if (this.session === known) this.session = undefined;
        return this.currentSession();
      });
    }
    const renewal = this.renewing;
    this.renewing = false;
    const fresh = this.authenticate().then((session) => {
      if (renewal) this.unproven = session;
      return session;
    });
    this.session = fresh;
    // A failed auth is asked again by the next request.
    fresh.catch(() => {
      if (this.session === fresh) this.session = undefined;
    });
    return fresh;
  }

  private async authenticate(): Promise<SwiftSession> {
    const request = authRequest(this.config);
    await this.gate?.();
    const response = await send({
      method: request.method,
      url: new URL(request.url),
      headers: request.body === undefined ? request.headers : { ...request.headers, 'content-length': String(Buffer.byteLength(request.body)) },
      body: request.body,
      agents: this.agents,
      timeoutMs: this.timeoutMs,
    });
    const body = await readText(response);
    return parseAuthAnswer(request, { status: response.statusCode!, headers: flatHeaders(response), body }, this.config.region);
  }

  /**
   * Sends one request under the account's storage URL with the token. A refused token (401) is renewed: a request
   * without a streamed body is then sent again at once; one with a body fails as retryable (its bytes are spent).
   * A fresh token refused too means the credentials no longer work: fatal.
   */
  private async request(
    method: string,
    target: string,
    headers: Record<string, string>,
    options: { readonly body?: Readable | Buffer; readonly signal?: AbortSignal; readonly key?: string } = {},
  ): Promise<IncomingMessage> {
    const key = options.key ?? target;
    for (let attempt = 0; ; attempt++) {
      await this.gate?.(options.signal);
      let session: SwiftSession;
      try {
        session = await this.currentSession();
      } catch (error) {
        throw this.authFailure(error, key);
      }
      const response = await send({
        method,
        url: new URL(session.storageUrl + target),
        headers: { ...headers, 'x-auth-token': session.token },
        body: options.body,
        signal: options.signal,
        agents: this.agents,
        timeoutMs: this.timeoutMs,
      });
      if (response.statusCode !== 401) {
        if (this.unproven === session) this.unproven = undefined;
        return response;
      }
      const detail = await readText(response, 500);
      const refused = new SwiftHttpError(401, method, key, detail);
      if (this.unproven === session) throw fatalSwiftAnswer(refused, this.options.role, this.where, key, true)!;
      if (this.session !== undefined && (await this.session.catch(() => undefined)) === session) {
        this.session = undefined;
        this.renewing = true;
      }
      if (attempt > 0 || (options.body !== undefined && !Buffer.isBuffer(options.body))) throw refused;
    }
  }

  /** An auth that failed during a run: refused credentials or a catalog without this container's endpoint are fatal. */
  private authFailure(error: unknown, key: string): unknown {
    if (error instanceof UsageError || (error instanceof SwiftAuthError && error.credentials)) {
      return new FatalStoreError(
        this.options.role,
        key,
        `[${this.options.role}] ${error.message}`,
        'check username, password, tenant / project_id, domain and region, then run again with --resume',
        { cause: error },
      );
    }
    return error;
  }

  /** The error for an answer outside 2xx (its body read): fatal when no retry can fix it. */
  private async failure(response: IncomingMessage, method: string, key: string): Promise<Error> {
    return this.failed(response, method, key, await readText(response, 500));
  }

  private failed(response: IncomingMessage, method: string, key: string, body: string): Error {
    const detail = body
      .replace(/<[^>]+>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
    const error = new SwiftHttpError(response.statusCode!, method, key, detail, retryAfterMs(flatHeaders(response)['retry-after']));
    return fatalSwiftAnswer(error, this.options.role, this.where, key, false) ?? error;
  }
}

interface ListingEntry {
  readonly name?: string;
  readonly bytes?: number;
  readonly hash?: string;
  readonly slo_etag?: string;
}

interface BulkDeleteAnswer {
  readonly 'Response Status'?: string;
  readonly 'Response Body'?: string;
  readonly Errors?: ReadonlyArray<[string, string]>;
}

function ok(response: IncomingMessage): boolean {
  return response.statusCode !== undefined && response.statusCode >= 200 && response.statusCode < 300;
}

/** Size, type, cache control and, when it is the MD5 of the bytes, the ETag (not for a large object's manifest). */
function objectInfo(response: IncomingMessage): ObjectInfo {
  const headers = flatHeaders(response);
  const length = headers['content-length'];
  const manifest = headers['x-static-large-object'] !== undefined || headers['x-object-manifest'] !== undefined;
  return {
    contentLength: length === undefined ? undefined : Number(length),
    contentType: headers['content-type'],
    cacheControl: headers['cache-control'],
    etag: manifest ? undefined : unquote(headers.etag),
  };
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** `AUTH_test` of `http://host/v1/AUTH_test`. */
function accountOf(storageUrl: string): string {
  return decodeURIComponent(new URL(storageUrl).pathname.split('/').filter(Boolean).at(-1) ?? '');
}

/** Whether one token reads both: the same auth endpoint, user, project and region. */
function sameAccount(a: SwiftStoreConfig, b: SwiftStoreConfig): boolean {
  const norm = (url: string) => url.replace(/\/+$/, '');
  return (
    norm(a.authUrl) === norm(b.authUrl) &&
    a.username === b.username &&
    a.tenant === b.tenant &&
    a.projectId === b.projectId &&
    a.domain === b.domain &&
    a.region === b.region
  );
}
