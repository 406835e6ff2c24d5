/**
 * The object keys a row owns (docs/storage-layout.md §0): for each attachment with a file name, `original` plus
 * its styles, under `cache/` when the row's schema version is ≥ 1 and the model says it is not local.
 * Keys here are Mastodon's relative keys, without S3_KEY_PREFIX; see applyKeyPrefix for that.
 */
import { idPartition, legacyIdPartition } from './idPartition.js';
import { extensionOf, styleFileName } from './fileNames.js';
import { TABLES, type AttachmentSpec, type JobName, type Row, type Style, type TableSpec } from './tables.js';

const CACHE_PREFIX = 'cache/';

/** Who may read an object at the destination: the configured ACL, or always private (§6). */
type Visibility = 'default' | 'private';

export interface OwnedObject {
  readonly job: JobName;
  readonly id: string;
  readonly attachment: string;
  readonly style: string;
  /** The exact key the database names (no S3_KEY_PREFIX). */
  readonly key: string;
  /** Where an older Mastodon may have left the same object (§7, §2.1 version drift), most likely first. */
  readonly alternates: readonly string[];
  readonly visibility: Visibility;
  /** The stored `<att>_content_type`, which is the original's content type. */
  readonly storedContentType: string | null;
  /** `<att>_file_size`, the original's size (styles are not recorded in the database). */
  readonly storedSize: number | null;
  readonly underCache: boolean;
}

/** Every object `row` of `job` owns, in attachment then style order. A NULL or empty file name owns nothing. */
export function ownedObjects(job: JobName, row: Row): OwnedObject[] {
  const table = TABLES[job];
  const id = String(row.id);
  const visibility = visibilityOf(table, row);
  const objects: OwnedObject[] = [];
  for (const attachment of table.attachments) {
    const fileName = row[`${attachment.name}_file_name`];
    if (typeof fileName !== 'string' || fileName === '') continue;
    const underCache = isUnderCache(table, attachment, row);
    const mayMove = table.isLocal !== undefined && !table.isLocal(row);
    const folder = `${job}/${attachment.folder}/${idPartition(id)}`;
    const legacyFolder = `${job}/${attachment.folder}/${legacyIdPartition(id)}`;
    const styles: Style[] = [{ name: 'original' }, ...attachment.styles(row)];
    for (const style of styles) {
      const name = styleFileName(fileName, style.name, style.format);
      const relative = `${folder}/${style.name}/${name}`;
      objects.push({
        job,
        id,
        attachment: attachment.name,
        style: style.name,
        key: (underCache ? CACHE_PREFIX : '') + relative,
        alternates: [
          ...legacyAlternates(relative, underCache, mayMove, style, fileName, folder),
          // Paperclip before 6.1 padded ids to 9 digits (§1.2): a 10- or 11-digit id's object written then, never moved.
          ...(legacyFolder === folder ? [] : [`${legacyFolder}/${style.name}/${name}`]),
        ],
        visibility,
        storedContentType: stringOrNull(row[`${attachment.name}_content_type`]),
        storedSize: numberOrNull(row[`${attachment.name}_file_size`]),
        underCache,
      });
    }
  }
  return objects;
}

/** §1.2 `:prefix_url`: cache/ only if version ≥ 1, the model defines local?, and the row is not local. */
function isUnderCache(table: TableSpec, attachment: AttachmentSpec, row: Row): boolean {
  if (!table.isLocal) return false;
  const version = Number(row[`${attachment.name}_storage_schema_version`] ?? 0);
  return version >= 1 && !table.isLocal(row);
}

/**
 * Keys where an older layout may hold the object when the exact key is absent: the other side of `cache/`
 * for rows that are not local (the only move Mastodon ever makes is `X/` → `cache/X/`, by `tootctl upgrade
 * storage-schema`, which can be interrupted; §4, §7) and, for a non-original style, the original's extension
 * (styles whose format changed across versions, §2.1 version drift), then both.
 */
function legacyAlternates(relative: string, underCache: boolean, mayMove: boolean, style: Style, fileName: string, folder: string): string[] {
  const inPlace = (key: string) => (underCache ? CACHE_PREFIX : '') + key;
  const swapped = (key: string) => (underCache ? '' : CACHE_PREFIX) + key;
  const alternates = mayMove ? [swapped(relative)] : [];
  if (style.name !== 'original' && extensionOf(fileName) !== '') {
    const withOriginalExtension = `${folder}/${style.name}/${styleFileName(fileName, style.name, undefined)}`;
    if (withOriginalExtension !== relative) {
      alternates.push(inPlace(withOriginalExtension));
      if (mayMove) alternates.push(swapped(withOriginalExtension));
    }
  }
  return alternates;
}

/**
 * §6: backups are private; so are a media file and thumbnail of a suspended account, and those of a status
 * that was removed but preserved (discarded: `deleted_at` set), which Mastodon made private.
 */
function visibilityOf(table: TableSpec, row: Row): Visibility {
  if (table.alwaysPrivate) return 'private';
  if (table.table === 'media_attachments' && (row.account_suspended === true || row.status_discarded === true)) {
    return 'private';
  }
  return 'default';
}

/**
 * §1.1: S3_KEY_PREFIX is joined as written (`prefix + "/" + key`, a trailing slash giving `//`) and then one
 * leading "/" is stripped, so an empty prefix behaves as if unset.
 */
export function applyKeyPrefix(prefix: string | undefined, key: string): string {
  if (prefix === undefined) return key;
  const joined = `${prefix}/${key}`;
  return joined.startsWith('/') ? joined.slice(1) : joined;
}

function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined) return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}
