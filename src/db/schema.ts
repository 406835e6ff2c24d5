/**
 * What this Mastodon version's database has: probed once per run from the catalog, because older versions lack
 * tables (preview_card_providers before v3.5, imports from v4.4) and columns (storage schema versions before
 * v3.1.4, thumbnails before v3.2, thumbnail versions before v4.6) (docs/storage-layout.md §5). The catalog, not
 * information_schema: information_schema hides a table the role may not read, which then passed for a version
 * without it (a GRANT left out: no media backed up, exit 0; prune calling every object of it an orphan).
 */
import { JOB_NAMES, TABLES, attachmentColumns, type JobName } from '../mastodon/tables.js';
import type { Database } from './connection.js';

export interface Schema {
  /** Columns of each Mastodon table that exists. */
  readonly columns: ReadonlyMap<string, ReadonlySet<string>>;
  /** Tables that exist but the session's role may not read, in full (a GRANT left out). */
  readonly unreadable: ReadonlySet<string>;
  /** The role the session reads as, for the GRANT to name. */
  readonly role: string;
}

/** Tables read besides the jobs': for the ACL of media (suspended accounts, discarded statuses). */
const RELATED_TABLES = ['statuses'];

export async function probeSchema(db: Database): Promise<Schema> {
  const rows = await db.query<{ table_name: string; column_name: string; readable: boolean; role: string }>(
    `SELECT c.relname AS table_name, a.attname AS column_name,
            has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable, current_user AS role
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = current_schema())
        AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND c.relname = ANY($1::text[])`,
    [[...JOB_NAMES, ...RELATED_TABLES]],
  );
  const columns = new Map<string, Set<string>>();
  const unreadable = new Set<string>();
  for (const { table_name, column_name, readable } of rows) {
    let set = columns.get(table_name);
    if (!set) columns.set(table_name, (set = new Set()));
    set.add(column_name);
    if (!readable) unreadable.add(table_name);
  }
  const role = rows[0]?.role ?? (await db.query<{ role: string }>('SELECT current_user AS role'))[0]!.role;
  return { columns, unreadable, role };
}

/** The GRANT that lets the session's role read `tables`, the role quoted where SQL needs it (capitals, a dash). */
export function grantFor(schema: Schema, tables: readonly string[]): string {
  const role = /^[a-z_][a-z0-9_$]*$/.test(schema.role) ? schema.role : `"${schema.role.replaceAll('"', '""')}"`;
  return `GRANT SELECT ON ${tables.join(', ')} TO ${role}`;
}

/**
 * The tables of `jobs` the role may not read, with those their rows are joined with for Mastodon's ACL (accounts
 * for suspensions, statuses for discarded posts): each would fail the run, or leave private media public.
 */
export function unreadableTables(schema: Schema, jobs: readonly JobName[]): string[] {
  const read = new Set<string>(jobs);
  for (const job of jobs) {
    if (hasColumn(schema, job, 'account_id')) read.add('accounts');
    if (hasColumn(schema, job, 'status_id')) read.add('statuses');
  }
  return [...read].filter((table) => schema.unreadable.has(table));
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
