/**
 * Row streams: each table is read in id order in keyset pages (`WHERE id > $last ORDER BY id LIMIT n`).
 * A page is drained through pg-query-stream and its query ends before the rows are used, so no cursor or
 * snapshot lives longer than one page however slowly the copies go. The next page is fetched while the
 * current one is being copied, so the pool does not wait on the database.
 */
import QueryStream from 'pg-query-stream';
import type { JobName, Row } from '../mastodon/tables.js';
import { isConnectionLost, type Database } from './connection.js';
import { hasColumn, selectableColumns, type Schema } from './schema.js';

export interface PageOptions {
  readonly batchSize: number;
  /** Read rows with id greater than this (a resume watermark). */
  readonly afterId?: string;
  /** Rows at most, over all pages. */
  readonly limit?: number;
}

const BEFORE_ANY_ID = '-9223372036854775808';

export async function* readRowPages(db: Database, schema: Schema, job: JobName, options: PageOptions): AsyncGenerator<Row[]> {
  const sql = pageQuery(schema, job);
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  let next: Promise<Row[]> | undefined;
  const fetch = (after: string) => {
    const size = Math.min(options.batchSize, remaining);
    const page = withReconnect(db, () => streamRows(db, sql, [after, size], options.batchSize));
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
export async function readRowsById(db: Database, schema: Schema, job: JobName, ids: readonly string[]): Promise<Row[]> {
  const sql = selectClause(schema, job) + ` WHERE t."id" = ANY($1::bigint[]) ORDER BY t."id"`;
  return withReconnect(db, () => db.query(sql, [ids]));
}

function pageQuery(schema: Schema, job: JobName): string {
  return selectClause(schema, job) + ` WHERE t."id" > $1::bigint ORDER BY t."id" LIMIT $2`;
}

/**
 * Columns come only from the tool's own list (filtered by what the schema has); values are parameters.
 * Media rows also carry whether their account is suspended and their status discarded (for the ACL, §6).
 */
function selectClause(schema: Schema, job: JobName): string {
  const columns = selectableColumns(schema, job).map((column) => `t."${column}"`);
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

async function streamRows(db: Database, sql: string, values: unknown[], batchSize: number): Promise<Row[]> {
  const client = await db.connect();
  const rows: Row[] = [];
  try {
    const stream = client.query(new QueryStream(sql, values, { batchSize: Math.min(batchSize, 10_000) }));
    for await (const row of stream) rows.push(row as Row);
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
