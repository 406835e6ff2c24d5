/**
 * A store away: which failures say the store did not answer (the store layer's classification), and what the retry
 * loop does with them once the store is watched: wait for it without using up the object's retries, stop once it
 * has answered nothing for the patience, naming it; a request that fails alone while the store answers others
 * counts against the object as before. The stores here are fakes whose requests fail as Node's sockets do.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { classifyCommon, IntegrityError } from '../../src/storage/errors.js';
import { S3ResponseError, classifyS3Error } from '../../src/storage/s3Errors.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/types.js';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { copyOwnedObject } from '../../src/sync/copy.js';
import { withRetries } from '../../src/sync/retry.js';
import { StoreUnreachableError, StoreWatch } from '../../src/sync/storeWatch.js';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' });
const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });

describe('what says the store did not answer', () => {
  test("Node's socket errors, and a gateway's 502 and 504, are the store's silence", () => {
    assert.deepEqual(classifyCommon(refused()), { kind: 'retryable', noAnswer: true });
    assert.deepEqual(classifyCommon(Object.assign(new Error('getaddrinfo ENOTFOUND s3.example'), { code: 'ENOTFOUND' })), {
      kind: 'retryable',
      noAnswer: true,
    });
    assert.deepEqual(classifyCommon(new Error('socket hang up')), { kind: 'retryable', noAnswer: true });
    assert.equal((classifyS3Error(new S3ResponseError(502, {}, 'BadGateway', 'Bad Gateway')) as { noAnswer?: true }).noAnswer, true);
    assert.equal((classifyS3Error(new S3ResponseError(504, {}, 'GatewayTimeout', 'Gateway Timeout')) as { noAnswer?: true }).noAnswer, true);
  });

  test('this process out of descriptors or memory for a moment is tried again, and is no silence of the store', () => {
    for (const code of ['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN'])
      assert.deepEqual(classifyCommon(Object.assign(new Error(`${code}: open dist/bundle/s3Sdk.js`), { code })), { kind: 'retryable' }, code);
  });

  test('an answer is no silence: a 500, a 404, bytes that arrived wrong, a stream cut short', () => {
    assert.deepEqual(classifyS3Error(new S3ResponseError(500, {}, 'InternalError', 'boom')), { kind: 'retryable', afterMs: undefined });
    assert.deepEqual(classifyS3Error(new S3ResponseError(404, {}, 'NoSuchKey', 'no')), { kind: 'notFound' });
    const timeoutAnswer = classifyS3Error(new S3ResponseError(400, {}, 'RequestTimeout', 'not read from within the timeout period'));
    assert.equal(timeoutAnswer.kind, 'retryable');
    assert.equal((timeoutAnswer as { noAnswer?: true }).noAnswer, undefined);
    assert.deepEqual(classifyCommon(new IntegrityError('cut short')), { kind: 'retryable' });
    assert.deepEqual(classifyCommon(Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })), { kind: 'retryable' });
  });
});

/** A store whose HEAD answers as `answer` says at the time of the request. */
function fakeStore(description: string, answer: (key: string) => Promise<ObjectInfo | undefined>): ObjectStore {
  return {
    description,
    locate: (key) => key,
    check: async () => undefined,
    read: async () => undefined,
    head: answer,
    write: async () => undefined,
    provesWrites: () => false,
    classify: (error) => classifyCommon(error) ?? { kind: 'permanent' },
    close: () => undefined,
  };
}

const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('a watched store that answers nothing', () => {
  test('is waited for past the retries, and stops the operation once silent for the patience, named with its side', async () => {
    const store = new StoreWatch('run again with --resume', undefined, 400).watch(
      fakeStore('s3://gone at http://127.0.0.1:9', async () => Promise.reject(refused())),
      'source',
    );
    const started = performance.now();
    let attempts = 0;
    const error = await withRetries(
      [store],
      () => {
        attempts += 1;
        return store.head('a');
      },
      { retries: 1 },
    ).catch((thrown: unknown) => thrown);
    assert.ok(error instanceof StoreUnreachableError, String(error));
    assert.match(
      error.message,
      /^the source s3:\/\/gone at http:\/\/127\.0\.0\.1:9 answered no request for 0 s \(ECONNREFUSED: connect ECONNREFUSED 127\.0\.0\.1:9\): run again with --resume$/,
    );
    assert.equal(error.side, 'source');
    assert.ok(attempts > 2, `tried ${attempts} times: more than the retries, while waiting for the store`);
    assert.ok(performance.now() - started < 2000);
  });

  test('back before the patience, the operation succeeds, whatever the retries', async () => {
    let away = true;
    setTimeout(() => (away = false), 300);
    const store = new StoreWatch('run again with --resume', undefined, 3000).watch(
      fakeStore('s3://blip', async () => (away ? Promise.reject(refused()) : { contentLength: 1 })),
      'destination',
    );
    assert.deepEqual(await withRetries([store], () => store.head('a'), { retries: 0 }), { contentLength: 1 });
  });

  test('a request that fails alone while the store answers others counts against its retries', async () => {
    const store = new StoreWatch('run again with --resume', undefined, 60_000).watch(
      fakeStore('s3://flaky', async (key) => {
        await later(30);
        if (key === 'bad') throw reset();
        return { contentLength: 1 };
      }),
      'destination',
    );
    let answering = true;
    const others = (async () => {
      while (answering) await store.head('good');
    })();
    let attempts = 0;
    const error = await withRetries(
      [store],
      () => {
        attempts += 1;
        return store.head('bad');
      },
      { retries: 2 },
    ).catch((thrown: unknown) => thrown);
    answering = false;
    await others;
    assert.equal((error as { code?: string }).code, 'ECONNRESET');
    assert.equal(attempts, 3);
  });

  test('a long write that fails once, after longer than the patience, is tried again: its start is no silence', async () => {
    // The upload runs longer than the patience (a large video), answered part by part all along, then is reset.
    let attempts = 0;
    const store = new StoreWatch('run again with --resume', undefined, 400).watch(
      {
        ...fakeStore('s3://slow', async () => undefined),
        write: async () => {
          attempts += 1;
          if (attempts > 1) return;
          await later(500);
          throw reset();
        },
      },
      'destination',
    );
    await withRetries([store], () => store.write('video', Readable.from([]), {}), { retries: 1 });
    assert.equal(attempts, 2);
  });

  test("a source body that breaks mid-way fails its object alone: the upload's error is not the destination's silence", async () => {
    const size = 1024 * 1024; // streamed, not read whole
    let reads = 0;
    const source: ObjectStore = {
      ...fakeStore('s3://source', async () => undefined),
      read: async () => {
        reads += 1;
        let sent = 0;
        const body = new Readable({
          read() {
            if (sent >= 64 * 1024) {
              this.destroy(reset());
              return;
            }
            sent += 16 * 1024;
            setTimeout(() => this.push(Buffer.alloc(16 * 1024)), 5);
          },
        });
        return { body, contentLength: size, contentType: 'video/mp4' };
      },
    };
    const destination: ObjectStore = {
      ...fakeStore('s3://destination', async () => undefined),
      write: async (_key, body) => pipeline(body, new Writable({ write: (_chunk, _encoding, done) => done() })),
    };
    const watch = new StoreWatch('run again with --resume', undefined, 300);
    const object = { table: 'media_attachments', id: '1', key: 'media_attachments/files/000/000/001/original/a.mp4', alternates: [], visibility: 'default' };
    const result = await copyOwnedObject(
      object as never,
      {
        source: watch.watch(source, 'source'),
        destination: watch.watch(destination, 'destination'),
        retries: 2,
      } as never,
    );
    assert.equal(result.status, 'failed');
    assert.equal(result.fatal, undefined, result.fatal?.message);
    assert.equal(reads, 3, 'tried as often as its retries allow');
  });

  test("one object's request that the store keeps resetting, nothing else in flight, fails alone: the store is asked, and answers", async () => {
    let writes = 0;
    const store = new StoreWatch('run again with --resume', undefined, 300).watch(
      {
        ...fakeStore('s3://waf', async () => undefined),
        write: async () => {
          writes += 1;
          throw reset();
        },
      },
      'destination',
    );
    const error = await withRetries([store], () => store.write('refused-by-a-proxy', Readable.from([]), {}), { retries: 3 }).catch((thrown: unknown) => thrown);
    assert.equal((error as { code?: string }).code, 'ECONNRESET', String(error));
    assert.equal(writes, 4);
  });
});
