/**
 * The object keys a row owns (docs/storage-layout.md §0): for each attachment with a file name, `original` plus
 * its styles, under `cache/` when the row's schema version is ≥ 1 and the model says it is not local.
 * Keys here are Mastodon's relative keys, without S3_KEY_PREFIX; see applyKeyPrefix for that.
 */
import { idPartition, legacyIdPartition } from './idPartition.js';
import { extensionOf, styleFileName } from './fileNames.js';
import { TABLES, type AttachmentSpec, type JobName, type Row, type Style, type TableSpec } from './tables.js';

const CACHE_PREFIX = 'cache/';

/**
 * Who may read an object at the destination (§6): the configured ACL (`default`); no one but Mastodon (`private`: the
 * media of a suspended account or a discarded status, which Mastodon takes from view); or its owner, by the link
 * Mastodon hands out (`owner`: a backup, private where the store signs links, as readable as the configured ACL says
 * where the web server serves it by a plain URL).
 */
type Visibility = 'default' | 'private' | 'owner';

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
  /**
   * The size the original must have: `<att>_file_size` where it is the stored file's (sizeOfOriginal); null for a
   * style (the database records none), and where the row's size cannot be relied on.
   */
  readonly storedSize: number | null;
  readonly underCache: boolean;
}

/** Every object `row` of `job` owns, in attachment then style order. A NULL or empty file name owns nothing. */
export function ownedObjects(job: JobName, row: Row): OwnedObject[] {
  // Once per row read: no closure, spread or column name made here per object (the names are made once).
  const table = TABLES[job];
  const id = String(row.id);
  const visibility = visibilityOf(table, row);
  const partition = idPartition(id);
  const legacyPartition = legacyIdPartition(id);
  const objects: OwnedObject[] = [];
  for (const attachment of table.attachments) {
    const columns = columnsOf(attachment);
    const fileName = row[columns.fileName];
    if (typeof fileName !== 'string' || fileName === '') continue;
    const mayMove = table.isLocal !== undefined && !table.isLocal(row);
    const underCache = mayMove && Number(row[columns.storageSchemaVersion] ?? 0) >= 1;
    const folder = `${job}/${attachment.folder}/${partition}`;
    // Paperclip before 6.1 padded ids to 9 digits (§1.2): a 10- or 11-digit id's object written then, never moved.
    const legacyFolder = legacyPartition === partition ? undefined : `${job}/${attachment.folder}/${legacyPartition}`;
    const storedContentType = stringOrNull(row[columns.contentType]);
    const originalSize = sizeOfOriginal(table, attachment, row, numberOrNull(row[columns.fileSize]));
    const styles = attachment.styles(row);
    for (let index = -1; index < styles.length; index++) {
      const style = index === -1 ? ORIGINAL : styles[index]!;
      const name = styleFileName(fileName, style.name, style.format);
      const relative = `${folder}/${style.name}/${name}`;
      const alternates = legacyAlternates(relative, underCache, mayMove, style, fileName, folder);
      if (legacyFolder !== undefined) alternates.push(`${legacyFolder}/${style.name}/${name}`);
      objects.push({
        job,
        id,
        attachment: attachment.name,
        style: style.name,
        key: underCache ? CACHE_PREFIX + relative : relative,
        alternates,
        visibility,
        storedContentType,
        storedSize: index === -1 ? originalSize : null,
        underCache,
      });
    }
  }
  return objects;
}

const ORIGINAL: Style = { name: 'original' };

/** MediaAttachment#processing: 0 queued, 1 in progress, 2 complete, 3 failed; NULL before delayed processing (v2.x). */
const PROCESSING_COMPLETE = 2;

/**
 * `<att>_file_size` when it is the size of the stored original (docs/integrity.md, "The row's size"): Paperclip
 * writes it on assignment and again after the original style is processed (reset_file_if_original_reprocessed, in
 * every Paperclip Mastodon ran, kt-paperclip included), so re-encoded images, transcoded video and audio, and remote
 * media downloaded then processed all record what was stored. Not so for a media file still queued or being
 * processed in the background (its upload's size until the worker saves the row, after it rewrote the file), nor one
 * whose processing failed (the worker may have written the file and not the row). NULL and 0 say nothing.
 */
function sizeOfOriginal(table: TableSpec, attachment: AttachmentSpec, row: Row, size: number | null): number | null {
  if (size === null || !(size > 0)) return null;
  if (table.table === 'media_attachments' && attachment.name === 'file') {
    const processing = row.processing;
    if (processing !== null && processing !== undefined && Number(processing) !== PROCESSING_COMPLETE) return null;
  }
  return size;
}

/** The columns an attachment's key and copy read. */
interface AttachmentColumns {
  readonly fileName: string;
  readonly contentType: string;
  readonly fileSize: string;
  readonly storageSchemaVersion: string;
}

const columnsByAttachment = new Map<AttachmentSpec, AttachmentColumns>();

function columnsOf(attachment: AttachmentSpec): AttachmentColumns {
  let columns = columnsByAttachment.get(attachment);
  if (columns === undefined) {
    const prefix = attachment.name;
    columns = {
      fileName: `${prefix}_file_name`,
      contentType: `${prefix}_content_type`,
      fileSize: `${prefix}_file_size`,
      storageSchemaVersion: `${prefix}_storage_schema_version`,
    };
    columnsByAttachment.set(attachment, columns);
  }
  return columns;
}

/**
 * Keys where an older layout may hold the object when the exact key is absent: the other side of `cache/`
 * for rows that are not local (the only move Mastodon ever makes is `X/` → `cache/X/`, by `tootctl upgrade
 * storage-schema`, which can be interrupted; §4, §7) and, for a non-original style, the original's extension
 * (styles whose format changed across versions, §2.1 version drift), then both. §1.2 `:prefix_url`: cache/ only if
 * version ≥ 1, the model defines local?, and the row is not local, so only a row that may move is ever under it.
 */
function legacyAlternates(relative: string, underCache: boolean, mayMove: boolean, style: Style, fileName: string, folder: string): string[] {
  const alternates = mayMove ? [underCache ? relative : CACHE_PREFIX + relative] : [];
  if (style.name !== 'original' && extensionOf(fileName) !== '') {
    const withOriginalExtension = `${folder}/${style.name}/${styleFileName(fileName, style.name, undefined)}`;
    if (withOriginalExtension !== relative) {
      alternates.push(underCache ? CACHE_PREFIX + withOriginalExtension : withOriginalExtension);
      if (mayMove) alternates.push(underCache ? withOriginalExtension : CACHE_PREFIX + withOriginalExtension);
    }
  }
  return alternates;
}

/**
 * §6: backups are their owner's; a media file and thumbnail of a suspended account, and those of a status that was
 * removed but preserved (discarded: `deleted_at` set), are private, as Mastodon made them.
 */
function visibilityOf(table: TableSpec, row: Row): Visibility {
  if (table.ownerOnly) return 'owner';
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
