/** The metrics' store decorator forwards exactly what the store has, and reports each request; --metrics parsing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { parseMetricsAddress } from '../../src/cli/flags.js';
import { UsageError } from '../../src/errors.js';
import type { ObjectStore } from '../../src/storage/types.js';
import { observeStore, type RequestOutcome, type StoreOperation } from '../../src/sync/observedStore.js';

function plainStore(name: string): ObjectStore {
  return {
    description: name,
    locate: (key) => `${name}/${key}`,
    check: async () => undefined,
    read: async (key) => (key === 'gone' ? undefined : { body: Readable.from([Buffer.from('x')]), contentLength: 1 }),
    head: async () => {
      throw Object.assign(new Error('slow down'), { $metadata: { httpStatusCode: 503 }, name: 'SlowDown' });
    },
    write: async () => undefined,
    provesWrites: () => false,
    // As a store judges its errors: a 503 is throttling, what it does not know is permanent.
    classify: (error) =>
      (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 503 ? { kind: 'throttled' } : { kind: 'permanent' },
    close: () => undefined,
  };
}

test('a capability the store lacks stays absent; one it has is forwarded', async () => {
  const reports: Array<[StoreOperation, RequestOutcome]> = [];
  const observe = (_side: string, operation: StoreOperation, _seconds: number, outcome: RequestOutcome) => reports.push([operation, outcome]);
  const bare = observeStore(plainStore('bare'), 'source', observe);
  for (const capability of ['list', 'delete', 'copyFrom', 'canCopyFrom', 'limitRequests'] as const) assert.equal(bare[capability], undefined, capability);
  assert.equal(bare.description, 'bare');
  assert.equal(bare.locate('a'), 'bare/a');

  const sources: ObjectStore[] = [];
  const sourceStore = plainStore('source');
  const gates: unknown[] = [];
  const full: ObjectStore = {
    ...plainStore('full'),
    list: async function* () {
      yield { key: 'a', size: 1 };
      yield { key: 'b', size: 2 };
    },
    delete: async () => [],
    copyFrom: async (source) => {
      sources.push(source);
      return 'copied';
    },
    canCopyFrom: (source) => source === sourceStore,
    limitRequests: (gate) => gates.push(gate),
    classify: () => ({ kind: 'retryable' }),
  };
  const observedSource = observeStore(sourceStore, 'source', observe);
  const observed = observeStore(full, 'destination', observe);
  const listed = [];
  for await (const entry of observed.list!('')) listed.push(entry.key);
  assert.deepEqual(listed, ['a', 'b']);
  assert.deepEqual(await observed.delete!(['a']), []);
  assert.equal(await observed.copyFrom!(observedSource, 'k', 'k', {}), 'copied');
  assert.equal(sources[0], sourceStore, 'the server copy is given the store itself, not its observer');
  assert.equal(observed.canCopyFrom!(observedSource), true, 'and so is the question whether it can copy');
  const gate = async () => undefined;
  observed.limitRequests!(gate);
  assert.deepEqual(gates, [gate]);
  await assert.rejects(observed.head('k'));
  assert.deepEqual(reports, [
    ['list', 'ok'],
    ['delete', 'ok'],
    ['copyFrom', 'ok'],
    ['head', 'retryable'], // as this store classifies it
  ]);
});

test('reads are reported, a missing object as ok; a failure as its store classifies it', async () => {
  const reports: Array<[string, StoreOperation, RequestOutcome]> = [];
  const observed = observeStore(plainStore('s'), 'source', (side, operation, seconds, outcome) => {
    assert.ok(seconds >= 0);
    reports.push([side, operation, outcome]);
  });
  assert.equal(await observed.read('gone'), undefined);
  assert.ok(await observed.read('here'));
  await assert.rejects(observed.head('k'), /slow down/);
  assert.deepEqual(reports, [
    ['source', 'read', 'ok'],
    ['source', 'read', 'ok'],
    ['source', 'head', 'throttled'],
  ]);
});

test('--metrics takes HOST:PORT, [IPv6]:PORT or a port alone (loopback)', () => {
  assert.deepEqual(parseMetricsAddress('9464'), { host: '127.0.0.1', port: 9464 });
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  assert.deepEqual(parseMetricsAddress('[::1]:9464'), { host: '::1', port: 9464 });
  assert.deepEqual(parseMetricsAddress('metrics.internal:0'), { host: 'metrics.internal', port: 0 });
  for (const bad of ['', 'host', 'host:', ':x', '1:2:3', '70000']) assert.throws(() => parseMetricsAddress(bad), UsageError, bad);
});

test("the ACL pass's requests are reported too, so the store's watch sees them (a store gone during the pass is waited for)", async () => {
  const reports: Array<[StoreOperation, RequestOutcome]> = [];
  const observe = (_side: string, operation: StoreOperation, _seconds: number, outcome: RequestOutcome) => reports.push([operation, outcome]);
  const withAccess: ObjectStore = {
    ...plainStore('acl'),
    access: {
      compare: async () => ({ matches: false, found: 'private' }),
      set: async () => {
        throw Object.assign(new Error('slow down'), { $metadata: { httpStatusCode: 503 } });
      },
      probe: async () => undefined,
    },
  };
  const observed = observeStore(withAccess, 'destination', observe);
  assert.deepEqual(await observed.access!.compare('k', 'private'), { matches: false, found: 'private' });
  await assert.rejects(observed.access!.set('k', 'private'), /slow down/);
  assert.deepEqual(reports, [
    ['acl', 'ok'],
    ['acl', 'throttled'],
  ]);
  assert.equal(observeStore(plainStore('bare'), 'destination', observe).access, undefined);
});
