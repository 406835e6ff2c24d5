/**
 * A store that answers but fails every object (a proxy resetting every upload, a full disk behind a gateway): the
 * counting that stops a run after a clear run of failures on one side, N objects in a row and for at least the
 * patience, with nothing copied between; and what never counts (objects missing at the source, a source body cut
 * short, a flaky minute, a few bad objects). Then where a copy says it failed: the source's GET, its body, or the
 * destination's PUT, from fake stores whose requests fail as Node's sockets do.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FatalStoreError, classifyCommon } from '../../src/storage/errors.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { copyOwnedObject, type CopyResult } from '../../src/sync/copy.js';
import {
  FailureStreaks,
  StoreFailsEveryObjectError,
  describeFailedAt,
  describeFailure,
  streakObjects,
  type FailedAt,
  type StreakOptions,
} from '../../src/sync/failureStreak.js';
import { mediaOriginal } from '../support/objects.js';

const MINUTE = 60_000;
const PUT: FailedAt = { side: 'destination', operation: 'PUT' };
const GET: FailedAt = { side: 'source', operation: 'GET' };
const BODY: FailedAt = { side: 'source', operation: 'GET', sourceBody: true };

const failed = (at: FailedAt, error = 'ECONNRESET: socket hang up'): CopyResult => ({ status: 'failed', bytes: 0, ms: 10, error, failedAt: at, attempts: 6 });
const COPIED: CopyResult = { status: 'copied', bytes: 1, ms: 10, attempts: 1 };
const MISSING: CopyResult = { status: 'missing', bytes: 0, ms: 10, attempts: 1 };

/** Streaks of 100 objects and 5 minutes, on a clock the test moves (`checks`: the options of a run that checks them). */
function streaks(checks: Pick<StreakOptions, 'canCheck' | 'checkAfter'> = {}) {
  const clock = { now: 0 };
  const counting = new FailureStreaks({
    objects: 100,
    ms: 5 * MINUTE,
    where: { source: 's3://old at https://old.example', destination: 's3://new at https://new.example' },
    clock: () => clock.now,
    ...checks,
  });
  /** `count` results, one every `everyMs` (failed before or not); the stop, if one came, and after how many. */
  const feed = (result: CopyResult, count: number, everyMs: number, failedBefore = false) => {
    for (let index = 1; index <= count; index++) {
      clock.now += everyMs;
      const stop = counting.record(result, `key-${index}`, failedBefore);
      if (stop !== undefined) return { stop, after: index };
    }
    return undefined;
  };
  return { counting, clock, feed };
}

describe('a clear run of failures on one side stops the run', () => {
  test('every PUT failing: it stops once 100 objects in a row have failed over 5 minutes, naming side, store, operation and the last error', () => {
    const { feed } = streaks();
    // One failure every 4 s: the 100th comes at 400 s, past the 5 minutes.
    const tripped = feed(failed(PUT), 1000, 4000);
    assert.ok(tripped, 'stopped');
    assert.equal(tripped.after, 100);
    assert.ok(tripped.stop instanceof StoreFailsEveryObjectError);
    assert.ok(tripped.stop instanceof FatalStoreError, 'stops the run as any error no retry fixes');
    assert.equal(tripped.stop.side, 'destination');
    assert.equal(tripped.stop.key, 'key-100');
    assert.equal(
      tripped.stop.message,
      'the destination s3://new at https://new.example failed the PUT of each of the last 100 objects, for 7 min, none copied in between ' +
        '(the last: ECONNRESET: socket hang up): it answers, yet every PUT fails: check what stands in front of it (a proxy, firewall or WAF), ' +
        'its free space, and that the credentials may still write; finished objects are in the checkpoint: once PUTs go through again, run again with --resume',
    );
  });

  test('fast failures wait for the 5 minutes; slow ones for the 100 objects', () => {
    const fast = streaks().feed(failed(PUT), 100_000, 100);
    assert.equal(fast?.after, 3001, 'the first at 0.1 s, so 5 min after it is the 3001st');
    const slow = streaks().feed(failed(PUT), 1000, 10 * MINUTE);
    assert.equal(slow?.after, 100);
  });

  test('every GET failing stops it too, naming the source', () => {
    const tripped = streaks().feed(failed(GET, 'InternalError: We encountered an internal error'), 1000, 5000);
    assert.equal(tripped?.stop.side, 'source');
    assert.match(
      tripped?.stop.message ?? '',
      /^the source s3:\/\/old at https:\/\/old\.example failed the GET of each of the last 100 objects, for 8 min, none copied in between \(the last: InternalError: We encountered an internal error\): .*that the credentials may still read; .*once GETs go through again, run again with --resume$/,
    );
  });

  test("every source body cut short stops it too, as the source's failure: it answered, but no body arrives whole", () => {
    const { feed } = streaks();
    const tripped = feed(failed(BODY, 'IntegrityError: source body ended after 10 of 100 bytes'), 10_000, 5000);
    assert.equal(tripped?.after, 100);
    assert.equal(tripped?.stop.side, 'source');
    assert.equal(
      tripped?.stop.message,
      'the source s3://old at https://old.example answered the GET of each of the last 100 objects with a body cut short or arriving wrong, for 8 min, ' +
        'none copied in between (the last: IntegrityError: source body ended after 10 of 100 bytes): it answers, yet no body arrives whole: check what stands ' +
        'in front of it (a proxy or load balancer cutting long or large transfers, a timeout) and its disks; finished objects are in the checkpoint: once ' +
        'bodies arrive whole again, run again with --resume',
    );
    // Cut bodies and refused GETs are one run of the source's failures; a failed PUT starts it again, as the source did its part.
    const mixed = streaks();
    assert.equal(mixed.feed(failed(BODY), 60, 10_000), undefined);
    assert.equal(mixed.feed(failed(GET), 40, 10_000)?.after, 40);
    const interrupted = streaks();
    assert.equal(interrupted.feed(failed(BODY), 99, 10_000), undefined);
    assert.equal(interrupted.feed(failed(PUT), 1, 10_000), undefined);
    assert.equal(interrupted.feed(failed(BODY), 99, 10_000), undefined);
  });

  test("every ACL request failing (the ACL pass, verify --acl --repair): named so, and what to do is the caller's; an object done without a copy starts the count again", () => {
    const clock = { now: 0 };
    const counting = new FailureStreaks({
      objects: 100,
      ms: 5 * MINUTE,
      where: { source: 's3://old', destination: 's3://new' },
      clock: () => clock.now,
      again: (requests) => `once ${requests} go through again, run verify --repair again`,
    });
    const acl: FailedAt = { side: 'destination', operation: 'ACL' };
    let stop;
    for (let index = 1; index <= 99; index++) {
      clock.now += 5000;
      assert.equal(counting.record(failed(acl, 'InternalError'), `key-${index}`), undefined);
    }
    counting.succeeded();
    for (let index = 1; index <= 100 && stop === undefined; index++) {
      clock.now += 5000;
      stop = counting.record(failed(acl, 'InternalError'), `key-${index}`);
    }
    assert.equal(
      stop?.message,
      'the destination s3://new failed the ACL request of each of the last 100 objects, for 8 min, none done in between (the last: InternalError): ' +
        'it answers, yet every ACL request fails: check what stands in front of it (a proxy, firewall or WAF), and that the credentials may still read and set ACLs; ' +
        'once ACL requests go through again, run verify --repair again',
    );
    assert.equal(describeFailedAt(acl), 'destination ACL');
  });

  test('the concurrency raises the objects needed: four waves of copies in flight, never fewer than 100', () => {
    assert.equal(streakObjects(1), 100);
    assert.equal(streakObjects(8), 100);
    assert.equal(streakObjects(64), 256);
  });
});

describe('what never stops the run', () => {
  test('a copy in between starts the count again, on both sides', () => {
    const { counting, feed } = streaks();
    for (let round = 0; round < 20; round++) {
      assert.equal(feed(failed(PUT), 99, 10_000), undefined);
      assert.equal(feed(failed(GET), 99, 10_000), undefined);
      assert.equal(counting.record(COPIED, 'good'), undefined);
    }
    assert.equal(counting.record({ ...COPIED, status: 'relocated' }, 'good'), undefined);
    assert.equal(feed(failed(PUT), 99, 10_000), undefined, 'a relocated object is a copy too');
  });

  test('a flaky minute: hundreds of failures within it, then copies again', () => {
    const { counting, feed } = streaks();
    assert.equal(feed(failed(PUT), 600, 100), undefined);
    counting.record(COPIED, 'good');
    assert.equal(feed(failed(PUT), 600, 100), undefined);
  });

  test('objects missing at the source, however many and for however long, in between or alone', () => {
    const { counting, feed } = streaks();
    assert.equal(feed(MISSING, 100_000, 1000), undefined);
    assert.equal(feed({ ...MISSING, status: 'present' }, 1000, 1000), undefined);
    // Missing objects neither count nor break a run of failures: 99 failures, missing ones, then one more.
    assert.equal(feed(failed(PUT), 99, 1000), undefined);
    assert.equal(feed(MISSING, 1000, 1000), undefined);
    const tripped = feed(failed(PUT), 1, 1000);
    assert.equal(tripped?.stop.side, 'destination', 'a failure after missing objects continues the run of failures');
    assert.equal(counting.record(COPIED, 'good'), undefined);
  });

  test('a failed PUT had the source answer its GET: a run of failed GETs interrupted by it starts again', () => {
    const { feed } = streaks();
    assert.equal(feed(failed(GET), 99, 10_000), undefined);
    assert.equal(feed(failed(PUT), 1, 10_000), undefined);
    assert.equal(feed(failed(GET), 99, 10_000), undefined);
  });

  test('objects refused for their own state (archived): hundreds in a row, an hour long, neither count nor break a run of failures', () => {
    const { feed } = streaks();
    const archived: CopyResult = { ...failed(GET, 'InvalidObjectState: not valid for the storage class'), ofObject: true };
    assert.equal(feed(archived, 10_000, 500), undefined);
    assert.equal(feed(failed(GET), 99, 5000), undefined);
    assert.equal(feed(archived, 1000, 5000), undefined);
    assert.equal(feed(failed(GET), 1, 5000)?.stop.side, 'source', 'the 100th failure of the source stops the run still');
  });

  test('objects failed in an earlier run fail again without counting; the new ones after them still stop the run', () => {
    const { clock, counting, feed } = streaks();
    // A resumed run tries the failed objects first: a lost disk's 500s, for each of them, again.
    for (let index = 0; index < 10_000; index++) {
      clock.now += 500;
      assert.equal(counting.record(failed(GET, 'InternalError: We encountered an internal error'), `old-${index}`, true), undefined);
    }
    const tripped = feed(failed(GET), 1000, 5000);
    assert.equal(tripped?.after, 100, 'the source failing every new object stops the run after as many as before');
    assert.match(tripped?.stop.message ?? '', /failed the GET of each of the last 100 objects, for 8 min/);
  });

  test('a fatal failure (the run stops for it anyway) counts for neither', () => {
    const { feed } = streaks();
    const fatal: CopyResult = { status: 'failed', bytes: 0, ms: 1, error: 'bucket gone', attempts: 1 };
    assert.equal(feed(fatal, 1000, 10_000), undefined);
  });
});

/** Streaks of a run that can copy a known-good object again (`good` says whether it has one), checked after 8. */
function checkedStreaks(good = { known: true }) {
  const { counting, feed } = streaks({ canCheck: () => good.known, checkAfter: 8 });
  /** `count` failures 10 ms apart (`failedBefore` as given): the stop returned, if any, and after how many. */
  return { counting, feed: (result: CopyResult, count: number, failedBefore = false) => feed(result, count, 10, failedBefore) };
}

describe('with an object known good to copy again, a streak is checked before it stops anything', () => {
  test('8 failures in a row, in a moment, failed before or not: the stop comes back to be checked first, naming the streak', () => {
    for (const failedBefore of [false, true]) {
      const tripped = checkedStreaks().feed(failed(PUT), 100, failedBefore);
      assert.equal(tripped?.after, 8, `failed before: ${failedBefore}`);
      assert.equal(tripped?.stop.check, true);
      assert.match(tripped?.stop.message ?? '', /^the destination s3:\/\/new at https:\/\/new\.example failed the PUT of each of the last 8 objects/);
    }
  });

  test('failures during the check ask for no other; a check passed lets the run go on, and asks again after twice as many', () => {
    const { counting, feed } = checkedStreaks();
    assert.equal(feed(failed(GET), 8)?.after, 8);
    assert.equal(feed(failed(GET), 50), undefined, 'still checking');
    counting.checked(true);
    assert.equal(feed(failed(GET), 100)?.after, 16);
    counting.checked(true);
    assert.equal(feed(failed(GET), 100)?.after, 32);
    counting.checked(true);
    counting.checked(true);
    counting.checked(true);
    assert.equal(feed(failed(GET), 1000)?.after, 100, 'never more than the streak without a check');
    counting.checked(true);
    counting.record(COPIED, 'copied');
    assert.equal(feed(failed(GET), 100)?.after, 8, 'a copy brings the first count back');
  });

  test('no object to copy after all (all gone from the source): the count starts again, to the stop without a check', () => {
    const good = { known: true };
    const { counting, feed } = checkedStreaks(good);
    assert.equal(feed(failed(PUT), 8, true)?.after, 8);
    good.known = false;
    counting.checked(false);
    assert.equal(feed(failed(PUT), 100_000, true), undefined, 'failed before: they count no more');
    const tripped = feed(failed(PUT), 100_000);
    assert.equal(tripped?.stop.check, false);
    assert.equal(tripped?.after, 30_001, 'the 5 minutes from the first new failure');
  });

  test('the stop once the known-good object failed too: its side and request, the object and both errors', () => {
    const { counting, feed } = checkedStreaks();
    feed(failed(GET, 'InternalError: lost disk'), 8);
    const stop = counting.checkFailed('media_attachments/files/000/000/001/original/a.png', failed(PUT, 'InternalError: disk gone'));
    assert.ok(stop instanceof StoreFailsEveryObjectError);
    assert.equal(stop.check, false);
    assert.equal(stop.side, 'destination', "the known-good object's failure names the side");
    assert.match(
      stop.message,
      /^the destination s3:\/\/new at https:\/\/new\.example failed the PUT of media_attachments\/files\/000\/000\/001\/original\/a\.png, an object copied before, tried again after 8 objects failed in a row \(its error: InternalError: disk gone; the last object's: source GET: InternalError: lost disk\): it answers, yet every PUT fails/,
    );
  });

  test('with no object known good, the streak without checks: failures before do not count, the others after 100 and the patience', () => {
    const good = { known: false };
    const { feed } = checkedStreaks(good);
    assert.equal(feed(failed(PUT), 1000, true), undefined);
    const tripped = feed(failed(PUT), 100_000);
    assert.equal(tripped?.stop.check, false);
    assert.equal(tripped?.after, 30_001, 'the first at 10 ms: 5 min after it');
  });

  test('an ACL request streak is never checked by a copy', () => {
    const tripped = checkedStreaks().feed(failed({ side: 'destination', operation: 'ACL' }), 100_000);
    assert.equal(tripped?.stop.check, false);
  });
});

/** A store whose requests do as given, and whose errors are classified as every store classifies Node's. */
function store(description: string, requests: Partial<ObjectStore>): ObjectStore {
  return {
    description,
    locate: (key) => key,
    check: async () => undefined,
    read: async () => undefined,
    head: async () => undefined,
    write: async () => undefined,
    provesWrites: () => false,
    classify: (error) => classifyCommon(error) ?? { kind: 'permanent' },
    close: () => undefined,
    ...requests,
  };
}

const reset = () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
const drain = () => new Writable({ write: (_chunk, _encoding, done) => done() });

/** A body of `size` bytes that breaks off with a reset after `breakAt` of them. */
function breaking(size: number, breakAt: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= breakAt) {
        this.destroy(reset());
        return;
      }
      const chunk = Math.min(16 * 1024, breakAt - sent);
      sent += chunk;
      setImmediate(() => this.push(Buffer.alloc(chunk)));
    },
  });
}

async function copyWith(source: Partial<ObjectStore>, destination: Partial<ObjectStore>): Promise<CopyResult> {
  return copyOwnedObject(mediaOriginal('media_attachments/files/000/000/001/original/a.mp4', { contentType: 'video/mp4', size: null }), {
    source: store('s3://old', source),
    destination: store('s3://new', destination),
    acl: 'public-read',
    retries: 1,
  });
}

describe('a failed copy says which side failed', () => {
  const small = 1000;
  const large = 1024 * 1024;
  const body = (size: number) => ({ body: Readable.from([Buffer.alloc(size)]), contentLength: size, contentType: 'video/mp4' });

  for (const [size, how] of [
    [small, 'read whole'],
    [large, 'streamed'],
  ] as const) {
    test(`the destination resetting the PUT (${how}): destination PUT`, async () => {
      const refuse = async (_key: string, written: Readable | Buffer) => {
        if (written instanceof Readable) await pipeline(written, drain());
        throw reset();
      };
      const result = await copyWith({ read: async () => body(size) }, { write: refuse, writeBytes: refuse });
      assert.equal(result.status, 'failed');
      assert.deepEqual(result.failedAt, PUT);
      assert.equal(describeFailure(result), 'destination PUT: ECONNRESET: read ECONNRESET');
    });

    test(`the source body breaking off (${how}): the source's GET, its body`, async () => {
      const result = await copyWith(
        { read: async () => ({ body: breaking(size, size / 2), contentLength: size, contentType: 'video/mp4' }) },
        {
          write: async (_key, written) => pipeline(written, drain()),
          writeBytes: async () => undefined,
        },
      );
      assert.equal(result.status, 'failed');
      assert.deepEqual(result.failedAt, BODY);
      assert.equal(describeFailedAt(result.failedAt!), 'source GET (its body)');
    });
  }

  test('the destination resetting a streamed PUT part-way, its body destroyed with the reset: destination PUT', async () => {
    const result = await copyWith(
      { read: async () => body(large) },
      {
        write: async (_key, written) => {
          await new Promise((resolve) => written.once('readable', resolve));
          written.destroy(reset());
          throw reset();
        },
      },
    );
    assert.equal(result.status, 'failed');
    assert.deepEqual(result.failedAt, PUT);
  });

  test("the source's GET failing: source GET", async () => {
    const result = await copyWith(
      {
        read: async () => {
          throw reset();
        },
      },
      {},
    );
    assert.equal(result.status, 'failed');
    assert.deepEqual(result.failedAt, GET);
  });

  test('an object missing at the source is no failure', async () => {
    const result = await copyWith({ read: async () => undefined }, {});
    assert.equal(result.status, 'missing');
    assert.equal(result.failedAt, undefined);
  });
});
