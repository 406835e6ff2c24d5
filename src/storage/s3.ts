/** The S3 backend: AWS and every S3-compatible provider, through @aws-sdk/client-s3 and lib-storage. */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type ObjectCannedACL,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { applyKeyPrefix } from '../mastodon/keys.js';
import type { S3StoreConfig } from '../cli/config.js';
import { UsageError, describeError } from '../errors.js';
import type { ObjectInfo, ObjectStore, ReadObject, WriteOptions } from './types.js';

export interface S3StoreOptions {
  /** "source" or "destination", for messages. */
  readonly role: string;
  /** Sockets to keep open: enough for every request in flight. */
  readonly maxSockets: number;
  /** Objects up to this size go as one streamed PUT; larger ones as a multipart upload of parts this big. */
  readonly partSize: number;
  /** Parts of one multipart upload in flight at once. */
  readonly queueSize: number;
}

export class S3Store implements ObjectStore {
  readonly description: string;
  readonly client: S3Client;

  constructor(
    readonly config: S3StoreConfig,
    private readonly options: S3StoreOptions,
  ) {
    this.description = `s3://${config.bucket}${config.keyPrefix ? `/${config.keyPrefix}` : ''}${config.endpoint ? ` at ${config.endpoint}` : ''}`;
    if (config.endpoint !== undefined && !/^https?:\/\/[^/]/.test(config.endpoint)) {
      throw new UsageError(`[${options.role}] endpoint must be a URL like https://s3.example.com, not "${config.endpoint}"`);
    }
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets };
    this.client = new S3Client({
      region: config.region,
      endpoint: config.endpoint,
      forcePathStyle: config.forcePathStyle,
      credentials: config.credentials,
      // The SDK's default checksum mode frames streamed bodies as aws-chunked, which some servers store
      // verbatim (corrupting the object) and R2/B2 reject. Integrity is checked by src/sync/integrity instead.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Retries are ours (src/sync/retry): each attempt restarts the whole object from a fresh GET.
      maxAttempts: 1,
      // Without a logger the SDK warns on the console about every failed streamed PUT; failures reach our log.
      logger: SILENT_SDK_LOGGER,
      requestHandler: new NodeHttpHandler({
        httpAgent: new HttpAgent(agentOptions),
        httpsAgent: new HttpsAgent(agentOptions),
        connectionTimeout: 10_000,
        requestTimeout: 120_000,
      }),
    });
  }

  locate(key: string): string {
    return applyKeyPrefix(this.config.keyPrefix, key);
  }

  async check(): Promise<void> {
    const { bucket } = this.config;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: bucket }));
    } catch (error) {
      const status = httpStatus(error);
      const where = `[${this.options.role}] bucket "${bucket}"${this.config.endpoint ? ` at ${this.config.endpoint}` : ''}`;
      if (status === 404) throw new UsageError(`${where} does not exist: check bucket, endpoint and region`, { cause: error });
      if (status === 403 || status === 401) {
        throw new UsageError(`${where} refused the credentials: check access_key_id and secret_access_key`, { cause: error });
      }
      if (status === 301 || status === 400) {
        throw new UsageError(`${where} answered ${status}: check region (now "${this.config.region}") and endpoint`, { cause: error });
      }
      throw new UsageError(`${where} is unreachable (${describeError(error)}): check endpoint and network`, { cause: error });
    }
  }

  async read(key: string, signal?: AbortSignal): Promise<ReadObject | undefined> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.config.bucket, Key: this.locate(key) }), {
        abortSignal: signal,
      });
      return {
        body: response.Body as Readable,
        contentLength: response.ContentLength,
        contentType: response.ContentType,
        cacheControl: response.CacheControl,
        etag: unquote(response.ETag),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const response = await this.client.send(new HeadObjectCommand({ Bucket: this.config.bucket, Key: this.locate(key) }));
      return {
        contentLength: response.ContentLength,
        contentType: response.ContentType,
        cacheControl: response.CacheControl,
        etag: unquote(response.ETag),
      };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  async write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    const params = {
      Bucket: this.config.bucket,
      Key: this.locate(key),
      ContentType: options.contentType,
      CacheControl: options.cacheControl,
      ACL: options.acl ? (options.acl as ObjectCannedACL) : undefined,
      StorageClass: options.storageClass ? (options.storageClass as StorageClass) : undefined,
    };
    if (options.contentLength !== undefined && options.contentLength <= this.options.partSize) {
      // One streamed PUT: nothing buffered, and Content-MD5 lets the server refuse bytes that changed on the way.
      await this.client.send(
        new PutObjectCommand({ ...params, Body: body, ContentLength: options.contentLength, ContentMD5: options.contentMd5 }),
        { abortSignal: options.signal },
      );
      return;
    }
    // Multipart: lib-storage aborts the upload (no orphaned parts) when the body fails before its last part.
    const upload = new Upload({
      client: this.client,
      params: { ...params, Body: body },
      partSize: this.options.partSize,
      queueSize: this.options.queueSize,
      leavePartsOnError: false,
    });
    const abort = () => void upload.abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    try {
      await upload.done();
    } finally {
      options.signal?.removeEventListener('abort', abort);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

const SILENT_SDK_LOGGER = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

export function httpStatus(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata?.httpStatusCode;
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isNotFound(error: unknown): boolean {
  const name = (error as { name?: string } | undefined)?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || httpStatus(error) === 404;
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}
