/**
 * Static large objects: an object above the segment size is written as segments (each an object of its own in
 * `<container>_segments`, checked against its MD5) and then a manifest that lists them, which Swift checks again
 * (each segment's ETag and size) before the object appears. The body streams through, one segment at a time:
 * nothing is buffered beyond the chunk in hand.
 */
import { Readable } from 'node:stream';
import { IntegrityError } from './errors.js';

/** Swift's default max_manifest_segments: more segments than this are refused. */
const MAX_SEGMENTS = 1000;
/** Swift's default max_file_size: the most one object (or segment) may hold. */
export const MAX_SEGMENT_SIZE = 5 * 1024 ** 3;

/** The segment size for an object of `size` bytes: the configured one, larger when MAX_SEGMENTS would not hold it. */
export function segmentSizeFor(size: number, configured: number): number {
  return Math.max(configured, Math.ceil(size / MAX_SEGMENTS));
}

/**
 * Where the segments of one upload go: `<object>/slo/<time>/<size>/<segment size>/<index>`, the layout of
 * python-swiftclient (`swift upload --use-slo`), so that admins and their tools recognise them.
 */
export function segmentNames(name: string, size: number, segmentSize: number, time: number): string[] {
  const count = Math.max(1, Math.ceil(size / segmentSize));
  const base = `${name}/slo/${(time / 1000).toFixed(6)}/${size}/${segmentSize}/`;
  return Array.from({ length: count }, (_, index) => base + String(index).padStart(8, '0'));
}

export interface ManifestEntry {
  /** `/<container>/<segment>`, not URL-encoded. */
  readonly path: string;
  readonly etag: string;
  readonly size_bytes: number;
}

/** Hands out consecutive slices of a body as streams of exact lengths. */
export class SegmentReader {
  private readonly chunks: AsyncIterator<Buffer | string>;
  private rest: Buffer | undefined;

  constructor(body: Readable) {
    this.chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer | string>;
  }

  /** The next `length` bytes of the body; the stream fails if the body ends before. */
  take(length: number): Readable {
    return Readable.from(this.slice(length), { objectMode: false });
  }

  private async *slice(length: number): AsyncGenerator<Buffer> {
    for (let left = length; left > 0;) {
      let chunk = this.rest;
      this.rest = undefined;
      if (chunk === undefined) {
        const next = await this.chunks.next();
        if (next.done === true) throw new IntegrityError(`the body ended ${left} bytes before the end of a segment`);
        chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      }
      if (chunk.length > left) {
        this.rest = chunk.subarray(left);
        chunk = chunk.subarray(0, left);
      }
      left -= chunk.length;
      yield chunk;
    }
  }

  /** Fails when the body holds more bytes than the segments took. */
  async end(): Promise<void> {
    const more = this.rest !== undefined && this.rest.length > 0 ? this.rest : (await this.chunks.next()).value;
    if (more !== undefined && more.length > 0) throw new IntegrityError('the body holds more bytes than its announced length');
  }
}
