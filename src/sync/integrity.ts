/**
 * End-to-end integrity of a streamed copy. The bytes are counted against the source's Content-Length and,
 * when the source ETag is a plain MD5, hashed and compared. The last chunk is held back until both checks
 * pass, so a destination can never complete an object from a body that was cut short or altered in transit:
 * the upload sees an error instead of its final bytes, and a failed multipart upload is aborted.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
}

/** A plain MD5 ETag: 32 hex digits, no `-<parts>` suffix (multipart) — only those can be checked. */
export function md5FromEtag(etag: string | undefined): string | undefined {
  return etag !== undefined && /^[0-9a-f]{32}$/i.test(etag) ? etag.toLowerCase() : undefined;
}

export class IntegrityCheck extends Transform {
  private held: Buffer | undefined;
  private hash: Hash | undefined;
  bytes = 0;

  constructor(
    private readonly expectedLength: number | undefined,
    private readonly expectedMd5: string | undefined,
  ) {
    super();
    this.hash = expectedMd5 === undefined ? undefined : createHash('md5');
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    this.hash?.update(chunk);
    if (this.expectedLength !== undefined && this.bytes > this.expectedLength) {
      callback(new IntegrityError(`source sent more than its Content-Length of ${this.expectedLength} bytes`));
      return;
    }
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    if (this.expectedLength !== undefined && this.bytes !== this.expectedLength) {
      callback(new IntegrityError(`source body ended after ${this.bytes} of ${this.expectedLength} bytes`));
      return;
    }
    const md5 = this.hash?.digest('hex');
    if (md5 !== undefined && md5 !== this.expectedMd5) {
      callback(new IntegrityError(`MD5 of the streamed bytes is ${md5}, the source ETag says ${this.expectedMd5}`));
      return;
    }
    callback(null, this.held);
  }
}
