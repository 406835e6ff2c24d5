/**
 * IntegrityCheck: bytes counted against Content-Length, hashed against the ETag (plain MD5, or multipart at a
 * common part size, or else two reads that agree), and the last chunk held back so a failed check never hands
 * a destination its final bytes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { IntegrityError, md5FromEtag } from '../../src/storage/errors.js';
import { IntegrityCheck, candidatePartSizes, multipartEtag, readChecked, type Expected } from '../../src/sync/integrity.js';

const MiB = 1024 * 1024;
const md5 = (body: Buffer) => createHash('md5').update(body).digest('hex');

/** The ETag S3 gives an object uploaded in parts of `partSize`. */
function s3MultipartEtag(body: Buffer, partSize: number): string {
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += partSize)
    parts.push(
      createHash('md5')
        .update(body.subarray(offset, offset + partSize))
        .digest(),
    );
  return `${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}`;
}

/** Streams `body` in 64 KiB chunks through a check; what came out, and the error if the check failed. */
async function check(body: Buffer, expected: Expected): Promise<{ out: Buffer; error?: unknown; md5?: string }> {
  const chunks: Buffer[] = [];
  const integrity = new IntegrityCheck(expected);
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk);
      callback();
    },
  });
  const source = Readable.from(
    (function* () {
      for (let offset = 0; offset < body.length; offset += 64 * 1024) yield body.subarray(offset, offset + 64 * 1024);
    })(),
  );
  try {
    await pipeline(source, integrity, sink);
    return { out: Buffer.concat(chunks), md5: integrity.md5 };
  } catch (error) {
    return { out: Buffer.concat(chunks), error, md5: integrity.md5 };
  }
}

function flipped(body: Buffer, at: number): Buffer {
  const copy = Buffer.from(body);
  copy[at]! ^= 0x01;
  return copy;
}

describe('ETags', () => {
  test('a plain ETag is an MD5; a multipart one is not', () => {
    assert.equal(md5FromEtag('D41D8CD98F00B204E9800998ECF8427E'), 'd41d8cd98f00b204e9800998ecf8427e');
    assert.equal(md5FromEtag('d41d8cd98f00b204e9800998ecf8427e-3'), undefined);
    assert.equal(md5FromEtag('W/"x"'), undefined);
    // Read per character: every shape agrees with the expression it replaced.
    const before = (etag: string) => (/^[0-9a-f]{32}$/i.test(etag) ? etag.toLowerCase() : undefined);
    const hex = 'd41d8cd98f00b204e9800998ecf8427e';
    for (const etag of [
      hex,
      hex.toUpperCase(),
      `${hex.slice(0, 31)}G`,
      `${hex.slice(0, 31)}g`,
      `/${hex.slice(1)}`,
      `:${hex.slice(1)}`,
      `@${hex.slice(1)}`,
      hex.slice(1),
      `${hex}0`,
      '',
      `"${hex.slice(2)}"`,
    ])
      assert.equal(md5FromEtag(etag), before(etag), etag);
    assert.deepEqual(multipartEtag('d41d8cd98f00b204e9800998ecf8427e-3'), { digest: 'd41d8cd98f00b204e9800998ecf8427e', parts: 3 });
    assert.equal(multipartEtag('d41d8cd98f00b204e9800998ecf8427e'), undefined);
  });

  test('the part sizes tried are those that give the ETag its number of parts', () => {
    assert.ok(candidatePartSizes(17 * MiB, 4).includes(5 * MiB), "5 MiB parts (Mastodon's Ruby SDK) give 4 parts for 17 MiB");
    assert.ok(candidatePartSizes(17 * MiB, 3).includes(8 * MiB));
    for (const size of candidatePartSizes(100 * MiB + 1, 7)) assert.equal(Math.ceil((100 * MiB + 1) / size), 7);
    assert.deepEqual(candidatePartSizes(12 * MiB, 2_000), [], 'no common size gives 2000 parts of 6 KiB');
    assert.ok(
      candidatePartSizes(100_000 * 6 * MiB, 10_000).includes(Math.ceil((100_000 * 6 * MiB) / 10_000)),
      'SDKs grow the part size to stay within 10,000 parts',
    );
  });
});

describe('IntegrityCheck', () => {
  const body = randomBytes(300_000);

  test('passes the exact bytes through, all of them, and records their MD5', async () => {
    const result = await check(body, { length: body.length, etag: md5(body) });
    assert.equal(result.error, undefined);
    assert.ok(result.out.equals(body));
    assert.equal(result.md5, md5(body));
  });

  test('a body cut short fails, and its last chunk never reaches the destination', async () => {
    const result = await check(body.subarray(0, 200_000), { length: body.length, etag: md5(body) });
    assert.ok(result.error instanceof IntegrityError);
    assert.match((result.error as Error).message, /ended after 200000 of 300000 bytes/);
    assert.ok(result.out.length < 200_000, 'the held-back chunk must not be passed on');
  });

  test('a body longer than its Content-Length fails', async () => {
    const result = await check(Buffer.concat([body, Buffer.from('x')]), { length: body.length });
    assert.match(String((result.error as Error)?.message), /more than its Content-Length/);
  });

  test('a flipped byte fails against a plain MD5 ETag, with the last chunk held back', async () => {
    const result = await check(flipped(body, 123_456), { length: body.length, etag: md5(body) });
    assert.ok(result.error instanceof IntegrityError);
    assert.match((result.error as Error).message, /MD5 of the streamed bytes/);
    assert.ok(result.out.length < body.length);
  });

  test('without an ETag (a folder, an encrypted object) the length is still checked', async () => {
    assert.equal((await check(flipped(body, 5), { length: body.length })).error, undefined);
    assert.ok((await check(body.subarray(1), { length: body.length })).error instanceof IntegrityError);
  });

  describe('multipart ETags', () => {
    const large = randomBytes(12 * MiB + 77);

    test('5 MiB parts (Mastodon) and 8 MiB parts (aws-cli, this tool) are recomputed: exact passes, a flip fails', async () => {
      for (const partSize of [5 * MiB, 8 * MiB]) {
        const etag = s3MultipartEtag(large, partSize);
        assert.equal((await check(large, { length: large.length, etag })).error, undefined, `${partSize} exact`);
        const bad = await check(flipped(large, 9 * MiB), { length: large.length, etag });
        assert.ok(bad.error instanceof IntegrityError, `${partSize} flipped`);
        assert.ok(bad.out.length < large.length);
      }
    });

    test('an upload in one part has the ETag md5(md5)-1', async () => {
      const etag = s3MultipartEtag(body, 5 * MiB);
      assert.match(etag, /-1$/);
      assert.equal((await check(body, { length: body.length, etag })).error, undefined);
    });

    test('an unusual part size: the first read cannot be verified; a second read that agrees passes, one that differs does not', async () => {
      const etag = s3MultipartEtag(large, 7 * MiB);
      const first = await check(large, { length: large.length, etag });
      assert.ok(first.error instanceof IntegrityError);
      const firstMd5 = (first.error as IntegrityError).md5!;
      assert.equal(firstMd5, md5(large));

      assert.equal((await check(large, { length: large.length, etag, earlierMd5s: new Set([firstMd5]) })).error, undefined);

      const corrupted = await check(flipped(large, 3), { length: large.length, etag, earlierMd5s: new Set([firstMd5]) });
      assert.ok(corrupted.error instanceof IntegrityError, 'a corrupted read must not agree with a clean one');
      // A clean read after a corrupted first one agrees with neither... until a second clean read.
      const afterCorrupted = new Set([md5(flipped(large, 3))]);
      assert.ok((await check(large, { length: large.length, etag, earlierMd5s: afterCorrupted })).error instanceof IntegrityError);
      afterCorrupted.add(md5(large));
      assert.equal((await check(large, { length: large.length, etag, earlierMd5s: afterCorrupted })).error, undefined);
    });
  });
});

describe('readChecked: a small body read whole', () => {
  const body = randomBytes(200_000);
  /** `body` in chunks of `size`, as a socket gives it. */
  const chunked = (bytes: Buffer, size = 16 * 1024) =>
    Readable.from(
      (function* () {
        for (let offset = 0; offset < bytes.length; offset += size) yield bytes.subarray(offset, offset + size);
      })(),
    );
  const failure = (promise: Promise<Buffer>) =>
    promise.then(
      () => assert.fail('the body must not be given'),
      (error: unknown) => error,
    );

  test('gives the exact bytes, in one or many chunks, an empty body too', async () => {
    assert.ok((await readChecked(chunked(body), { length: body.length, etag: md5(body) })).equals(body));
    assert.ok((await readChecked(chunked(body, body.length), { length: body.length, etag: md5(body) })).equals(body));
    assert.equal((await readChecked(Readable.from([]), { length: 0, etag: md5(Buffer.alloc(0)) })).length, 0);
    const etag = s3MultipartEtag(body, 5 * MiB);
    assert.ok((await readChecked(chunked(body), { length: body.length, etag })).equals(body), 'an upload in one part, md5(md5)-1');
  });

  test('a body cut short, longer than its Content-Length, or with a flipped byte is never given', async () => {
    const short = await failure(readChecked(chunked(body.subarray(0, 150_000)), { length: body.length, etag: md5(body) }));
    assert.ok(short instanceof IntegrityError);
    assert.match(short.message, /ended after 150000 of 200000 bytes/);
    const long = await failure(readChecked(chunked(Buffer.concat([body, Buffer.from('x')])), { length: body.length }));
    assert.match(String((long as Error).message), /more than its Content-Length/);
    const bad = await failure(readChecked(chunked(flipped(body, 123_456)), { length: body.length, etag: md5(body) }));
    assert.ok(bad instanceof IntegrityError);
    assert.match(bad.message, /MD5 of the streamed bytes/);
    // Without an ETag (a folder, an encrypted object, a destination that proves the bytes itself): the length alone.
    assert.ok((await readChecked(chunked(flipped(body, 5)), { length: body.length })).equals(flipped(body, 5)));
  });

  test("the source's failure, or a close without an end, is never given either", async () => {
    const broken = new Readable({ read() {} });
    broken.push(body.subarray(0, 1000));
    setImmediate(() => broken.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' })));
    assert.equal(((await failure(readChecked(broken, { length: body.length }))) as NodeJS.ErrnoException).code, 'ECONNRESET');
    const closed = new Readable({ read() {} });
    closed.push(body.subarray(0, 1000));
    setImmediate(() => closed.destroy());
    assert.match(String(((await failure(readChecked(closed, { length: body.length }))) as Error).message), /ended after 1000 of 200000 bytes/);
    const gone = new Readable({ read() {} }).on('error', () => undefined);
    gone.destroy(new Error('stopped'));
    await new Promise((resolve) => gone.once('close', resolve));
    assert.equal(((await failure(readChecked(gone, { length: body.length }))) as Error).message, 'stopped', 'a body destroyed before it was read');
  });
});
