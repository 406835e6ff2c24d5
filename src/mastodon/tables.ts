/**
 * Every Mastodon table that owns files, with its attachments, styles and `local?` rule
 * (docs/storage-layout.md §2). This module is data and pure functions only: no I/O.
 */

/** A row as read from PostgreSQL: column name → value. Ids are strings (bigint exceeds 2^53). */
export type Row = Readonly<Record<string, unknown>>;

export const JOB_NAMES = [
  'media_attachments',
  'accounts',
  'custom_emojis',
  'preview_cards',
  'preview_card_providers',
  'site_uploads',
  'backups',
  'imports',
] as const;

export type JobName = (typeof JOB_NAMES)[number];

export function isJobName(name: string): name is JobName {
  return (JOB_NAMES as readonly string[]).includes(name);
}

/** A non-original style; `format` is its file extension when it converts (§1.2 `:filename`). */
export interface Style {
  readonly name: string;
  readonly format?: string;
}

export interface AttachmentSpec {
  /** Paperclip attachment name, also the column prefix: `file` → `file_file_name`. */
  readonly name: string;
  /** `:attachment`, lower-cased and pluralised (§1.2). */
  readonly folder: string;
  /** Styles besides `original` for this row (§2, §2.1, §2.2). */
  readonly styles: (row: Row) => readonly Style[];
}

export interface TableSpec {
  readonly table: JobName;
  readonly attachments: readonly AttachmentSpec[];
  /** `local?` of the model; absent when the model has none (then nothing is ever under cache/). */
  readonly isLocal?: (row: Row) => boolean;
  /** Columns besides the attachments' own that key or ACL derivation reads. */
  readonly extraColumns: readonly string[];
  /** Every object of this table is its owner's, fetched by the link Mastodon hands out (§6: backup dumps). */
  readonly ownerOnly?: boolean;
}

/** Ruby's `blank?` on a string column: nil, empty or only white space. */
function isBlank(value: unknown): boolean {
  return value === null || value === undefined || (typeof value === 'string' && /^\s*$/u.test(value));
}

const STATIC_PNG: readonly Style[] = [{ name: 'static', format: 'png' }];
const NO_STYLES: readonly Style[] = [];

/** §2.1: the styles of a media file follow its stored content type. */
function mediaFileStyles(contentType: unknown): readonly Style[] {
  switch (contentType) {
    case 'image/gif':
    case 'video/webm':
    case 'video/quicktime':
    case 'video/mp4':
    case 'video/ogg':
      return [{ name: 'small', format: 'png' }];
    case 'image/heic':
    case 'image/heif':
    case 'image/avif':
      return [{ name: 'small', format: 'jpeg' }];
    case 'image/jpeg':
    case 'image/png':
    case 'image/webp':
      return [{ name: 'small' }];
    default:
      return NO_STYLES;
  }
}

const SITE_UPLOAD_STYLES: Readonly<Record<string, readonly string[]>> = {
  thumbnail: ['@1x', '@2x'],
  favicon: ['16', '32', '48'],
  app_icon: ['57', '60', '72', '76', '114', '120', '144', '152', '167', '180', '1024', '36', '48', '96', '192', '256', '384', '512'],
};

/** §2.2: the styles of a site upload follow its `var`; all are png. */
function siteUploadStyles(variable: unknown): readonly Style[] {
  const names = typeof variable === 'string' ? SITE_UPLOAD_STYLES[variable] : undefined;
  return names ? names.map((name) => ({ name, format: 'png' })) : NO_STYLES;
}

/** Accounts: a GIF avatar or header also has a `static` png (§2). */
function staticIfGif(attachment: string) {
  return (row: Row) => (row[`${attachment}_content_type`] === 'image/gif' ? STATIC_PNG : NO_STYLES);
}

const domainIsNull = (row: Row) => row.domain === null || row.domain === undefined;

export const TABLES: Readonly<Record<JobName, TableSpec>> = {
  media_attachments: {
    table: 'media_attachments',
    attachments: [
      { name: 'file', folder: 'files', styles: (row) => mediaFileStyles(row.file_content_type) },
      { name: 'thumbnail', folder: 'thumbnails', styles: () => NO_STYLES },
    ],
    // MediaAttachment#local? is remote_url.blank?; the account's domain is not consulted (§2).
    isLocal: (row) => isBlank(row.remote_url),
    // processing: whether file_file_size is the stored file's yet (keys.ts, sizeOfOriginal).
    extraColumns: ['remote_url', 'account_id', 'status_id', 'processing'],
  },
  accounts: {
    table: 'accounts',
    attachments: [
      { name: 'avatar', folder: 'avatars', styles: staticIfGif('avatar') },
      { name: 'header', folder: 'headers', styles: staticIfGif('header') },
    ],
    isLocal: domainIsNull,
    extraColumns: ['domain'],
  },
  custom_emojis: {
    table: 'custom_emojis',
    attachments: [{ name: 'image', folder: 'images', styles: () => STATIC_PNG }],
    // An empty-string domain counts as remote (§2).
    isLocal: domainIsNull,
    extraColumns: ['domain'],
  },
  preview_cards: {
    table: 'preview_cards',
    // The original has format jpg for GIFs, but the key keeps the stored name (§2, §1.2).
    attachments: [{ name: 'image', folder: 'images', styles: () => NO_STYLES }],
    isLocal: () => false,
    extraColumns: [],
  },
  preview_card_providers: {
    table: 'preview_card_providers',
    attachments: [{ name: 'icon', folder: 'icons', styles: () => STATIC_PNG }],
    extraColumns: [],
  },
  site_uploads: {
    table: 'site_uploads',
    attachments: [{ name: 'file', folder: 'files', styles: (row) => siteUploadStyles(row.var) }],
    extraColumns: ['var'],
  },
  backups: {
    table: 'backups',
    attachments: [{ name: 'dump', folder: 'dumps', styles: () => NO_STYLES }],
    extraColumns: [],
    ownerOnly: true,
  },
  imports: {
    table: 'imports',
    attachments: [{ name: 'data', folder: 'data', styles: () => NO_STYLES }],
    extraColumns: [],
  },
};

/** The per-attachment columns a row stream selects when the table has them (§2, §5). */
export function attachmentColumns(attachment: AttachmentSpec): string[] {
  const prefix = attachment.name;
  return [`${prefix}_file_name`, `${prefix}_content_type`, `${prefix}_file_size`, `${prefix}_updated_at`, `${prefix}_storage_schema_version`];
}
