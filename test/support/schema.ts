/**
 * Mastodon-shaped DDL for tests, written from the column lists of docs/storage-layout.md §5 (and the version notes of
 * §1.2, §2 and §5). Only the tables and columns the copy tool reads, plus a few neighbours, are present.
 *
 * - 'current': upstream main (v4.6+): every `*_storage_schema_version` incl. `thumbnail_storage_schema_version`,
 *   `preview_card_providers`, NO `imports` table (dropped in v4.4), `statuses.deleted_at`.
 * - 'v4.3': `imports` and `preview_card_providers` present, `thumbnail_*` present but NO
 *   `thumbnail_storage_schema_version`.
 * - 'old': v3.0-like: no `*_storage_schema_version` columns, no `thumbnail_*` columns, no `preview_card_providers`,
 *   `imports` present, `accounts.suspended_at` present, no `statuses.deleted_at`, `backups.dump_file_size integer`,
 *   no `site_uploads.blurhash`, no `media_attachments.processing`.
 */

export type SchemaName = 'current' | 'v4.3' | 'old';
export const SCHEMA_NAMES: readonly SchemaName[] = ['current', 'v4.3', 'old'];

/** Which optional tables/columns a schema has (what a tool probing information_schema should find). */
export interface SchemaFeatures {
  storageSchemaVersion: boolean; // accounts/media/custom_emojis/preview_cards *_storage_schema_version
  thumbnailColumns: boolean; // media_attachments.thumbnail_*
  thumbnailStorageSchemaVersion: boolean; // media_attachments.thumbnail_storage_schema_version
  previewCardProviders: boolean;
  imports: boolean;
  statusesDeletedAt: boolean;
}

export const SCHEMA_FEATURES: Readonly<Record<SchemaName, SchemaFeatures>> = {
  current: {
    storageSchemaVersion: true,
    thumbnailColumns: true,
    thumbnailStorageSchemaVersion: true,
    previewCardProviders: true,
    imports: false,
    statusesDeletedAt: true,
  },
  'v4.3': {
    storageSchemaVersion: true,
    thumbnailColumns: true,
    thumbnailStorageSchemaVersion: false,
    previewCardProviders: true,
    imports: true,
    statusesDeletedAt: true,
  },
  old: {
    storageSchemaVersion: false,
    thumbnailColumns: false,
    thumbnailStorageSchemaVersion: false,
    previewCardProviders: false,
    imports: true,
    statusesDeletedAt: false,
  },
};

export type TableName =
  'accounts' | 'statuses' | 'media_attachments' | 'custom_emojis' | 'preview_cards' | 'preview_card_providers' | 'site_uploads' | 'backups' | 'imports';

/** Tables present in each schema, in an order that is safe for inserting. */
export function tablesOf(schema: SchemaName): TableName[] {
  const f = SCHEMA_FEATURES[schema];
  const t: TableName[] = ['accounts', 'statuses', 'media_attachments', 'custom_emojis', 'preview_cards'];
  if (f.previewCardProviders) t.push('preview_card_providers');
  t.push('site_uploads', 'backups');
  if (f.imports) t.push('imports');
  return t;
}

function accounts(f: SchemaFeatures): string {
  const v = (att: string) => (f.storageSchemaVersion ? `,\n  ${att}_storage_schema_version integer` : '');
  return `CREATE TABLE accounts (
  id bigint PRIMARY KEY DEFAULT nextval('accounts_id_seq'),
  username character varying NOT NULL DEFAULT '',
  domain character varying,
  avatar_file_name character varying,
  avatar_content_type character varying,
  avatar_file_size integer,
  avatar_updated_at timestamp without time zone,
  avatar_remote_url character varying${v('avatar')},
  header_file_name character varying,
  header_content_type character varying,
  header_file_size integer,
  header_updated_at timestamp without time zone,
  header_remote_url character varying NOT NULL DEFAULT ''${v('header')},
  suspended_at timestamp without time zone,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL
);
CREATE UNIQUE INDEX index_accounts_on_username_and_domain_lower ON accounts (lower(username), COALESCE(lower(domain), ''));
`;
}

function statuses(f: SchemaFeatures): string {
  return `CREATE TABLE statuses (
  id bigint PRIMARY KEY,
  account_id bigint NOT NULL${f.statusesDeletedAt ? ',\n  deleted_at timestamp without time zone' : ''},
  created_at timestamp without time zone NOT NULL DEFAULT now(),
  updated_at timestamp without time zone NOT NULL DEFAULT now()
);
CREATE INDEX index_statuses_on_account_id ON statuses (account_id);
`;
}

function mediaAttachments(f: SchemaFeatures, schema: SchemaName): string {
  const cols = [
    `id bigint PRIMARY KEY DEFAULT nextval('media_attachments_id_seq')`,
    'status_id bigint',
    'file_file_name character varying',
    'file_content_type character varying',
    'file_file_size integer',
    'file_updated_at timestamp without time zone',
    `remote_url character varying NOT NULL DEFAULT ''`,
    'created_at timestamp without time zone NOT NULL',
    'updated_at timestamp without time zone NOT NULL',
    'shortcode character varying',
    'type integer NOT NULL DEFAULT 0',
    'file_meta json',
    'account_id bigint',
    'description text',
    'scheduled_status_id bigint',
    'blurhash character varying',
  ];
  if (schema !== 'old') cols.push('processing integer');
  if (f.storageSchemaVersion) cols.push('file_storage_schema_version integer');
  if (f.thumbnailColumns) {
    cols.push(
      'thumbnail_file_name character varying',
      'thumbnail_content_type character varying',
      'thumbnail_file_size integer',
      'thumbnail_updated_at timestamp without time zone',
      'thumbnail_remote_url character varying',
    );
  }
  if (f.thumbnailStorageSchemaVersion) cols.push('thumbnail_storage_schema_version integer');
  return `CREATE TABLE media_attachments (\n  ${cols.join(',\n  ')}\n);
CREATE INDEX index_media_attachments_on_account_id_and_status_id ON media_attachments (account_id, status_id DESC);
CREATE INDEX index_media_attachments_on_status_id ON media_attachments (status_id);
`;
}

function customEmojis(f: SchemaFeatures): string {
  return `CREATE TABLE custom_emojis (
  id bigserial PRIMARY KEY,
  shortcode character varying NOT NULL DEFAULT '',
  domain character varying,
  image_file_name character varying,
  image_content_type character varying,
  image_file_size integer,
  image_updated_at timestamp without time zone,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  disabled boolean NOT NULL DEFAULT false,
  uri character varying,
  image_remote_url character varying${f.storageSchemaVersion ? ',\n  image_storage_schema_version integer' : ''}
);
CREATE UNIQUE INDEX index_custom_emojis_on_shortcode_and_domain ON custom_emojis (shortcode, domain);
`;
}

function previewCards(f: SchemaFeatures): string {
  return `CREATE TABLE preview_cards (
  id bigserial PRIMARY KEY,
  url character varying NOT NULL DEFAULT '',
  image_file_name character varying,
  image_content_type character varying,
  image_file_size integer,
  image_updated_at timestamp without time zone,
  type integer NOT NULL DEFAULT 0,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL${f.storageSchemaVersion ? ',\n  image_storage_schema_version integer' : ''}
);
`;
}

const PREVIEW_CARD_PROVIDERS = `CREATE TABLE preview_card_providers (
  id bigserial PRIMARY KEY,
  domain character varying NOT NULL DEFAULT '',
  icon_file_name character varying,
  icon_content_type character varying,
  icon_file_size bigint,
  icon_updated_at timestamp without time zone,
  trendable boolean,
  reviewed_at timestamp without time zone,
  requested_review_at timestamp without time zone,
  created_at timestamp(6) without time zone NOT NULL,
  updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_preview_card_providers_on_domain ON preview_card_providers (domain);
`;

function siteUploads(schema: SchemaName): string {
  return `CREATE TABLE site_uploads (
  id bigserial PRIMARY KEY,
  var character varying NOT NULL DEFAULT '',
  file_file_name character varying,
  file_content_type character varying,
  file_file_size integer,
  file_updated_at timestamp without time zone,
  meta json,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL${schema !== 'old' ? ',\n  blurhash character varying' : ''}
);
CREATE UNIQUE INDEX index_site_uploads_on_var ON site_uploads (var);
`;
}

function backups(schema: SchemaName): string {
  return `CREATE TABLE backups (
  id bigserial PRIMARY KEY,
  user_id bigint,
  dump_file_name character varying,
  dump_content_type character varying,
  dump_updated_at timestamp without time zone,
  processed boolean NOT NULL DEFAULT false,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  dump_file_size ${schema === 'old' ? 'integer' : 'bigint'}
);
`;
}

const IMPORTS = `CREATE TABLE imports (
  id bigserial PRIMARY KEY,
  type integer NOT NULL,
  approved boolean NOT NULL DEFAULT false,
  created_at timestamp without time zone NOT NULL,
  updated_at timestamp without time zone NOT NULL,
  data_file_name character varying,
  data_content_type character varying,
  data_file_size integer,
  data_updated_at timestamp without time zone,
  account_id bigint NOT NULL,
  overwrite boolean NOT NULL DEFAULT false
);
`;

/** The complete DDL of `schema`, as one multi-statement string (run it with a single simple query). */
export function ddlFor(schema: SchemaName): string {
  const f = SCHEMA_FEATURES[schema];
  const parts = [
    'CREATE SEQUENCE accounts_id_seq;',
    'CREATE SEQUENCE media_attachments_id_seq;',
    accounts(f),
    statuses(f),
    mediaAttachments(f, schema),
    customEmojis(f),
    previewCards(f),
  ];
  if (f.previewCardProviders) parts.push(PREVIEW_CARD_PROVIDERS);
  parts.push(siteUploads(schema), backups(schema));
  if (f.imports) parts.push(IMPORTS);
  return parts.join('\n');
}
