/**
 * What this Mastodon version's database has: probed once per run from information_schema, because older
 * versions lack tables (preview_card_providers before v3.5, imports from v4.4) and columns (storage schema
 * versions before v3.1.4, thumbnails before v3.2, thumbnail versions before v4.6) (docs/storage-layout.md §5).
 */
import { JOB_NAMES, TABLES, attachmentColumns, type JobName } from '../mastodon/tables.js';
import type { Database } from './connection.js';

export interface Schema {
  /** Columns of each Mastodon table that exists. */
  readonly columns: ReadonlyMap<string, ReadonlySet<string>>;
}

/** Tables read besides the jobs': for the ACL of media (suspended accounts, discarded statuses). */
const RELATED_TABLES = ['statuses'];

export async function probeSchema(db: Database): Promise<Schema> {
  const rows = await db.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = ANY($1::text[])`,
    [[...JOB_NAMES, ...RELATED_TABLES]],
  );
  const columns = new Map<string, Set<string>>();
  for (const { table_name, column_name } of rows) {
    let set = columns.get(table_name);
    if (!set) columns.set(table_name, (set = new Set()));
    set.add(column_name);
  }
  return { columns };
}

export function hasTable(schema: Schema, job: JobName): boolean {
  return schema.columns.get(job)?.has('id') ?? false;
}

export function hasColumn(schema: Schema, table: string, column: string): boolean {
  return schema.columns.get(table)?.has(column) ?? false;
}

/** The columns of `job` to select: those key and ACL derivation read that this version has. */
export function selectableColumns(schema: Schema, job: JobName): string[] {
  const spec = TABLES[job];
  const wanted = ['id', ...spec.extraColumns, ...spec.attachments.flatMap(attachmentColumns)];
  return wanted.filter((column) => hasColumn(schema, job, column));
}

/** Version notes for `check` and the summary: which optional columns this database lacks. */
export function missingOptionalColumns(schema: Schema, job: JobName): string[] {
  if (!hasTable(schema, job)) return [];
  // Only models that define local? ever had a storage schema version column (§1.2); the others never lack one.
  const versioned = TABLES[job].isLocal !== undefined;
  return TABLES[job].attachments
    .flatMap(attachmentColumns)
    .filter((column) => versioned || !column.endsWith('_storage_schema_version'))
    .filter((column) => !hasColumn(schema, job, column));
}
