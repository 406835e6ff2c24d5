/**
 * End-to-end integrity of a streamed copy. The bytes are counted against the source's Content-Length and
 * hashed against its ETag, and the last chunk is held back until both checks pass, so a destination can never
 * complete an object from a body that was cut short or altered in transit: the upload sees an error instead of
 * its final bytes, and a failed multipart upload is aborted.
 *
 * What an ETag proves (docs/integrity.md): a plain one (32 hex digits) is the MD5 of the bytes. A multipart one
 * (`<hex>-N`) is the MD5 of the N parts' MD5s, so it can be recomputed only with the uploader's part size; the
 * common sizes that give N parts are tried (Mastodon's Ruby SDK uses 5 MiB). When none matches, the bytes are
 * accepted only once two reads have given the same MD5 (`earlierMd5s`), so one corrupted read cannot pass.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { IntegrityError, md5FromEtag } from '../storage/errors.js';
import { streamed } from './garbage.js';

/** A multipart ETag: the MD5 of the parts' MD5s and the number of parts. */
export function multipartEtag(etag: string | undefined): { digest: string; parts: number } | undefined {
  const match = etag === undefined ? null : /^([0-9a-f]{32})-(\d{1,5})$/i.exec(etag);
  return match ? { digest: match[1]!.toLowerCase(), parts: Number(match[2]) } : undefined;
}

const MiB = 1024 * 1024;
const MB = 1000 * 1000;
/** Part sizes uploaders use: SDK and tool defaults (5, 8, 15 MiB…), their doublings, and round decimal sizes. */
const COMMON_PART_SIZES = [
  ...[5, 6, 8, 10, 15, 16, 25, 32, 50, 64, 100, 128, 256, 512].map((n) => n * MiB),
  ...[5, 8, 10, 15, 16, 25, 50, 100].map((n) => n * MB),
];
const MAX_CANDIDATES = 8;

/** The part sizes that split `length` bytes into exactly `parts` parts, most common first. */
export function candidatePartSizes(length: number, parts: number): number[] {
  // SDKs raise the part size above 5 MiB only to stay within 10,000 parts.
  const automatic = Math.ceil(length / 10_000);
  const sizes = [...COMMON_PART_SIZES, ...(automatic > 5 * MiB ? [automatic] : [])];
  return sizes.filter((size) => Math.ceil(length / size) === parts || (parts === 1 && size >= length)).slice(0, MAX_CANDIDATES);
}

export interface Expected {
  /** The source's Content-Length. */
  readonly length?: number;
  /** The source's ETag. */
  readonly etag?: string;
  /** The MD5s earlier reads of the same object gave, when its multipart ETag could not be recomputed. */
  readonly earlierMd5s?: ReadonlySet<string>;
}

/** The MD5 of each part of one candidate part size, as the bytes stream by. */
class PartDigests {
  private hash: Hash = createHash('md5');
  private filled = 0;
  private readonly digests: Buffer[] = [];

  constructor(private readonly partSize: number) {}

  update(chunk: Buffer): void {
    for (let offset = 0; offset < chunk.length;) {
      const take = Math.min(this.partSize - this.filled, chunk.length - offset);
      this.hash.update(chunk.subarray(offset, offset + take));
      this.filled += take;
      offset += take;
      if (this.filled === this.partSize) this.endPart();
    }
  }

  etag(): string {
    if (this.filled > 0 || this.digests.length === 0) this.endPart();
    return `${createHash('md5').update(Buffer.concat(this.digests)).digest('hex')}-${this.digests.length}`;
  }

  private endPart(): void {
    this.digests.push(this.hash.digest());
    this.hash = createHash('md5');
    this.filled = 0;
  }
}

/**
 * The errors of source bodies streamed through a check. The upload fails with the same error object, and the
 * destination's classification would read a reset of the source's socket as the destination's silence
 * (storeWatch.ts); this tells them apart.
 */
const sourceBodyFailures = new WeakSet<object>();

/** `error` is a source body's failure that ended an upload, not the destination's. */
export function failedInSourceBody(error: unknown): boolean {
  return typeof error === 'object' && error !== null && sourceBodyFailures.has(error);
}

const NO_PARTS: readonly PartDigests[] = [];

/** The digests of a body's bytes, as they come, and the verdict on them against its source's ETag. */
class Digests {
  /** Only when there is an ETag to check against: hashing costs CPU on every byte. */
  private readonly hash: Hash | undefined;
  private readonly parts: readonly PartDigests[];
  private readonly plainMd5: string | undefined;
  private readonly multipart: { digest: string; parts: number } | undefined;

  constructor(private readonly expected: Expected) {
    this.plainMd5 = md5FromEtag(expected.etag);
    this.multipart = multipartEtag(expected.etag);
    this.hash = this.plainMd5 !== undefined || this.multipart !== undefined ? createHash('md5') : undefined;
    this.parts =
      this.multipart && expected.length !== undefined
        ? candidatePartSizes(expected.length, this.multipart.parts).map((size) => new PartDigests(size))
        : NO_PARTS;
  }

  update(chunk: Buffer): void {
    this.hash?.update(chunk);
    for (const part of this.parts) part.update(chunk);
  }

  /**
   * Once every byte passed (and the length was checked): the MD5 of the bytes (undefined without an ETag to check:
   * a folder, an encrypted object), and the failure when they do not match the ETag.
   */
  verdict(): { readonly md5: string | undefined; readonly failure: IntegrityError | undefined } {
    if (this.hash === undefined) return { md5: undefined, failure: undefined };
    const md5 = this.hash.digest('hex');
    return { md5, failure: this.verify(md5) };
  }

  private verify(md5: string): IntegrityError | undefined {
    const { etag, earlierMd5s } = this.expected;
    if (this.plainMd5 !== undefined) {
      return md5 === this.plainMd5 ? undefined : new IntegrityError(`MD5 of the streamed bytes is ${md5}, the source ETag says ${this.plainMd5}`);
    }
    if (this.parts.some((part) => part.etag() === `${this.multipart!.digest}-${this.multipart!.parts}`)) return undefined;
    // Corruption in transit is random: two reads that agree are the stored bytes.
    if (earlierMd5s?.has(md5)) return undefined;
    return new IntegrityError(
      earlierMd5s === undefined || earlierMd5s.size === 0
        ? `the streamed bytes do not match the source's multipart ETag ${etag} at any common part size; reading again to compare`
        : `this read (MD5 ${md5}) agrees with no earlier read of the source, and none matches its multipart ETag ${etag}`,
      md5,
    );
  }
}

export class IntegrityCheck extends Transform {
  private held: Buffer | undefined;
  private readonly digests: Digests;
  bytes = 0;
  /** The MD5 of every byte that passed, once the body ended (when there was an ETag to check). */
  md5: string | undefined;
  /**
   * The first failure of the source body or of this check (from()): the cause, whatever it then does to the upload
   * (an ended request, a reset) is not.
   */
  failure: unknown;

  constructor(private readonly expected: Expected) {
    super();
    this.digests = new Digests(expected);
  }

  /**
   * Streams `source` through this check. The first failure of either destroys this check, the upload's body, which
   * ends the upload at once: every store ends a request whose body fails (no AbortController per object, which
   * costs in Node 20).
   */
  from(source: Readable): this {
    source.on('error', (error) => {
      sourceBodyFailures.add(error);
      this.fail(error);
    });
    // An error the upload destroyed this body with (lib-storage aborts the body when a part fails: ABORT_ERR) is the
    // upload's, not a failure of the bytes: only the source's errors and this check's own verdicts are `failure`.
    this.on('error', () => undefined);
    source.pipe(this);
    return this;
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.destroy(error);
  }

  /** This check's own verdict on the bytes: it fails the body, and is the copy's failure whatever the upload makes of it. */
  private refuse(error: IntegrityError, callback: TransformCallback): void {
    this.failure ??= error;
    callback(error);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    streamed(chunk.length);
    const { length } = this.expected;
    if (length !== undefined && this.bytes > length) {
      this.refuse(new IntegrityError(`source sent more than its Content-Length of ${length} bytes`), callback);
      return;
    }
    this.digests.update(chunk);
    const previous = this.held;
    this.held = chunk;
    callback(null, previous);
  }

  override _flush(callback: TransformCallback): void {
    const { length } = this.expected;
    if (length !== undefined && this.bytes !== length) {
      this.refuse(new IntegrityError(`source body ended after ${this.bytes} of ${length} bytes`), callback);
      return;
    }
    const { md5, failure } = this.digests.verdict();
    this.md5 = md5;
    if (failure !== undefined) {
      this.refuse(failure, callback);
      return;
    }
    callback(null, this.held);
  }
}

/**
 * A small body read whole, then checked: resolves with its bytes only once their length (and, with an ETag, their
 * digest) are the source's, so nothing of a body cut short or altered is sent anywhere, not even its first bytes.
 * No stream stands between the GET and the PUT. The caller bounds `length`: memory is that bound per copy in flight.
 */
export function readChecked(body: Readable, expected: Expected & { readonly length: number }): Promise<Buffer> {
  const { length } = expected;
  return new Promise((resolve, reject) => {
    // Ended already (destroyed on a stop), its error or close will not come again.
    if (body.destroyed) {
      reject(body.errored ?? new IntegrityError(`source body ended after 0 of ${length} bytes`));
      return;
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    body.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > length) body.destroy(new IntegrityError(`source sent more than its Content-Length of ${length} bytes`));
      else chunks.push(chunk);
    });
    body.once('error', reject);
    body.once('end', () => {
      if (bytes !== length) {
        reject(new IntegrityError(`source body ended after ${bytes} of ${length} bytes`));
        return;
      }
      streamed(bytes);
      const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
      const digests = new Digests(expected);
      digests.update(whole);
      const { failure } = digests.verdict();
      if (failure === undefined) resolve(whole);
      else reject(failure);
    });
    // Closed without its end or an error (after end, resolved already: a no-op).
    body.once('close', () => {
      if (!body.readableEnded) reject(new IntegrityError(`source body ended after ${bytes} of ${length} bytes`));
    });
  });
}
