/**
 * What a table owns, counted inside PostgreSQL: one GROUP BY over exactly the values that decide how many objects
 * a row owns and whether they sit under cache/ (whether each attachment has a file, its content type, its schema
 * version, the row's locality, a site upload's var). Each group comes back as a stand-in row, so the caller
 * applies the very rules that derive keys (src/mastodon) instead of a second copy of them in SQL. A few dozen
 * groups come back however many million rows there are. The table is counted in keyset chunks, each a short
 * statement, so counting a 30-million-row table on a production primary never holds one snapshot for long.
 */
import { TABLES, type JobName, type Row } from '../mastodon/tables.js';
import type { Database } from './connection.js';
import { hasColumn, type Schema } from './schema.js';
import { scopeSql, type Scope } from './scope.js';

export interface OwnershipGroup {
  /** Stand-in row: the values that decide the objects of every row in the group. */
  readonly row: Row;
  readonly rows: number;
  /** Per attachment: the sum of `<attachment>_file_size` over rows with a file (originals only). */
  readonly bytes: Readonly<Record<string, number>>;
  /** Per attachment: requests beyond one PUT for originals above the part size (multipart upload). */
  readonly extraRequests: Readonly<Record<string, number>>;
}

export interface CountOptions {
  /** Count only rows after this id (a resume watermark). */
  readonly afterId?: string;
  /** Count only the first `limit` rows (in id order), as `run --limit` reads. */
  readonly limit?: number;
  /** Uploads above this size go multipart ([sync] upload_cutoff)… */
  readonly multipartAbove: number;
  /** …in parts of this size. */
  readonly partSize: number;
}

/** How an extra column a key reads is reduced to what matters (columns not listed do not affect keys). */
const REDUCED_EXTRAS: Readonly<Record<string, { sql: (column: string) => string; value: (reduced: unknown) => unknown }>> = {
  // MediaAttachment#local? is remote_url.blank?
  remote_url: { sql: (c) => `(${c} IS NULL OR ${c} ~ '^[[:space:]]*$')`, value: (blank) => (blank ? '' : 'remote') },
  // Account and CustomEmoji#local? is domain.nil?
  domain: { sql: (c) => `(${c} IS NULL)`, value: (local) => (local ? null : 'remote') },
  // A site upload's styles follow its var.
  var: { sql: (c) => c, value: (value) => value },
};

/** Rows per counting statement: an index-ordered scan of this many rows takes well under a second. */
const CHUNK_ROWS = 200_000;

export async function countOwnership(db: Database, schema: Schema, job: JobName, scope: Scope, options: CountOptions): Promise<OwnershipGroup[]> {
  const groups: OwnershipGroup[] = [];
  let afterId = options.afterId;
  let remaining = options.limit ?? Number.POSITIVE_INFINITY;
  while (remaining > 0) {
    const limit = Math.min(CHUNK_ROWS, remaining);
    const chunk = await countChunk(db, schema, job, scope, { ...options, afterId, limit });
    groups.push(...chunk.groups);
    remaining -= chunk.rows;
    if (chunk.rows < limit || chunk.lastId === undefined) break;
    afterId = chunk.lastId;
  }
  return groups;
}

async function countChunk(
  db: Database,
  schema: Schema,
  job: JobName,
  scope: Scope,
  options: CountOptions & { limit: number },
): Promise<{ groups: OwnershipGroup[]; rows: number; lastId: string | undefined }> {
  const scoped = scopeSql(schema, job, scope, 1);
  const values = [...scoped.values];
  const parameter = (value: unknown, type: string) => {
    values.push(value);
    return `$${values.length}::${type}`;
  };

  const inner = [...scoped.conditions];
  if (options.afterId !== undefined) inner.push(`t."id" > ${parameter(options.afterId, 'bigint')}`);
  const limit = options.limit === undefined ? '' : ` ORDER BY t."id" LIMIT ${parameter(options.limit, 'bigint')}`;
  const source = `(SELECT t.* FROM "${job}" t${inner.length > 0 ? ` WHERE ${inner.join(' AND ')}` : ''}${limit}) t`;

  // Group keys: [alias, SQL, how the reduced value becomes a stand-in column value].
  const keys: Array<[string, string, (reduced: unknown) => unknown]> = [];
  const sums: string[] = [];
  const part = parameter(options.partSize, 'numeric');
  const cutoff = parameter(options.multipartAbove, 'numeric');
  for (const attachment of TABLES[job].attachments) {
    const name = attachment.name;
    // Older versions lack some attachments' columns (thumbnails before v3.2): they own nothing there.
    if (!hasColumn(schema, job, `${name}_file_name`)) continue;
    const fileName = `t."${name}_file_name"`;
    const hasFile = `(${fileName} IS NOT NULL AND ${fileName} <> '')`;
    keys.push([`${name}_file_name`, hasFile, (present) => (present ? 'f' : null)]);
    for (const [column, reduce, value] of [
      [`${name}_content_type`, (c: string) => c, (v: unknown) => v],
      [`${name}_storage_schema_version`, (c: string) => `(COALESCE(${c}, 0) >= 1)`, (v: unknown) => (v ? 1 : 0)],
    ] as const) {
      if (hasColumn(schema, job, column)) keys.push([column, reduce(`t."${column}"`), value]);
    }
    const size = `t."${name}_file_size"`;
    if (hasColumn(schema, job, `${name}_file_size`)) {
      sums.push(`COALESCE(sum(${size}) FILTER (WHERE ${hasFile}), 0) AS "${name}_bytes"`);
      sums.push(`COALESCE(sum(ceil(${size}::numeric / ${part}) + 1) FILTER (WHERE ${hasFile} AND ${size} > ${cutoff}), 0) AS "${name}_extra"`);
    }
  }
  for (const column of TABLES[job].extraColumns) {
    const reduced = REDUCED_EXTRAS[column];
    if (reduced && hasColumn(schema, job, column)) keys.push([column, reduced.sql(`t."${column}"`), reduced.value]);
  }
  for (const window of scoped.windows) keys.push([window.column, window.sql, (inside) => inside]);

  const select = [...keys.map(([alias, sql]) => `${sql} AS "${alias}"`), 'count(*) AS "rows"', 'max(t."id")::text AS "last_id"', ...sums];
  const sql = `SELECT ${select.join(', ')} FROM ${source} GROUP BY ${keys.map((_, index) => index + 1).join(', ')}`;
  const groups = await db.query(sql, values);

  let rows = 0;
  let lastId: bigint | undefined;
  for (const group of groups) {
    rows += Number(group.rows);
    const id = BigInt(group.last_id as string);
    if (lastId === undefined || id > lastId) lastId = id;
  }
  return {
    rows,
    lastId: lastId?.toString(),
    groups: groups.map((group) => {
      const row: Record<string, unknown> = { id: '0' };
      for (const [alias, , value] of keys) row[alias] = value(group[alias]);
      const bytes: Record<string, number> = {};
      const extraRequests: Record<string, number> = {};
      for (const attachment of TABLES[job].attachments) {
        bytes[attachment.name] = Number(group[`${attachment.name}_bytes`] ?? 0);
        extraRequests[attachment.name] = Number(group[`${attachment.name}_extra`] ?? 0);
      }
      return { row, rows: Number(group.rows), bytes, extraRequests };
    }),
  };
}
