/**
 * The Azure Blob backend (Mastodon's AZURE_ENABLED, through paperclip-azure), with @azure/storage-blob.
 *
 * Writes: an object up to the single-put limit goes as one streamed Put Blob with Content-MD5, which the service
 * checks, and whose answer carries the MD5 it stored; a larger one (or one of unknown size) as staged blocks, each
 * with its own Content-MD5, committed only once the MD5 of every byte staged equals the source's, and committed
 * with that MD5 as the blob's Content-MD5 (x-ms-blob-content-md5). Either way the service stores exactly the bytes
 * the source's MD5 names, or nothing: provesWrites. Memory: (BLOCK_QUEUE + 1) blocks per large object, nothing
 * buffered for a single put.
 *
 * Azure has no per-object ACL (access is the container's public access level), so `acl` is not sent: as
 * paperclip-azure, which writes none, and Mastodon, which skips Azure when it makes a suspended account's media
 * private (UpdateMediaAttachmentsPermissionsService: "when :fog, :azure # Not supported").
 */
import { createHash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
// Types only: the SDK itself (half of the bundle) is loaded by the first request (connect()), so a run without an
// Azure store neither loads nor compiles it.
import type * as AzureSdk from '@azure/storage-blob';
import type { BlobClient, BlockBlobClient, BlockBlobUploadOptions, ContainerClient, StoragePipelineOptions } from '@azure/storage-blob';
import { applyKeyPrefix } from '../mastodon/keys.js';
import { UnavailableError, UsageError, describeError } from '../errors.js';
import { azureAccount, azureServiceUrl, type AzureStoreConfig } from './azureConfig.js';
import { azureErrorCode, azureStatus, classifyAzureError, fatalAzureError } from './azureErrors.js';
import { IntegrityError, mayPassWithTime, type StoreSide } from './errors.js';
import { outgoingBody } from './outgoing.js';
import type {
  FailureKind,
  ListedObject,
  ObjectInfo,
  ObjectStore,
  ReadObject,
  RequestGate,
  ServerCopyOptions,
  ServerCopyOutcome,
  StoreWarning,
  WriteOptions,
} from './types.js';
import { typeToWrite } from './types.js';

export interface AzureStoreOptions {
  readonly role: StoreSide;
  /** Objects up to this size go as one streamed Put Blob (nothing buffered); larger ones in blocks. Default: blockSize. */
  readonly singlePutLimit?: number;
  /** The block size of a staged upload: each block is buffered, about blockQueue + 1 of them per upload. */
  readonly blockSize: number;
  /** Blocks of one upload in flight at once. */
  readonly blockQueue: number;
  /** Told once why this service's answers do not prove the bytes (then every object is hashed on the way). */
  readonly warn?: StoreWarning;
}

const MiB = 1024 * 1024;
/** Azure's largest Put Blob (service version 2019-12-12 and later). */
const MAX_SINGLE_PUT = 5000 * MiB;
/** Azure's most blocks in one blob. */
const MAX_BLOCKS = 50_000;
/** Blobs deleted at once by delete(). */
const DELETES_IN_FLIGHT = 8;
/** A listing page: Azure's maximum. */
const LIST_PAGE = 5000;
/** A connection silent this long fails (and is retried): a stalled service must not hang a run. */
const IDLE_MS = 60_000;
/** A staged block may take 1 ms per this many bytes on top of IDLE_MS (128 KB/s): its body is sent in one go. */
const BLOCK_BYTES_PER_MS = 128;

/** Aborts once `ms` pass without bytes moving or an answer, from start() on. */
class Watchdog {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly ms: number) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  start(): void {
    const silent = Object.assign(new Error(`the connection was silent for ${Math.round(this.ms / 1000)} s`), { code: 'ETIMEDOUT' });
    // Unref'd: a request in flight keeps the process alive through its socket; a watchdog a failed call left behind
    // must not keep a finished run from exiting for up to IDLE_MS.
    this.timer ??= setTimeout(() => this.controller.abort(silent), this.ms).unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  /** `stream`, each chunk that passes restarting the wait; destroyed when the watchdog fires. */
  watch(stream: Readable): Readable {
    const touch = () => this.timer?.refresh();
    const watched = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        touch();
        callback(null, chunk);
      },
    });
    pipeline(stream, watched).catch(() => undefined);
    this.signal.addEventListener('abort', () => watched.destroy(this.signal.reason as Error), { once: true });
    return watched;
  }
}

/** The SDK, loaded, and the container's client made with it. */
interface Connection {
  readonly sdk: typeof AzureSdk;
  readonly container: ContainerClient;
}

export class AzureStore implements ObjectStore {
  readonly description: string;
  /** The container's URL without a SAS, which error URLs start with (the client's own once connected). */
  private containerUrl: string;
  private readonly serviceUrl: string;
  private connection: Promise<Connection> | undefined;
  private gate: RequestGate | undefined;
  /** False once a Put Blob's answer has not shown the MD5 of what was stored (see provesWrites). */
  private answersProve = true;

  constructor(
    readonly config: AzureStoreConfig,
    private readonly options: AzureStoreOptions,
  ) {
    this.serviceUrl = azureServiceUrl(config);
    const account = azureAccount(config);
    this.description = `azure://${account ?? '?'}/${config.container}${config.keyPrefix ? `/${config.keyPrefix}` : ''}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
    if (!/^https?:\/\/[^/]/.test(this.serviceUrl)) {
      throw new UsageError(`[${options.role}] endpoint must be a URL like https://<account>.blob.core.windows.net, not "${this.serviceUrl}"`);
    }
    if (config.credentials.kind === 'key' && account === undefined) throw new UsageError(`[${options.role}] type = "azure" with access_key needs account`);
    this.containerUrl = `${this.serviceUrl}/${encodeURIComponent(config.container)}`;
  }

  /** Loads the SDK and makes the container's client, once: every request awaits it. */
  private connect(): Promise<Connection> {
    return (this.connection ??= this.makeClient());
  }

  private async makeClient(): Promise<Connection> {
    const sdk = await import('@azure/storage-blob');
    const { config, options } = this;
    // Retries are ours (src/sync/retry): each attempt restarts the whole object from a fresh read.
    const pipelineOptions: StoragePipelineOptions = { retryOptions: { maxTries: 1 }, keepAliveOptions: { enable: true } };
    let service: AzureSdk.BlobServiceClient;
    const { credentials } = config;
    if (credentials.kind === 'connectionString') {
      try {
        service = sdk.BlobServiceClient.fromConnectionString(credentials.connectionString, pipelineOptions);
      } catch (error) {
        throw new UsageError(`[${options.role}] connection_string is not one Azure gives (${describeError(error)}): copy it from the portal's Access keys`);
      }
    } else if (credentials.kind === 'sas') {
      service = new sdk.BlobServiceClient(
        `${this.serviceUrl}?${credentials.sasToken.replace(/^\?/, '')}`,
        sdk.newPipeline(new sdk.AnonymousCredential(), pipelineOptions),
      );
    } else {
      const credential = new sdk.StorageSharedKeyCredential(azureAccount(config)!, credentials.accessKey);
      service = new sdk.BlobServiceClient(this.serviceUrl, sdk.newPipeline(credential, pipelineOptions));
    }
    const container = service.getContainerClient(config.container);
    this.containerUrl = container.url.split('?')[0]!;
    return { sdk, container };
  }

  locate(key: string): string {
    return applyKeyPrefix(this.config.keyPrefix, key);
  }

  /** `[destination] container "media" of account "x"`, for messages. */
  get where(): string {
    return `[${this.options.role}] container "${this.config.container}" at ${this.serviceUrl}`;
  }

  async check(): Promise<void> {
    const { container } = await this.connect();
    try {
      // A one-blob listing under the key prefix: what a SAS limited to the container (with list) allows too.
      const prefix = this.config.keyPrefix ? this.locate('') : undefined;
      await this.send(undefined, (abortSignal) => container.listBlobsFlat({ prefix, abortSignal }).byPage({ maxPageSize: 1 }).next());
    } catch (error) {
      const status = azureStatus(error);
      const code = azureErrorCode(error);
      const where = this.where;
      if (code === 'ContainerNotFound') throw new UsageError(`${where} does not exist: check container, account and endpoint`, { cause: error });
      if (status === 403 || status === 401) {
        throw new UsageError(
          `${where} refused the credentials (${code ?? status}): check access_key (or sas_token, or connection_string); a SAS must allow list and not have expired`,
          { cause: error },
        );
      }
      if (status !== undefined && mayPassWithTime(error, status)) {
        throw new UnavailableError(`${where} answered ${status} (${describeError(error)})`, 'the service fails for now; nothing was written, run again later', {
          cause: error,
        });
      }
      if (status !== undefined)
        throw new UsageError(`${where} answered ${status} (${code ?? describeError(error)}): check account and endpoint`, { cause: error });
      if (mayPassWithTime(error, status)) {
        throw new UnavailableError(
          `${where} does not answer (${describeError(error)})`,
          'check account, endpoint and network; nothing was written, run again later',
          {
            cause: error,
          },
        );
      }
      throw new UsageError(`${where} is unreachable (${describeError(error)}): check account, endpoint and network`, { cause: error });
    }
  }

  async read(key: string, signal?: AbortSignal): Promise<ReadObject | undefined> {
    const blob = (await this.connect()).container.getBlobClient(this.locate(key));
    const watchdog = new Watchdog(IDLE_MS);
    try {
      // No retries inside the SDK's stream either: a body cut short fails, and the copy starts again from here.
      const response = await this.send(signal, (abortSignal) => blob.download(0, undefined, { abortSignal, maxRetryRequests: 0 }), watchdog);
      const body = watchdog.watch(response.readableStreamBody as Readable);
      body.once('close', () => watchdog.stop());
      return {
        body,
        contentLength: response.contentLength,
        contentType: response.contentType,
        cacheControl: response.cacheControl,
        etag: hex(response.blobContentMD5 ?? response.contentMD5),
      };
    } catch (error) {
      watchdog.stop();
      // Before the not-found check: a container that is gone answers 404 too, and its blobs are not "missing".
      const fatal = fatalAzureError(error, this.options.role, this.where, this.locate(key), 'GET');
      if (fatal !== undefined) throw fatal;
      if (azureStatus(error) === 404) return undefined;
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const blob = (await this.connect()).container.getBlobClient(this.locate(key));
    try {
      const properties = await this.send(undefined, (abortSignal) => blob.getProperties({ abortSignal }));
      return {
        contentLength: properties.contentLength,
        contentType: properties.contentType,
        cacheControl: properties.cacheControl,
        etag: hex(properties.contentMD5),
      };
    } catch (error) {
      const fatal = fatalAzureError(error, this.options.role, this.where, this.locate(key), 'HEAD');
      if (fatal !== undefined) throw fatal;
      if (azureStatus(error) === 404) return undefined;
      throw error;
    }
  }

  async write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    const blob = (await this.connect()).container.getBlockBlobClient(this.locate(key));
    try {
      if (this.goesAsOnePut(options.contentLength)) await this.putWhole(blob, body, options);
      else await this.putInBlocks(blob, body, options);
    } catch (error) {
      throw fatalAzureError(error, this.options.role, this.where, this.locate(key), 'PUT') ?? error;
    }
  }

  /**
   * A single put sends Content-MD5, which the service checks, and its answer's Content-MD5 must equal it; a staged
   * upload is committed only when the MD5 of its blocks (each checked by the service) equals the source's.
   */
  provesWrites(contentLength: number | undefined): boolean {
    return this.answersProve || !this.goesAsOnePut(contentLength);
  }

  private goesAsOnePut(contentLength: number | undefined): contentLength is number {
    return contentLength !== undefined && contentLength <= Math.min(this.options.singlePutLimit ?? this.options.blockSize, MAX_SINGLE_PUT);
  }

  /**
   * One streamed Put Blob: nothing buffered. With the source's MD5 as Content-MD5 the service refuses bytes that
   * changed on the way; without one the body is hashed here. The MD5 the answer shows is compared with it either
   * way; a mismatch deletes the blob, so no corrupted object stays.
   */
  private async putWhole(blob: BlockBlobClient, body: Readable, options: WriteOptions): Promise<void> {
    const claimed = options.contentMd5 === undefined ? undefined : Buffer.from(options.contentMd5, 'base64');
    const { sent, hash, failed: bodyFailed } = outgoingBody(body, claimed === undefined, undefined);
    const watchdog = new Watchdog(IDLE_MS);
    let stored: string | undefined;
    try {
      const response = await this.send(
        options.signal,
        (abortSignal) =>
          blob.upload(watchdog.watch(sent), options.contentLength!, {
            blobHTTPHeaders: { blobContentType: options.contentType, blobCacheControl: options.cacheControl },
            abortSignal: AbortSignal.any([abortSignal, bodyFailed]),
            // Sent as Content-MD5: upload() passes it on (setUploadChecksumParameters) though its options type omits it.
            ...({ transactionalContentMD5: claimed } as BlockBlobUploadOptions),
          }),
        watchdog,
      );
      stored = hex(response.contentMD5);
    } catch (error) {
      if (bodyFailed.aborted) throw bodyFailed.reason;
      throw error;
    } finally {
      watchdog.stop();
    }
    const md5 = claimed?.toString('hex') ?? hash!.digest('hex');
    if (stored === md5) return;
    if (stored === undefined) {
      if (claimed !== undefined) this.stopRelyingOnAnswers(blob.name, 'answered a Put Blob without Content-MD5');
      if (options.proofRequired)
        throw new IntegrityError(
          "the destination's answer does not show the MD5 of what it stored, and the bytes were not hashed on the way: copying again, hashed",
        );
      return;
    }
    if (claimed !== undefined)
      this.stopRelyingOnAnswers(blob.name, 'stored a blob whose Content-MD5 differs from the one sent (that blob is deleted and copied again)');
    const deleted = await this.send(undefined, (abortSignal) => blob.deleteIfExists({ abortSignal })).then(
      () => 'the blob was deleted',
      (error: unknown) => `deleting it failed too (${describeError(error)}); the next attempt overwrites it`,
    );
    throw new IntegrityError(`the destination stored bytes with MD5 ${stored}, not the ${md5} sent; ${deleted}`);
  }

  /**
   * Blocks of blockSize, at most blockQueue in flight, each with its Content-MD5 (the service refuses a block that
   * changed on the way). The blob appears only at the commit, which names the MD5 of every byte staged: when the
   * source named another MD5, nothing is committed (uncommitted blocks expire on their own after a week).
   */
  private async putInBlocks(blob: BlockBlobClient, body: Readable, options: WriteOptions): Promise<void> {
    const blockSize = this.blockSizeFor(options.contentLength);
    const whole = createHash('md5');
    const ids: string[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: { error: unknown } | undefined;
    const stage = (block: Buffer) => {
      const id = blockId(ids.length);
      ids.push(id);
      whole.update(block);
      const md5 = createHash('md5').update(block).digest();
      const staged = this.send(
        options.signal,
        (abortSignal) => blob.stageBlock(id, block, block.length, { transactionalContentMD5: md5, abortSignal }),
        new Watchdog(IDLE_MS + block.length / BLOCK_BYTES_PER_MS),
      ).then(
        () => undefined,
        (error: unknown) => {
          failure ??= { error };
        },
      );
      const tracked = staged.finally(() => inFlight.delete(tracked));
      inFlight.add(tracked);
    };
    let pending: Buffer[] = [];
    let filled = 0;
    for await (const chunk of body as AsyncIterable<Buffer>) {
      pending.push(chunk);
      filled += chunk.length;
      while (filled >= blockSize) {
        const joined = Buffer.concat(pending, filled);
        stage(joined.subarray(0, blockSize));
        pending = filled > blockSize ? [joined.subarray(blockSize)] : [];
        filled -= blockSize;
        while (inFlight.size >= this.options.blockQueue && failure === undefined) await Promise.race(inFlight);
      }
      // Leaving the loop destroys the body: nothing more is read.
      if (failure !== undefined) break;
    }
    if (failure === undefined && (filled > 0 || ids.length === 0)) stage(Buffer.concat(pending, filled));
    await Promise.all(inFlight);
    if (failure !== undefined) throw failure.error;
    const md5 = whole.digest();
    if (options.contentMd5 !== undefined && md5.toString('base64') !== options.contentMd5) {
      const expected = Buffer.from(options.contentMd5, 'base64').toString('hex');
      throw new IntegrityError(`the blocks staged have MD5 ${md5.toString('hex')}, the source's is ${expected}: not committed`, md5.toString('hex'));
    }
    await this.send(options.signal, (abortSignal) =>
      blob.commitBlockList(ids, {
        blobHTTPHeaders: { blobContentType: options.contentType, blobCacheControl: options.cacheControl, blobContentMD5: md5 },
        abortSignal,
      }),
    );
  }

  /** The configured block size, or larger when 50,000 blocks would not hold the object (rounded up to a MiB). */
  private blockSizeFor(contentLength: number | undefined): number {
    if (contentLength === undefined) return this.options.blockSize;
    return Math.max(this.options.blockSize, Math.ceil(contentLength / MAX_BLOCKS / MiB) * MiB);
  }

  private stopRelyingOnAnswers(key: string, why: string): void {
    if (!this.answersProve) return;
    this.answersProve = false;
    this.options.warn?.(`the ${this.options.role} ${why}: from now on every object is hashed on the way`, { key });
  }

  classify(error: unknown): FailureKind {
    const message = error instanceof Error ? error.message : '';
    // The SDK's download stream turns a connection cut short into this (its own retries are off).
    if (/^Data corruption failure: received less data than required/.test(message)) return { kind: 'retryable' };
    return classifyAzureError(error, this.options.role, this.where, this.containerUrl);
  }

  /**
   * Every blob whose key starts with `prefix`, 5000 per page, in the service's order: ascending by UTF-16 code
   * unit, which is byte order except where a key has a character above U+FFFF at the place another has one from
   * U+E000 to U+FFFF (Mastodon's generated file names are ASCII). Azure resumes a listing only from its own
   * continuation token, so `startAfter` skips names up to it here, in the same order.
   */
  async *list(prefix: string, options?: { readonly startAfter?: string; readonly signal?: AbortSignal }): AsyncIterable<ListedObject> {
    const { container } = await this.connect();
    const root = this.locate('');
    const after = options?.startAfter;
    // A fresh page request each time, so that each has its own watchdog.
    for (let continuationToken: string | undefined = undefined, first = true; first || continuationToken !== undefined; first = false) {
      const page = await this.send(options?.signal, (abortSignal) =>
        container
          .listBlobsFlat({ prefix: this.locate(prefix) || undefined, abortSignal })
          .byPage({ continuationToken, maxPageSize: LIST_PAGE })
          .next(),
      );
      if (page.done === true) return;
      continuationToken = page.value.continuationToken || undefined;
      for (const blob of page.value.segment.blobItems) {
        if (!blob.name.startsWith(root)) continue;
        const key = blob.name.slice(root.length);
        if (after !== undefined && key <= after) continue;
        const md5 = hex(blob.properties.contentMD5);
        yield { key, size: blob.properties.contentLength ?? 0, ...(md5 !== undefined && { md5 }) };
      }
    }
  }

  /** Deletes each blob (a missing one counts as deleted), a few at once. */
  async delete(keys: readonly string[], signal?: AbortSignal): Promise<ReadonlyArray<{ readonly key: string; readonly error: string }>> {
    const { container } = await this.connect();
    const failed: Array<{ key: string; error: string }> = [];
    let next = 0;
    const worker = async () => {
      for (let index = next++; index < keys.length; index = next++) {
        const key = keys[index]!;
        const blob = container.getBlobClient(this.locate(key));
        await this.send(signal, (abortSignal) => blob.deleteIfExists({ abortSignal })).catch((error: unknown) => {
          failed.push({ key, error: describeError(error) });
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETES_IN_FLIGHT, keys.length) }, worker));
    return failed;
  }

  /**
   * Blobs of another container of the same account (one service URL) are copied here by the service (Copy Blob),
   * which keeps their Content-Type, Cache-Control and Content-MD5; a blob without Cache-Control (as Mastodon writes
   * them to Azure), or with a type that says nothing (saysNothing in types.ts), is given `options.cacheControl` and
   * `options.contentType` after the copy, as a streamed copy would have written it. `forced` (copy_mode = "server")
   * asks for any Azure source: the source is read through a SAS, which another account accepts too.
   */
  canCopyFrom(source: ObjectStore, options?: { readonly forced?: boolean }): boolean {
    return source instanceof AzureStore && (options?.forced === true || source.serviceUrl === this.serviceUrl);
  }

  async copyFrom(source: ObjectStore, sourceKey: string, key: string, options: ServerCopyOptions): Promise<ServerCopyOutcome> {
    if (!(source instanceof AzureStore) || !this.canCopyFrom(source, options)) return 'declined';
    const [{ sdk, container: sourceContainer }, { container }] = await Promise.all([source.connect(), this.connect()]);
    const from = sourceContainer.getBlobClient(source.locate(sourceKey));
    const to = container.getBlobClient(this.locate(key));
    try {
      const url = await readableUrl(sdk, from);
      const poller = await this.send(options.signal, (abortSignal) => to.beginCopyFromURL(url, { abortSignal, intervalInMs: 500 }));
      const result = await poller.pollUntilDone();
      if (result.copyStatus !== undefined && result.copyStatus !== 'success') throw new Error(`the service's copy ended ${result.copyStatus}`);
      await this.fillHeaders(to, options);
      return 'copied';
    } catch (error) {
      const code = azureErrorCode(error);
      // The service could not read the source (another account without a SAS it accepts): stream the object instead.
      if (code === 'CannotVerifyCopySource' && azureStatus(error) !== 404) return 'declined';
      const fatal = fatalAzureError(error, 'destination', this.where, this.locate(key), 'Copy Blob');
      if (fatal !== undefined) throw fatal;
      if (azureStatus(error) === 404 && (await source.head(sourceKey)) === undefined) return 'missing';
      throw error;
    }
  }

  /**
   * Copy Blob takes no headers: a copied blob without Cache-Control, or whose type says nothing, gets the copy's by Set
   * Blob Properties, which clears every header it is not given, so the others are given back as the copy has them.
   */
  private async fillHeaders(blob: BlobClient, options: ServerCopyOptions): Promise<void> {
    const copied = await this.send(options.signal, (abortSignal) => blob.getProperties({ abortSignal }));
    const blobContentType = typeToWrite(copied.contentType, options.contentType);
    const blobCacheControl = copied.cacheControl || options.cacheControl;
    if (blobContentType === copied.contentType && blobCacheControl === copied.cacheControl) return;
    const headers = {
      blobContentType,
      blobCacheControl,
      blobContentMD5: copied.contentMD5,
      blobContentEncoding: copied.contentEncoding,
      blobContentLanguage: copied.contentLanguage,
      blobContentDisposition: copied.contentDisposition,
    };
    await this.send(options.signal, (abortSignal) => blob.setHTTPHeaders(headers, { abortSignal }));
  }

  /** Every request waits for `gate` first: object requests, block stages, listing pages, deletes, copies. */
  limitRequests(gate: RequestGate): void {
    this.gate = gate;
  }

  close(): void {}

  /**
   * One request to the service, after the --max-rps gate, failing (ETIMEDOUT, retried) once the connection is silent
   * for IDLE_MS. A caller that passes its `watchdog` stops it itself: it still watches a body after the answer.
   */
  private async send<T>(signal: AbortSignal | undefined, request: (abortSignal: AbortSignal) => Promise<T>, watchdog?: Watchdog): Promise<T> {
    await this.gate?.(signal);
    const dog = watchdog ?? new Watchdog(IDLE_MS);
    dog.start();
    try {
      return await request(signal ? AbortSignal.any([signal, dog.signal]) : dog.signal);
    } catch (error) {
      if (dog.signal.aborted && signal?.aborted !== true) throw dog.signal.reason;
      throw error;
    } finally {
      if (watchdog === undefined) dog.stop();
    }
  }
}

/** The source blob's URL with a read SAS for an hour (signed with its account key), or with its store's SAS. */
async function readableUrl(sdk: typeof AzureSdk, blob: BlobClient): Promise<string> {
  if (!(blob.credential instanceof sdk.StorageSharedKeyCredential)) return blob.url;
  return blob.generateSasUrl({
    permissions: sdk.BlobSASPermissions.parse('r'),
    startsOn: new Date(Date.now() - 5 * 60_000),
    expiresOn: new Date(Date.now() + 3600_000),
  });
}

/** Block ids must all have the same length within a blob. */
function blockId(index: number): string {
  return Buffer.from(`mastosync-${String(index).padStart(6, '0')}`).toString('base64');
}

function hex(md5: Uint8Array | undefined): string | undefined {
  return md5 === undefined || md5.length === 0 ? undefined : Buffer.from(md5).toString('hex');
}
