/**
 * An S3 server for tests: s3rver on 127.0.0.1, port 0, in a temp folder, plus small helpers over an S3Client.
 *
 * Every client made here uses `requestChecksumCalculation/responseChecksumValidation: 'WHEN_REQUIRED'`: with the
 * SDK defaults a streamed PutObject body is sent aws-chunked and s3rver stores the framing (components.md).
 */
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import type { Server } from 'node:http';
import { Readable } from 'node:stream';
import { CreateBucketCommand, GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, type ObjectCannedACL } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import S3rver from 's3rver';

/**
 * s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with single DES (`createCipheriv('des', …)`), which
 * OpenSSL 3 (Node 17+) only has in its legacy provider: every TRUNCATED ListObjectsV2 answer (more than 1000 keys, or
 * MaxKeys below the count) fails with 500 InternalError "digital envelope routines::unsupported". In the process
 * that runs s3rver, map 'des' to 2-key triple DES with K1 = K2, which is single DES (same bytes) and is in the
 * default provider. Only the exact algorithm name 'des' is touched. (A CLI s3rver needs `node
 * --openssl-legacy-provider` instead.)
 */
let desShimDone = false;
export function installS3rverDesShim(): void {
  if (desShimDone) return;
  desShimDone = true;
  const crypto = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  try {
    crypto.createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return; // DES available (e.g. --openssl-legacy-provider)
  } catch {
    /* install */
  }
  const map = (alg: string, key: unknown): [string, unknown] => {
    if (typeof alg === 'string' && alg.toLowerCase() === 'des' && (Buffer.isBuffer(key) || key instanceof Uint8Array)) {
      const k = Buffer.from(key as Uint8Array);
      return ['des-ede-cbc', Buffer.concat([k, k])];
    }
    return [alg, key];
  };
  const mutable = crypto as unknown as Record<string, (...args: unknown[]) => unknown>;
  const origCipher = mutable.createCipheriv!;
  const origDecipher = mutable.createDecipheriv!;
  mutable.createCipheriv = function createCipheriv(alg: unknown, key: unknown, ...rest: unknown[]) {
    const [a, k] = map(alg as string, key);
    return origCipher.call(this, a, k, ...rest);
  };
  mutable.createDecipheriv = function createDecipheriv(alg: unknown, key: unknown, ...rest: unknown[]) {
    const [a, k] = map(alg as string, key);
    return origDecipher.call(this, a, k, ...rest);
  };
}

export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/** An S3Client for s3rver (or a proxy in front of it) at `endpoint` (e.g. `http://127.0.0.1:1234`). */
export function makeS3Client(endpoint: string, extra: { maxAttempts?: number } = {}): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { ...S3RVER_CREDENTIALS },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    ...(extra.maxAttempts !== undefined ? { maxAttempts: extra.maxAttempts } : {}),
  });
}

export interface PutOptions {
  contentType?: string;
  cacheControl?: string;
  /** Canned ACL to send as `x-amz-acl` (s3rver accepts but does not store it). */
  acl?: ObjectCannedACL;
  /** Upload through @aws-sdk/lib-storage as a multipart upload (5 MiB parts) even if small. */
  multipart?: boolean;
}

export interface StoredObject {
  body: Buffer;
  contentType?: string;
  cacheControl?: string;
  contentLength?: number;
  etag?: string;
}

/** Object helpers bound to one client (use one on the direct client, another on a proxy's endpoint). */
export interface S3Helpers {
  client: S3Client;
  createBucket(name: string): Promise<void>;
  put(bucket: string, key: string, body: Buffer, opts?: PutOptions): Promise<void>;
  /** All keys (ListObjectsV2, no delimiter, paginated; `pageSize` = MaxKeys per page), in S3 order. */
  listKeys(bucket: string, prefix?: string, pageSize?: number): Promise<string[]>;
  /** The object, or null when it does not exist (404 / NoSuchKey). */
  getObject(bucket: string, key: string): Promise<StoredObject | null>;
}

export interface S3Server extends S3Helpers {
  endpoint: string;
  port: number;
  /** s3rver's storage folder (removed by stop()). */
  directory: string;
  stop(): Promise<void>;
}

/** The s3rver startS3 runs in this process, which can also go away for a while. */
export interface LocalS3Server extends S3Server {
  /** The server goes away (its connections are cut, its port refuses), keeping what it stores: a store restarting. */
  halt(): Promise<void>;
  /** Back on the same port, with what it stored. */
  restart(): Promise<void>;
}

async function streamToBuffer(body: unknown): Promise<Buffer> {
  if (!body) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of body as Readable) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  return err?.name === 'NoSuchKey' || err?.name === 'NotFound' || err?.Code === 'NoSuchKey' || err?.$metadata?.httpStatusCode === 404;
}

export function s3Helpers(client: S3Client): S3Helpers {
  return {
    client,
    async createBucket(name) {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    async put(bucket, key, body, opts = {}) {
      const params = {
        Bucket: bucket,
        Key: key,
        Body: body,
        ...(opts.contentType !== undefined ? { ContentType: opts.contentType } : {}),
        ...(opts.cacheControl !== undefined ? { CacheControl: opts.cacheControl } : {}),
        ...(opts.acl !== undefined ? { ACL: opts.acl } : {}),
      };
      if (opts.multipart) {
        const up = new Upload({ client, params, partSize: 5 * 1024 * 1024, queueSize: 2, leavePartsOnError: false });
        await up.done();
      } else {
        await client.send(new PutObjectCommand(params));
      }
    },
    async listKeys(bucket, prefix, pageSize) {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const res = await client.send(
          new ListObjectsV2Command({
            Bucket: bucket,
            ...(prefix !== undefined ? { Prefix: prefix } : {}),
            ...(token !== undefined ? { ContinuationToken: token } : {}),
            ...(pageSize !== undefined ? { MaxKeys: pageSize } : {}),
          }),
        );
        for (const o of res.Contents ?? []) if (o.Key !== undefined) keys.push(o.Key);
        token = res.IsTruncated ? res.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    async getObject(bucket, key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const body = await streamToBuffer(res.Body);
        return {
          body,
          ...(res.ContentType !== undefined ? { contentType: res.ContentType } : {}),
          ...(res.CacheControl !== undefined ? { cacheControl: res.CacheControl } : {}),
          ...(res.ContentLength !== undefined ? { contentLength: res.ContentLength } : {}),
          ...(res.ETag !== undefined ? { etag: res.ETag } : {}),
        };
      } catch (e) {
        if (isNotFound(e)) return null;
        throw e;
      }
    },
  };
}

/** Start s3rver on 127.0.0.1:0 in a fresh temp folder. */
export async function startS3(): Promise<LocalS3Server> {
  installS3rverDesShim();
  const directory = await fsp.mkdtemp(path.join(os.tmpdir(), 'mastosync-s3-'));
  let server: S3rver | undefined = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  let addr: { port: number };
  try {
    addr = (await server.run()) as { port: number };
  } catch (e) {
    await fsp.rm(directory, { recursive: true, force: true });
    throw e;
  }
  const port = addr.port;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = makeS3Client(endpoint);
  let stopped = false;
  const halt = async () => {
    const running = server;
    server = undefined;
    if (running === undefined) return;
    const http = (running as unknown as { httpServer?: Server }).httpServer;
    const closed = running.close().catch(() => undefined);
    http?.closeAllConnections();
    await closed;
  };
  return {
    ...s3Helpers(client),
    endpoint,
    port,
    directory,
    halt,
    async restart() {
      if (server !== undefined) return;
      server = new S3rver({ address: '127.0.0.1', port, silent: true, directory });
      await server.run();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      client.destroy();
      await halt();
      await fsp.rm(directory, { recursive: true, force: true });
    },
  };
}
