/**
 * Row streams: each table is read in id order, a window of `batchSize` rows in scope at a time (keyset: the
 * window is the next batchSize ids after the last one, found without reading the rows). Of each window only the
 * rows that own a file come back: on a large instance most media rows are remote media whose cached file was
 * removed, and materialising them only to find nothing costs time, tunnel traffic and memory. They are still
 * counted (`onRead`, and `limit`), and a window takes bounded time however sparse the files, so the first copy
 * starts at once.
 *
 * A page's two queries run as every read does (db.read: behind a pooler, in one short transaction), and its rows
 * come through pg-query-stream and arrive whole before they are used, so no cursor, transaction or snapshot lives
 * longer than one page however slowly the copies go. The next page is fetched while
 * the current one is being copied, so the pool does not wait on the database.
 */
import type { EventEmitter } from 'node:events';
import type pg from 'pg';
import QueryStream from 'pg-query-stream';
import { clipToRows, ID_LENGTH_SPANS, type IdRange } from '../mastodon/owners.js';
import { TABLES, type JobName, type Row } from '../mastodon/tables.js';
import { ISO_UTC_FORMAT } from './clock.js';
import { DatabaseLostError, isConnectionLost, type Database } from './connection.js';
import { hasColumn, selectableColumns, type Schema } from './schema.js';
import { WHOLE_DATABASE, scopeSql, utcTimestamp, type Scope, type ScopeSql } from './scope.js';

export interface PageOptions {
  readonly batchSize: number;
  /** Read rows with id greater than this (a resume watermark). */
  readonly afterId?: string;
  /** Rows in scope at most, over all pages. */
  readonly limit?: number;
  /** Only rows in this scope (--since, --shard, …); their `<attachment>_in_scope` columns say which attachments. */
  readonly scope?: Scope;
  /** Told each window's count of rows in scope, those that own no file included. */
  readonly onRead?: (rows: number) => void;
  /**
   * Only rows with an attachment whose `*_updated_at` is at or after this time (ISO UTC, the database's clock):
   * the changed-rows pass of a resumed run. Windows still count every row in scope, so each query stays short
   * however few rows changed; `<attachment>_changed` says which attachments did.
   */
  readonly changedSince?: string;
}

const BEFORE_ANY_ID = '-9223372036854775808';

interface Page {
  /** Rows of the window that own a file. */
  readonly rows: Row[];
  /** Rows in the window: fewer than asked for at the end of the table. */
  readonly read: number;
  /** The window's last id. */
  readonly end?: string;
}

export async function* readRowPages(db: Database, schema: Schema, job: JobName, options: PageOptions): AsyncGenerator<Row[]> {
  const queries = pageQueries(schema, job, options.scope ?? WHOLE_DATABASE, options.changedSince);
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  const fetch = (after: string) => {
    const size = Math.min(options.batchSize, remaining);
    const page = withReconnect(db, () => fetchPage(db, queries, after, size, after === BEFORE_ANY_ID ? `${job}, its first rows` : `${job} after row ${after}`));
    page.catch(() => undefined); // a prefetch the consumer never awaits must not crash the process
    return { page, size };
  };
  if (remaining <= 0) return;
  let next = fetch(options.afterId ?? BEFORE_ANY_ID);
  for (;;) {
    const { rows, read, end } = await next.page;
    remaining -= read;
    const finished = read < next.size || remaining <= 0;
    if (!finished) next = fetch(end!);
    options.onRead?.(read);
    if (rows.length > 0) yield rows;
    if (finished) return;
  }
}

/** The given rows of `job`, for retrying objects recorded as failed below a resume watermark. */
export async function readRowsById(db: Database, schema: Schema, job: JobName, ids: readonly string[], scope: Scope = WHOLE_DATABASE): Promise<Row[]> {
  const scoped = scopeSql(schema, job, scope, 2);
  const sql = selectClause(schema, job, scoped.windows) + ` WHERE ${[`t."id" = ANY($1::bigint[])`, ...scoped.conditions].join(' AND ')} ORDER BY t."id"`;
  return withReconnect(db, () => db.query(sql, [ids, ...scoped.values]));
}

/**
 * How many rows of the table each probe of readSampleRows reads at most, whatever the table's size and the scope: a
 * window (--since) has no index, and in a delta pass its rows are the newest few, so a probe that read on until it
 * found one in scope read most of the table (review1 LOW-6: 2.5 s over 3 million accounts, one snapshot held).
 */
export const SAMPLE_PROBE_ROWS = 1000;

/**
 * A few rows of `job` at or below `maxId` that own a file, in scope: the `newest` highest, and the first at or after
 * each of `fractions` (0 to 1) of the way from the lowest id to `maxId`. What a resumed run asks the destination
 * for (src/sync/destinationCheck.ts). Each probe reads SAMPLE_PROBE_ROWS rows at most through the primary key, from
 * its point on, and takes those in scope: a probe among rows mostly out of scope finds none, and the sample is smaller.
 */
export async function readSampleRows(
  db: Database,
  schema: Schema,
  job: JobName,
  maxId: string,
  sample: { readonly newest: number; readonly fractions: readonly number[] },
  scope: Scope = WHOLE_DATABASE,
  savedSince?: string,
): Promise<Row[]> {
  // Parameters: $1 maxId, $2 the newest's count or the points, $3 the rows a probe reads, then the scope's, then savedSince.
  const scoped = scopeSql(schema, job, scope, 4);
  const where = [ownsAFile(schema, job), ...scoped.conditions].join(' AND ');
  const values = [...scoped.values];
  // `<attachment>_moved` on each row: the changed-rows pass looks at those again (pageQueries).
  const windows = [...scoped.windows];
  const moved = savedSince === undefined ? [] : movedWindows(schema, job, `$${values.length + 4}::timestamp`);
  // A parameter PostgreSQL finds in no query is refused (08P01): given only where a window names it.
  if (moved.length > 0) {
    values.push(utcTimestamp(savedSince!));
    windows.push(...moved);
  }
  /** The SAMPLE_PROBE_ROWS rows at or below maxId next to a point, in `order`: one range of the primary key. */
  const probe = (order: 'ASC' | 'DESC', from: string) => `(SELECT * FROM "${job}" p WHERE p."id" <= $1::bigint AND ${from} ORDER BY p."id" ${order} LIMIT $3)`;
  const newest = `${selectClause(schema, job, windows, probe('DESC', 'true'))} WHERE ${where} ORDER BY t."id" DESC LIMIT $2`;
  const point = `p."id" >= lowest.id + floor(point.at * ($1::bigint - lowest.id)::float8)::bigint`;
  const spread =
    `WITH lowest AS (SELECT min(t."id") AS id FROM "${job}" t WHERE t."id" <= $1::bigint) ` +
    `SELECT picked.* FROM unnest($2::float8[]) point(at) CROSS JOIN lowest, LATERAL (${selectClause(schema, job, windows, probe('ASC', point))} ` +
    `WHERE ${where} ORDER BY t."id" LIMIT 1) picked`;
  return withReconnect(db, async () => [
    ...(await db.query<Row>(newest, [maxId, sample.newest, SAMPLE_PROBE_ROWS, ...values])),
    ...(sample.fractions.length === 0 ? [] : await db.query<Row>(spread, [maxId, sample.fractions, SAMPLE_PROBE_ROWS, ...values])),
  ]);
}

/** The `count` newest rows of `job` that own a file, newest first: what `check` looks for at the source. */
export async function readNewestRows(db: Database, schema: Schema, job: JobName, count: number): Promise<Row[]> {
  const sql = selectClause(schema, job) + ` WHERE ${ownsAFile(schema, job)} ORDER BY t."id" DESC LIMIT $1`;
  return withReconnect(db, () => db.query(sql, [count]));
}

/**
 * The rows of `job` whose id lies in one of `ranges` (both ends included; at most 100 ids each, as a partition
 * names them), in id order: the rows a page of listed keys could belong to (prune). The ranges are spelled out
 * into ids for one `id = ANY` lookup through the primary key: PostgreSQL plans a join on ranges as a scan of the
 * whole table against each of them.
 */
export async function readRowsInIdRanges(db: Database, schema: Schema, job: JobName, ranges: readonly IdRange[]): Promise<Row[]> {
  const ids = spelledOut(ranges);
  return ids.length === 0 ? [] : readRowsById(db, schema, job, ids);
}

/**
 * As readRowsInIdRanges, with the ranges first cut to the spans `job`'s rows fill (readRowSpans, clipToRows), both
 * read in one snapshot (a read-only REPEATABLE READ transaction): a row that snapshot holds lies within its span,
 * so this finds exactly the rows the uncut ranges would, however many ids the cut leaves out. For prune's check
 * just before deleting, where a row may have appeared since the spans it read at the start.
 */
export async function readRowsInIdRangesCut(db: Database, schema: Schema, job: JobName, ranges: readonly IdRange[]): Promise<Row[]> {
  return withReconnect(db, async () => {
    const client = await db.connect();
    try {
      const rows = await db.read(
        client,
        async () => {
          const spans = toSpans((await client.query<{ from: string; to: string }>(rowSpansSql(job), rowSpansValues())).rows);
          const ids = spelledOut(clipToRows(ranges, spans));
          const sql = selectClause(schema, job) + ` WHERE t."id" = ANY($1::bigint[]) ORDER BY t."id"`;
          return ids.length === 0 ? [] : (await client.query<Row>(sql, [ids])).rows;
        },
        'REPEATABLE READ',
      );
      client.release();
      return rows;
    } catch (error) {
      client.release(error as Error); // the transaction ends with the connection
      throw error;
    }
  });
}

/**
 * For each span of ID_LENGTH_SPANS (the ids of one length and sign), the lowest and highest id of `job` within it;
 * spans that hold no row are left out. Two index probes a span, however large the table: prune learns which
 * candidate ids a row can have (clipToRows) before it looks any up.
 */
export async function readRowSpans(db: Database, job: JobName): Promise<IdRange[]> {
  return toSpans(await withReconnect(db, () => db.query<{ from: string; to: string }>(rowSpansSql(job), rowSpansValues())));
}

function rowSpansSql(job: JobName): string {
  return `SELECT s."low"::text AS "from", s."high"::text AS "to"
            FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS span("from", "to", "order")
            CROSS JOIN LATERAL (SELECT min(t."id") AS "low", max(t."id") AS "high" FROM "${job}" t WHERE t."id" BETWEEN span."from" AND span."to") s
           WHERE s."low" IS NOT NULL ORDER BY span."order"`;
}

function rowSpansValues(): string[][] {
  return [ID_LENGTH_SPANS.map((span) => span.from.toString()), ID_LENGTH_SPANS.map((span) => span.to.toString())];
}

function toSpans(rows: ReadonlyArray<{ from: string; to: string }>): IdRange[] {
  return rows.map((row) => ({ from: BigInt(row.from), to: BigInt(row.to) }));
}

/** Every id of `ranges`, once each, as text. */
function spelledOut(ranges: readonly IdRange[]): string[] {
  const ids = new Set<string>();
  for (const { from, to } of ranges) {
    if (to - from >= MAX_RANGE) throw new Error(`id range ${from}..${to} is wider than ${MAX_RANGE}`);
    for (let id = from; id <= to; id++) ids.add(id.toString());
  }
  return [...ids];
}

/** A partition drops at most two digits of an id (docs/storage-layout.md §1.2): 100 ids. */
const MAX_RANGE = 100n;

interface PageQueries {
  /** The window: $1 the id before it, $2 its size, then the scope's values. */
  readonly windowSql: string;
  /** Its rows that own a file: $1 the id before it, $2 its last id, then the scope's values and the change time. */
  readonly rowsSql: string;
  readonly values: unknown[];
  readonly rowValues: unknown[];
}

function pageQueries(schema: Schema, job: JobName, scope: Scope, changedSince?: string): PageQueries {
  const scoped = scopeSql(schema, job, scope, 3);
  const inScope = [`t."id" > $1::bigint`, ...scoped.conditions].join(' AND ');
  const windows = [...scoped.windows];
  const rowValues = [...scoped.values];
  let rowConditions = `t."id" <= $2::bigint AND ${ownsAFile(schema, job)}`;
  if (changedSince !== undefined) {
    rowValues.push(utcTimestamp(changedSince));
    const since = `$${rowValues.length + 2}::timestamp`;
    const changed = datedAttachments(schema, job).map((attachment) => ({
      column: `${attachment.name}_changed`,
      sql: `COALESCE(t."${attachment.name}_updated_at" >= ${since}, false)`,
    }));
    const moved = movedWindows(schema, job, since);
    windows.push(...changed, ...moved);
    rowConditions += ` AND (${[...changed, ...moved].map((window) => window.sql).join(' OR ') || 'false'})`;
  }
  return {
    windowSql: `SELECT max(w."id")::text AS "end", count(*)::int AS "read" FROM (SELECT t."id" FROM "${job}" t WHERE ${inScope} ORDER BY t."id" LIMIT $2) w`,
    rowsSql: selectClause(schema, job, windows) + ` WHERE ${inScope} AND ${rowConditions} ORDER BY t."id"`,
    values: scoped.values,
    rowValues,
  };
}

/**
 * `tootctl upgrade storage-schema` moves a remote file to `cache/` by setting `*_storage_schema_version` to 1 and saving
 * the row (its `updated_at`), not `*_updated_at`. Not every row whose `updated_at` moved: a remote account is saved
 * again on most refreshes (a day apart, its files unchanged), and below the watermark the checkpoint keeps no line
 * that would tell its keys copied, so a copy of each would be a copy storm. Only rows whose version says `cache/` may
 * apply, and the run asks the destination for those keys rather than copy them (src/sync/run.ts). `since`: the SQL
 * of the change time.
 */
function movedWindows(schema: Schema, job: JobName, since: string): ScopeSql['windows'] {
  if (!hasColumn(schema, job, 'updated_at')) return [];
  return TABLES[job].attachments
    .filter((attachment) => hasColumn(schema, job, `${attachment.name}_storage_schema_version`))
    .map((attachment) => ({
      column: movedColumn(attachment.name),
      sql: `COALESCE(t."updated_at" >= ${since} AND t."${attachment.name}_storage_schema_version" >= 1, false)`,
    }));
}

/** `<attachment>_moved`: the row was saved since the change time and its version puts a remote file under `cache/`. */
export function movedColumn(attachment: string): string {
  return `${attachment}_moved`;
}

/** The attachments whose `*_updated_at` this version has: the ones a change can be told by. */
function datedAttachments(schema: Schema, job: JobName) {
  return TABLES[job].attachments.filter((attachment) => hasColumn(schema, job, `${attachment.name}_updated_at`));
}

/** Rows with no file own nothing: a NULL or empty `<attachment>_file_name`, as src/mastodon/keys.ts reads it. */
function ownsAFile(schema: Schema, job: JobName): string {
  const any = TABLES[job].attachments
    .map((attachment) => `${attachment.name}_file_name`)
    .filter((column) => hasColumn(schema, job, column))
    .map((column) => `(t."${column}" IS NOT NULL AND t."${column}" <> '')`);
  return any.length === 0 ? 'false' : `(${any.join(' OR ')})`;
}

/**
 * Columns come only from the tool's own list (filtered by what the schema has); values are parameters.
 * Media rows also carry whether their account is suspended and their status discarded (for the ACL, docs/storage-layout.md §6).
 * `from`: what the rows are read from, aliased `t`: the table, or a subquery of its rows.
 */
function selectClause(schema: Schema, job: JobName, windows: ScopeSql['windows'] = [], from = `"${job}"`): string {
  const columns = [
    // Not the `*_updated_at` timestamps themselves: pg would parse each into a Date (a few µs a row) that nothing reads.
    ...selectableColumns(schema, job)
      .filter((column) => !column.endsWith('_updated_at'))
      .map((column) => `t."${column}"`),
    // In the database's own UTC text, for the checkpoint (pg would turn the timestamp into a Date in this machine's zone).
    ...datedAttachments(schema, job).map(
      (attachment) => `to_char(t."${attachment.name}_updated_at", ${ISO_UTC_FORMAT}) AS "${updatedColumn(attachment.name)}"`,
    ),
    ...windows.map((window) => `${window.sql} AS "${window.column}"`),
  ];
  const joins: string[] = [];
  if (job === 'media_attachments') {
    const suspended = suspendedSql(schema);
    if (suspended && hasColumn(schema, job, 'account_id')) {
      columns.push(`COALESCE(${suspended}, false) AS account_suspended`);
      joins.push('LEFT JOIN "accounts" a ON a."id" = t."account_id"');
    }
    if (hasColumn(schema, 'statuses', 'deleted_at') && hasColumn(schema, job, 'status_id')) {
      columns.push('COALESCE(s."deleted_at" IS NOT NULL, false) AS status_discarded');
      joins.push('LEFT JOIN "statuses" s ON s."id" = t."status_id"');
    }
  }
  return `SELECT ${columns.join(', ')} FROM ${from} t ${joins.join(' ')}`;
}

/** `<attachment>_updated_iso`, the column a row's attachment says when it changed in (selectClause), made once per attachment. */
const updatedColumns = new Map<string, string>();
function updatedColumn(attachment: string): string {
  let column = updatedColumns.get(attachment);
  if (column === undefined) updatedColumns.set(attachment, (column = `${attachment}_updated_iso`));
  return column;
}

/** A row's `*_updated_at` of `attachment` (ISO UTC), undefined when it has none: which file the row names. */
export function stampOf(row: Row, attachment: string): string | undefined {
  const updated = row[updatedColumn(attachment)];
  return typeof updated === 'string' ? updated : undefined;
}

/** Whether the account aliased `a` is suspended, as this version says it; undefined when it cannot. */
function suspendedSql(schema: Schema): string | undefined {
  if (hasColumn(schema, 'accounts', 'suspended_at')) return 'a."suspended_at" IS NOT NULL';
  return hasColumn(schema, 'accounts', 'suspended') ? 'COALESCE(a."suspended", false)' : undefined;
}

/** Owners whose media may have changed access since a time (docs/operations.md, "Suspensions"). */
export interface AccessChanges {
  /** Accounts whose row changed (Account#suspend! and #unsuspend! update it), with whether each is suspended now. */
  readonly accounts: ReadonlyArray<{ readonly id: string; readonly suspended: boolean }>;
  /** Statuses discarded since (Status#discard_with_reblogs sets deleted_at). */
  readonly statuses: readonly string[];
}

/**
 * The accounts updated at or after `since` (ISO UTC, the database's clock) and the statuses discarded since, of
 * those that own a media row with a file up to id `maxId`. One scan of accounts (Mastodon has no index on its
 * updated_at) and, for statuses, the partial index on deleted_at.
 */
export async function readAccessChanges(db: Database, schema: Schema, since: string, maxId: string): Promise<AccessChanges> {
  const job = 'media_attachments';
  const values = [utcTimestamp(since), maxId];
  const media = (column: string, owner: string) =>
    `EXISTS (SELECT 1 FROM "${job}" t WHERE t."${column}" = ${owner} AND t."id" <= $2::bigint AND ${ownsAFile(schema, job)})`;
  const suspended = suspendedSql(schema);
  const accounts =
    suspended === undefined || !hasColumn(schema, job, 'account_id') || !hasColumn(schema, 'accounts', 'updated_at')
      ? []
      : await withReconnect(db, () =>
          db.query<{ id: string; suspended: boolean }>(
            `SELECT a."id"::text AS "id", COALESCE(${suspended}, false) AS "suspended" FROM "accounts" a
              WHERE a."updated_at" >= $1::timestamp AND ${media('account_id', 'a."id"')} ORDER BY a."id"`,
            values,
          ),
        );
  const statuses =
    !hasColumn(schema, 'statuses', 'deleted_at') || !hasColumn(schema, job, 'status_id')
      ? []
      : await withReconnect(db, () =>
          db.query<{ id: string }>(
            `SELECT s."id"::text AS "id" FROM "statuses" s WHERE s."deleted_at" >= $1::timestamp AND ${media('status_id', 's."id"')} ORDER BY s."id"`,
            values,
          ),
        );
  return { accounts, statuses: statuses.map((row) => row.id) };
}

/**
 * Up to `limit` media rows with a file whose `column` is one of `ids`, with id at most `maxId` and beyond `beyond`
 * (above it ascending, below it descending), in scope, in id order.
 */
export async function readMediaOwnedBy(
  db: Database,
  schema: Schema,
  column: 'account_id' | 'status_id',
  ids: readonly string[],
  options: { readonly maxId: string; readonly order: 'asc' | 'desc'; readonly beyond?: string; readonly limit: number; readonly scope: Scope },
): Promise<Row[]> {
  const job = 'media_attachments';
  const scoped = scopeSql(schema, job, options.scope, 5);
  const beyond = options.order === 'asc' ? '>' : '<';
  const conditions = [
    `t."${column}" = ANY($1::bigint[])`,
    `t."id" <= $2::bigint`,
    `($3::bigint IS NULL OR t."id" ${beyond} $3::bigint)`,
    ownsAFile(schema, job),
    ...scoped.conditions,
  ];
  const sql = selectClause(schema, job, scoped.windows) + ` WHERE ${conditions.join(' AND ')} ORDER BY t."id" ${options.order.toUpperCase()} LIMIT $4`;
  return withReconnect(db, () => db.query(sql, [ids, options.maxId, options.beyond ?? null, options.limit, ...scoped.values]));
}

/** One window: its size and last id, then its rows that own a file, each query's result whole. `at` names it for messages. */
async function fetchPage(db: Database, queries: PageQueries, after: string, size: number, at: string): Promise<Page> {
  const client = await db.connect(at);
  try {
    const page = await db.read(client, async () => {
      const window = await client.query<{ end: string | null; read: number }>(queries.windowSql, [after, size, ...queries.values]);
      const { end, read } = window.rows[0]!;
      const rows = end === null ? [] : await streamRows(client, queries.rowsSql, [after, end, ...queries.rowValues], read);
      return { rows, read, end: end ?? undefined };
    });
    client.release();
    return page;
  } catch (error) {
    client.release(error as Error);
    throw error;
  }
}

/**
 * The rows of one window through pg-query-stream, in one fetch (its batch is larger than the window). Rows are
 * taken with 'data' events rather than for-await (no promise per row), and the stream fails when the connection
 * does: pg-cursor can otherwise end a stream early, or never, when its socket dies, and a window cut short
 * must never pass for a complete one. A failure settles the page at once, not through the stream's 'error': that
 * waits for pg-cursor to close its portal, which takes the server's answer, and a dead connection never answers.
 */
async function streamRows(client: pg.PoolClient, sql: string, values: unknown[], windowSize: number): Promise<Row[]> {
  const stream = client.query(new QueryStream(sql, values, { batchSize: windowSize + 1 }));
  const cursor = (stream as unknown as { cursor: EventEmitter }).cursor;
  const rows: Row[] = [];
  let completed = false;
  cursor.once('end', () => (completed = true));
  return new Promise<Row[]>((resolve, reject) => {
    let settled = false;
    const settle = (error?: Error) => {
      if (settled) return;
      settled = true;
      client.off('error', lost);
      client.off('end', lost);
      cursor.off('error', settle);
      if (error) reject(error);
      else if (!completed) reject(new Error('Connection terminated unexpectedly: the page was cut short'));
      else resolve(rows);
    };
    const lost = (error?: Error) => {
      const cause = error ?? new Error('Connection terminated unexpectedly');
      settle(cause);
      stream.destroy(cause);
    };
    client.on('error', lost);
    client.on('end', lost);
    cursor.once('error', settle);
    stream.on('data', (row: Row) => rows.push(row));
    stream.once('error', settle);
    stream.once('end', () => settle());
  });
}

/** Runs a read again after re-establishing a lost connection (or tunnel); other errors pass through. */
async function withReconnect<T>(db: Database, read: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (!isConnectionLost(error)) throw error;
      // A path on which the connection comes back and every read dies again (a blackhole for large answers): stop.
      if (attempt >= 5) throw new DatabaseLostError(db.description, { cause: error });
      await db.reconnect(error);
    }
  }
}
