/**
 * Server-side copy ([sync] copy_mode): CopyObject from a bucket to another on the same provider, so no object
 * bytes pass through mastosync: a HEAD of the source, then one CopyObject. MetadataDirective COPY keeps the
 * source's Content-Type and Cache-Control; where the source has no Cache-Control, or a type that says nothing
 * (saysNothing in types.ts), REPLACE sends the headers a streamed copy writes instead (Mastodon's Cache-Control, the row's
 * type), so an object's headers do not depend on how it was copied. A copy does not carry the ACL or the storage
 * class, so both are sent. Objects above CopyObject's 5 GiB limit are copied in parts (UploadPartCopy), through the
 * SDK, loaded then.
 *
 * Servers have been seen to decode a percent-encoded x-amz-copy-source wrongly (s3rver leaves %2B, a '+', as is),
 * answering NoSuchKey for an object that exists. So a NoSuchKey for a key that travels encoded is not trusted:
 * the store declines, and the caller streams that object instead, and only a GET may then call it missing.
 */
import type { ObjectCannedACL, StorageClass } from '@aws-sdk/client-s3';
import type { S3StoreConfig } from './s3Config.js';
import { encodeKey, needsEncoding } from './s3Direct.js';
import type { S3Store } from './s3.js';
import { typeToWrite, type ObjectInfo, type ServerCopyOptions, type ServerCopyOutcome } from './types.js';
import { fatalOfRequest, type FatalStoreError } from './errors.js';
import { fatalS3Error, s3ErrorCode } from './s3Errors.js';

/** The largest object one CopyObject copies (AWS; most providers share the limit). */
export const MAX_COPY_OBJECT = 5 * 1024 ** 3;
const COPY_PART_SIZE = 512 * 1024 ** 2;
const MAX_PARTS = 10_000;
/** Parts copied at once: each is a long server-side operation, not bandwidth of ours. */
const PARTS_IN_FLIGHT = 4;

/** Whether CopyObject sent to `destination` can read `source`: one provider (endpoint and region) and one account. */
export function sameProvider(source: S3StoreConfig, destination: S3StoreConfig): boolean {
  const a = source.credentials;
  const b = destination.credentials;
  const sameCredentials =
    a === undefined || b === undefined
      ? a === b
      : a.accessKeyId === b.accessKeyId && a.secretAccessKey === b.secretAccessKey && a.sessionToken === b.sessionToken;
  return (source.endpoint ?? '') === (destination.endpoint ?? '') && source.region === destination.region && sameCredentials;
}

/** Copies `sourceKey` of `source` to `key` of `destination` on the provider. */
export async function copyOnProvider(
  source: S3Store,
  sourceKey: string,
  destination: S3Store,
  key: string,
  options: ServerCopyOptions,
): Promise<ServerCopyOutcome> {
  const from = source.locate(sourceKey);
  // The source's headers first: a key that travels encoded (s3rver's %2B) is answered right by a HEAD.
  const found = await source.head(sourceKey);
  if (found === undefined) return 'missing';
  const head = { ...found, contentType: typeToWrite(found.contentType, options.contentType), cacheControl: found.cacheControl ?? options.cacheControl };
  const kept = head.contentType === found.contentType && head.cacheControl === found.cacheControl;
  const headers: Record<string, string> = { 'x-amz-metadata-directive': kept ? 'COPY' : 'REPLACE' };
  if (!kept) {
    if (head.contentType !== undefined) headers['content-type'] = head.contentType;
    if (head.cacheControl !== undefined) headers['cache-control'] = head.cacheControl;
  }
  if (options.acl) headers['x-amz-acl'] = options.acl;
  if (options.storageClass) headers['x-amz-storage-class'] = options.storageClass;
  try {
    await destination.direct.copy(source.config.bucket, from, destination.locate(key), headers, options.signal);
    return 'copied';
  } catch (error) {
    const fatal =
      sourceUnreadable(error, source, destination, destination.locate(key)) ??
      fatalS3Error(error, 'destination', destination.where, destination.locate(key), 'CopyObject', options);
    if (fatal !== undefined) throw fatal;
    if (isNoSuchKey(error)) return needsEncoding(from) ? 'declined' : 'missing';
    if (!isTooLarge(error) || (head.contentLength ?? 0) <= MAX_COPY_OBJECT) throw error;
    await copyInParts(source, from, destination, destination.locate(key), head, options);
    return 'copied';
  }
}

/**
 * NoSuchBucket or AccessDenied answered to CopyObject: the destination bucket was checked at the run's start, so it
 * is the source bucket that the destination's provider cannot see (another provider or region) or read (another
 * account): not a bucket to create, but a copy to stream.
 */
function sourceUnreadable(error: unknown, source: S3Store, destination: S3Store, key: string): FatalStoreError | undefined {
  const code = s3ErrorCode(error);
  if (code !== 'NoSuchBucket' && code !== 'AccessDenied') return undefined;
  // AccessDenied may also be the destination's credentials refused the write itself (the start's check only lists).
  const orWrite = code === 'AccessDenied' ? ', or may not write to it (give its credentials s3:PutObject on the bucket)' : '';
  return fatalOfRequest(error, { side: 'destination', where: destination.where, key, operation: 'CopyObject', code })(
    `cannot read from ${source.where} on the provider${orWrite}`,
    `a copy on the provider needs both buckets on one provider, readable with the destination's credentials: set [sync] copy_mode = "stream" (or "auto"), then run again with --resume`,
  );
}

/** The byte ranges (inclusive) of a copy in parts: 512 MiB each, more if 10,000 parts would not hold it. */
export function copyRanges(size: number): Array<{ first: number; last: number }> {
  const partSize = Math.max(COPY_PART_SIZE, Math.ceil(size / MAX_PARTS));
  const ranges: Array<{ first: number; last: number }> = [];
  for (let first = 0; first < size; first += partSize) ranges.push({ first, last: Math.min(size, first + partSize) - 1 });
  return ranges;
}

async function copyInParts(source: S3Store, from: string, destination: S3Store, key: string, head: ObjectInfo, options: ServerCopyOptions): Promise<void> {
  const [client, { CompleteMultipartUploadCommand, CreateMultipartUploadCommand, UploadPartCopyCommand }] = await Promise.all([
    destination.sdkClient(),
    import('@aws-sdk/client-s3'),
  ]);
  const Bucket = destination.config.bucket;
  const abortSignal = options.signal;
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({
      Bucket,
      Key: key,
      ContentType: head.contentType,
      CacheControl: head.cacheControl,
      ACL: options.acl ? (options.acl as ObjectCannedACL) : undefined,
      StorageClass: options.storageClass ? (options.storageClass as StorageClass) : undefined,
    }),
    { abortSignal },
  );
  try {
    const ranges = copyRanges(head.contentLength!);
    const etags: string[] = [];
    let next = 0;
    const worker = async () => {
      for (let index = next++; index < ranges.length; index = next++) {
        const { first, last } = ranges[index]!;
        const part = await client.send(
          new UploadPartCopyCommand({
            Bucket,
            Key: key,
            UploadId,
            PartNumber: index + 1,
            CopySource: `${source.config.bucket}/${encodeKey(from)}`,
            CopySourceRange: `bytes=${first}-${last}`,
          }),
          { abortSignal },
        );
        etags[index] = part.CopyPartResult!.ETag!;
      }
    };
    await Promise.all(Array.from({ length: PARTS_IN_FLIGHT }, worker));
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket,
        Key: key,
        UploadId,
        MultipartUpload: { Parts: etags.map((ETag, index) => ({ ETag, PartNumber: index + 1 })) },
      }),
      { abortSignal },
    );
  } catch (error) {
    // Parts of an unfinished upload cost storage until aborted.
    await destination.direct.abortUpload(key, UploadId!).catch(() => undefined);
    throw error;
  }
}

function isNoSuchKey(error: unknown): boolean {
  const { name, $metadata } = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return name === 'NoSuchKey' || (name !== 'NoSuchBucket' && $metadata?.httpStatusCode === 404);
}

/** AWS answers a copy source above 5 GiB with InvalidRequest; others with EntityTooLarge. */
function isTooLarge(error: unknown): boolean {
  const { name, message } = error as { name?: string; message?: string };
  return name === 'EntityTooLarge' || (name === 'InvalidRequest' && /larger than the maximum/i.test(message ?? ''));
}
