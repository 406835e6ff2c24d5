/**
 * A Mastodon-shaped fixture for integration tests, written BY HAND from docs/storage-layout.md (§2, §2.1, §2.2, §2.4,
 * §5, §6, §7). Every key below is a literal string; nothing is computed with src/mastodon.
 *
 * A fixture is: rows per table; for each row the literal keys it owns; the objects that exist in the SOURCE bucket
 * (owned objects, relocated objects and orphans); and for each owned key what the destination should hold after a
 * copy (key, source key, content type, cache-control, ACL) or that it is missing at the source.
 *
 * Key conventions: keys here carry no S3_KEY_PREFIX. `loadFixture(..., keyPrefix)` stores `keyPrefix + '/' + key`;
 * use `withPrefix()` to compute what to expect.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { ObjectCannedACL } from '@aws-sdk/client-s3';
import type { SchemaName, TableName } from './schema.js';
import { tablesOf } from './schema.js';

export type { SchemaName, TableName } from './schema.js';

export type Acl = 'public-read' | 'private';

/** The Cache-Control Mastodon puts on every S3 object (§6). */
export const CACHE_CONTROL = 'public, max-age=315576000, immutable';

/** Size of the big object, > 6 MiB, so a copier with a 5 MiB part size must go multipart. */
export const BIG_OBJECT_SIZE = 6 * 1024 * 1024 + 4321;

export type RowValues = Record<string, unknown>;

export interface FixtureRow {
  table: TableName;
  /** Human description of the case / trap. */
  label: string;
  /** Column → value, inserted as is (ids are strings: bigint). */
  values: RowValues;
  /** The literal keys (no prefix) this row owns, incl. ones missing at the source. */
  keys: string[];
}

/** An object in the source bucket. */
export interface SourceObject {
  /** Key in the source bucket, without prefix. */
  key: string;
  body: Buffer;
  contentType: string;
  cacheControl: string;
  /** ACL Mastodon would have written it with (sent as x-amz-acl when loading the source). */
  acl: Acl;
  /** True when no row owns this object (must not be copied). */
  orphan: boolean;
  /** Why it is an orphan. */
  reason?: string;
  /** For owned objects: the expected destination object it feeds. */
  owner?: ExpectedObject;
}

/** What one owned key should look like at the destination. */
export interface ExpectedObject {
  /** Destination key (no prefix): exactly what the row owns. */
  key: string;
  /** Source key the bytes come from (== key unless relocated); undefined when missing. */
  sourceKey: string | undefined;
  table: TableName;
  rowId: string;
  /** `files`, `thumbnails`, `avatars`, `headers`, `images`, `icons`, `dumps`, `data`. */
  attachment: string;
  style: string;
  /** True when the key is under cache/. */
  cache: boolean;
  /** Expected Content-Type (the source object's); undefined when missing. */
  contentType: string | undefined;
  cacheControl: string | undefined;
  acl: Acl;
  /** The row owns the key, but nothing exists at the source (report and continue). */
  missing: boolean;
  /**
   * 'cache': the row says cache/ but the object exists only at the non-cache key (copy it TO the cache/ key).
   * 'extension': a non-original style exists only with the original's extension (copy it TO the computed key).
   */
  relocated?: 'cache' | 'extension';
  /** Source bytes (undefined when missing). */
  body: Buffer | undefined;
  size: number;
  /** hex sha256 and md5 of body ('' when missing). */
  sha256: string;
  md5: string;
  label: string;
}

/**
 * The mode of `object`'s file in a folder written with acl = "public-read": 0600 for the media Mastodon makes private,
 * 0644 for the rest, backups included (Mastodon's download sends their owner to the plain URL nginx serves).
 */
export function publicFolderMode(object: ExpectedObject): number {
  return object.acl === 'private' && object.table !== 'backups' ? 0o600 : 0o644;
}

export interface Fixture {
  schema: SchemaName;
  rows: FixtureRow[];
  rowsByTable: Partial<Record<TableName, RowValues[]>>;
  /** Every key a row owns (present, relocated and missing). */
  expected: ExpectedObject[];
  /** Owned keys with a source object (incl. relocated). */
  present: ExpectedObject[];
  missing: ExpectedObject[];
  relocated: ExpectedObject[];
  /** Everything loadFixture puts into the source bucket (owned, relocated sources, orphans). */
  sourceObjects: SourceObject[];
  orphans: SourceObject[];
  expectedByKey: Map<string, ExpectedObject>;
  sourceByKey: Map<string, SourceObject>;
  /** Sum of bytes of `present`. */
  presentBytes: number;
}

/** `prefix + '/' + key` as S3_KEY_PREFIX does (written as is: a trailing slash gives '//'); no prefix → key. */
export function withPrefix(key: string, prefix?: string): string {
  return prefix === undefined || prefix === '' ? key : `${prefix}/${key}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Case definitions

interface ObjSpec {
  key: string;
  /** Content-Type of the source object (omit for missing). */
  ct?: string;
  size?: number;
  missing?: true;
  /** Relocated: the literal key where the bytes really are. */
  from?: string;
  relocated?: 'cache' | 'extension';
}

interface CaseSpec {
  label: string;
  schemas: readonly SchemaName[];
  table: TableName;
  row: RowValues;
  objects?: ObjSpec[];
  /** ACL of every object of this row (default public-read). */
  acl?: Acl;
}

interface OrphanSpec {
  schemas: readonly SchemaName[];
  key: string;
  ct: string;
  reason: string;
  size?: number;
  acl?: Acl;
}

const NEW: readonly SchemaName[] = ['current', 'v4.3'];
const CUR: readonly SchemaName[] = ['current'];
const V43: readonly SchemaName[] = ['v4.3'];
const OLD: readonly SchemaName[] = ['old'];

const TS = '2024-03-01 12:00:00';

// ----- accounts (current / v4.3) --------------------------------------------------------------------------------
const NEW_CASES: CaseSpec[] = [
  {
    label: 'B: local account, animated GIF avatar (static .png) + png header, version 1',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '1',
      username: 'admin',
      domain: null,
      avatar_file_name: '8c2b5e7d9f0a1b3c.gif',
      avatar_content_type: 'image/gif',
      avatar_file_size: 5120,
      avatar_storage_schema_version: 1,
      header_file_name: '0a1b2c3d4e5f6071.png',
      header_content_type: 'image/png',
      header_file_size: 30000,
      header_storage_schema_version: 1,
    },
    objects: [
      { key: 'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif', ct: 'image/gif', size: 5120 },
      { key: 'accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.png', ct: 'image/png', size: 2048 },
      { key: 'accounts/headers/000/000/001/original/0a1b2c3d4e5f6071.png', ct: 'image/png', size: 30000 },
    ],
  },
  {
    label: 'instance actor, id -99 (partition 000/000), local, png avatar',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '-99',
      username: 'mastodon.example',
      domain: null,
      avatar_file_name: 'f00dfacecafebeef.png',
      avatar_content_type: 'image/png',
      avatar_file_size: 777,
      avatar_storage_schema_version: 1,
    },
    objects: [{ key: 'accounts/avatars/000/000/original/f00dfacecafebeef.png', ct: 'image/png', size: 777 }],
  },
  {
    label: 'remote snowflake account, jpeg avatar + GIF header v1 (cache/), header static MISSING',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '110528637375951012',
      username: 'alice',
      domain: 'remote.example',
      avatar_file_name: '1f2e3d4c5b6a7980.jpeg',
      avatar_content_type: 'image/jpeg',
      avatar_file_size: 12000,
      avatar_remote_url: 'https://remote.example/avatars/a.jpg',
      avatar_storage_schema_version: 1,
      header_file_name: '9a8b7c6d5e4f3a2b.gif',
      header_content_type: 'image/gif',
      header_file_size: 40000,
      header_remote_url: 'https://remote.example/headers/h.gif',
      header_storage_schema_version: 1,
    },
    objects: [
      { key: 'cache/accounts/avatars/110/528/637/375/951/012/original/1f2e3d4c5b6a7980.jpeg', ct: 'image/jpeg', size: 12000 },
      { key: 'cache/accounts/headers/110/528/637/375/951/012/original/9a8b7c6d5e4f3a2b.gif', ct: 'image/gif', size: 40000 },
      { key: 'cache/accounts/headers/110/528/637/375/951/012/static/9a8b7c6d5e4f3a2b.png', missing: true },
    ],
  },
  {
    label: 'remote account downloaded before 3.1.4, version NULL: no cache/',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '42',
      username: 'bob',
      domain: 'old.example',
      avatar_file_name: '3c4d5e6f708192a3.png',
      avatar_content_type: 'image/png',
      avatar_file_size: 900,
      avatar_remote_url: 'https://old.example/a.png',
      avatar_storage_schema_version: null,
    },
    objects: [{ key: 'accounts/avatars/000/000/042/original/3c4d5e6f708192a3.png', ct: 'image/png', size: 900 }],
  },
  {
    label: 'suspended remote account: avatar keeps the default ACL (only media go private)',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '7',
      username: 'spammer',
      domain: 'bad.example',
      suspended_at: '2024-05-01 00:00:00',
      avatar_file_name: '5566778899aabbcc.png',
      avatar_content_type: 'image/png',
      avatar_file_size: 1500,
      avatar_remote_url: 'https://bad.example/a.png',
      avatar_storage_schema_version: 1,
    },
    objects: [{ key: 'cache/accounts/avatars/000/000/007/original/5566778899aabbcc.png', ct: 'image/png', size: 1500 }],
  },
  {
    label: 'fileless remote account: avatar_file_name NULL with remote url + version; header_file_name empty',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '110528637375951013',
      username: 'ghost',
      domain: 'gone.example',
      avatar_file_name: null,
      avatar_content_type: 'image/png',
      avatar_file_size: 100,
      avatar_remote_url: 'https://gone.example/a.png',
      avatar_storage_schema_version: 1,
      header_file_name: '',
      header_content_type: 'image/png',
      header_file_size: 100,
      header_remote_url: 'https://gone.example/h.png',
      header_storage_schema_version: 1,
    },
    objects: [],
  },
  {
    label: 'local snowflake account: webp avatar (no static: not GIF) + jpeg header',
    schemas: NEW,
    table: 'accounts',
    row: {
      id: '110528637375951014',
      username: 'carol',
      domain: null,
      avatar_file_name: 'cafe0000cafe0002.webp',
      avatar_content_type: 'image/webp',
      avatar_file_size: 3300,
      avatar_storage_schema_version: 1,
      header_file_name: 'cafe0000cafe0001.jpeg',
      header_content_type: 'image/jpeg',
      header_file_size: 50000,
      header_storage_schema_version: 1,
    },
    objects: [
      { key: 'accounts/avatars/110/528/637/375/951/014/original/cafe0000cafe0002.webp', ct: 'image/webp', size: 3300 },
      { key: 'accounts/headers/110/528/637/375/951/014/original/cafe0000cafe0001.jpeg', ct: 'image/jpeg', size: 50000 },
    ],
  },

  // ----- statuses ---------------------------------------------------------------------------------------------
  {
    label: 'discarded status (deleted_at set) of account 1',
    schemas: NEW,
    table: 'statuses',
    row: { id: '109349205816500001', account_id: '1', deleted_at: '2024-06-01 00:00:00' },
  },
  { label: 'live status of account 1', schemas: NEW, table: 'statuses', row: { id: '109349205816500002', account_id: '1', deleted_at: null } },
  { label: 'status of the suspended account 7', schemas: NEW, table: 'statuses', row: { id: '109349205816500003', account_id: '7', deleted_at: null } },
  {
    label: 'status of remote account alice',
    schemas: NEW,
    table: 'statuses',
    row: { id: '109349205816500004', account_id: '110528637375951012', deleted_at: null },
  },

  // ----- media_attachments ------------------------------------------------------------------------------------
  {
    label: 'A: remote video, file v1 (cache/), thumbnail version NULL (no cache/)',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583424',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/a.mp4',
      type: 2,
      processing: 2,
      file_file_name: '5f2c0d9e4b7a1c38.mp4',
      file_content_type: 'video/mp4',
      file_file_size: 90000,
      file_storage_schema_version: 1,
      file_meta: {
        original: { width: 640, height: 360, frame_rate: '30/1', duration: 3.2, bitrate: 225000 },
        small: { width: 400, height: 225, size: '400x225', aspect: 1.7777 },
      },
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_content_type: 'image/jpeg',
      thumbnail_file_size: 8000,
      thumbnail_remote_url: 'https://other.example/m/a.jpg',
      thumbnail_storage_schema_version: null,
    },
    objects: [
      { key: 'cache/media_attachments/files/109/349/205/816/583/424/original/5f2c0d9e4b7a1c38.mp4', ct: 'video/mp4', size: 90000 },
      { key: 'cache/media_attachments/files/109/349/205/816/583/424/small/5f2c0d9e4b7a1c38.png', ct: 'image/png', size: 9000 },
      { key: 'media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg', ct: 'image/jpeg', size: 8000 },
    ],
  },
  {
    label: 'D: local static GIF media: small is .png holding GIF bytes, sent as image/gif',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '5',
      account_id: '1',
      status_id: '109349205816500002',
      type: 0,
      processing: 2,
      file_file_name: 'c0ffee0123456789.gif',
      file_content_type: 'image/gif',
      file_file_size: 4000,
      file_storage_schema_version: 1,
    },
    objects: [
      { key: 'media_attachments/files/000/000/005/original/c0ffee0123456789.gif', ct: 'image/gif', size: 4000 },
      { key: 'media_attachments/files/000/000/005/small/c0ffee0123456789.png', ct: 'image/gif', size: 1800 },
    ],
  },
  {
    label: 'local video > 6 MiB (multipart on copy) + custom cover thumbnail with thumbnail version 1 (local: no cache/)',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '112233445566778899',
      account_id: '1',
      status_id: '109349205816500002',
      type: 2,
      processing: 2,
      file_file_name: 'b16b00b5deadbeef.mp4',
      file_content_type: 'video/mp4',
      file_file_size: BIG_OBJECT_SIZE,
      file_storage_schema_version: 1,
      thumbnail_file_name: 'c07e7a7700000001.png',
      thumbnail_content_type: 'image/png',
      thumbnail_file_size: 7000,
      thumbnail_storage_schema_version: 1,
    },
    objects: [
      { key: 'media_attachments/files/112/233/445/566/778/899/original/b16b00b5deadbeef.mp4', ct: 'video/mp4', size: BIG_OBJECT_SIZE },
      { key: 'media_attachments/files/112/233/445/566/778/899/small/b16b00b5deadbeef.png', ct: 'image/png', size: 11000 },
      { key: 'media_attachments/thumbnails/112/233/445/566/778/899/original/c07e7a7700000001.png', ct: 'image/png', size: 7000 },
    ],
  },
  {
    label: 'remote image with remote icon, file v1 and thumbnail v1 (v4.6+): both cache/',
    schemas: CUR,
    table: 'media_attachments',
    row: {
      id: '109349205816583425',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/b.png',
      type: 0,
      processing: 2,
      file_file_name: '7e57ab1e7e57ab1e.png',
      file_content_type: 'image/png',
      file_file_size: 25000,
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a0a0a0a0b1b1b1b1.png',
      thumbnail_content_type: 'image/png',
      thumbnail_file_size: 3000,
      thumbnail_remote_url: 'https://other.example/m/b-icon.png',
      thumbnail_storage_schema_version: 1,
    },
    objects: [
      { key: 'cache/media_attachments/files/109/349/205/816/583/425/original/7e57ab1e7e57ab1e.png', ct: 'image/png', size: 25000 },
      { key: 'cache/media_attachments/files/109/349/205/816/583/425/small/7e57ab1e7e57ab1e.png', ct: 'image/png', size: 6000 },
      { key: 'cache/media_attachments/thumbnails/109/349/205/816/583/425/original/a0a0a0a0b1b1b1b1.png', ct: 'image/png', size: 3000 },
    ],
  },
  {
    label: 'remote image with remote icon, v4.3 (no thumbnail version column): thumbnail never cache/',
    schemas: V43,
    table: 'media_attachments',
    row: {
      id: '109349205816583425',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/b.png',
      type: 0,
      processing: 2,
      file_file_name: '7e57ab1e7e57ab1e.png',
      file_content_type: 'image/png',
      file_file_size: 25000,
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a0a0a0a0b1b1b1b1.png',
      thumbnail_content_type: 'image/png',
      thumbnail_file_size: 3000,
      thumbnail_remote_url: 'https://other.example/m/b-icon.png',
    },
    objects: [
      { key: 'cache/media_attachments/files/109/349/205/816/583/425/original/7e57ab1e7e57ab1e.png', ct: 'image/png', size: 25000 },
      { key: 'cache/media_attachments/files/109/349/205/816/583/425/small/7e57ab1e7e57ab1e.png', ct: 'image/png', size: 6000 },
      { key: 'media_attachments/thumbnails/109/349/205/816/583/425/original/a0a0a0a0b1b1b1b1.png', ct: 'image/png', size: 3000 },
    ],
  },
  {
    label: 'local audio, version NULL: original only (file_meta.small comes from the cover art), + cover thumbnail',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '77',
      account_id: '1',
      status_id: '109349205816500002',
      type: 4,
      processing: 2,
      file_file_name: 'a0d10a0d10a0d10a.mp3',
      file_content_type: 'audio/mpeg',
      file_file_size: 48000,
      file_storage_schema_version: null,
      file_meta: {
        original: { duration: 12.5, bitrate: 128000 },
        small: { width: 400, height: 400, size: '400x400', aspect: 1 },
        colors: { background: '#000000' },
      },
      thumbnail_file_name: 'c0c0c0c0c0c0c0c0.jpeg',
      thumbnail_content_type: 'image/jpeg',
      thumbnail_file_size: 5000,
      thumbnail_storage_schema_version: null,
    },
    objects: [
      { key: 'media_attachments/files/000/000/077/original/a0d10a0d10a0d10a.mp3', ct: 'audio/mpeg', size: 48000 },
      { key: 'media_attachments/thumbnails/000/000/077/original/c0c0c0c0c0c0c0c0.jpeg', ct: 'image/jpeg', size: 5000 },
    ],
  },
  {
    label: 'old local media with an odd user file name: spaces, unicode, "+", "%", "#"',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '12',
      account_id: '1',
      status_id: '109349205816500002',
      type: 0,
      file_file_name: 'My Photo + café 100% #1.jpg',
      file_content_type: 'image/jpeg',
      file_file_size: 21000,
      file_storage_schema_version: null,
    },
    objects: [
      { key: 'media_attachments/files/000/000/012/original/My Photo + café 100% #1.jpg', ct: 'image/jpeg', size: 21000 },
      { key: 'media_attachments/files/000/000/012/small/My Photo + café 100% #1.jpg', ct: 'image/jpeg', size: 4100 },
    ],
  },
  {
    label: 'old local media without extension: small has no dot either',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '13',
      account_id: '1',
      status_id: '109349205816500002',
      type: 0,
      file_file_name: 'screenshot',
      file_content_type: 'image/png',
      file_file_size: 15000,
      file_storage_schema_version: null,
    },
    objects: [
      { key: 'media_attachments/files/000/000/013/original/screenshot', ct: 'image/png', size: 15000 },
      { key: 'media_attachments/files/000/000/013/small/screenshot', ct: 'image/png', size: 3900 },
    ],
  },
  {
    label: 'old local static GIF with dots in the name: only the last extension is replaced',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '14',
      account_id: '1',
      status_id: '109349205816500002',
      type: 0,
      file_file_name: 'party.time.gif',
      file_content_type: 'image/gif',
      file_file_size: 6000,
      file_storage_schema_version: null,
    },
    objects: [
      { key: 'media_attachments/files/000/000/014/original/party.time.gif', ct: 'image/gif', size: 6000 },
      { key: 'media_attachments/files/000/000/014/small/party.time.png', ct: 'image/gif', size: 2100 },
    ],
  },
  {
    label: "suspended account's remote media: every style of file and thumbnail is private",
    schemas: NEW,
    table: 'media_attachments',
    acl: 'private',
    row: {
      id: '109349205816583426',
      account_id: '7',
      status_id: '109349205816500003',
      remote_url: 'https://bad.example/m/c.jpeg',
      type: 0,
      processing: 2,
      file_file_name: '5a5a5a5a5a5a5a5a.jpeg',
      file_content_type: 'image/jpeg',
      file_file_size: 17000,
      file_storage_schema_version: 1,
      thumbnail_file_name: '7b7b7b7b7b7b7b7b.png',
      thumbnail_content_type: 'image/png',
      thumbnail_file_size: 1200,
      thumbnail_remote_url: 'https://bad.example/m/c-icon.png',
      thumbnail_storage_schema_version: null,
    },
    objects: [
      { key: 'cache/media_attachments/files/109/349/205/816/583/426/original/5a5a5a5a5a5a5a5a.jpeg', ct: 'image/jpeg', size: 17000 },
      { key: 'cache/media_attachments/files/109/349/205/816/583/426/small/5a5a5a5a5a5a5a5a.jpeg', ct: 'image/jpeg', size: 3000 },
      { key: 'media_attachments/thumbnails/109/349/205/816/583/426/original/7b7b7b7b7b7b7b7b.png', ct: 'image/png', size: 1200 },
    ],
  },
  {
    label: 'media of a discarded (deleted_at) status: private',
    schemas: NEW,
    table: 'media_attachments',
    acl: 'private',
    row: {
      id: '109349205816583427',
      account_id: '1',
      status_id: '109349205816500001',
      type: 0,
      processing: 2,
      file_file_name: 'd15ca4dedd15ca4d.webp',
      file_content_type: 'image/webp',
      file_file_size: 14000,
      file_storage_schema_version: 1,
    },
    objects: [
      { key: 'media_attachments/files/109/349/205/816/583/427/original/d15ca4dedd15ca4d.webp', ct: 'image/webp', size: 14000 },
      { key: 'media_attachments/files/109/349/205/816/583/427/small/d15ca4dedd15ca4d.webp', ct: 'image/webp', size: 2500 },
    ],
  },
  {
    label: 'RELOCATED: row says cache/ (remote, v1) but objects exist only at the non-cache keys',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583428',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/r.jpeg',
      type: 0,
      processing: 2,
      file_file_name: '4e10ca7ed0000001.jpeg',
      file_content_type: 'image/jpeg',
      file_file_size: 19000,
      file_storage_schema_version: 1,
    },
    objects: [
      {
        key: 'cache/media_attachments/files/109/349/205/816/583/428/original/4e10ca7ed0000001.jpeg',
        ct: 'image/jpeg',
        size: 19000,
        from: 'media_attachments/files/109/349/205/816/583/428/original/4e10ca7ed0000001.jpeg',
        relocated: 'cache',
      },
      {
        key: 'cache/media_attachments/files/109/349/205/816/583/428/small/4e10ca7ed0000001.jpeg',
        ct: 'image/jpeg',
        size: 3500,
        from: 'media_attachments/files/109/349/205/816/583/428/small/4e10ca7ed0000001.jpeg',
        relocated: 'cache',
      },
    ],
  },
  {
    label: 'RELOCATED extension: v4.0-4.1 AVIF, small stayed .avif; current rules say .jpeg',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583429',
      account_id: '1',
      status_id: '109349205816500002',
      type: 0,
      processing: 2,
      file_file_name: 'a71fa71fa71fa71f.avif',
      file_content_type: 'image/avif',
      file_file_size: 9000,
      file_storage_schema_version: 1,
    },
    objects: [
      { key: 'media_attachments/files/109/349/205/816/583/429/original/a71fa71fa71fa71f.avif', ct: 'image/avif', size: 9000 },
      {
        key: 'media_attachments/files/109/349/205/816/583/429/small/a71fa71fa71fa71f.jpeg',
        ct: 'image/avif',
        size: 2200,
        from: 'media_attachments/files/109/349/205/816/583/429/small/a71fa71fa71fa71f.avif',
        relocated: 'extension',
      },
    ],
  },
  {
    label: 'MISSING style: remote gifv, small .png absent at the source',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583430',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/g.mp4',
      type: 1,
      processing: 2,
      file_file_name: '9f9f9f9f9f9f9f9f.mp4',
      file_content_type: 'video/mp4',
      file_file_size: 33000,
      file_storage_schema_version: 1,
    },
    objects: [
      { key: 'cache/media_attachments/files/109/349/205/816/583/430/original/9f9f9f9f9f9f9f9f.mp4', ct: 'video/mp4', size: 33000 },
      { key: 'cache/media_attachments/files/109/349/205/816/583/430/small/9f9f9f9f9f9f9f9f.png', missing: true },
    ],
  },
  {
    label: 'failed processing (3): raw .mov upload kept as video/quicktime, small .png MISSING',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583431',
      account_id: '1',
      status_id: null,
      type: 2,
      processing: 3,
      file_file_name: '0e0e0e0e0e0e0e0e.mov',
      file_content_type: 'video/quicktime',
      file_file_size: 27000,
      file_storage_schema_version: 1,
    },
    objects: [
      { key: 'media_attachments/files/109/349/205/816/583/431/original/0e0e0e0e0e0e0e0e.mov', ct: 'video/quicktime', size: 27000 },
      { key: 'media_attachments/files/109/349/205/816/583/431/small/0e0e0e0e0e0e0e0e.png', missing: true },
    ],
  },
  {
    label: 'fileless remote media (failed download / vacuumed): file NULL, meta + version set',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583432',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/gone.jpg',
      type: 3,
      file_file_name: null,
      file_content_type: 'image/jpeg',
      file_file_size: 1000,
      file_storage_schema_version: 1,
      file_meta: { focus: { x: 0, y: 0 } },
    },
    objects: [],
  },
  {
    label: 'remote media with empty-string file name: no object',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '109349205816583433',
      account_id: '110528637375951012',
      status_id: '109349205816500004',
      remote_url: 'https://other.example/m/empty.jpg',
      type: 0,
      file_file_name: '',
      file_content_type: 'image/jpeg',
      file_storage_schema_version: 1,
    },
    objects: [],
  },
  {
    label: 'local media with NULL content type: original only',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '78',
      account_id: '1',
      status_id: '109349205816500002',
      type: 3,
      file_file_name: 'f1f1f1f1f1f1f1f1.bin',
      file_content_type: null,
      file_file_size: 640,
      file_storage_schema_version: null,
    },
    objects: [{ key: 'media_attachments/files/000/000/078/original/f1f1f1f1f1f1f1f1.bin', ct: 'application/octet-stream', size: 640 }],
  },
  {
    label: 'remote media downloaded before 3.1.4 (small id, version NULL): no cache/',
    schemas: NEW,
    table: 'media_attachments',
    row: {
      id: '60',
      account_id: '42',
      status_id: null,
      remote_url: 'https://old.example/m/x.png',
      type: 0,
      file_file_name: '6060606060606060.png',
      file_content_type: 'image/png',
      file_file_size: 8800,
      file_storage_schema_version: null,
    },
    objects: [
      { key: 'media_attachments/files/000/000/060/original/6060606060606060.png', ct: 'image/png', size: 8800 },
      { key: 'media_attachments/files/000/000/060/small/6060606060606060.png', ct: 'image/png', size: 1700 },
    ],
  },

  // ----- custom_emojis ----------------------------------------------------------------------------------------
  {
    label: 'C: remote GIF emoji, v1: cache/, static .png always',
    schemas: NEW,
    table: 'custom_emojis',
    row: {
      id: '4321',
      shortcode: 'blobcat',
      domain: 'other.example',
      uri: 'https://other.example/emojis/1',
      image_file_name: '3e4f5a6b7c8d9e0f.gif',
      image_content_type: 'image/gif',
      image_file_size: 2600,
      image_remote_url: 'https://other.example/e/blobcat.gif',
      image_storage_schema_version: 1,
    },
    objects: [
      { key: 'cache/custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', ct: 'image/gif', size: 2600 },
      { key: 'cache/custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png', ct: 'image/png', size: 1400 },
    ],
  },
  {
    label: "C': remote png emoji, version NULL: no cache/",
    schemas: NEW,
    table: 'custom_emojis',
    row: {
      id: '4322',
      shortcode: 'oldemoji',
      domain: 'old.example',
      image_file_name: '6b6b6b6b6b6b6b6b.png',
      image_content_type: 'image/png',
      image_file_size: 1100,
      image_remote_url: 'https://old.example/e/old.png',
      image_storage_schema_version: null,
    },
    objects: [
      { key: 'custom_emojis/images/000/004/322/original/6b6b6b6b6b6b6b6b.png', ct: 'image/png', size: 1100 },
      { key: 'custom_emojis/images/000/004/322/static/6b6b6b6b6b6b6b6b.png', ct: 'image/png', size: 1000 },
    ],
  },
  {
    label: 'local emoji (domain NULL), v1: no cache/',
    schemas: NEW,
    table: 'custom_emojis',
    row: {
      id: '9',
      shortcode: 'local_party',
      domain: null,
      image_file_name: '0123456789abcdef.png',
      image_content_type: 'image/png',
      image_file_size: 1300,
      image_storage_schema_version: 1,
    },
    objects: [
      { key: 'custom_emojis/images/000/000/009/original/0123456789abcdef.png', ct: 'image/png', size: 1300 },
      { key: 'custom_emojis/images/000/000/009/static/0123456789abcdef.png', ct: 'image/png', size: 1250 },
    ],
  },
  {
    label: 'emoji with EMPTY-STRING domain counts as remote: cache/',
    schemas: NEW,
    table: 'custom_emojis',
    row: {
      id: '4323',
      shortcode: 'weird',
      domain: '',
      image_file_name: 'abababababababab.png',
      image_content_type: 'image/png',
      image_file_size: 999,
      image_storage_schema_version: 1,
    },
    objects: [
      { key: 'cache/custom_emojis/images/000/004/323/original/abababababababab.png', ct: 'image/png', size: 999 },
      { key: 'cache/custom_emojis/images/000/004/323/static/abababababababab.png', ct: 'image/png', size: 950 },
    ],
  },

  // ----- preview_cards ----------------------------------------------------------------------------------------
  {
    label: 'D: preview card GIF, v1: cache/ (never local); original keeps .gif but holds JPEG (format jpg)',
    schemas: NEW,
    table: 'preview_cards',
    row: {
      id: '98765',
      url: 'https://news.example/a',
      type: 0,
      image_file_name: 'feedface00112233.gif',
      image_content_type: 'image/gif',
      image_file_size: 16000,
      image_storage_schema_version: 1,
    },
    objects: [{ key: 'cache/preview_cards/images/000/098/765/original/feedface00112233.gif', ct: 'image/jpeg', size: 16000 }],
  },
  {
    label: 'preview card with a 10-digit id: 4 partition groups',
    schemas: NEW,
    table: 'preview_cards',
    row: {
      id: '1234567890',
      url: 'https://news.example/b',
      type: 0,
      image_file_name: 'c4c4c4c4c4c4c4c4.jpg',
      image_content_type: 'image/jpeg',
      image_file_size: 22000,
      image_storage_schema_version: 1,
    },
    objects: [{ key: 'cache/preview_cards/images/001/234/567/890/original/c4c4c4c4c4c4c4c4.jpg', ct: 'image/jpeg', size: 22000 }],
  },
  {
    label: 'preview card never upgraded, version NULL: no cache/',
    schemas: NEW,
    table: 'preview_cards',
    row: {
      id: '555',
      url: 'https://news.example/c',
      type: 0,
      image_file_name: 'e5e5e5e5e5e5e5e5.png',
      image_content_type: 'image/png',
      image_file_size: 7700,
      image_storage_schema_version: null,
    },
    objects: [{ key: 'preview_cards/images/000/000/555/original/e5e5e5e5e5e5e5e5.png', ct: 'image/png', size: 7700 }],
  },
  {
    label: 'preview card without image',
    schemas: NEW,
    table: 'preview_cards',
    row: { id: '556', url: 'https://news.example/d', type: 0, image_file_name: null, image_storage_schema_version: 1 },
    objects: [],
  },

  // ----- preview_card_providers (v3.5+) -----------------------------------------------------------------------
  {
    label: 'provider icon png: static .png always, never cache/',
    schemas: NEW,
    table: 'preview_card_providers',
    row: { id: '1', domain: 'video.example', icon_file_name: '1c0e1c0e1c0e1c0e.png', icon_content_type: 'image/png', icon_file_size: 2000 },
    objects: [
      { key: 'preview_card_providers/icons/000/000/001/original/1c0e1c0e1c0e1c0e.png', ct: 'image/png', size: 2000 },
      { key: 'preview_card_providers/icons/000/000/001/static/1c0e1c0e1c0e1c0e.png', ct: 'image/png', size: 1900 },
    ],
  },
  {
    label: 'provider icon jpeg: static becomes .png',
    schemas: NEW,
    table: 'preview_card_providers',
    row: { id: '2', domain: 'blog.example', icon_file_name: '2d2d2d2d2d2d2d2d.jpeg', icon_content_type: 'image/jpeg', icon_file_size: 2500 },
    objects: [
      { key: 'preview_card_providers/icons/000/000/002/original/2d2d2d2d2d2d2d2d.jpeg', ct: 'image/jpeg', size: 2500 },
      { key: 'preview_card_providers/icons/000/000/002/static/2d2d2d2d2d2d2d2d.png', ct: 'image/png', size: 2300 },
    ],
  },

  // ----- site_uploads -----------------------------------------------------------------------------------------
  {
    label: 'site upload thumbnail: @1x and @2x',
    schemas: NEW,
    table: 'site_uploads',
    row: {
      id: '3',
      var: 'thumbnail',
      file_file_name: 'd00dfeed12345678.png',
      file_content_type: 'image/png',
      file_file_size: 60000,
      meta: { width: 2400, height: 1260 },
    },
    objects: [
      { key: 'site_uploads/files/000/000/003/original/d00dfeed12345678.png', ct: 'image/png', size: 60000 },
      { key: 'site_uploads/files/000/000/003/@1x/d00dfeed12345678.png', ct: 'image/png', size: 20000 },
      { key: 'site_uploads/files/000/000/003/@2x/d00dfeed12345678.png', ct: 'image/png', size: 45000 },
    ],
  },
  {
    label: 'site upload favicon (.ico): sizes 16/32/48 are .png (style format png)',
    schemas: NEW,
    table: 'site_uploads',
    row: { id: '4', var: 'favicon', file_file_name: 'fa1c0fa1c0fa1c0f.ico', file_content_type: 'image/x-icon', file_file_size: 4286 },
    objects: [
      { key: 'site_uploads/files/000/000/004/original/fa1c0fa1c0fa1c0f.ico', ct: 'image/x-icon', size: 4286 },
      { key: 'site_uploads/files/000/000/004/16/fa1c0fa1c0fa1c0f.png', ct: 'image/png', size: 300 },
      { key: 'site_uploads/files/000/000/004/32/fa1c0fa1c0fa1c0f.png', ct: 'image/png', size: 700 },
      { key: 'site_uploads/files/000/000/004/48/fa1c0fa1c0fa1c0f.png', ct: 'image/png', size: 1100 },
    ],
  },
  {
    label: 'site upload app_icon: 18 sizes',
    schemas: NEW,
    table: 'site_uploads',
    row: { id: '5', var: 'app_icon', file_file_name: 'a99a99a99a99a99a.png', file_content_type: 'image/png', file_file_size: 80000 },
    objects: [
      { key: 'site_uploads/files/000/000/005/original/a99a99a99a99a99a.png', ct: 'image/png', size: 80000 },
      { key: 'site_uploads/files/000/000/005/57/a99a99a99a99a99a.png', ct: 'image/png', size: 1057 },
      { key: 'site_uploads/files/000/000/005/60/a99a99a99a99a99a.png', ct: 'image/png', size: 1060 },
      { key: 'site_uploads/files/000/000/005/72/a99a99a99a99a99a.png', ct: 'image/png', size: 1072 },
      { key: 'site_uploads/files/000/000/005/76/a99a99a99a99a99a.png', ct: 'image/png', size: 1076 },
      { key: 'site_uploads/files/000/000/005/114/a99a99a99a99a99a.png', ct: 'image/png', size: 1114 },
      { key: 'site_uploads/files/000/000/005/120/a99a99a99a99a99a.png', ct: 'image/png', size: 1120 },
      { key: 'site_uploads/files/000/000/005/144/a99a99a99a99a99a.png', ct: 'image/png', size: 1144 },
      { key: 'site_uploads/files/000/000/005/152/a99a99a99a99a99a.png', ct: 'image/png', size: 1152 },
      { key: 'site_uploads/files/000/000/005/167/a99a99a99a99a99a.png', ct: 'image/png', size: 1167 },
      { key: 'site_uploads/files/000/000/005/180/a99a99a99a99a99a.png', ct: 'image/png', size: 1180 },
      { key: 'site_uploads/files/000/000/005/1024/a99a99a99a99a99a.png', ct: 'image/png', size: 31024 },
      { key: 'site_uploads/files/000/000/005/36/a99a99a99a99a99a.png', ct: 'image/png', size: 1036 },
      { key: 'site_uploads/files/000/000/005/48/a99a99a99a99a99a.png', ct: 'image/png', size: 1048 },
      { key: 'site_uploads/files/000/000/005/96/a99a99a99a99a99a.png', ct: 'image/png', size: 1096 },
      { key: 'site_uploads/files/000/000/005/192/a99a99a99a99a99a.png', ct: 'image/png', size: 1192 },
      { key: 'site_uploads/files/000/000/005/256/a99a99a99a99a99a.png', ct: 'image/png', size: 1256 },
      { key: 'site_uploads/files/000/000/005/384/a99a99a99a99a99a.png', ct: 'image/png', size: 1384 },
      { key: 'site_uploads/files/000/000/005/512/a99a99a99a99a99a.png', ct: 'image/png', size: 1512 },
    ],
  },
  {
    label: 'site upload mascot (GIF): original only, no static',
    schemas: NEW,
    table: 'site_uploads',
    row: { id: '6', var: 'mascot', file_file_name: '3a5c073a5c073a5c.gif', file_content_type: 'image/gif', file_file_size: 12345 },
    objects: [{ key: 'site_uploads/files/000/000/006/original/3a5c073a5c073a5c.gif', ct: 'image/gif', size: 12345 }],
  },
  {
    label: 'legacy site upload "hero" (pre-v4.0 admin file name with spaces): original only',
    schemas: NEW,
    table: 'site_uploads',
    row: { id: '1', var: 'hero', file_file_name: 'Our Hero Image.jpg', file_content_type: 'image/jpeg', file_file_size: 33333 },
    objects: [{ key: 'site_uploads/files/000/000/001/original/Our Hero Image.jpg', ct: 'image/jpeg', size: 33333 }],
  },

  // ----- backups ----------------------------------------------------------------------------------------------
  {
    label: 'backup dump: private',
    schemas: NEW,
    table: 'backups',
    acl: 'private',
    row: {
      id: '12',
      user_id: '1',
      processed: true,
      dump_file_name: 'archive-20240101120000-0123456789abcdef0123456789abcdef.zip',
      dump_content_type: 'application/zip',
      dump_file_size: 70000,
    },
    objects: [{ key: 'backups/dumps/000/000/012/original/archive-20240101120000-0123456789abcdef0123456789abcdef.zip', ct: 'application/zip', size: 70000 }],
  },
  {
    label: 'unprocessed backup without file',
    schemas: NEW,
    table: 'backups',
    row: { id: '13', user_id: '1', processed: false, dump_file_name: null },
    objects: [],
  },

  // ----- imports (v4.3 only here; the table is gone in current) -----------------------------------------------
  {
    label: 'import CSV with a user-supplied name (spaces, parentheses)',
    schemas: V43,
    table: 'imports',
    row: { id: '1', account_id: '1', type: 0, data_file_name: 'following accounts (1).csv', data_content_type: 'text/csv', data_file_size: 512 },
    objects: [{ key: 'imports/data/000/000/001/original/following accounts (1).csv', ct: 'text/csv', size: 512 }],
  },
];

const NEW_ORPHANS: OrphanSpec[] = [
  {
    schemas: NEW,
    key: 'media_attachments/files/112/233/445/566/778/899/original/b16b00b5deadbeef.mov',
    ct: 'video/quicktime',
    size: 150000,
    reason: 'reprocess! kept the raw .mov beside the .mp4',
  },
  {
    schemas: NEW,
    key: 'accounts/avatars/110/528/637/375/951/012/original/1f2e3d4c5b6a7980.jpeg',
    ct: 'image/jpeg',
    size: 12000,
    reason: 'stale non-cache duplicate of a cache/ object (interrupted storage-schema upgrade)',
  },
  {
    schemas: CUR,
    key: 'media_attachments/thumbnails/109/349/205/816/583/425/original/a0a0a0a0b1b1b1b1.png',
    ct: 'image/png',
    size: 3000,
    reason: 'stale non-cache duplicate of a v4.6 cache/ thumbnail',
  },
  {
    schemas: NEW,
    key: 'cache/media_attachments/files/000/000/005/original/c0ffee0123456789.gif',
    ct: 'image/gif',
    size: 4000,
    reason: 'cache/ duplicate of a LOCAL media (local is never cache/)',
  },
  {
    schemas: NEW,
    key: 'cache/media_attachments/files/109/349/205/816/583/424/original/0000aaaa1111bbbb.mp4',
    ct: 'video/mp4',
    size: 20000,
    reason: 'old name left behind by media refresh',
  },
  {
    schemas: NEW,
    key: 'cache/media_attachments/files/109/349/205/816/583/432/original/1234123412341234.jpeg',
    ct: 'image/jpeg',
    size: 5000,
    reason: 'key of a fileless row (file_file_name NULL)',
  },
  {
    schemas: NEW,
    key: 'cache/accounts/avatars/110/528/637/375/951/013/original/0badf11e0badf11e.png',
    ct: 'image/png',
    size: 900,
    reason: 'key of a fileless avatar',
  },
  {
    schemas: NEW,
    key: 'media_attachments/files/000/000/005/small/c0ffee0123456789.gif',
    ct: 'image/gif',
    size: 1800,
    reason: 'static GIF small with the original extension (the row owns small/…png)',
  },
  {
    schemas: NEW,
    key: 'cache/preview_cards/images/000/000/557/original/abcdefabcdefabcd.png',
    ct: 'image/png',
    size: 4000,
    reason: 'no such preview card row',
  },
  { schemas: CUR, key: 'imports/data/000/000/001/original/following accounts (1).csv', ct: 'text/csv', size: 512, reason: 'imports table dropped in v4.4' },
  {
    schemas: NEW,
    key: 'backups/dumps/000/000/099/original/archive-20230101000000-ffffffffffffffffffffffffffffffff.zip',
    ct: 'application/zip',
    size: 3000,
    acl: 'private',
    reason: 'backup row deleted',
  },
  { schemas: NEW, key: 'site_uploads/files/000/000/003/original/old-thumbnail.png', ct: 'image/png', size: 5000, reason: 'old name of a replaced site upload' },
];

// ----- old (v3.0-like) ------------------------------------------------------------------------------------------
const OLD_CASES: CaseSpec[] = [
  {
    label: 'old: local account, GIF avatar + png header',
    schemas: OLD,
    table: 'accounts',
    row: {
      id: '1',
      username: 'admin',
      domain: null,
      avatar_file_name: '8c2b5e7d9f0a1b3c.gif',
      avatar_content_type: 'image/gif',
      avatar_file_size: 5120,
      header_file_name: '0a1b2c3d4e5f6071.png',
      header_content_type: 'image/png',
      header_file_size: 30000,
    },
    objects: [
      { key: 'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif', ct: 'image/gif', size: 5120 },
      { key: 'accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.png', ct: 'image/png', size: 2048 },
      { key: 'accounts/headers/000/000/001/original/0a1b2c3d4e5f6071.png', ct: 'image/png', size: 30000 },
    ],
  },
  { label: 'old: instance actor without files', schemas: OLD, table: 'accounts', row: { id: '-99', username: 'mastodon.example', domain: null }, objects: [] },
  {
    label: 'old: remote account (no version column: never cache/), GIF header with static',
    schemas: OLD,
    table: 'accounts',
    row: {
      id: '2',
      username: 'alice',
      domain: 'remote.example',
      avatar_file_name: '1f2e3d4c5b6a7980.jpeg',
      avatar_content_type: 'image/jpeg',
      avatar_file_size: 12000,
      avatar_remote_url: 'https://remote.example/avatars/a.jpg',
      header_file_name: '9a8b7c6d5e4f3a2b.gif',
      header_content_type: 'image/gif',
      header_file_size: 40000,
      header_remote_url: 'https://remote.example/headers/h.gif',
    },
    objects: [
      { key: 'accounts/avatars/000/000/002/original/1f2e3d4c5b6a7980.jpeg', ct: 'image/jpeg', size: 12000 },
      { key: 'accounts/headers/000/000/002/original/9a8b7c6d5e4f3a2b.gif', ct: 'image/gif', size: 40000 },
      { key: 'accounts/headers/000/000/002/static/9a8b7c6d5e4f3a2b.png', ct: 'image/png', size: 9000 },
    ],
  },
  {
    label: 'old: suspended remote account, avatar stays public',
    schemas: OLD,
    table: 'accounts',
    row: {
      id: '3',
      username: 'spammer',
      domain: 'bad.example',
      suspended_at: '2019-05-01 00:00:00',
      avatar_file_name: '5566778899aabbcc.png',
      avatar_content_type: 'image/png',
      avatar_file_size: 1500,
      avatar_remote_url: 'https://bad.example/a.png',
    },
    objects: [{ key: 'accounts/avatars/000/000/003/original/5566778899aabbcc.png', ct: 'image/png', size: 1500 }],
  },
  { label: 'old: status of account 1', schemas: OLD, table: 'statuses', row: { id: '103000000000000001', account_id: '1' } },
  { label: 'old: status of the suspended account', schemas: OLD, table: 'statuses', row: { id: '103000000000000002', account_id: '3' } },
  { label: 'old: status of remote alice', schemas: OLD, table: 'statuses', row: { id: '103000000000000003', account_id: '2' } },
  {
    label: 'old: local static GIF media (small .png with GIF bytes)',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '5',
      account_id: '1',
      status_id: '103000000000000001',
      type: 0,
      file_file_name: 'c0ffee0123456789.gif',
      file_content_type: 'image/gif',
      file_file_size: 4000,
    },
    objects: [
      { key: 'media_attachments/files/000/000/005/original/c0ffee0123456789.gif', ct: 'image/gif', size: 4000 },
      { key: 'media_attachments/files/000/000/005/small/c0ffee0123456789.png', ct: 'image/gif', size: 1800 },
    ],
  },
  {
    label: 'old: remote video (no cache/ in v3.0)',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '6',
      account_id: '2',
      status_id: '103000000000000003',
      remote_url: 'https://other.example/m/a.mp4',
      type: 2,
      file_file_name: '5f2c0d9e4b7a1c38.mp4',
      file_content_type: 'video/mp4',
      file_file_size: 90000,
    },
    objects: [
      { key: 'media_attachments/files/000/000/006/original/5f2c0d9e4b7a1c38.mp4', ct: 'video/mp4', size: 90000 },
      { key: 'media_attachments/files/000/000/006/small/5f2c0d9e4b7a1c38.png', ct: 'image/png', size: 9000 },
    ],
  },
  {
    label: "old: suspended account's media: private",
    schemas: OLD,
    table: 'media_attachments',
    acl: 'private',
    row: {
      id: '7',
      account_id: '3',
      status_id: '103000000000000002',
      remote_url: 'https://bad.example/m/c.jpeg',
      type: 0,
      file_file_name: '5a5a5a5a5a5a5a5a.jpeg',
      file_content_type: 'image/jpeg',
      file_file_size: 17000,
    },
    objects: [
      { key: 'media_attachments/files/000/000/007/original/5a5a5a5a5a5a5a5a.jpeg', ct: 'image/jpeg', size: 17000 },
      { key: 'media_attachments/files/000/000/007/small/5a5a5a5a5a5a5a5a.jpeg', ct: 'image/jpeg', size: 3000 },
    ],
  },
  {
    label: 'old: odd user file name: spaces, unicode, "+", "%", "#"',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '12',
      account_id: '1',
      status_id: '103000000000000001',
      type: 0,
      file_file_name: 'My Photo + café 100% #1.jpg',
      file_content_type: 'image/jpeg',
      file_file_size: 21000,
    },
    objects: [
      { key: 'media_attachments/files/000/000/012/original/My Photo + café 100% #1.jpg', ct: 'image/jpeg', size: 21000 },
      { key: 'media_attachments/files/000/000/012/small/My Photo + café 100% #1.jpg', ct: 'image/jpeg', size: 4100 },
    ],
  },
  {
    label: 'old: MISSING style: remote gifv without small',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '14',
      account_id: '2',
      status_id: '103000000000000003',
      remote_url: 'https://other.example/m/g.mp4',
      type: 1,
      file_file_name: '9f9f9f9f9f9f9f9f.mp4',
      file_content_type: 'video/mp4',
      file_file_size: 33000,
    },
    objects: [
      { key: 'media_attachments/files/000/000/014/original/9f9f9f9f9f9f9f9f.mp4', ct: 'video/mp4', size: 33000 },
      { key: 'media_attachments/files/000/000/014/small/9f9f9f9f9f9f9f9f.png', missing: true },
    ],
  },
  {
    label: 'old: local audio, original only',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '15',
      account_id: '1',
      status_id: '103000000000000001',
      type: 4,
      file_file_name: 'a0d10a0d10a0d10a.mp3',
      file_content_type: 'audio/mpeg',
      file_file_size: 48000,
      file_meta: { original: { duration: 12.5, bitrate: 128000 } },
    },
    objects: [{ key: 'media_attachments/files/000/000/015/original/a0d10a0d10a0d10a.mp3', ct: 'audio/mpeg', size: 48000 }],
  },
  {
    label: 'old: local video > 6 MiB',
    schemas: OLD,
    table: 'media_attachments',
    row: {
      id: '16',
      account_id: '1',
      status_id: '103000000000000001',
      type: 2,
      file_file_name: 'b16b00b5deadbeef.mp4',
      file_content_type: 'video/mp4',
      file_file_size: BIG_OBJECT_SIZE,
    },
    objects: [
      { key: 'media_attachments/files/000/000/016/original/b16b00b5deadbeef.mp4', ct: 'video/mp4', size: BIG_OBJECT_SIZE },
      { key: 'media_attachments/files/000/000/016/small/b16b00b5deadbeef.png', ct: 'image/png', size: 11000 },
    ],
  },
  {
    label: 'old: remote GIF emoji (no version column: no cache/)',
    schemas: OLD,
    table: 'custom_emojis',
    row: {
      id: '4321',
      shortcode: 'blobcat',
      domain: 'other.example',
      image_file_name: '3e4f5a6b7c8d9e0f.gif',
      image_content_type: 'image/gif',
      image_file_size: 2600,
      image_remote_url: 'https://other.example/e/blobcat.gif',
    },
    objects: [
      { key: 'custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', ct: 'image/gif', size: 2600 },
      { key: 'custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png', ct: 'image/png', size: 1400 },
    ],
  },
  {
    label: 'old: local png emoji',
    schemas: OLD,
    table: 'custom_emojis',
    row: { id: '9', shortcode: 'local_party', domain: null, image_file_name: '0123456789abcdef.png', image_content_type: 'image/png', image_file_size: 1300 },
    objects: [
      { key: 'custom_emojis/images/000/000/009/original/0123456789abcdef.png', ct: 'image/png', size: 1300 },
      { key: 'custom_emojis/images/000/000/009/static/0123456789abcdef.png', ct: 'image/png', size: 1250 },
    ],
  },
  {
    label: 'old: preview card GIF (holds JPEG), no cache/',
    schemas: OLD,
    table: 'preview_cards',
    row: {
      id: '98765',
      url: 'https://news.example/a',
      type: 0,
      image_file_name: 'feedface00112233.gif',
      image_content_type: 'image/gif',
      image_file_size: 16000,
    },
    objects: [{ key: 'preview_cards/images/000/098/765/original/feedface00112233.gif', ct: 'image/jpeg', size: 16000 }],
  },
  {
    label: 'old: legacy hero site upload with spaces',
    schemas: OLD,
    table: 'site_uploads',
    row: { id: '1', var: 'hero', file_file_name: 'Our Hero Image.jpg', file_content_type: 'image/jpeg', file_file_size: 33333 },
    objects: [{ key: 'site_uploads/files/000/000/001/original/Our Hero Image.jpg', ct: 'image/jpeg', size: 33333 }],
  },
  {
    label: 'old: pre-v4.0 thumbnail site upload: admin file name, @1x/@2x never generated (MISSING)',
    schemas: OLD,
    table: 'site_uploads',
    row: { id: '2', var: 'thumbnail', file_file_name: 'Server Thumbnail.png', file_content_type: 'image/png', file_file_size: 44000 },
    objects: [
      { key: 'site_uploads/files/000/000/002/original/Server Thumbnail.png', ct: 'image/png', size: 44000 },
      { key: 'site_uploads/files/000/000/002/@1x/Server Thumbnail.png', missing: true },
      { key: 'site_uploads/files/000/000/002/@2x/Server Thumbnail.png', missing: true },
    ],
  },
  {
    label: 'old: mascot',
    schemas: OLD,
    table: 'site_uploads',
    row: { id: '3', var: 'mascot', file_file_name: 'mascot.png', file_content_type: 'image/png', file_file_size: 9100 },
    objects: [{ key: 'site_uploads/files/000/000/003/original/mascot.png', ct: 'image/png', size: 9100 }],
  },
  {
    label: 'old: backup dump: private',
    schemas: OLD,
    table: 'backups',
    acl: 'private',
    row: {
      id: '12',
      user_id: '1',
      processed: true,
      dump_file_name: 'archive-20190101120000-0123456789abcdef0123456789abcdef.zip',
      dump_content_type: 'application/zip',
      dump_file_size: 70000,
    },
    objects: [{ key: 'backups/dumps/000/000/012/original/archive-20190101120000-0123456789abcdef0123456789abcdef.zip', ct: 'application/zip', size: 70000 }],
  },
  {
    label: 'old: import CSV with user-supplied name',
    schemas: OLD,
    table: 'imports',
    row: { id: '1', account_id: '1', type: 0, data_file_name: 'following accounts (1).csv', data_content_type: 'text/csv', data_file_size: 512 },
    objects: [{ key: 'imports/data/000/000/001/original/following accounts (1).csv', ct: 'text/csv', size: 512 }],
  },
];

const OLD_ORPHANS: OrphanSpec[] = [
  {
    schemas: OLD,
    key: 'cache/media_attachments/files/000/000/006/original/5f2c0d9e4b7a1c38.mp4',
    ct: 'video/mp4',
    size: 90000,
    reason: 'cache/ duplicate on a schema without version columns (never cache/)',
  },
  {
    schemas: OLD,
    key: 'media_attachments/files/000/000/016/original/b16b00b5deadbeef.mov',
    ct: 'video/quicktime',
    size: 150000,
    reason: 'raw .mov beside the .mp4',
  },
  { schemas: OLD, key: 'media_attachments/files/000/000/099/original/9999999999999999.png', ct: 'image/png', size: 2000, reason: 'no such media row' },
  {
    schemas: OLD,
    key: 'preview_card_providers/icons/000/000/001/original/1c0e1c0e1c0e1c0e.png',
    ct: 'image/png',
    size: 2000,
    reason: 'preview_card_providers table does not exist in this schema',
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Bytes

const MAGIC: Record<string, number[]> = {
  'image/gif': [...Buffer.from('GIF89a')],
  'image/png': [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
  'image/jpeg': [0xff, 0xd8, 0xff, 0xe0],
  'image/webp': [...Buffer.from('RIFF'), 0, 0, 0, 0, ...Buffer.from('WEBP')],
  'image/avif': [0, 0, 0, 0x1c, ...Buffer.from('ftypavif')],
  'image/x-icon': [0, 0, 1, 0],
  'video/mp4': [0, 0, 0, 0x20, ...Buffer.from('ftypisom')],
  'video/quicktime': [0, 0, 0, 0x14, ...Buffer.from('ftypqt  ')],
  'audio/mpeg': [...Buffer.from('ID3')],
  'application/zip': [0x50, 0x4b, 0x03, 0x04],
};

/** Deterministic pseudo-random bytes for `seed`, starting with a magic number matching `contentType`. */
export function fixtureBytes(seed: string, size: number, contentType: string): Buffer {
  const buf = Buffer.allocUnsafe(size);
  if (contentType === 'text/csv') {
    let text = 'account address,show boosts,notify on new posts,languages\n';
    for (let i = 0; text.length < size; i++) text += `user${i}@example${i % 7}.org,true,false,\n`;
    buf.write(text.slice(0, size), 'latin1');
    return buf;
  }
  const h = createHash('sha256').update(seed).digest();
  let a = h.readUInt32LE(0) | 1,
    b = h.readUInt32LE(4) | 1,
    c = h.readUInt32LE(8) | 1,
    d = h.readUInt32LE(12) | 1;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    // xorshift128
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = (d ^ (d >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    buf.writeUInt32LE(d, i);
  }
  for (; i < size; i++) buf[i] = (a >>> (8 * (i % 4))) & 0xff;
  const magic = MAGIC[contentType];
  if (magic) for (let j = 0; j < magic.length && j < size; j++) buf[j] = magic[j]!;
  return buf;
}

function defaultSize(key: string): number {
  return 200 + (createHash('md5').update(key).digest().readUInt32LE(0) % 40000);
}

// ---------------------------------------------------------------------------------------------------------------
// Build

function parseKey(key: string): { cache: boolean; attachment: string; style: string } {
  const cache = key.startsWith('cache/');
  const segs = (cache ? key.slice(6) : key).split('/');
  return { cache, attachment: segs[1] ?? '', style: segs[segs.length - 2] ?? '' };
}

function hashes(body: Buffer | undefined): { sha256: string; md5: string } {
  if (!body) return { sha256: '', md5: '' };
  return {
    sha256: createHash('sha256').update(body).digest('hex'),
    md5: createHash('md5').update(body).digest('hex'),
  };
}

/** Build the fixture for a schema. 'current' and 'v4.3' share most cases; 'old' is a separate v3.0-like set. */
export function buildFixture(schema: SchemaName): Fixture {
  const cases = (schema === 'old' ? OLD_CASES : NEW_CASES).filter((c) => c.schemas.includes(schema));
  const orphanSpecs = (schema === 'old' ? OLD_ORPHANS : NEW_ORPHANS).filter((o) => o.schemas.includes(schema));

  const rows: FixtureRow[] = [];
  const rowsByTable: Partial<Record<TableName, RowValues[]>> = {};
  const expected: ExpectedObject[] = [];
  const sourceObjects: SourceObject[] = [];
  const expectedByKey = new Map<string, ExpectedObject>();
  const sourceByKey = new Map<string, SourceObject>();

  const addSource = (o: SourceObject) => {
    if (sourceByKey.has(o.key)) throw new Error(`fixture bug: source key twice: ${o.key}`);
    sourceByKey.set(o.key, o);
    sourceObjects.push(o);
  };

  for (const c of cases) {
    const values = { ...c.row };
    if (schema === 'v4.3' && c.table === 'media_attachments' && 'thumbnail_storage_schema_version' in values) {
      // v4.3 has no such column; only local rows or NULL versions may be shared with 'current' (same keys).
      if (values.thumbnail_storage_schema_version != null && values.remote_url) {
        throw new Error(`fixture bug: remote v1 thumbnail shared with v4.3: ${c.label}`);
      }
      delete values.thumbnail_storage_schema_version;
    }
    const keys = (c.objects ?? []).map((o) => o.key);
    rows.push({ table: c.table, label: c.label, values, keys });
    (rowsByTable[c.table] ??= []).push(values);
    const acl = c.acl ?? 'public-read';
    for (const o of c.objects ?? []) {
      if (expectedByKey.has(o.key)) throw new Error(`fixture bug: key owned twice: ${o.key}`);
      const { cache, attachment, style } = parseKey(o.key);
      const sourceKey = o.missing ? undefined : (o.from ?? o.key);
      const contentType = o.missing ? undefined : o.ct;
      if (!o.missing && !contentType) throw new Error(`fixture bug: no content type for ${o.key}`);
      const body = sourceKey && contentType ? fixtureBytes(`${schema}:${sourceKey}`, o.size ?? defaultSize(sourceKey), contentType) : undefined;
      const exp: ExpectedObject = {
        key: o.key,
        sourceKey,
        table: c.table,
        rowId: String(c.row.id),
        attachment,
        style,
        cache,
        contentType,
        cacheControl: o.missing ? undefined : CACHE_CONTROL,
        acl,
        missing: !!o.missing,
        ...(o.relocated ? { relocated: o.relocated } : {}),
        body,
        size: body?.length ?? 0,
        ...hashes(body),
        label: c.label,
      };
      expected.push(exp);
      expectedByKey.set(exp.key, exp);
      if (sourceKey && body && contentType) {
        addSource({ key: sourceKey, body, contentType, cacheControl: CACHE_CONTROL, acl, orphan: false, owner: exp });
      }
    }
  }

  const orphans: SourceObject[] = [];
  for (const o of orphanSpecs) {
    if (expectedByKey.has(o.key)) throw new Error(`fixture bug: orphan is owned: ${o.key}`);
    const body = fixtureBytes(`${schema}:orphan:${o.key}`, o.size ?? defaultSize(o.key), o.ct);
    const so: SourceObject = {
      key: o.key,
      body,
      contentType: o.ct,
      cacheControl: CACHE_CONTROL,
      acl: o.acl ?? 'public-read',
      orphan: true,
      reason: o.reason,
    };
    addSource(so);
    orphans.push(so);
  }

  const present = expected.filter((e) => !e.missing);
  return {
    schema,
    rows,
    rowsByTable,
    expected,
    present,
    missing: expected.filter((e) => e.missing),
    relocated: expected.filter((e) => e.relocated !== undefined),
    sourceObjects,
    orphans,
    expectedByKey,
    sourceByKey,
    presentBytes: present.reduce((n, e) => n + e.size, 0),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Load

/** Anything with the `put` of ./s3.ts S3Helpers (the direct s3rver handle, or helpers over a proxy client). */
export interface FixtureS3Target {
  put(bucket: string, key: string, body: Buffer, opts?: { contentType?: string; cacheControl?: string; acl?: ObjectCannedACL }): Promise<void>;
}

export interface LoadFixtureOptions {
  /** Send each object's Mastodon ACL as x-amz-acl (default true). */
  sendAcl?: boolean;
  /** Parallel uploads (default 8). */
  concurrency?: number;
}

const TIMESTAMP_COLUMNS = ['created_at', 'updated_at'];

/**
 * Insert the fixture rows into `db` (whose schema must match `fixture.schema`) and upload every source object to
 * `bucket` (which must exist) as `keyPrefix + '/' + key`, with its Content-Type, Cache-Control and ACL.
 * Throws if a row names a column the table lacks (fixture/schema mismatch).
 */
export async function loadFixture(
  fixture: Fixture,
  db: pg.Client,
  s3: FixtureS3Target,
  bucket: string,
  keyPrefix?: string,
  options: LoadFixtureOptions = {},
): Promise<{ rows: number; objects: number; bytes: number }> {
  const { rows: colRows } = await db.query<{ table_name: string; column_name: string }>(
    `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()`,
  );
  const columns = new Map<string, Set<string>>();
  for (const r of colRows) {
    let s = columns.get(r.table_name);
    if (!s) columns.set(r.table_name, (s = new Set()));
    s.add(r.column_name);
  }
  const order = tablesOf(fixture.schema);
  const sorted = [...fixture.rows].sort((x, y) => order.indexOf(x.table) - order.indexOf(y.table));
  for (const row of sorted) {
    const cols = columns.get(row.table);
    if (!cols) throw new Error(`fixture row for missing table ${row.table} (${row.label})`);
    const values: RowValues = { ...row.values };
    for (const t of TIMESTAMP_COLUMNS) if (cols.has(t) && values[t] === undefined) values[t] = TS;
    const names = Object.keys(values);
    for (const n of names) {
      if (!cols.has(n)) throw new Error(`fixture row for ${row.table} names missing column ${n} (${row.label})`);
    }
    const params = names.map((n) => {
      const v = values[n];
      return v !== null && typeof v === 'object' && !(v instanceof Date) ? JSON.stringify(v) : v;
    });
    await db.query(`INSERT INTO ${row.table} (${names.map((n) => `"${n}"`).join(', ')}) VALUES (${names.map((_, i) => `$${i + 1}`).join(', ')})`, params);
  }

  const sendAcl = options.sendAcl ?? true;
  const queue = [...fixture.sourceObjects];
  let bytes = 0;
  const worker = async () => {
    for (let o = queue.shift(); o; o = queue.shift()) {
      await s3.put(bucket, withPrefix(o.key, keyPrefix), o.body, {
        contentType: o.contentType,
        cacheControl: o.cacheControl,
        ...(sendAcl ? { acl: o.acl } : {}),
      });
      bytes += o.body.length;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 8) }, worker));
  return { rows: fixture.rows.length, objects: fixture.sourceObjects.length, bytes };
}
