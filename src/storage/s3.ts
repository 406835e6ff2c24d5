/**
 * The S3 backend: AWS and every S3-compatible provider. Every request but a multipart upload's goes direct
 * (s3Direct.ts and s3Http.ts: our endpoint rules and signer, node:http on the store's agents, no SDK; s3List.ts reads
 * the listing XML). The AWS SDK (@aws-sdk/client-s3 and lib-storage, s3Sdk.ts) is loaded only when something needs
 * it: an object above the single-PUT limit, a copy in parts, a configuration our endpoint rules do not cover.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ObjectCannedACL, S3Client, StorageClass } from '@aws-sdk/client-s3';
import { applyKeyPrefix } from '../mastodon/keys.js';
import type { S3StoreConfig } from './s3Config.js';
import { UnavailableError, UsageError, describeError } from '../errors.js';
import type {
  FailureKind,
  ListedObject,
  ObjectAccess,
  ObjectInfo,
  ObjectStore,
  ReadObject,
  RequestGate,
  ServerCopyOptions,
  ServerCopyOutcome,
  StoreOptions,
  WriteOptions,
} from './types.js';
import { DirectRequests, credentialProvider, digestEtag, type CredentialProvider, type SdkRules } from './s3Direct.js';
import { parseListPage, xmlField, type ListPage } from './s3List.js';
import { HttpTransport, type DirectResponse } from './s3Http.js';
import {
  AccessRefusedError,
  AccessUnsupportedError,
  BodyRefusedError,
  IntegrityError,
  formatSize,
  mayPassWithTime,
  answeredPlainHttp,
  md5FromEtag,
  type StoreSide,
} from './errors.js';
import { classifyS3Error, fatalS3Error, httpStatus, isNotFound, refusedCredentials, s3ErrorCode } from './s3Errors.js';
import { copyOnProvider, sameProvider } from './s3Copy.js';
import { hashingStream } from './outgoing.js';
import { isRegionName, shownEndpoint } from './s3Endpoint.js';

export interface S3StoreOptions extends StoreOptions {
  /** Objects up to this size go as one streamed PUT (nothing buffered); larger ones as a multipart upload. Default: partSize. */
  readonly singlePutLimit?: number;
  /** The part size of a multipart upload: lib-storage buffers parts, about queueSize + 2 of them per upload. */
  readonly partSize: number;
  /** Parts of one multipart upload in flight at once. */
  readonly queueSize: number;
}

/** Requests for housekeeping (checking the bucket, aborting an upload, deleting a bad object) are tried this often. */
const HOUSEKEEPING_ATTEMPTS = 4;
/** How many keys reset while sending an S3Store remembers: far more than copies retried at once. */
const RESET_KEYS_KEPT = 1024;

/** The `limit` keys added last (re-adding one makes it the latest): a memory per object that does not grow with a run. */
export class RecentKeys {
  private readonly keys = new Set<string>();
  constructor(private readonly limit: number) {}
  get size(): number {
    return this.keys.size;
  }
  has(key: string): boolean {
    return this.keys.has(key);
  }
  add(key: string): void {
    this.keys.delete(key);
    this.keys.add(key);
    // A Set iterates in insertion order: its first key is the oldest.
    if (this.keys.size > this.limit) this.keys.delete(this.keys.values().next().value as string);
  }
  delete(key: string): void {
    this.keys.delete(key);
  }
}

/** The longest Retry-After a housekeeping request waits for. */
const HOUSEKEEPING_MAX_WAIT_MS = 100_000;

export class S3Store implements ObjectStore {
  readonly description: string;
  /** Every request but a multipart upload's, without the SDK (s3Direct.ts). */
  readonly direct: DirectRequests;
  /** The keep-alive sockets of the direct requests and of the SDK's, once loaded. */
  private readonly agents: { readonly httpAgent: HttpAgent; readonly httpsAgent: HttpsAgent };
  private readonly credentials: CredentialProvider;
  /** The SDK's client, created on first need (sdkClient()). */
  private sdk: Promise<S3Client> | undefined;
  private loadedSdk: { readonly client: S3Client; readonly module: typeof import('./s3Sdk.js') } | undefined;
  private gate: RequestGate | undefined;
  /** False once a PUT's answer has not shown the MD5 of what was stored (see provesWrites). */
  private answersProve = true;
  /** The smallest request body the provider refused as too large: later bodies stay below it. */
  private refusedBody: number | undefined;
  /**
   * Keys whose PUT was reset while its body was being sent, with no answer: perhaps a refusal, asked next time. A key
   * whose copy then gave up stays, so only the latest are kept: a run lasts days over millions of objects (review L3).
   */
  private readonly resetWhileSending = new RecentKeys(RESET_KEYS_KEPT);

  constructor(
    readonly config: S3StoreConfig,
    private readonly options: S3StoreOptions,
  ) {
    this.description = `s3://${config.bucket}${config.keyPrefix ? `/${config.keyPrefix}` : ''}${config.endpoint ? ` at ${shownEndpoint(config.endpoint)}` : ''}`;
    if (config.endpoint !== undefined && !/^https?:\/\/[^/]/.test(config.endpoint)) {
      throw new UsageError(`[${options.role}] endpoint must be a URL like https://s3.example.com, not "${shownEndpoint(config.endpoint)}"`);
    }
    if (!isRegionName(config.region)) {
      throw new UsageError(`[${options.role}] region must be a region's name like us-east-1, fr-par or auto, not "${config.region}"`);
    }
    // One pool of sockets for the direct requests and the SDK's.
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
    this.agents = { httpAgent: new HttpAgent(agentOptions), httpsAgent: new HttpsAgent(agentOptions) };
    this.credentials = credentialProvider(config);
    this.direct = new DirectRequests(
      config,
      new HttpTransport({ ...this.agents, connectionTimeoutMs: CONNECTION_TIMEOUT_MS, socketTimeoutMs: this.socketTimeoutMs }),
      this.credentials,
      async () => (await this.sdkClient()).config as unknown as SdkRules,
    );
  }

  /** Inactivity, not total time: a large object may take long, a silent connection must not. */
  private get socketTimeoutMs(): number {
    return this.options.socketTimeoutMs ?? 60_000;
  }

  /**
   * The SDK's client on the store's agents, credentials and rate gate: loaded (its own chunk of the bundle, 17 MB of
   * RSS) by the first multipart upload, copy in parts or configuration our endpoint rules leave to the SDK's.
   */
  /**
   * A load that failed (the chunk unreadable for a moment: out of file descriptors) is not kept: the next object that
   * needs the SDK loads it again, as its retry would otherwise meet the same rejected promise for the rest of the run.
   */
  private readonly forgetFailedSdkLoad = (error: unknown): never => {
    this.sdk = undefined;
    throw error;
  };

  sdkClient(): Promise<S3Client> {
    this.sdk ??= import('./s3Sdk.js').then((module) => {
      const client = module.createSdkClient(this.config, {
        agents: this.agents,
        connectionTimeoutMs: CONNECTION_TIMEOUT_MS,
        socketTimeoutMs: this.socketTimeoutMs,
        credentials: this.credentials,
        clockOffset: this.direct.clockOffset,
        gate: this.gate,
      });
      this.loadedSdk = { client, module };
      return client;
    }, this.forgetFailedSdkLoad);
    return this.sdk;
  }

  locate(key: string): string {
    return applyKeyPrefix(this.config.keyPrefix, key);
  }

  async check(): Promise<void> {
    try {
      // A one-key listing needs the same permission as HeadBucket (s3:ListBucket) and costs some servers far less
      // (s3rver's HeadBucket lists the whole bucket). Under the key prefix, so a policy that allows listing only there
      // passes too.
      const prefix = this.config.keyPrefix ? applyKeyPrefix(this.config.keyPrefix, '') : undefined;
      await this.withRetries(() => this.direct.listOne(prefix));
    } catch (error) {
      const status = httpStatus(error);
      const where = this.where;
      // Before the statuses: AWS answers an expired session token with 400, which reads as a wrong region otherwise.
      if (refusedCredentials(error)) {
        throw new UsageError(`${where} refused the credentials (${s3ErrorCode(error)}): check access_key_id, secret_access_key and session_token`, {
          cause: error,
        });
      }
      if (status === 404) throw new UsageError(`${where} does not exist: check bucket, endpoint and region`, { cause: error });
      if (status === 403 || status === 401) {
        // Valid credentials without the permission to list: every command lists (the check, verify, prune, skip-existing).
        throw new UsageError(
          `${where} denied listing it (${s3ErrorCode(error)}): give the credentials s3:ListBucket on the bucket (under its key prefix at least), or check access_key_id and secret_access_key`,
          { cause: error },
        );
      }
      if (status === 301 || status === 400) {
        throw new UsageError(`${where} answered ${status}: check region (now "${this.config.region}") and endpoint`, { cause: error });
      }
      if (status !== undefined && mayPassWithTime(error, status)) {
        throw new UnavailableError(
          `${where} answered ${status} (${describeError(error)})`,
          'the provider fails for now; nothing was written, run again later',
          {
            cause: error,
          },
        );
      }
      // Nothing was sent: no key in the config, and none in the environment, a profile or an instance role.
      if ((error as Error | undefined)?.name === 'CredentialsProviderError') {
        throw new UsageError(
          `${where}: no credentials found (${describeError(error)}): set access_key_id and secret_access_key in [${this.options.role}], or AWS credentials in the environment or a profile`,
          { cause: error },
        );
      }
      if (mayPassWithTime(error, status)) {
        throw new UnavailableError(`${where} does not answer (${describeError(error)})`, 'check endpoint and network; nothing was written, run again later', {
          cause: error,
        });
      }
      if (answeredPlainHttp(error)) throw new UsageError(`${where} answers plain HTTP, not HTTPS: use http:// in endpoint`, { cause: error });
      throw new UsageError(`${where} is unreachable (${describeError(error)}): check endpoint and network`, { cause: error });
    }
  }

  async read(key: string, signal?: AbortSignal): Promise<ReadObject | undefined> {
    try {
      const response = await this.direct.get(this.locate(key), signal);
      return { body: response.body, ...objectInfo(response.headers) };
    } catch (error) {
      // Before the not-found check: a bucket that is gone answers 404 too, and its objects are not "missing".
      const fatal = fatalS3Error(error, this.options.role, this.where, this.locate(key), 'GET');
      if (fatal !== undefined) throw fatal;
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      return await this.headLocated(this.locate(key));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** HEAD of `bucketKey` (as the bucket names it). */
  async headLocated(bucketKey: string, signal?: AbortSignal): Promise<ObjectInfo> {
    return objectInfo((await this.direct.head(bucketKey, signal)).headers);
  }

  write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    return this.writeBody(key, body, options);
  }

  /** A body held whole goes as one write of the request's headers and bytes, with no stream (s3Http.ts). */
  writeBytes(key: string, bytes: Buffer, options: WriteOptions): Promise<void> {
    return this.writeBody(key, bytes, options);
  }

  private async writeBody(key: string, body: Readable | Buffer, options: WriteOptions): Promise<void> {
    try {
      await this.upload(key, body, options);
    } catch (error) {
      throw fatalS3Error(error, this.options.role, this.where, this.locate(key), 'PUT', options) ?? error;
    }
  }

  /**
   * GetObjectAcl and PutObjectAcl with a canned ACL, as Mastodon's UpdateMediaAttachmentsPermissionsService sends it.
   * Two ACLs match when both or neither grant reading to a group (everyone, or any AWS user): the owner's own grants
   * differ between providers and say nothing of who can see the object.
   */
  readonly access: ObjectAccess = {
    compare: async (key, acl, signal) => {
      const located = this.locate(key);
      try {
        const policy = await this.direct.getAcl(located, signal);
        const found = policy.includes(`${GROUPS}AllUsers`) ? 'public-read' : policy.includes(`${GROUPS}AuthenticatedUsers`) ? 'authenticated-read' : 'private';
        return { matches: (found !== 'private') === SHARED_CANNED_ACLS.has(acl), found };
      } catch (error) {
        if (isNotFound(error)) return undefined;
        throw aclError(error, this.options.role, this.where, located, 'GetObjectAcl');
      }
    },
    set: async (key, acl, signal) => {
      const located = this.locate(key);
      try {
        await this.direct.putAcl(located, acl, signal);
        return true;
      } catch (error) {
        if (isNotFound(error)) return false;
        throw aclError(error, this.options.role, this.where, located, 'PutObjectAcl');
      }
    },
    // The ACL of a key no object has: S3 answers NoSuchKey. s3rver answers its one fixed grant for any key, and so
    // reads every object as private whatever was written; R2 answers NotImplemented.
    probe: async (signal) => {
      const located = this.locate(`mastosync-acl-probe-${randomBytes(8).toString('hex')}`);
      try {
        await this.direct.getAcl(located, signal);
      } catch (error) {
        const failure = isNotFound(error) ? undefined : aclError(error, this.options.role, this.where, located, 'GetObjectAcl');
        // AccessDenied is no proof: without s3:ListBucket, AWS denies any request for a key that does not exist.
        if (failure instanceof AccessUnsupportedError && !(failure instanceof AccessRefusedError)) throw failure;
        return;
      }
      throw new AccessUnsupportedError(
        `${this.where} does not support per-object ACLs (it answered GetObjectAcl for ${located}, a key that does not exist, as a store that keeps none does)`,
      );
    },
  };

  /** `[destination] bucket "media" at https://…`, for messages. */
  get where(): string {
    return `[${this.options.role}] bucket "${this.config.bucket}"${this.config.endpoint ? ` at ${shownEndpoint(this.config.endpoint)}` : ''}`;
  }

  private async upload(key: string, given: Readable | Buffer, options: WriteOptions): Promise<void> {
    const params = {
      Bucket: this.config.bucket,
      Key: this.locate(key),
      ContentType: options.contentType,
      CacheControl: options.cacheControl,
      ACL: options.acl || undefined,
      StorageClass: options.storageClass || undefined,
    };
    if (this.goesAsOnePut(options.contentLength)) {
      await this.put(params, given, options);
      return;
    }
    // Only after a refused body can one held whole go in parts (or fail as too small for them): as a stream.
    const body = given instanceof Readable ? given : Readable.from([given]);
    // Multipart. Each part is checked on arrival (verifyPartDigest); a failed upload is aborted here, with retries,
    // rather than by lib-storage, which tries once and then reports the abort's error instead of the cause.
    const partSize = this.partSize();
    if (partSize === undefined) throw this.cannotGoBelow(params.Key);
    // lib-storage and the SDK's client are loaded by the first object above the upload cutoff only.
    const [{ Upload }, client] = await Promise.all([import('@aws-sdk/lib-storage'), this.sdkClient()]);
    const upload = new Upload({
      client,
      params: { ...params, ACL: params.ACL as ObjectCannedACL | undefined, StorageClass: params.StorageClass as StorageClass | undefined, Body: body },
      partSize,
      queueSize: this.options.queueSize,
      leavePartsOnError: true,
    });
    // Stopping the body (not upload.abort(), which returns before the parts in flight settle) lets done()
    // reject only once the upload id is known and no part is still being sent.
    const stop = () => body.destroy(new Error('copy aborted'));
    // A stop that came while lib-storage was being loaded (the first large object) stops this upload too.
    if (options.signal?.aborted) stop();
    options.signal?.addEventListener('abort', stop, { once: true });
    try {
      await upload.done();
    } catch (error) {
      if (upload.uploadId !== undefined) await this.abortUpload(params.Key, upload.uploadId);
      if (refusesBody(error)) throw this.bodyRefused(params.Key, partSize, error);
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', stop);
    }
  }

  /**
   * A single PUT sends Content-MD5, which providers check, and its answer's ETag (the MD5 of what was stored) must
   * equal it (put()). A multipart upload's parts are checked against their own bytes only: those the copier hashes.
   */
  provesWrites(contentLength: number | undefined): boolean {
    return this.answersProve && this.goesAsOnePut(contentLength);
  }

  private goesAsOnePut(contentLength: number | undefined): contentLength is number {
    if (this.refusedBody !== undefined && contentLength !== undefined && contentLength >= this.refusedBody) return false;
    return contentLength !== undefined && contentLength <= (this.options.singlePutLimit ?? this.options.partSize);
  }

  private partSize(): number | undefined {
    return this.partSizeBelow(this.refusedBody);
  }

  /** The configured part size, or whole MiB below a refused body size; undefined when that is under S3's minimum. */
  private partSizeBelow(refused: number | undefined): number | undefined {
    if (refused === undefined || refused > this.options.partSize) return this.options.partSize;
    const below = Math.floor((refused - 1) / MiB) * MiB;
    return below >= MIN_PART_SIZE ? below : undefined;
  }

  /**
   * A body of `size` bytes was refused as too large (413, EntityTooLarge: a provider's limit, or nginx's
   * client_max_body_size in front of it). Later bodies stay below it: the copy is retried, once, in smaller parts.
   */
  private bodyRefused(key: string, size: number, cause: unknown): BodyRefusedError {
    const lowered = this.refusedBody === undefined || size < this.refusedBody;
    if (lowered) this.refusedBody = size;
    const partSize = this.partSize();
    const refused = `the provider refused a ${formatSize(size)} body (${describeRefusal(cause)})`;
    if (partSize === undefined) return new BodyRefusedError(size, `${refused}: ${this.cannotGoBelow(key).message}`, false, { cause });
    const message = `${refused}: objects of ${this.refusedBody!.toLocaleString('en')} bytes or more go as multipart uploads in ${formatSize(partSize)} parts from now on`;
    if (lowered) this.options.warn?.(message, { key });
    // Retried only when the next attempt sends smaller bodies than the refused one.
    return new BodyRefusedError(size, message, partSize < size, { cause });
  }

  private cannotGoBelow(key: string): BodyRefusedError {
    const size = this.refusedBody!;
    return new BodyRefusedError(
      size,
      `the provider refused a ${formatSize(size)} body, and multipart parts cannot be smaller than ${formatSize(MIN_PART_SIZE)} (S3's minimum): raise its limit on request bodies (nginx: client_max_body_size) above ${formatSize(MIN_PART_SIZE)}; ${key} is not copied`,
      false,
      { cause: undefined },
    );
  }

  /**
   * One PUT of a streamed body (nothing buffered here) or of one held whole. Content-MD5 (when the source's MD5 is
   * known) lets the server refuse bytes that changed on the way; the ETag it answers is compared with the MD5 of what
   * was sent, which catches a server that ignores Content-MD5. A mismatch deletes the object, so no corrupted object stays. An answer
   * without an MD5 ETag shows nothing: it fails a write whose body was not hashed on the way (proofRequired).
   */
  private async put(params: PutParams, body: Readable | Buffer, options: WriteOptions): Promise<void> {
    // With Content-MD5 the digest the bytes must have is known already: the ETag answered is compared with it
    // (src/sync/integrity may check the bytes on the way too). Only a body without one is hashed here.
    const claimed = options.contentMd5 === undefined ? undefined : Buffer.from(options.contentMd5, 'base64').toString('hex');
    // A streamed body that fails ends the request at once (s3Http.ts), and its error is the cause, not the request's.
    // Inline and unnamed: the bundle's keepNames would name a named closure per PUT (Object.defineProperty).
    let bodyFailure: { error: unknown } | undefined;
    // What is sent: a body held whole as it is (hashed once answered, if need be), a stream through the hash.
    let sent: Readable | Buffer = body;
    let hash: Hash | undefined;
    if (body instanceof Readable && claimed !== undefined) {
      body.once('error', (error: unknown) => {
        bodyFailure ??= { error };
      });
    } else if (body instanceof Readable) {
      const hashing = hashingStream((hash = createHash('md5')));
      pipeline(body, hashing).catch((error: unknown) => {
        bodyFailure ??= { error };
      });
      sent = hashing;
    }
    // Only objects of known length go as one PUT (goesAsOnePut).
    const size = options.contentLength ?? 0;
    let response: DirectResponse;
    // After a reset while sending this object's body, ask first (100-continue): a server that refuses the body then
    // answers 413 before any of it is sent, where it would otherwise close the connection under it.
    const suspect = this.resetWhileSending.has(params.Key);
    let signal = options.signal;
    if (suspect && sent instanceof Readable) {
      // Asking first goes through the SDK's handler, which does not end a request whose body failed: an abort does.
      const bodyStop = new AbortController();
      sent.once('error', (error) => bodyStop.abort(error));
      signal = signal === undefined ? bodyStop.signal : AbortSignal.any([signal, bodyStop.signal]);
    }
    try {
      response = await this.direct.put(params.Key, sent, { ...putHeaders(params, options), ...(suspect && { expect: '100-continue' }) }, signal);
    } catch (error) {
      if (bodyFailure !== undefined) throw bodyFailure.error;
      if (refusesBody(error)) throw this.bodyRefused(params.Key, size, error);
      // A server that refuses the body may close the connection before its answer can be read: only a reset while
      // the body was being sent shows. Once is a flaky network (other PUTs cut by the same blip prove nothing about
      // this one); the same object reset again although it asked first, a refusal, if smaller parts can follow. A
      // body held whole goes in one write with the headers, so any reset before the answer came while it was sent.
      if (isReset(error) && (!(sent instanceof Readable) || !sent.readableEnded)) {
        if (!suspect) this.resetWhileSending.add(params.Key);
        else if (this.partSizeBelow(Math.min(size, this.refusedBody ?? Infinity)) !== undefined) {
          this.resetWhileSending.delete(params.Key);
          throw this.bodyRefused(params.Key, size, error);
        }
      }
      throw error;
    }
    this.resetWhileSending.delete(params.Key);
    const stored = md5FromEtag(digestEtag(response.headers));
    const md5 = claimed ?? (hash ?? createHash('md5').update(sent as Buffer)).digest('hex');
    if (stored === md5) return;
    if (stored === undefined) {
      // No ETag, an encrypted object's or an opaque one: nothing shows what was stored.
      const etag = response.headers.etag;
      if (claimed !== undefined)
        this.stopRelyingOnAnswers(
          params.Key,
          etag === undefined ? 'answered a PUT with no ETag' : `answered a PUT with the ETag ${etag}, not an MD5 of the bytes`,
        );
      if (options.proofRequired)
        throw new IntegrityError(
          "the destination's answer does not show the MD5 of what it stored, and the bytes were not hashed on the way: copying again, hashed",
        );
      return;
    }
    // A provider that checks Content-MD5 refuses such a body (BadDigest) rather than store it.
    if (claimed !== undefined)
      this.stopRelyingOnAnswers(
        params.Key,
        'stored an object whose ETag differs from the Content-MD5 sent (it ignores that header, or its ETags are not MD5s; that object is deleted and copied again)',
      );
    const deleted = await this.withRetries(() => this.direct.delete(params.Key)).then(
      () => 'the object was deleted',
      (error: unknown) => `deleting it failed too (${describeError(error)}); the next attempt overwrites it`,
    );
    throw new IntegrityError(`the destination stored bytes with MD5 ${stored}, not the ${md5} sent; ${deleted}`);
  }

  private stopRelyingOnAnswers(key: string, why: string): void {
    if (!this.answersProve) return;
    this.answersProve = false;
    this.options.warn?.(`the ${this.options.role} ${why}: from now on every object is hashed on the way`, { key });
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.withRetries(() => this.direct.abortUpload(key, uploadId));
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchUpload') return;
      this.options.warn?.(
        'a failed multipart upload could not be aborted: its parts cost storage until a lifecycle rule (AbortIncompleteMultipartUpload) or an abort removes them',
        { key, uploadId, err: error },
      );
    }
  }

  /**
   * A short request of the store's own, tried again with backoff while the answer is transient (throttling, 5xx, a
   * reset). The object operations src/sync calls are retried there, as a whole, from a fresh read. A request the
   * caller's stop aborted is not tried again: its "aborted" would look transient, and the stop would wait out the backoff.
   */
  private async withRetries<T>(request: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request();
      } catch (error) {
        const failure = this.classify(error);
        if (signal?.aborted === true || attempt + 1 >= HOUSEKEEPING_ATTEMPTS || (failure.kind !== 'retryable' && failure.kind !== 'throttled')) throw error;
        // Full jitter, 200 ms × 2^attempt at most, or the server's Retry-After when longer.
        await sleep(Math.max(Math.random() * 200 * 2 ** attempt, Math.min(failure.afterMs ?? 0, HOUSEKEEPING_MAX_WAIT_MS)));
      }
    }
  }

  classify(error: unknown): FailureKind {
    return classifyS3Error(error);
  }

  /**
   * ListObjectsV2, 1000 keys a page, continuation tokens; the next page is asked for while the caller works through
   * this one, so at most two pages are held. Each page is retried as housekeeping; a failure that outlasts that
   * throws, and the caller may resume with `startAfter` set to the last key it was given.
   */
  async *list(prefix: string, options: { readonly startAfter?: string; readonly signal?: AbortSignal } = {}): AsyncIterable<ListedObject> {
    const base = this.locate('');
    const full = base + prefix;
    const page = (token: string | undefined, startAfter: string | undefined) => {
      const asked = this.listPage(full, token, startAfter, options.signal);
      // Awaited when the caller reaches it, or never when it stops early. Until then its failure (a stop aborts it
      // while the caller works elsewhere, holding this listing) must not count as an unhandled rejection, which ends
      // the process.
      asked.catch(() => undefined);
      return asked;
    };
    let pending: Promise<ListPage> | undefined = page(undefined, options.startAfter === undefined ? undefined : base + options.startAfter);
    while (pending !== undefined) {
      const answer: ListPage = await pending;
      const { contents } = answer;
      const last = contents.at(-1)?.key;
      pending = undefined;
      // A provider that says "truncated" without a token is asked for what follows its last key instead.
      if (answer.isTruncated && (answer.nextContinuationToken !== undefined || last !== undefined)) {
        pending = page(answer.nextContinuationToken, answer.nextContinuationToken === undefined ? last : undefined);
      }
      for (const item of contents) {
        if (!item.key.startsWith(base)) continue;
        // Without a key prefix the entry is the listed object as it is: no copy per key.
        if (base === '') yield item;
        else
          yield item.md5 === undefined
            ? { key: item.key.slice(base.length), size: item.size }
            : { key: item.key.slice(base.length), size: item.size, md5: item.md5 };
      }
    }
  }

  /**
   * A direct request read by s3List.ts's scan of the XML (the SDK's parse of each page is garbage that grows the heap
   * with the bucket, and most of a prune's CPU).
   */
  private async listPage(prefix: string, token: string | undefined, startAfter: string | undefined, signal?: AbortSignal): Promise<ListPage> {
    try {
      return await this.withRetries(async () => parseListPage(await this.direct.list(prefix, token, startAfter, signal)), signal);
    } catch (error) {
      throw fatalS3Error(error, this.options.role, this.where, prefix, 'LIST') ?? error;
    }
  }

  /**
   * DeleteObjects in quiet mode (only failures are answered), with Content-MD5 (s3Direct.ts). A key that does not
   * exist counts as deleted, as on S3.
   * A key an XML parser may read otherwise than it was sent (white space at either end, which parsers that trim
   * text drop, so that `a.png ` deletes `a.png`; a control character, which XML 1.0 cannot carry or turns `\r`
   * into `\n`) is deleted alone, with its key in the URL.
   */
  async delete(keys: readonly string[], signal?: AbortSignal): Promise<ReadonlyArray<{ readonly key: string; readonly error: string }>> {
    if (keys.length === 0) return [];
    if (keys.length > MAX_DELETE_KEYS) throw new Error(`delete takes at most ${MAX_DELETE_KEYS} keys a call, not ${keys.length}`);
    const located = new Map(keys.map((key) => [this.locate(key), key]));
    // [as the bucket names it, as the caller does]
    const alone = [...located].filter(([bucketKey]) => !XML_SAFE_KEY.test(bucketKey));
    for (const [bucketKey] of alone) located.delete(bucketKey);
    // The batch first: it throws (a fatal refusal) before anything is deleted. After it, a key deleted alone that
    // fails, fatally or not, is one key not deleted: the caller must learn what the batch did.
    const failures = located.size === 0 ? [] : await this.deleteBatch(located, signal);
    const deletedSome = failures.length < located.size;
    for (const [bucketKey, key] of alone) {
      try {
        await this.withRetries(() => this.direct.delete(bucketKey, signal));
      } catch (error) {
        // A key already gone counts as deleted, as in the batch.
        if (isNotFound(error)) continue;
        const fatal = fatalS3Error(error, this.options.role, this.where, bucketKey, 'DELETE');
        if (fatal !== undefined && !deletedSome && bucketKey === alone[0]![0]) throw fatal;
        failures.push({ key, error: describeError(fatal ?? error) });
      }
    }
    return failures;
  }

  /** DeleteObjects of `located` (the keys as the bucket names them, to the caller's): the keys it did not delete. */
  private async deleteBatch(located: ReadonlyMap<string, string>, signal?: AbortSignal): Promise<Array<{ key: string; error: string }>> {
    let answer: Buffer;
    try {
      answer = await this.withRetries(() => this.direct.deleteMany([...located.keys()], signal));
    } catch (error) {
      throw fatalS3Error(error, this.options.role, this.where, located.keys().next().value!, 'DELETE') ?? error;
    }
    return deleteFailures(answer.toString()).map((failure) => ({
      key: (failure.key !== undefined && located.get(failure.key)) || failure.key || '',
      error: `${failure.code ?? 'error'}: ${failure.message ?? 'not deleted'}`,
    }));
  }

  /**
   * Another S3 store's objects can be copied here on the provider when this store's credentials can read them: one
   * endpoint, region and account; `forced` (copy_mode = "server") trusts the admin that a grant allows it anyway.
   */
  canCopyFrom(source: ObjectStore, options?: { readonly forced?: boolean }): boolean {
    return source instanceof S3Store && (options?.forced === true || sameProvider(source.config, this.config));
  }

  async copyFrom(source: ObjectStore, sourceKey: string, key: string, options: ServerCopyOptions): Promise<ServerCopyOutcome> {
    if (!(source instanceof S3Store) || !this.canCopyFrom(source, options)) return 'declined';
    return copyOnProvider(source, sourceKey, this, key, options);
  }

  /** Every request waits for `gate`: the direct ones, and the SDK's (multipart parts) once it is loaded. */
  limitRequests(gate: RequestGate): void {
    this.gate = gate;
    this.direct.gate = gate;
    // At once: a client already loaded sends nothing ungated, and a failure here is the caller's to see.
    if (this.loadedSdk !== undefined) this.loadedSdk.module.gateSdkRequests(this.loadedSdk.client, gate);
  }

  close(): void {
    this.loadedSdk?.client.destroy();
    this.agents.httpAgent.destroy();
    this.agents.httpsAgent.destroy();
  }
}

/** Canned ACLs that let someone besides the owner read the object. */
const SHARED_CANNED_ACLS: ReadonlySet<string> = new Set(['public-read', 'public-read-write', 'authenticated-read']);
/** A grant to everyone or to every authenticated AWS user, in a GetObjectAcl answer. */
const GROUPS = 'acs.amazonaws.com/groups/global/';

/** What S3 answers where a bucket takes no ACL: Object Ownership "bucket owner enforced" (ACLs disabled). */
const ACLS_DISABLED = new Set(['AccessControlListNotSupported', 'InvalidBucketAclWithObjectOwnership']);

/**
 * A failed GetObjectAcl or PutObjectAcl: a provider without ACLs (R2 and MinIO answer NotImplemented, a bucket whose
 * Object Ownership is "bucket owner enforced" AccessControlListNotSupported), credentials without the ACL permissions
 * (which copying never needed: the copy goes on), fatal (a bucket gone), or the error as it is.
 */
function aclError(error: unknown, side: StoreSide, where: string, key: string, operation: 'GetObjectAcl' | 'PutObjectAcl'): unknown {
  const code = s3ErrorCode(error);
  if (code === 'NotImplemented' || httpStatus(error) === 501) {
    return new AccessUnsupportedError(`${where} does not support per-object ACLs (${code} on ${operation} ${key})`, { cause: error });
  }
  if (ACLS_DISABLED.has(code)) {
    return new AccessUnsupportedError(
      `${where} does not support per-object ACLs: its Object Ownership is "bucket owner enforced", which disables them (${code} on ${operation} ${key})`,
      { cause: error },
    );
  }
  if (code === 'AccessDenied') {
    return new AccessRefusedError(`${where} denied reading or setting an ACL (AccessDenied on ${operation} ${key})`, { cause: error });
  }
  return fatalS3Error(error, side, where, key, 'ACL') ?? error;
}

const CONNECTION_TIMEOUT_MS = 10_000;

/** What a GET's or a HEAD's answer tells of its object. */
function objectInfo(headers: Readonly<Record<string, string | undefined>>): ObjectInfo {
  const length = headers['content-length'];
  return {
    contentLength: length === undefined ? undefined : Number(length),
    contentType: headers['content-type'],
    cacheControl: headers['cache-control'],
    etag: digestEtag(headers),
  };
}

/** The <Error> entries of a DeleteObjects answer: the keys not deleted. */
function deleteFailures(xml: string): Array<{ key?: string; code?: string; message?: string }> {
  return [...xml.matchAll(/<Error>([\s\S]*?)<\/Error>/g)].map(([, entry]) => ({
    key: xmlField(entry!, 'Key'),
    code: xmlField(entry!, 'Code'),
    message: xmlField(entry!, 'Message'),
  }));
}

/**
 * A key DeleteObjects' XML carries as it is: no white space at either end, no control character, none of the
 * characters XML 1.0 cannot carry (U+FFFE, U+FFFF) or that XML 1.1 parsers turn into line ends (U+0085, U+2028).
 * Nor a lone surrogate (with the `u` flag, a pair is one code point and matches no part of that range).
 */
// eslint-disable-next-line no-control-regex
const XML_SAFE_KEY = /^(?![\s])[^\x00-\x1f\x7f\u0085\u2028\ud800-\udfff\ufffe\uffff]*(?<![\s])$/u;

/** S3's limit of keys per DeleteObjects request. */
const MAX_DELETE_KEYS = 1000;

interface PutParams {
  readonly Bucket: string;
  readonly Key: string;
  readonly ContentType?: string;
  readonly CacheControl?: string;
  readonly ACL?: string;
  readonly StorageClass?: string;
}

/** The headers of a single PUT of `params`. */
function putHeaders(params: PutParams, options: WriteOptions): Record<string, string> {
  const headers: Record<string, string> = { 'content-length': String(options.contentLength) };
  if (params.ContentType !== undefined) headers['content-type'] = params.ContentType;
  if (params.CacheControl !== undefined) headers['cache-control'] = params.CacheControl;
  if (params.ACL !== undefined) headers['x-amz-acl'] = params.ACL;
  if (params.StorageClass !== undefined) headers['x-amz-storage-class'] = params.StorageClass;
  if (options.contentMd5 !== undefined) headers['content-md5'] = options.contentMd5;
  return headers;
}

const MiB = 1024 * 1024;
/** S3's smallest part (but the last) of a multipart upload. */
const MIN_PART_SIZE = 5 * MiB;

/** A 413, or S3's EntityTooLarge: the body was refused for its size. */
function refusesBody(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  return httpStatus(error) === 413 || name === 'EntityTooLarge' || name === 'RequestEntityTooLarge';
}

function isReset(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === 'EPIPE' || code === 'ECONNRESET';
}

function describeRefusal(error: unknown): string {
  const status = httpStatus(error);
  if (status !== undefined) return String(status);
  return `${String((error as { code?: unknown }).code)} while sending it`;
}
