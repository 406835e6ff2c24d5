/**
 * An ObjectStore that reports every request of another (how long it took, how it ended) and otherwise is that
 * store: metrics time the requests by side and operation without any backend knowing. The optional
 * capabilities are forwarded exactly: one the inner store lacks stays absent here, so callers fall back as they
 * would without metrics.
 */
import type { FailureKind, ListedObject, ObjectStore, RequestGate, ServerCopyOptions, ServerCopyOutcome, WriteOptions } from '../storage/types.js';
import type { Readable } from 'node:stream';

export type StoreSide = 'source' | 'destination';
export type StoreOperation = 'read' | 'head' | 'write' | 'list' | 'delete' | 'copyFrom' | 'acl';
/** `ok`, or the kind of failure as the store classifies it. */
export type RequestOutcome = 'ok' | FailureKind['kind'];

/** `error`: what a failed request threw. */
export type RequestObserver = (side: StoreSide, operation: StoreOperation, seconds: number, outcome: RequestOutcome, error?: unknown) => void;

/** Observed store → the store it wraps: a server-side copy (and the question whether one can be) takes the real source. */
const inner = new WeakMap<ObjectStore, ObjectStore>();

export function observeStore(store: ObjectStore, side: StoreSide, observe: RequestObserver): ObjectStore {
  const outcomeOf = (error: unknown): RequestOutcome => store.classify(error).kind;
  const timed = async <T>(operation: StoreOperation, call: () => Promise<T>): Promise<T> => {
    const started = performance.now();
    try {
      const result = await call();
      observe(side, operation, (performance.now() - started) / 1000, 'ok');
      return result;
    } catch (error) {
      observe(side, operation, (performance.now() - started) / 1000, outcomeOf(error), error);
      throw error;
    }
  };

  const access = store.access;
  const observed: ObjectStore = {
    get description() {
      return store.description;
    },
    locate: (key) => store.locate(key),
    check: () => store.check(),
    // Until the answer's headers: the body streams afterwards, within the write that consumes it.
    read: (key, signal) => timed('read', () => store.read(key, signal)),
    head: (key) => timed('head', () => store.head(key)),
    write: (key: string, body: Readable, options: WriteOptions) => timed('write', () => store.write(key, body, options)),
    provesWrites: (contentLength) => store.provesWrites(contentLength),
    classify: (error) => store.classify(error),
    close: () => store.close(),
    // Timed too: the store's watch must see the ACL pass's requests (access.ts), or a store gone during it is
    // tried account after account instead of waited for and stopped.
    ...(access !== undefined && {
      access: {
        compare: (key: string, acl: string, signal?: AbortSignal, ownerAcl?: string) => timed('acl', () => access.compare(key, acl, signal, ownerAcl)),
        set: (key: string, acl: string, signal?: AbortSignal, ownerAcl?: string) => timed('acl', () => access.set(key, acl, signal, ownerAcl)),
        probe: (signal?: AbortSignal) => timed('acl', () => access.probe(signal)),
      },
    }),
  };
  const list = store.list?.bind(store);
  // A listing is timed whole, from the first page asked to the last entry given.
  if (list)
    observed.list = (prefix, options) =>
      timedListing(list(prefix, options), (seconds, outcome, error) => observe(side, 'list', seconds, outcome, error), outcomeOf);
  const writeBytes = store.writeBytes?.bind(store);
  if (writeBytes) observed.writeBytes = (key, bytes, options) => timed('write', () => writeBytes(key, bytes, options));
  const remove = store.delete?.bind(store);
  if (remove) observed.delete = (keys, signal) => timed('delete', () => remove(keys, signal));
  const canCopyFrom = store.canCopyFrom?.bind(store);
  if (canCopyFrom) observed.canCopyFrom = (source, options) => canCopyFrom(inner.get(source) ?? source, options);
  const copyFrom = store.copyFrom?.bind(store);
  if (copyFrom) {
    observed.copyFrom = (source: ObjectStore, sourceKey: string, key: string, options: ServerCopyOptions): Promise<ServerCopyOutcome> =>
      timed('copyFrom', () => copyFrom(inner.get(source) ?? source, sourceKey, key, options));
  }
  const limitRequests = store.limitRequests?.bind(store);
  if (limitRequests) observed.limitRequests = (gate: RequestGate) => limitRequests(gate);
  inner.set(observed, store);
  return observed;
}

async function* timedListing(
  listing: AsyncIterable<ListedObject>,
  report: (seconds: number, outcome: RequestOutcome, error?: unknown) => void,
  outcomeOf: (error: unknown) => RequestOutcome,
): AsyncIterable<ListedObject> {
  const started = performance.now();
  let outcome: RequestOutcome = 'ok';
  let failure: unknown;
  try {
    yield* listing;
  } catch (error) {
    outcome = outcomeOf(error);
    failure = error;
    throw error;
  } finally {
    // Also when the caller stops early (a break ends the listing here).
    report((performance.now() - started) / 1000, outcome, failure);
  }
}
