/**
 * A store that answers but fails every copy: a proxy, WAF or firewall in front of uploads that resets or refuses each
 * one, a full disk behind a gateway answering 5xx, a write permission revoked that surfaces as resets. The store watch
 * (storeWatch.ts) sees it answer its question, so each object uses up its retries and is recorded failed, and the run
 * would go on through every remaining object for days. A clear run of failures on one side stops the run instead,
 * as a store silent for the patience does: no retry fixes what fails every object.
 *
 * Pure counting: the caller says how each object ended, and when.
 */
import { FatalStoreError, type StoreSide } from '../storage/errors.js';
import type { CopyResult } from './copy.js';
import { duration } from './storeWatch.js';

/** Where an object's copy failed: the request, and for a source body cut short, that it was the body. */
export interface FailedAt {
  readonly side: StoreSide;
  /**
   * GET: reading the source; PUT: writing the destination; copy: the provider's copy (a request to the destination);
   * ACL: reading or setting an object's access (the ACL pass of a resumed run, verify --acl --repair).
   */
  readonly operation: 'GET' | 'PUT' | 'copy' | 'ACL';
  /** The source answered the GET, and its body broke off or arrived wrong. */
  readonly sourceBody?: true;
}

/** `destination PUT`, `source GET`, `source GET (its body)`, as the failed object's line says where it failed. */
export function describeFailedAt(at: FailedAt): string {
  return `${at.side} ${at.operation}${at.sourceBody ? ' (its body)' : ''}`;
}

/** A failed copy's error as its line says it, where it failed first: `destination PUT: ECONNRESET: …`. */
export function describeFailure(result: Pick<CopyResult, 'error' | 'failedAt'>): string | undefined {
  return result.failedAt === undefined ? result.error : `${describeFailedAt(result.failedAt)}: ${result.error}`;
}

/**
 * Objects failed in a row on one side, at least, before it can stop the run. A flaky moment fails the copies in flight
 * then and those that start while it lasts; four full waves of --concurrency with not one copy in between is no
 * moment. And never fewer than 100: a few genuinely bad objects (a key the provider refuses, a file that will not
 * read) fail one after another at most in a table's tail or a --retry-failed run, and then fail fast.
 */
export function streakObjects(concurrency: number): number {
  return Math.max(100, 4 * concurrency);
}

/** One side's failures since its last success. */
interface Streak {
  count: number;
  /** When its first failure was recorded. */
  since: number;
}

export interface StreakOptions {
  /** Objects failed in a row on one side (streakObjects). */
  readonly objects: number;
  /**
   * For at least this long (ms), from the first failure: the patience a silent store gets (5 min), so a flaky minute,
   * a restart behind a proxy, a provider's bad few minutes never stop a run, while days of failures do not happen.
   */
  readonly ms: number;
  /** Each side's store, as its line names it. */
  readonly where: Readonly<Record<StoreSide, string>>;
  /** Milliseconds from any origin; read only when an object failed. Tests give their own. */
  readonly clock?: () => number;
  /** What to do once `requests` ("PUTs") go through again; default: a run's (the checkpoint, and --resume). */
  readonly again?: (requests: string) => string;
  /**
   * Whether the caller can copy again an object known good (one copied before): then a streak of copies is checked
   * before it stops anything (`check` on the stop), after `checkAfter` failures in a row, with no patience to wait.
   */
  readonly canCheck?: () => boolean;
  /** Failures in a row before the first check (checkStreakObjects); each check passed doubles it, up to `objects`. */
  readonly checkAfter?: number;
}

/**
 * Copies failed in a row on one side before a known-good object is copied again to tell a broken store from objects
 * failing each for its own reason: more than two waves of --concurrency (a flaky moment fails those in flight
 * together), and never fewer than 8.
 */
export function checkStreakObjects(concurrency: number): number {
  return Math.max(8, 2 * concurrency);
}

/** What stops the run: one side failed every object it was asked for, long enough, and nothing was copied between. */
export class StoreFailsEveryObjectError extends FatalStoreError {
  /**
   * Not a stop yet: copy a known-good object again first (FailureStreaks.checked says how that went). If it copies,
   * the failures were the objects' own; if it fails too, stop with FailureStreaks.checkFailed.
   */
  check = false;
}

export class FailureStreaks {
  private readonly streaks: Record<StoreSide, Streak> = { source: { count: 0, since: 0 }, destination: { count: 0, since: 0 } };
  /**
   * A known-good object is being copied again, after `count` failures in a row (the last: `last`): failures meanwhile
   * count, but ask for no other check.
   */
  private checking: { readonly count: number; readonly last: string | undefined } | undefined;
  /** Failures in a row that ask for the next check: doubled by each check passed, back to the first on a copy. */
  private checkAfter: number;

  constructor(private readonly options: StreakOptions) {
    this.checkAfter = options.checkAfter ?? options.objects;
  }

  /** An object done without a copy (its ACL set, or found right): both sides answered as they should, as for a copy. */
  succeeded(): void {
    this.streaks.source.count = 0;
    this.streaks.destination.count = 0;
    this.checkAfter = this.options.checkAfter ?? this.options.objects;
  }

  /**
   * How the check a stop asked for (`check`) went: the known-good object copied (`passed`: the failures were the
   * objects' own; the run goes on and checks again after twice as many), or there was none to copy after all (all gone
   * from the source). Either way the count starts again: without a check, objects failed before no longer count, and
   * the stop waits for a streak of the others.
   */
  checked(passed: boolean): void {
    this.checking = undefined;
    this.streaks.source.count = 0;
    this.streaks.destination.count = 0;
    if (passed) this.checkAfter = Math.min(this.options.objects, this.checkAfter * 2);
  }

  /**
   * How an object ended (`key`: the store's; `failedBefore`: an earlier run recorded it failed): the stop when it
   * makes a clear run of failures on one side, else undefined. A copy resets both sides. An object missing at the
   * source, or present already, counts for neither (the database may well point at thousands of files lost long ago),
   * nor does a fatal failure (the run stops for it anyway). A source body cut short or arriving wrong is the source's
   * failure: it answered, but a source (or what stands in front of it) that cuts every body short fails every object
   * as surely as one refusing every GET, and its objects would be tried, each with its retries, for days. A
   * destination that failed a PUT had the source's bytes: the source did its part.
   *
   * Nor do objects that fail alone: one the store calls refused for its own state (`ofObject`: archived to Glacier),
   * or one that failed in an earlier run (on a lost disk the source answers 500 for it, every night). Counted, a few
   * hundred of them in a row stopped every run: a resumed run tries the failed objects first, so cron stopped in that
   * pass each night and never read a new row again. They neither count nor break a run of failures: a store really
   * refusing everything still fails the first new objects after them, and those stop the run.
   *
   * Where the caller can copy a known-good object again (`canCheck`), copies failed before count too, and a streak of
   * `checkAfter` of them, however short, returns the stop with `check` set: the caller copies that object, and stops
   * only if it fails too. Objects failing each for its own reason (a thousand lost files retried) then never stop a
   * run, and a store that broke stops it within a few objects, the retry pass's too.
   */
  record(result: Pick<CopyResult, 'status' | 'failedAt' | 'error' | 'ofObject'>, key: string, failedBefore = false): StoreFailsEveryObjectError | undefined {
    if (result.status === 'copied' || result.status === 'relocated') {
      this.succeeded();
      return undefined;
    }
    const at = result.failedAt;
    if (result.status !== 'failed' || at === undefined) return undefined;
    if (at.side === 'destination' && at.operation === 'PUT') this.streaks.source.count = 0;
    // A known-good object tells a broken store from broken objects by copying: not an ACL request's streak.
    const checkable = at.operation !== 'ACL' && this.options.canCheck?.() === true;
    if (result.ofObject || (failedBefore && !checkable)) return undefined;
    const streak = this.streaks[at.side];
    const now = (this.options.clock ?? performance.now.bind(performance))();
    if (streak.count === 0) streak.since = now;
    streak.count += 1;
    const lasted = now - streak.since;
    if (checkable ? this.checking !== undefined || streak.count < this.checkAfter : streak.count < this.options.objects || lasted < this.options.ms)
      return undefined;
    // A checked streak may last a moment: its length says nothing, the check does.
    const stop = this.stopFor(result, at, key, streak.count, checkable ? undefined : lasted);
    if (checkable) {
      this.checking = { count: streak.count, last: describeFailure(result) };
      stop.check = true;
    }
    return stop;
  }

  /**
   * The stop once the known-good object `key` failed too, as `copy` ended (at its own side and request, which may not
   * be the streak's: objects failing at the source, and the destination refusing the one that reads).
   */
  checkFailed(key: string, copy: Pick<CopyResult, 'failedAt' | 'error'>): StoreFailsEveryObjectError {
    const streak = this.checking ?? { count: 0, last: undefined };
    this.checking = undefined;
    const at = copy.failedAt ?? { side: 'destination', operation: 'PUT' };
    const tried = { key, count: streak.count, last: streak.last };
    return this.stopFor(copy, at, key, streak.count, undefined, tried);
  }

  /** `tried`: the known-good object that failed too, after a streak of `count` (the last: `last`). */
  private stopFor(
    result: Pick<CopyResult, 'error'>,
    at: FailedAt,
    key: string,
    count: number,
    lasted: number | undefined,
    tried?: { readonly key: string; readonly count: number; readonly last: string | undefined },
  ): StoreFailsEveryObjectError {
    const { side, operation } = at;
    const during = lasted === undefined ? '' : `, for ${duration(lasted)}`;
    // What failed, and what followed it in the line: `… with a body cut short` comes between the two.
    const [what, then] =
      tried === undefined
        ? [`each of the last ${count} objects`, `${during}, none ${operation === 'ACL' ? 'done' : 'copied'} in between (the last: ${result.error})`]
        : [
            `${tried.key}, an object copied before, tried again after ${tried.count} objects failed in a row`,
            ` (its error: ${result.error}; the last object's: ${tried.last})`,
          ];
    if (at.sourceBody) {
      return new StoreFailsEveryObjectError(
        side,
        key,
        `the ${side} ${this.options.where[side]} answered the GET of ${what} with a body cut short or arriving wrong${then}`,
        'it answers, yet no body arrives whole: check what stands in front of it (a proxy or load balancer cutting long or large transfers, a timeout) and its disks; finished objects are in the checkpoint: once bodies arrive whole again, run again with --resume',
        { cause: result.error },
      );
    }
    const requests = operation === 'copy' ? 'copies on the provider' : operation === 'ACL' ? 'ACL requests' : `${operation}s`;
    const request = operation === 'ACL' ? 'ACL request' : operation;
    const checks =
      operation === 'ACL'
        ? 'and that the credentials may still read and set ACLs'
        : side === 'destination'
          ? 'its free space, and that the credentials may still write'
          : 'and that the credentials may still read';
    const again = this.options.again?.(requests) ?? `finished objects are in the checkpoint: once ${requests} go through again, run again with --resume`;
    return new StoreFailsEveryObjectError(
      side,
      key,
      `the ${side} ${this.options.where[side]} failed the ${request} of ${what}${then}`,
      `it answers, yet every ${request} fails: check what stands in front of it (a proxy, firewall or WAF), ${checks}; ${again}`,
      { cause: result.error },
    );
  }
}
