/**
 * What this Mastodon version's database has: probed once per run from the catalog, because older versions lack
 * tables (preview_card_providers before v3.5, imports from v4.4) and columns (storage schema versions before
 * v3.1.4, thumbnails before v3.2, thumbnail versions before v4.6) (docs/storage-layout.md §5). The catalog, not
 * information_schema: information_schema hides a table the role may not read, which then passed for a version
 * without it (a GRANT left out: no media backed up, exit 0; prune calling every object of it an orphan).
 */
import { JOB_NAMES, TABLES, attachmentColumns, isJobName, type JobName } from '../mastodon/tables.js';
import type { Database } from './connection.js';

export interface Schema {
  /** Columns of each Mastodon table that exists. */
  readonly columns: ReadonlyMap<string, ReadonlySet<string>>;
  /** Tables that exist but the session's role may not read, in full (a GRANT left out). */
  readonly unreadable: ReadonlySet<string>;
  /** The role the session reads as, for the GRANT to name. */
  readonly role: string;
  /**
   * Paperclip attachments of this database that mastosync does not know, as their `<table>.<name>_file_name` column: a
   * newer Mastodon's (a new table with files, a new attachment on a known table). Their files are not copied, and prune
   * cannot tell them from orphans.
   */
  readonly unknownAttachments: readonly string[];
  /** The newest `schema_migrations` version, when the table is there and readable. */
  readonly migrationVersion?: string;
}

/**
 * The newest Mastodon migration mastosync was checked against: docs/storage-layout.md is based on Mastodon's main of
 * 2026-08-07, so no migration of that tree is dated later. A database migrated beyond it runs a newer Mastodon.
 */
const CHECKED_UP_TO_MIGRATION = '20260807235959';

/** Paperclip's columns besides `<name>_file_name`: one of them beside it makes `<name>` an attachment. */
const PAPERCLIP_SIBLINGS = ['_content_type', '_file_size', '_updated_at'];

/** Tables read besides the jobs': for the ACL of media (suspended accounts, discarded statuses). */
const RELATED_TABLES = ['statuses'];

export async function probeSchema(db: Database): Promise<Schema> {
  // One look at the catalog: every column of the tables mastosync reads, and the Paperclip-shaped columns of every other
  // table (not views, nor partitions of a table already counted), for the attachments a newer Mastodon added.
  const rows = await db.query<{ table_name: string; column_name: string; readable: boolean; known: boolean; role: string }>(
    `SELECT c.relname AS table_name, a.attname AS column_name,
            has_column_privilege(c.oid, a.attnum, 'SELECT') AS readable, c.relname = ANY($1::text[]) AS known, current_user AS role
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.relnamespace = (SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname = current_schema())
        AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        AND (c.relname = ANY($1::text[])
             OR (c.relkind IN ('r', 'p') AND NOT c.relispartition AND a.attname ~ '_(file_name|content_type|file_size|updated_at)$'))`,
    [[...JOB_NAMES, ...RELATED_TABLES, MIGRATIONS_TABLE]],
  );
  const columns = new Map<string, Set<string>>();
  const unreadable = new Set<string>();
  const others = new Map<string, Set<string>>();
  for (const { table_name, column_name, readable, known } of rows) {
    const into = known ? columns : others;
    let set = into.get(table_name);
    if (!set) into.set(table_name, (set = new Set()));
    set.add(column_name);
    if (known && !readable) unreadable.add(table_name);
  }
  const role = rows[0]?.role ?? (await db.query<{ role: string }>('SELECT current_user AS role'))[0]!.role;
  const unknownAttachments = [...columns, ...others].flatMap(([table, names]) => unknownAttachmentsOf(table, names)).sort();
  // A role that may not read schema_migrations only loses the version's warning: it is no table mastosync needs.
  const migrations = columns.get(MIGRATIONS_TABLE);
  columns.delete(MIGRATIONS_TABLE);
  const readsVersions = migrations?.has('version') === true && !unreadable.has(MIGRATIONS_TABLE);
  unreadable.delete(MIGRATIONS_TABLE);
  const migrationVersion = readsVersions
    ? ((await db.query<{ version: string | null }>(`SELECT max(version)::text AS version FROM ${MIGRATIONS_TABLE}`))[0]?.version ?? undefined)
    : undefined;
  return { columns, unreadable, role, unknownAttachments, ...(migrationVersion !== undefined && { migrationVersion }) };
}

/** Rails' record of the migrations run: its newest version says which Mastodon migrated the database. */
const MIGRATIONS_TABLE = 'schema_migrations';

/** `<table>.<name>_file_name` of each Paperclip attachment of `table` that TABLES does not list. */
function unknownAttachmentsOf(table: string, names: ReadonlySet<string>): string[] {
  const known = isJobName(table) ? TABLES[table].attachments.map((attachment) => attachment.name) : [];
  return [...names]
    .filter((column) => column.endsWith('_file_name'))
    .map((column) => column.slice(0, -'_file_name'.length))
    .filter((name) => name !== '' && !known.includes(name) && PAPERCLIP_SIBLINGS.some((sibling) => names.has(name + sibling)))
    .map((name) => `${table}.${name}_file_name`);
}

/**
 * One line for a database newer than mastosync knows: attachments it does not copy, a migration beyond those it was
 * checked against. Undefined when neither.
 */
export function newerSchemaWarning(schema: Schema): string | undefined {
  const parts: string[] = [];
  if (schema.unknownAttachments.length > 0) {
    parts.push(`attachment columns this version of mastosync does not know, so their files are not copied: ${schema.unknownAttachments.join(', ')}`);
  }
  if (migratedBeyondChecked(schema)) {
    parts.push(
      `schema_migrations is at ${schema.migrationVersion}, beyond the Mastodon mastosync was checked against (migrations up to ${CHECKED_UP_TO_MIGRATION.slice(0, 8)})`,
    );
  }
  return parts.length === 0 ? undefined : `this database is newer than mastosync knows: ${parts.join('; ')}: look for a newer mastosync`;
}

function migratedBeyondChecked(schema: Schema): boolean {
  const version = schema.migrationVersion;
  return version !== undefined && /^\d+$/.test(version) && BigInt(version) > BigInt(CHECKED_UP_TO_MIGRATION);
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
