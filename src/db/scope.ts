/**
 * Which part of the database a command covers: `--since`/`--until` (each attachment's own `*_updated_at`),
 * `--min-id`/`--max-id`, `--shard I/N` and `--skip-remote-cache`. Row filters become SQL conditions with
 * parameters, so rows out of scope are never read. Two rules are finer than a row and are completed per object:
 * a row is read when any of its attachments changed in the time window, but only the attachments that did are
 * copied; and `cache/` is decided per attachment (a media file can be under cache/ while its thumbnail is not).
 */
import { ownedObjects, type OwnedObject } from '../mastodon/keys.js';
import { TABLES, type JobName, type Row } from '../mastodon/tables.js';
import { hasColumn, type Schema } from './schema.js';

export interface Shard {
  /** 0 to count - 1 (Kubernetes' JOB_COMPLETION_INDEX). */
  readonly index: number;
  readonly count: number;
}

/** What --skip-remote-cache leaves out: remote media and preview cards, or every cache/ object. */
export type RemoteCacheSkip = 'media' | 'all';

export interface Scope {
  /** UTC instants as ISO strings; `since` is inclusive, `until` exclusive. */
  readonly since?: string;
  readonly until?: string;
  /** Inclusive id bounds (bigint as a decimal string). */
  readonly minId?: string;
  readonly maxId?: string;
  readonly shard?: Shard;
  readonly skipRemoteCache?: RemoteCacheSkip;
}

export const WHOLE_DATABASE: Scope = {};

/** Jobs whose cache/ objects a plain --skip-remote-cache keeps: avatars, headers and emoji stay. */
const KEPT_UNLESS_ALL: ReadonlySet<JobName> = new Set(['accounts', 'custom_emojis']);

export interface ScopeSql {
  /** Conditions to AND into the WHERE clause (on the table aliased `t`). */
  readonly conditions: string[];
  /** With a time window: for each attachment, whether it changed in the window, to select as `column`. */
  readonly windows: Array<{ readonly column: string; readonly sql: string }>;
  readonly values: unknown[];
}

/** The SQL for `scope` on `job`; its parameters are numbered from `$<firstParameter>`. */
export function scopeSql(schema: Schema, job: JobName, scope: Scope, firstParameter: number): ScopeSql {
  const values: unknown[] = [];
  const parameter = (value: unknown, type: string) => {
    values.push(value);
    return `$${firstParameter + values.length - 1}::${type}`;
  };
  const conditions: string[] = [];
  const windows: ScopeSql['windows'] = [];

  if (scope.minId !== undefined) conditions.push(`t."id" >= ${parameter(scope.minId, 'bigint')}`);
  if (scope.maxId !== undefined) conditions.push(`t."id" <= ${parameter(scope.maxId, 'bigint')}`);
  if (scope.shard !== undefined) {
    // Positive modulo: the instance actor has id -99, and % keeps the dividend's sign.
    const count = parameter(scope.shard.count, 'bigint');
    conditions.push(`((t."id" % ${count}) + ${count}) % ${count} = ${parameter(scope.shard.index, 'bigint')}`);
  }
  if (scope.since !== undefined || scope.until !== undefined) {
    const since = scope.since === undefined ? undefined : parameter(utcTimestamp(scope.since), 'timestamp');
    const until = scope.until === undefined ? undefined : parameter(utcTimestamp(scope.until), 'timestamp');
    const any = TABLES[job].attachments.map((attachment) => {
      const column = `${attachment.name}_updated_at`;
      const updated = hasColumn(schema, job, column) ? `t."${column}"` : 'NULL::timestamp';
      // A NULL time counts as long ago: outside any --since, inside any --until.
      const window = [...(since ? [`COALESCE(${updated} >= ${since}, false)`] : []), ...(until ? [`COALESCE(${updated} < ${until}, true)`] : [])].join(' AND ');
      windows.push({ column: `${attachment.name}_in_scope`, sql: `(${window})` });
      return `(${window})`;
    });
    conditions.push(`(${any.join(' OR ')})`);
  }
  return { conditions, windows, values };
}

/**
 * Whether the scope takes every row (a shard takes every row of its own, with its own checkpoint): only such a run
 * may say a job is synced, or that an object is no longer owned; a narrower one merely left rows out.
 */
export function coversEveryRow(scope: Scope): boolean {
  return scope.minId === undefined && scope.maxId === undefined && !filtersObjects(scope);
}

/** Whether the scope drops some objects of rows it reads (so each row's objects must be filtered). */
function filtersObjects(scope: Scope): boolean {
  return scope.skipRemoteCache !== undefined || scope.since !== undefined || scope.until !== undefined;
}

/** The objects `row` owns that are in scope: ownedObjects, less out-of-window attachments and skipped cache/. */
export function ownedInScope(job: JobName, row: Row, scope: Scope): OwnedObject[] {
  const owned = ownedObjects(job, row);
  return filtersObjects(scope) ? owned.filter((object) => objectInScope(object, row, scope)) : owned;
}

export function objectInScope(object: OwnedObject, row: Row, scope: Scope): boolean {
  if (row[`${object.attachment}_in_scope`] === false) return false;
  if (object.underCache && scope.skipRemoteCache !== undefined) {
    return scope.skipRemoteCache === 'media' && KEPT_UNLESS_ALL.has(object.job);
  }
  return true;
}

/**
 * Whether an attachment whose `*_updated_at` is `updated` (ISO UTC as src/db/clock.ts writes it; undefined for NULL)
 * lies in the scope's time window: scopeSql's window, for rows read without it (the access pass reads every row).
 */
export function inTimeWindow(scope: Scope, updated: string | undefined): boolean {
  // As in SQL: a NULL time counts as long ago, outside any --since and inside any --until.
  if (scope.since !== undefined && (updated === undefined || updated < scope.since)) return false;
  return scope.until === undefined || updated === undefined || updated < scope.until;
}

/** Mastodon writes `timestamp without time zone` in UTC: compare with the UTC wall time. */
export function utcTimestamp(iso: string): string {
  return new Date(iso).toISOString().replace('T', ' ').replace('Z', '');
}
