/**
 * Whether a store is away. A request the store left unanswered (FailureKind `noAnswer`: refused, reset, no name, no
 * answer in time) while it had answered nothing since that request began says the store failed, not the object: the
 * retry loops wait for the store then, and count no retry against the object, so a restart or a blip is ridden
 * through and loses nothing. Once a store has answered nothing for the patience, each wait ends in a
 * StoreUnreachableError, a FatalStoreError: the command stops as it does on a bucket gone, with its summary. Any
 * answer resets it, a 404 or a 500 too; a request that fails alone while the store answers others is the object's.
 */
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
import { FatalStoreError, type StoreSide } from '../storage/errors.js';
import type { ObjectStore } from '../storage/types.js';
import { failedInSourceBody } from './integrity.js';
import { observeStore, type RequestOutcome, type StoreOperation } from './observedStore.js';

/** How long a store may answer nothing before a command stops (as long as the database gets: src/db/connection.ts). */
export const STORE_PATIENCE_MS = 5 * 60_000;
/** What a store is asked before it is blamed for a request left unanswered: no Mastodon key looks so. */
const PROBE_KEY = 'mastosync-is-the-store-there';
/** The longest wait between two tries of a store that is away. */
const AWAY_WAIT_MAX_MS = 5_000;

/** A store answered no request for the patience: the command stops; what it finished is recorded. */
export class StoreUnreachableError extends FatalStoreError {}

interface Presence {
  readonly side: StoreSide;
  readonly where: string;
  /** The store itself (not the watched one: the question is no request of the run's), asked before it is blamed. */
  readonly store: ObjectStore;
  /** The question in flight, shared by every request that waits on it. */
  asking: Promise<boolean> | undefined;
  /** performance.now() of its last answer. */
  lastAnswer: number;
  /** Since when it has answered neither a request nor the question (answers()); undefined while it answers. */
  silentSince: number | undefined;
  gone: StoreUnreachableError | undefined;
}

/** A request's error → the store that left it unanswered, while silent. Read by the retry loops. */
const silences = new WeakMap<object, { readonly watch: StoreWatch; readonly presence: Presence; readonly began: number }>();
/** Watched store → its presence, for listings, which answer entry by entry. */
const presences = new WeakMap<ObjectStore, { readonly watch: StoreWatch; readonly presence: Presence }>();

export class StoreWatch {
  private readonly patienceMs: number;
  private readonly waitMaxMs: number;

  constructor(
    /** What the admin does once the store answers again, e.g. `run again with --resume`. */
    private readonly fix: string,
    /** Told once when a store falls silent, and once when it answers again. */
    private readonly log: Logger | undefined,
    /** Tests shorten it; nothing else should. */
    patienceMs = STORE_PATIENCE_MS,
  ) {
    this.patienceMs = patienceMs;
    this.waitMaxMs = Math.min(AWAY_WAIT_MAX_MS, patienceMs / 4);
  }

  /** `store`, telling this watch how each of its requests ended. */
  watch(store: ObjectStore, side: StoreSide): ObjectStore {
    const presence: Presence = {
      side,
      where: store.description,
      store,
      asking: undefined,
      lastAnswer: performance.now(),
      silentSince: undefined,
      gone: undefined,
    };
    const observe = (_side: StoreSide, _operation: StoreOperation, seconds: number, outcome: RequestOutcome, error?: unknown) => {
      const now = performance.now();
      // An upload ended by its source body's failure says nothing of the destination: neither answer nor silence.
      if (failedInSourceBody(error)) return;
      if (outcome !== 'retryable' || !silent(store, error)) {
        this.answered(presence, now);
        return;
      }
      const began = now - seconds * 1000;
      // It answered another request since this one began: this one failed alone, as any failure of an object does.
      if (presence.lastAnswer > began || typeof error !== 'object' || error === null) return;
      silences.set(error, { watch: this, presence, began });
    };
    const watched = observeStore(store, side, observe);
    presences.set(watched, { watch: this, presence });
    return watched;
  }

  /** `presence`'s store answered a request. */
  answered(presence: Presence, now = performance.now()): void {
    presence.lastAnswer = now;
    if (presence.silentSince === undefined) return;
    this.log?.info({ [presence.side]: presence.where, silentS: Math.round((now - presence.silentSince) / 1000) }, `the ${presence.side} answers again`);
    presence.silentSince = undefined;
  }

  /**
   * How long to wait before trying a silent store again, or undefined when the store answers after all (it is
   * asked) and the request failed alone; throws its StoreUnreachableError once it has been silent for the patience.
   */
  async waitFor(presence: Presence, cause: unknown, began: number): Promise<number | undefined> {
    if (presence.gone !== undefined) throw presence.gone;
    // A reset that only this object's request meets (a proxy refusing its body) must not pass for the store's
    // silence when nothing else is in flight: the store is asked before it is blamed.
    if (presence.lastAnswer <= began) await this.answers(presence);
    // It answered since this request began (another copy got through, or the question): the object failed alone.
    if (presence.lastAnswer > began) return undefined;
    if (presence.silentSince === undefined) {
      // From now, not from the request's start: a long upload is answered part by part all along (requests this
      // watch does not see), so its start says nothing of when the store fell silent.
      presence.silentSince = performance.now();
      this.log?.warn(
        // The cause as one line: an error object would carry its stack, and a socket's internals.
        { [presence.side]: presence.where, error: describeError(cause), patienceS: Math.round(this.patienceMs / 1000) },
        `the ${presence.side} answers nothing; waiting for it, and stopping if it stays silent for the patience`,
      );
    }
    const silentMs = performance.now() - presence.silentSince;
    if (silentMs >= this.patienceMs) {
      const problem = `the ${presence.side} ${presence.where} answered no request for ${duration(silentMs)} (${describeError(cause)})`;
      throw (presence.gone = new StoreUnreachableError(presence.side, '', problem, this.fix, { cause }));
    }
    // Full jitter up to half the silence so far: a blip is over soon after it is over, an outage costs few requests.
    return Math.random() * Math.min(this.waitMaxMs, Math.max(200, silentMs / 2));
  }

  /**
   * Whether the store answers now: a HEAD of a key no run writes (any answer but silence counts, a 404 or a refusal
   * too). Not its start check, which retries and rewords what it meets.
   */
  private answers(presence: Presence): Promise<boolean> {
    presence.asking ??= presence.store
      .head(PROBE_KEY)
      .then(
        () => true,
        (error: unknown) => !silent(presence.store, error),
      )
      .then((answered) => {
        if (answered) this.answered(presence);
        return answered;
      })
      .finally(() => (presence.asking = undefined));
    return presence.asking;
  }
}

/** The store classifies the error as its silence (no connection, no answer), not as an answer. */
function silent(store: ObjectStore, error: unknown): boolean {
  const kind = store.classify(error);
  return kind.kind === 'retryable' && kind.noAnswer === true;
}

/**
 * For a retry loop: undefined when `error` is no silence of a watched store (it counts against the object's
 * retries as before), else how long to wait for the store before trying again; throws the store's
 * StoreUnreachableError once it has answered nothing for the patience.
 */
export async function waitForSilentStore(error: unknown): Promise<number | undefined> {
  const silence = typeof error === 'object' && error !== null ? silences.get(error) : undefined;
  return silence?.watch.waitFor(silence.presence, error, silence.began);
}

/** A listing gave an entry: the store answers (a listing is one request to its watch, however long it runs). */
export function heardFrom(store: ObjectStore): void {
  const watched = presences.get(store);
  watched?.watch.answered(watched.presence);
}

/** `42 s`, or `7 min` from two minutes on: how long a store failed, in a stop's line. */
export function duration(ms: number): string {
  const seconds = Math.round(ms / 1000);
  return seconds < 120 ? `${seconds} s` : `${Math.round(seconds / 60)} min`;
}
