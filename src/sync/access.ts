/**
 * Access changes that reach no file: Mastodon makes every media object of an account private when it suspends it and
 * public again when it unsuspends it, and those of a status it discards private (UpdateMediaAttachmentsPermissionsService,
 * docs/storage-layout.md §6), without touching the media rows. Account#suspend! and #unsuspend! update the account's
 * row, and discarding a status sets its deleted_at, so a resumed run finds them by the owners' rows changed since the
 * last sync, and gives the objects it copied before the access a write would give them now.
 *
 * The common case stays cheap: an account's row changes for many reasons (a profile edit, a remote account fetched
 * again), so for each one a single object is asked first, the lowest id's, and the account's objects are set only
 * when it differs. Its objects all have one access: each copy writes the account's state at the time, in id order,
 * and this pass sets them all, highest id first, so a pass cut short leaves its probe as it was, to be found again.
 */
import type { Logger } from '../log.js';
import type { Database } from '../db/connection.js';
import { readAccessChanges, readMediaOwnedBy } from '../db/rows.js';
import type { Schema } from '../db/schema.js';
import { ownedInScope, type Scope } from '../db/scope.js';
import type { OwnedObject } from '../mastodon/keys.js';
import type { JobName, Row } from '../mastodon/tables.js';
import { AccessRefusedError, AccessUnsupportedError, FatalStoreError } from '../storage/errors.js';
import type { ObjectStore } from '../storage/types.js';
import { aclFor, ownerAclFor, type CopyResult } from './copy.js';
import { BoundedPool } from './pool.js';
import { withRetries } from './retry.js';
import type { FailedAt, FailureStreaks } from './failureStreak.js';
import { describeError } from '../errors.js';

/** Where a failure of this pass is counted: a request to the destination for an object's ACL. */
const ACL_REQUEST: FailedAt = { side: 'destination', operation: 'ACL' };

/** Accounts whose objects are asked and set at once. */
const ACCOUNTS_AT_ONCE = 2;

export interface AccessPassOptions {
  readonly job: JobName;
  readonly db: Database;
  readonly schema: Schema;
  /** Owners changed at or after this database time (ISO UTC) are looked at. */
  readonly since: string;
  /** Only rows up to this id (the scope's end). */
  readonly maxId: string;
  readonly scope: Scope;
  readonly destination: ObjectStore;
  /** The configured ACL ("" sends none: then there is nothing to re-apply). */
  readonly acl: string;
  readonly batchSize: number;
  readonly concurrency: number;
  readonly retries: number;
  /**
   * Objects this run copies after the pass (above the watermark, not done): not asked nor set, as the copy writes
   * them with the access of now. Asking was a wasted request each, and without s3:ListBucket AWS answers 403 for a
   * key it lacks, which as the pass's first answer read as credentials without the ACL permissions.
   */
  readonly copiedLater?: (object: OwnedObject, row: Row) => boolean;
  /**
   * The run's failure stop (failureStreak.ts): a destination that fails every ACL request stops the pass, and the run,
   * as one failing every PUT does, instead of each object of every changed account failing in turn.
   */
  readonly streaks?: FailureStreaks;
  /** No new request starts once this aborts. */
  readonly stop: AbortSignal;
  readonly log: Logger;
}

export interface AccessPassResult {
  /** Objects whose access was set. */
  reapplied: number;
  /** Objects whose access could not be set or read (logged): the job is not synced, so the next run looks again. */
  failed: number;
  /** An answer no retry fixes (a bucket gone): the run stops. */
  fatal?: FatalStoreError;
}

/** Gives the media objects of accounts (un)suspended and statuses discarded since `since` the access they should have. */
export async function reapplyAccess(options: AccessPassOptions): Promise<AccessPassResult> {
  const result: AccessPassResult = { reapplied: 0, failed: 0 };
  const access = options.destination.access;
  // Only media change access (§6). A store whose access belongs to the container (Azure, Swift) has nothing to
  // change, nor has Mastodon there; nor has an S3 bucket written with no ACL (S3_PERMISSION="").
  if (options.job !== 'media_attachments' || access === undefined || options.acl === '') return result;
  const { db, schema, scope, stop, log } = options;
  const changes = await readAccessChanges(db, schema, options.since, options.maxId);
  const pool = new BoundedPool(options.concurrency);
  const retrying = <T>(request: () => Promise<T>) => withRetries([options.destination], request, { retries: options.retries, signal: stop });
  let unsupported = false;
  /** An ACL request of this pass succeeded: the credentials may, and a refusal is then one object's (review2 M1). */
  let permitted = false;
  const failed = (object: OwnedObject, error: unknown) => {
    // A refusal once the credentials were seen to may: this object's (a bucket policy denying one prefix, say). A
    // refusal is an AccessUnsupportedError too, so it must not reach that test below.
    const refusedAlone = error instanceof AccessRefusedError && permitted;
    if (error instanceof FatalStoreError) result.fatal ??= error;
    else if (error instanceof AccessRefusedError && !permitted) {
      if (!unsupported) {
        log.warn(
          { cause: error.message },
          'the destination\'s credentials may not read or set ACLs: none re-applied (suspensions since the last run do not reach the copy); give them s3:GetObjectAcl and s3:PutObjectAcl, or set [destination] acl = ""',
        );
      }
      unsupported = true;
    } else if (error instanceof AccessUnsupportedError && !refusedAlone) {
      if (!unsupported) log.info({ cause: error.message }, 'the destination keeps no per-object ACL: none to re-apply');
      unsupported = true;
    } else {
      result.failed += 1;
      log.warn({ job: object.job, id: object.id, key: object.key, err: error }, 'could not re-apply the ACL');
      const failing = options.streaks?.record({ status: 'failed', failedAt: ACL_REQUEST, error: describeError(error) }, options.destination.locate(object.key));
      if (failing !== undefined) result.fatal ??= failing;
    }
  };
  const halted = () => stop.aborted || unsupported || result.fatal !== undefined;

  /** Sets `object`'s access (if it still differs, with `check`), in the pool. */
  const set = async (object: OwnedObject, check: boolean) => {
    const acl = aclFor(object, options.acl)!;
    const ownerAcl = ownerAclFor(object, options.acl);
    await pool.submit(async () => {
      if (halted()) return;
      try {
        if (check) {
          const compared = await retrying(() => access.compare(object.key, acl, stop, ownerAcl));
          permitted = true;
          if (compared?.matches !== false) return options.streaks?.succeeded();
        }
        if (await retrying(() => access.set(object.key, acl, stop, ownerAcl))) result.reapplied += 1;
        permitted = true;
        options.streaks?.succeeded();
      } catch (error) {
        failed(object, error);
      }
    });
  };
  const copiedLater = options.copiedLater ?? (() => false);
  const objectsOf = (row: Row) => ownedInScope('media_attachments', row, scope).filter((object) => !copiedLater(object, row));

  /** One account changed since: its probe asked, and its objects set if that one differs. */
  const reapplyAccount = async (account: (typeof changes.accounts)[number]): Promise<void> => {
    // The lowest id's object whose access follows the account: media of a discarded status stay private whatever it is.
    let probe: OwnedObject | undefined;
    for (let after: string | undefined; probe === undefined;) {
      const rows = await readMediaOwnedBy(db, schema, 'account_id', [account.id], {
        maxId: options.maxId,
        order: 'asc',
        beyond: after,
        limit: options.batchSize,
        scope,
      });
      probe = rows.filter((row) => row.status_discarded !== true).flatMap(objectsOf)[0];
      if (rows.length < options.batchSize) break;
      after = String(rows.at(-1)!.id);
    }
    if (probe === undefined) return;
    try {
      const compared = await retrying(() => access.compare(probe.key, aclFor(probe, options.acl)!, stop, ownerAclFor(probe, options.acl)));
      permitted = true;
      if (compared?.matches === true) return options.streaks?.succeeded();
    } catch (error) {
      failed(probe, error);
      return;
    }
    log.info({ account: account.id, suspended: account.suspended }, 're-applying the ACL of the media of an account (un)suspended since the last run');
    const failedBefore = result.failed;
    let beyond: string | undefined;
    for (;;) {
      const rows = await readMediaOwnedBy(db, schema, 'account_id', [account.id], {
        maxId: options.maxId,
        order: 'desc',
        beyond,
        limit: options.batchSize,
        scope,
      });
      for (const row of rows) {
        if (row.status_discarded === true) continue;
        for (const object of objectsOf(row)) if (object.key !== probe.key) await set(object, false);
      }
      if (rows.length < options.batchSize || halted()) break;
      beyond = String(rows.at(-1)!.id);
    }
    // The probe last, once every other object is set: until then the next run finds the account to do again.
    await pool.drain();
    if (result.failed === failedBefore) await set(probe, false);
  };
  // Accounts two at a time: on a large instance thousands of remote accounts are fetched again between two runs,
  // each one a query and a request, which one after another held the new rows back for minutes.
  // Two: each account's queries wait for one of the database pool's few connections, and a wait past its timeout
  // reads as the database lost (review2 H1).
  const accounts = new BoundedPool(Math.min(ACCOUNTS_AT_ONCE, options.concurrency));
  let accountFailure: { readonly error: unknown } | undefined;
  for (const account of changes.accounts) {
    if (halted() || accountFailure !== undefined) break;
    await accounts.submit(async () => {
      if (halted() || accountFailure !== undefined) return;
      try {
        await reapplyAccount(account);
      } catch (error) {
        // The database lost, a stop: the pass ends as it did when it went one account at a time.
        accountFailure ??= { error };
      }
    });
  }
  await accounts.drain();
  if (accountFailure !== undefined) throw accountFailure.error;

  // Statuses discarded since: few objects each; each asked first, so the count says what changed.
  for (let start = 0; start < changes.statuses.length && !halted(); start += options.batchSize) {
    const statuses = changes.statuses.slice(start, start + options.batchSize);
    let beyond: string | undefined;
    for (;;) {
      const rows = await readMediaOwnedBy(db, schema, 'status_id', statuses, { maxId: options.maxId, order: 'desc', beyond, limit: options.batchSize, scope });
      for (const row of rows) for (const object of objectsOf(row)) await set(object, true);
      if (rows.length < options.batchSize || halted()) break;
      beyond = String(rows.at(-1)!.id);
    }
  }
  await pool.drain();
  if (result.reapplied > 0) log.info({ reapplied: result.reapplied }, 'ACLs re-applied');
  return result;
}

export interface PresentAccessContext {
  readonly destination: ObjectStore;
  /** The configured ACL ("" sends none: nothing to set). */
  readonly acl: string;
  readonly retries: number;
  readonly signal: AbortSignal;
}

/**
 * --skip-existing: `object` is at the destination as at the source (`found`), put there by something else (a lost
 * checkpoint's run, another machine, `aws s3 sync --acl public-read`). A private one (a backup, the media of a
 * suspended account or a discarded status) gets the access Mastodon gives it: one PutObjectAcl, no read first, as an
 * object left public is what this is for. A public one is left as it is, with no request: nearly every object is
 * public, and one made public wrongly is only a broken image (verify --acl finds it).
 * Resolves to `found` with `aclSet`, or `found` alone where the store keeps no per-object ACL; undefined when the
 * object is gone since the listing (copy it); a failed result when the ACL could not be set, so that it is not
 * recorded present and --resume tries it again.
 */
export async function givePresentAccess(object: OwnedObject, found: CopyResult, context: PresentAccessContext): Promise<CopyResult | undefined> {
  const access = context.destination.access;
  if (object.visibility === 'default' || access === undefined) return found;
  const acl = aclFor(object, context.acl);
  if (acl === undefined) return found;
  const started = performance.now();
  try {
    const set = await withRetries([context.destination], () => access.set(object.key, acl, context.signal, ownerAclFor(object, context.acl)), {
      retries: context.retries,
      signal: context.signal,
    });
    return set ? { ...found, aclSet: true } : undefined;
  } catch (error) {
    // A store whose access belongs to the container (no per-object ACL): nothing to set, as for Mastodon there. A
    // refusal is an AccessUnsupportedError too, and fails: the object may be readable by anyone.
    if (error instanceof AccessUnsupportedError && !(error instanceof AccessRefusedError)) return found;
    return {
      status: 'failed',
      bytes: 0,
      ms: Math.round(performance.now() - started),
      attempts: 1,
      error: `at the destination already, but its ACL could not be set to ${acl}: ${describeError(error)}`,
      failedAt: ACL_REQUEST,
      ...(error instanceof FatalStoreError && { fatal: error }),
    };
  }
}
