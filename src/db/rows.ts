/**
 * Row streams: each table is read in id order in keyset pages (`WHERE id > $last ORDER BY id LIMIT n`).
 * A page is one query whose result arrives whole before its rows are used, so no cursor or snapshot lives
 * longer than one page however slowly the copies go, and a page costs one round trip through an SSH tunnel.
 * The next page is fetched while the current one is being copied, so the pool does not wait on the database.
 */
import { TABLES, type JobName, type Row } from '../mastodon/tables.js';
import { isConnectionLost, type Database } from './connection.js';
import { hasColumn, selectableColumns, type Schema } from './schema.js';
import { WHOLE_DATABASE, scopeSql, type Scope, type ScopeSql } from './scope.js';

export interface PageOptions {
  readonly batchSize: number;
  /** Read rows with id greater than this (a resume watermark). */
  readonly afterId?: string;
  /** Rows at most, over all pages. */
  readonly limit?: number;
  /** Only rows in this scope (--since, --shard, …); their `<attachment>_in_scope` columns say which attachments. */
  readonly scope?: Scope;
}

const BEFORE_ANY_ID = '-9223372036854775808';

export async function* readRowPages(db: Database, schema: Schema, job: JobName, options: PageOptions): AsyncGenerator<Row[]> {
  const { sql, values } = pageQuery(schema, job, options.scope ?? WHOLE_DATABASE);
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  let next: Promise<Row[]> | undefined;
  const fetch = (after: string) => {
    const size = Math.min(options.batchSize, remaining);
    const page = withReconnect(db, () => fetchPage(db, sql, [after, size, ...values]));
    page.catch(() => undefined); // a prefetch the consumer never awaits must not crash the process
    return { page, size };
  };
  if (remaining <= 0) return;
  let request = fetch(options.afterId ?? BEFORE_ANY_ID);
  for (;;) {
    const rows = await request.page;
    remaining -= rows.length;
    const finished = rows.length < request.size || remaining <= 0;
    if (!finished) next = (request = fetch(String(rows[rows.length - 1]!.id))).page;
    if (rows.length > 0) yield rows;
    if (finished) return;
    void next;
  }
}

/** The given rows of `job`, for retrying objects recorded as failed below a resume watermark. */
export async function readRowsById(db: Database, schema: Schema, job: JobName, ids: readonly string[], scope: Scope = WHOLE_DATABASE): Promise<Row[]> {
  const scoped = scopeSql(schema, job, scope, 2);
  const sql = selectClause(schema, job, scoped.windows) + ` WHERE ${[`t."id" = ANY($1::bigint[])`, ...scoped.conditions].join(' AND ')} ORDER BY t."id"`;
  return withReconnect(db, () => db.query(sql, [ids, ...scoped.values]));
}

function pageQuery(schema: Schema, job: JobName, scope: Scope): { sql: string; values: unknown[] } {
  const scoped = scopeSql(schema, job, scope, 3);
  const where = [`t."id" > $1::bigint`, ownsAFile(schema, job), ...scoped.conditions].join(' AND ');
  return { sql: selectClause(schema, job, scoped.windows) + ` WHERE ${where} ORDER BY t."id" LIMIT $2`, values: scoped.values };
}

/**
 * Rows with no file own nothing (a NULL or empty `<attachment>_file_name`, as keys.ts reads it), so they are
 * left in the database: on a large instance most media rows are remote media whose cached file was removed,
 * and reading them only to find nothing costs time, tunnel traffic and memory.
 */
function ownsAFile(schema: Schema, job: JobName): string {
  const any = TABLES[job].attachments
    .map((attachment) => `${attachment.name}_file_name`)
    .filter((column) => hasColumn(schema, job, column))
    .map((column) => `(t."${column}" IS NOT NULL AND t."${column}" <> '')`);
  return any.length === 0 ? 'false' : `(${any.join(' OR ')})`;
}

/**
 * Columns come only from the tool's own list (filtered by what the schema has); values are parameters.
 * Media rows also carry whether their account is suspended and their status discarded (for the ACL, §6).
 */
function selectClause(schema: Schema, job: JobName, windows: ScopeSql['windows'] = []): string {
  const columns = [
    ...selectableColumns(schema, job).map((column) => `t."${column}"`),
    ...windows.map((window) => `${window.sql} AS "${window.column}"`),
  ];
  const joins: string[] = [];
  if (job === 'media_attachments') {
    const suspended = hasColumn(schema, 'accounts', 'suspended_at')
      ? 'a."suspended_at" IS NOT NULL'
      : hasColumn(schema, 'accounts', 'suspended')
        ? 'COALESCE(a."suspended", false)'
        : undefined;
    if (suspended && hasColumn(schema, job, 'account_id')) {
      columns.push(`COALESCE(${suspended}, false) AS account_suspended`);
      joins.push('LEFT JOIN "accounts" a ON a."id" = t."account_id"');
    }
    if (hasColumn(schema, 'statuses', 'deleted_at') && hasColumn(schema, job, 'status_id')) {
      columns.push('COALESCE(s."deleted_at" IS NOT NULL, false) AS status_discarded');
      joins.push('LEFT JOIN "statuses" s ON s."id" = t."status_id"');
    }
  }
  return `SELECT ${columns.join(', ')} FROM "${job}" t ${joins.join(' ')}`;
}

/**
 * One page, as one plain query: a row-by-row stream of a page that is kept whole anyway costs a promise per row,
 * the garbage of which grew the heap by tens of MB over a million rows (docs/performance.md).
 */
async function fetchPage(db: Database, sql: string, values: unknown[]): Promise<Row[]> {
  const client = await db.connect();
  try {
    const { rows } = await client.query<Row>(sql, values);
    client.release();
    return rows;
  } catch (error) {
    client.release(error as Error);
    throw error;
  }
}

/** Runs a read again after re-establishing a lost connection (or tunnel); other errors pass through. */
async function withReconnect<T>(db: Database, read: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await read();
    } catch (error) {
      if (!isConnectionLost(error) || attempt >= 5) throw error;
      await db.reconnect(error);
    }
  }
}
