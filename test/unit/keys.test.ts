/**
 * Key derivation against docs/storage-layout.md. Every case names the section of that document it checks.
 * Expected keys are written out literally from the document, never computed with the module under test.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_NAMES, applyKeyPrefix, idPartition, ownedObjects, type JobName, type Row } from '../../src/mastodon/index.js';

// ---------------------------------------------------------------------------------------------------------------
// §1.2 :id_partition
// ---------------------------------------------------------------------------------------------------------------
const ID_PARTITION_CASES: ReadonlyArray<[name: string, id: string, expected: string]> = [
  ['§1.2 id_partition: 1 is padded to 9 digits, 3 groups', '1', '000/000/001'],
  ['§1.2 id_partition: 999999999 is the last 9-digit id, 3 groups', '999999999', '999/999/999'],
  ['§1.2 id_partition: 1e9 is padded to 12 digits, 4 groups', '1000000000', '001/000/000/000'],
  ['§1.2 id_partition: 10-digit id gives 4 groups', '1234567890', '001/234/567/890'],
  ['§1.2 id_partition: 11-digit id gives 4 groups', '12345678901', '012/345/678/901'],
  ['§1.2 id_partition: 12-digit id gives 4 groups', '123456789012', '123/456/789/012'],
  ['§1.2 id_partition: 13-digit id drops its last digit', '1234567890123', '123/456/789/012'],
  ['§1.2 id_partition: 17-digit id drops its last two digits', '12345678901234567', '123/456/789/012/345'],
  ['§1.2 id_partition: 18-digit id gives 6 groups, the whole id', '123456789012345678', '123/456/789/012/345/678'],
  ['§1.2 id_partition: snowflake 109349205816583424', '109349205816583424', '109/349/205/816/583/424'],
  ['§1.2 id_partition: the instance actor -99 gives 000/000', '-99', '000/000'],
];

describe('§1.2 id_partition', () => {
  for (const [name, id, expected] of ID_PARTITION_CASES) {
    test(name, () => assert.equal(idPartition(id), expected));
  }
});

// ---------------------------------------------------------------------------------------------------------------
// §1.1 S3_KEY_PREFIX (and §0: strip ONE leading "/")
// ---------------------------------------------------------------------------------------------------------------
const PREFIX_CASES: ReadonlyArray<[name: string, prefix: string | undefined, key: string, expected: string]> = [
  [
    '§1.1 S3_KEY_PREFIX: unset leaves the key alone',
    undefined,
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
  [
    '§1.1 S3_KEY_PREFIX: empty value gives a leading "/" that is stripped, as if unset',
    '',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
  [
    '§1.1 S3_KEY_PREFIX: "mastodon" is joined with "/"',
    'mastodon',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'mastodon/accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
  [
    '§1.1 S3_KEY_PREFIX: a trailing slash gives "//" in the key',
    'mastodon/',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'mastodon//accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
  [
    '§1.1/§0 S3_KEY_PREFIX: a leading slash is stripped once',
    '/mastodon',
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'mastodon/accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
  [
    '§1.1 S3_KEY_PREFIX: the prefix comes before cache/',
    'pfx',
    'cache/accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    'pfx/cache/accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
  ],
];

describe('§1.1 S3_KEY_PREFIX', () => {
  for (const [name, prefix, key, expected] of PREFIX_CASES) {
    test(name, () => assert.equal(applyKeyPrefix(prefix, key), expected));
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Keys a row owns: §0, §1.2 (:prefix_url, :filename), §2, §2.1, §2.2, §2.4
// ---------------------------------------------------------------------------------------------------------------
interface KeyCase {
  readonly name: string;
  readonly job: JobName;
  readonly row: Row;
  /** S3_KEY_PREFIX to apply to every key, when the case is about it. */
  readonly prefix?: string;
  /** In attachment then style order. */
  readonly keys: readonly string[];
}

const REMOTE_URL = 'https://other.example/m/a.png';

const KEY_CASES: readonly KeyCase[] = [
  // ----- §2.4 worked examples, verbatim -----
  {
    name: '§2.4 A: remote video, file schema 1, thumbnail from before v4.6 (version NULL)',
    job: 'media_attachments',
    row: {
      id: '109349205816583424',
      remote_url: 'https://other.example/m/a.mp4',
      type: 2,
      file_file_name: '5f2c0d9e4b7a1c38.mp4',
      file_content_type: 'video/mp4',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_storage_schema_version: null,
    },
    keys: [
      'cache/media_attachments/files/109/349/205/816/583/424/original/5f2c0d9e4b7a1c38.mp4',
      'cache/media_attachments/files/109/349/205/816/583/424/small/5f2c0d9e4b7a1c38.png',
      'media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg',
    ],
  },
  {
    name: '§2.4 A with S3_KEY_PREFIX=mastodon: every key starts with mastodon/',
    job: 'media_attachments',
    prefix: 'mastodon',
    row: {
      id: '109349205816583424',
      remote_url: 'https://other.example/m/a.mp4',
      type: 2,
      file_file_name: '5f2c0d9e4b7a1c38.mp4',
      file_content_type: 'video/mp4',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_storage_schema_version: null,
    },
    keys: [
      'mastodon/cache/media_attachments/files/109/349/205/816/583/424/original/5f2c0d9e4b7a1c38.mp4',
      'mastodon/cache/media_attachments/files/109/349/205/816/583/424/small/5f2c0d9e4b7a1c38.png',
      'mastodon/media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg',
    ],
  },
  {
    name: '§2.4 B: local animated-GIF avatar',
    job: 'accounts',
    row: {
      id: '1',
      domain: null,
      avatar_file_name: '8c2b5e7d9f0a1b3c.gif',
      avatar_content_type: 'image/gif',
      avatar_storage_schema_version: 1,
    },
    keys: ['accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif', 'accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.png'],
  },
  {
    name: '§2.4 C: remote custom emoji (GIF), schema 1',
    job: 'custom_emojis',
    row: {
      id: '4321',
      domain: 'other.example',
      image_file_name: '3e4f5a6b7c8d9e0f.gif',
      image_content_type: 'image/gif',
      image_storage_schema_version: 1,
    },
    keys: ['cache/custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', 'cache/custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png'],
  },
  {
    name: '§2.4 C: remote custom emoji with schema NULL has no cache/',
    job: 'custom_emojis',
    row: {
      id: '4321',
      domain: 'other.example',
      image_file_name: '3e4f5a6b7c8d9e0f.gif',
      image_content_type: 'image/gif',
      image_storage_schema_version: null,
    },
    keys: ['custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', 'custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png'],
  },
  {
    name: '§2.4 D: local static-GIF media id 5',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      type: 0,
      file_file_name: 'c0ffee0123456789.gif',
      file_content_type: 'image/gif',
      file_storage_schema_version: 1,
    },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.gif', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.4 D: preview card 98765, GIF, version 1 keeps .gif under cache/',
    job: 'preview_cards',
    row: {
      id: '98765',
      url: 'https://other.example/article',
      image_file_name: 'feedface00112233.gif',
      image_content_type: 'image/gif',
      image_storage_schema_version: 1,
    },
    keys: ['cache/preview_cards/images/000/098/765/original/feedface00112233.gif'],
  },
  {
    name: '§2.4 D: site upload 3, var thumbnail',
    job: 'site_uploads',
    row: { id: '3', var: 'thumbnail', file_file_name: 'd00dfeed12345678.png', file_content_type: 'image/png' },
    keys: [
      'site_uploads/files/000/000/003/original/d00dfeed12345678.png',
      'site_uploads/files/000/000/003/@1x/d00dfeed12345678.png',
      'site_uploads/files/000/000/003/@2x/d00dfeed12345678.png',
    ],
  },
  {
    name: '§2.4 D: backup 12',
    job: 'backups',
    row: {
      id: '12',
      user_id: '1',
      dump_file_name: 'archive-20240101120000-0123456789abcdef0123456789abcdef.zip',
      dump_content_type: 'application/zip',
    },
    keys: ['backups/dumps/000/000/012/original/archive-20240101120000-0123456789abcdef0123456789abcdef.zip'],
  },

  // ----- §0: a NULL or empty file name owns nothing -----
  {
    name: '§0 media: NULL file name owns nothing though content type, size, meta, remote_url and version are set',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: REMOTE_URL,
      type: 3,
      file_file_name: null,
      file_content_type: 'image/png',
      file_file_size: 1234,
      file_storage_schema_version: 1,
      file_meta: { focus: { x: 0, y: 0 } },
      thumbnail_file_name: null,
      thumbnail_remote_url: 'https://other.example/t.png',
      thumbnail_storage_schema_version: 1,
    },
    keys: [],
  },
  {
    name: '§0 media: empty file name owns nothing; a thumbnail with a name still counts',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      file_file_name: '',
      file_content_type: 'video/mp4',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_content_type: 'image/jpeg',
    },
    keys: ['media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.jpeg'],
  },
  {
    name: '§0 media: empty thumbnail name owns nothing though its other columns are set',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      file_file_name: 'c0ffee0123456789.mp3',
      file_content_type: 'audio/mpeg',
      thumbnail_file_name: '',
      thumbnail_content_type: 'image/jpeg',
      thumbnail_file_size: 99,
      thumbnail_remote_url: 'https://other.example/t.jpeg',
      thumbnail_storage_schema_version: 1,
    },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp3'],
  },
  {
    name: '§0 accounts: NULL avatar and empty header own nothing though remote_url and version are set',
    job: 'accounts',
    row: {
      id: '1',
      domain: 'other.example',
      avatar_file_name: null,
      avatar_content_type: 'image/gif',
      avatar_remote_url: 'https://other.example/a.gif',
      avatar_storage_schema_version: 1,
      header_file_name: '',
      header_content_type: 'image/gif',
      header_remote_url: 'https://other.example/h.gif',
      header_storage_schema_version: 1,
    },
    keys: [],
  },
  {
    name: '§0 custom_emojis: NULL image name owns nothing (no static either)',
    job: 'custom_emojis',
    row: { id: '4321', domain: null, image_file_name: null, image_content_type: 'image/png', image_storage_schema_version: 1 },
    keys: [],
  },
  {
    name: '§0 site_uploads: NULL file name owns nothing though var and meta are set',
    job: 'site_uploads',
    row: { id: '3', var: 'app_icon', file_file_name: null, file_content_type: 'image/png', meta: { width: 1, height: 1 } },
    keys: [],
  },
  {
    name: '§0 backups: empty dump name owns nothing',
    job: 'backups',
    row: { id: '12', user_id: '1', dump_file_name: '', dump_content_type: 'application/zip', dump_file_size: 10 },
    keys: [],
  },

  // ----- §2: every attachment with its CLASS/ATTACH -----
  {
    name: '§2 media_attachments: file → media_attachments/files and thumbnail → media_attachments/thumbnails',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      type: 2,
      file_file_name: 'c0ffee0123456789.mp4',
      file_content_type: 'video/mp4',
      thumbnail_file_name: 'a1b2c3d4e5f60718.png',
      thumbnail_content_type: 'image/png',
    },
    keys: [
      'media_attachments/files/000/000/005/original/c0ffee0123456789.mp4',
      'media_attachments/files/000/000/005/small/c0ffee0123456789.png',
      'media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.png',
    ],
  },
  {
    name: '§2 accounts: avatar → accounts/avatars, header → accounts/headers; static only for the GIF one',
    job: 'accounts',
    row: {
      id: '2',
      domain: null,
      avatar_file_name: '0123456789abcdef.png',
      avatar_content_type: 'image/png',
      header_file_name: 'fedcba9876543210.gif',
      header_content_type: 'image/gif',
    },
    keys: [
      'accounts/avatars/000/000/002/original/0123456789abcdef.png',
      'accounts/headers/000/000/002/original/fedcba9876543210.gif',
      'accounts/headers/000/000/002/static/fedcba9876543210.png',
    ],
  },
  {
    name: '§2 accounts: GIF avatar and GIF header both get static png; snowflake id gives 6 groups',
    job: 'accounts',
    row: {
      id: '109349205816583424',
      domain: null,
      avatar_file_name: '0123456789abcdef.gif',
      avatar_content_type: 'image/gif',
      header_file_name: 'fedcba9876543210.gif',
      header_content_type: 'image/gif',
    },
    keys: [
      'accounts/avatars/109/349/205/816/583/424/original/0123456789abcdef.gif',
      'accounts/avatars/109/349/205/816/583/424/static/0123456789abcdef.png',
      'accounts/headers/109/349/205/816/583/424/original/fedcba9876543210.gif',
      'accounts/headers/109/349/205/816/583/424/static/fedcba9876543210.png',
    ],
  },
  {
    name: '§2 accounts: a non-GIF (jpeg) avatar has no static',
    job: 'accounts',
    row: { id: '2', domain: null, avatar_file_name: '0123456789abcdef.jpeg', avatar_content_type: 'image/jpeg' },
    keys: ['accounts/avatars/000/000/002/original/0123456789abcdef.jpeg'],
  },
  {
    name: '§2 custom_emojis: image → custom_emojis/images, static png always (png emoji too)',
    job: 'custom_emojis',
    row: { id: '7', domain: null, shortcode: 'blob', image_file_name: '1122334455667788.png', image_content_type: 'image/png' },
    keys: ['custom_emojis/images/000/000/007/original/1122334455667788.png', 'custom_emojis/images/000/000/007/static/1122334455667788.png'],
  },
  {
    name: '§2 preview_cards: image → preview_cards/images, no styles',
    job: 'preview_cards',
    row: { id: '98765', image_file_name: 'feedface00112233.jpeg', image_content_type: 'image/jpeg', image_storage_schema_version: null },
    keys: ['preview_cards/images/000/098/765/original/feedface00112233.jpeg'],
  },
  {
    name: '§2 preview_card_providers: icon → preview_card_providers/icons, static png always',
    job: 'preview_card_providers',
    row: { id: '2', domain: 'other.example', icon_file_name: '99aa88bb77cc66dd.jpeg', icon_content_type: 'image/jpeg' },
    keys: ['preview_card_providers/icons/000/000/002/original/99aa88bb77cc66dd.jpeg', 'preview_card_providers/icons/000/000/002/static/99aa88bb77cc66dd.png'],
  },
  {
    name: '§2 site_uploads: file → site_uploads/files (mascot: no styles)',
    job: 'site_uploads',
    row: { id: '4', var: 'mascot', file_file_name: 'abad1deaabad1dea.png', file_content_type: 'image/png' },
    keys: ['site_uploads/files/000/000/004/original/abad1deaabad1dea.png'],
  },
  {
    name: '§2 backups: dump → backups/dumps, no styles',
    job: 'backups',
    row: { id: '13', user_id: '1', dump_file_name: 'archive-20250102030405-ffffffffffffffffffffffffffffffff.zip' },
    keys: ['backups/dumps/000/000/013/original/archive-20250102030405-ffffffffffffffffffffffffffffffff.zip'],
  },
  {
    name: '§2 imports: data → imports/data (stays "data"), user-supplied CSV name kept',
    job: 'imports',
    row: { id: '7', account_id: '1', data_file_name: 'following_accounts.csv', data_content_type: 'text/csv' },
    keys: ['imports/data/000/000/007/original/following_accounts.csv'],
  },

  // ----- §1.2 :prefix_url — version -----
  {
    name: '§1.2 prefix_url: remote media, version NULL → no cache/',
    job: 'media_attachments',
    row: { id: '5', remote_url: REMOTE_URL, file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: null },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§1.2 prefix_url: remote media, version 0 → no cache/',
    job: 'media_attachments',
    row: { id: '5', remote_url: REMOTE_URL, file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: 0 },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§1.2 prefix_url: remote media, version 1 → cache/ on every style',
    job: 'media_attachments',
    row: { id: '5', remote_url: REMOTE_URL, file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: 1 },
    keys: ['cache/media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'cache/media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§1.2 prefix_url: remote media, version column missing (before v3.1.4) reads as 0 → no cache/',
    job: 'media_attachments',
    row: { id: '5', remote_url: REMOTE_URL, file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },

  // ----- §1.2 :prefix_url — media local? is remote_url.blank? -----
  {
    name: "§1.2/§2 prefix_url: media with remote_url '' is local → no cache/ at version 1",
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: 1 },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§1.2/§2 prefix_url: media with whitespace-only remote_url is blank, so local → no cache/',
    job: 'media_attachments',
    row: { id: '5', remote_url: ' \t\n ', file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: 1 },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§1.2/§2 prefix_url: media with remote_url NULL is blank, so local → no cache/',
    job: 'media_attachments',
    row: { id: '5', remote_url: null, file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png', file_storage_schema_version: 1 },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },

  // ----- §1.2 :prefix_url — thumbnail: its own version column (v4.6+), the file's local? -----
  {
    name: '§1.2/§2 prefix_url: remote media, thumbnail version column missing (before v4.6) → thumbnail not under cache/',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: REMOTE_URL,
      file_file_name: 'c0ffee0123456789.mp3',
      file_content_type: 'audio/mpeg',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
    },
    keys: [
      'cache/media_attachments/files/000/000/005/original/c0ffee0123456789.mp3',
      'media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.jpeg',
    ],
  },
  {
    name: '§1.2/§2 prefix_url: remote media, thumbnail version 1 (v4.6+) → thumbnail under cache/, file version 0 not',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: REMOTE_URL,
      file_file_name: 'c0ffee0123456789.mp3',
      file_content_type: 'audio/mpeg',
      file_storage_schema_version: 0,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_storage_schema_version: 1,
    },
    keys: [
      'media_attachments/files/000/000/005/original/c0ffee0123456789.mp3',
      'cache/media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.jpeg',
    ],
  },
  {
    name: '§1.2/§2 prefix_url: thumbnail uses remote_url (not thumbnail_remote_url) for local?',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      file_file_name: 'c0ffee0123456789.mp3',
      file_content_type: 'audio/mpeg',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_remote_url: 'https://other.example/t.jpeg',
      thumbnail_storage_schema_version: 1,
    },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp3', 'media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.jpeg'],
  },

  // ----- §1.2 :prefix_url — accounts local? is domain IS NULL -----
  {
    name: '§1.2/§2 prefix_url: account with domain NULL is local → no cache/ at version 1',
    job: 'accounts',
    row: { id: '1', domain: null, avatar_file_name: '0123456789abcdef.png', avatar_content_type: 'image/png', avatar_storage_schema_version: 1 },
    keys: ['accounts/avatars/000/000/001/original/0123456789abcdef.png'],
  },
  {
    name: "§1.2/§2 prefix_url: account with domain '' is not NULL, so remote → cache/ at version 1",
    job: 'accounts',
    row: { id: '1', domain: '', avatar_file_name: '0123456789abcdef.png', avatar_content_type: 'image/png', avatar_storage_schema_version: 1 },
    keys: ['cache/accounts/avatars/000/000/001/original/0123456789abcdef.png'],
  },
  {
    name: '§1.2/§2 prefix_url: remote account, version per attachment (avatar 1 → cache/, header NULL → none)',
    job: 'accounts',
    row: {
      id: '1',
      domain: 'other.example',
      avatar_file_name: '0123456789abcdef.gif',
      avatar_content_type: 'image/gif',
      avatar_storage_schema_version: 1,
      header_file_name: 'fedcba9876543210.gif',
      header_content_type: 'image/gif',
      header_storage_schema_version: null,
    },
    keys: [
      'cache/accounts/avatars/000/000/001/original/0123456789abcdef.gif',
      'cache/accounts/avatars/000/000/001/static/0123456789abcdef.png',
      'accounts/headers/000/000/001/original/fedcba9876543210.gif',
      'accounts/headers/000/000/001/static/fedcba9876543210.png',
    ],
  },
  {
    name: '§1.2/§2 prefix_url: remote account, version 0 → no cache/',
    job: 'accounts',
    row: { id: '1', domain: 'other.example', avatar_file_name: '0123456789abcdef.png', avatar_content_type: 'image/png', avatar_storage_schema_version: 0 },
    keys: ['accounts/avatars/000/000/001/original/0123456789abcdef.png'],
  },
  {
    name: '§1.2/§2 prefix_url: remote account, version column missing → no cache/',
    job: 'accounts',
    row: { id: '1', domain: 'other.example', header_file_name: 'fedcba9876543210.jpeg', header_content_type: 'image/jpeg' },
    keys: ['accounts/headers/000/000/001/original/fedcba9876543210.jpeg'],
  },

  // ----- §1.2 :prefix_url — custom emoji local? is domain IS NULL ('' is remote) -----
  {
    name: '§1.2/§2 prefix_url: emoji with domain NULL is local → no cache/ at version 1',
    job: 'custom_emojis',
    row: { id: '4321', domain: null, image_file_name: '3e4f5a6b7c8d9e0f.gif', image_content_type: 'image/gif', image_storage_schema_version: 1 },
    keys: ['custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', 'custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png'],
  },
  {
    name: "§1.2/§2 prefix_url: emoji with domain '' counts as remote → cache/ at version 1",
    job: 'custom_emojis',
    row: { id: '4321', domain: '', image_file_name: '3e4f5a6b7c8d9e0f.gif', image_content_type: 'image/gif', image_storage_schema_version: 1 },
    keys: ['cache/custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif', 'cache/custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png'],
  },

  // ----- §1.2 :prefix_url — preview cards are always remote -----
  {
    name: '§1.2/§2 prefix_url: preview card version 0 → no cache/',
    job: 'preview_cards',
    row: { id: '98765', image_file_name: 'feedface00112233.png', image_content_type: 'image/png', image_storage_schema_version: 0 },
    keys: ['preview_cards/images/000/098/765/original/feedface00112233.png'],
  },
  {
    name: '§1.2/§2 prefix_url: preview card version column missing → no cache/',
    job: 'preview_cards',
    row: { id: '98765', image_file_name: 'feedface00112233.png', image_content_type: 'image/png' },
    keys: ['preview_cards/images/000/098/765/original/feedface00112233.png'],
  },
  {
    name: '§1.2/§2 prefix_url: preview card version 1 → cache/ (local? is always false)',
    job: 'preview_cards',
    row: { id: '98765', image_file_name: 'feedface00112233.png', image_content_type: 'image/png', image_storage_schema_version: 1 },
    keys: ['cache/preview_cards/images/000/098/765/original/feedface00112233.png'],
  },

  // ----- §1.2/§2 :prefix_url — models without local? never use cache/, whatever a version column says -----
  {
    name: '§1.2/§2 prefix_url: preview_card_providers never cache/ (no local?), even with a version of 1',
    job: 'preview_card_providers',
    row: { id: '2', domain: 'other.example', icon_file_name: '99aa88bb77cc66dd.png', icon_content_type: 'image/png', icon_storage_schema_version: 1 },
    keys: ['preview_card_providers/icons/000/000/002/original/99aa88bb77cc66dd.png', 'preview_card_providers/icons/000/000/002/static/99aa88bb77cc66dd.png'],
  },
  {
    name: '§1.2/§2 prefix_url: site_uploads never cache/ (no local?), even with a version of 1',
    job: 'site_uploads',
    row: { id: '4', var: 'mascot', file_file_name: 'abad1deaabad1dea.png', file_storage_schema_version: 1 },
    keys: ['site_uploads/files/000/000/004/original/abad1deaabad1dea.png'],
  },
  {
    name: '§1.2/§2 prefix_url: backups never cache/ (no local?), even with a version of 1',
    job: 'backups',
    row: { id: '12', dump_file_name: 'archive-20240101120000-0123456789abcdef0123456789abcdef.zip', dump_storage_schema_version: 1 },
    keys: ['backups/dumps/000/000/012/original/archive-20240101120000-0123456789abcdef0123456789abcdef.zip'],
  },
  {
    name: '§1.2/§2 prefix_url: imports never cache/ (no local?), even with a version of 1',
    job: 'imports',
    row: { id: '7', data_file_name: 'following_accounts.csv', data_storage_schema_version: 1 },
    keys: ['imports/data/000/000/007/original/following_accounts.csv'],
  },

  // ----- §2.1 every media content type -----
  {
    name: '§2.1 image/gif: small → .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.gif', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.gif', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 video/webm: small → .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.webm', file_content_type: 'video/webm' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.webm', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 video/quicktime (raw .mov of an interrupted row): small → .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', processing: 3, file_file_name: 'c0ffee0123456789.mov', file_content_type: 'video/quicktime' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mov', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 image/heic: small → .jpeg, original keeps .heic',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.heic', file_content_type: 'image/heic' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.heic', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg'],
  },
  {
    name: '§2.1 image/heif: small → .jpeg',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.heif', file_content_type: 'image/heif' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.heif', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg'],
  },
  {
    name: '§2.1 image/avif: small → .jpeg',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.avif', file_content_type: 'image/avif' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.avif', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg'],
  },
  {
    name: '§2.1 image/jpeg (.jpeg, e.g. a converted HEIC): small keeps .jpeg',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.jpeg', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.jpeg', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg'],
  },
  {
    name: '§2.1 image/jpeg (.jpg): small keeps .jpg',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.jpg', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.jpg', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpg'],
  },
  {
    name: '§2.1 image/png: small keeps .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 image/webp: small keeps .webp',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.webp', file_content_type: 'image/webp' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.webp', 'media_attachments/files/000/000/005/small/c0ffee0123456789.webp'],
  },
  {
    name: '§2.1 video/mp4: small → .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 2, file_file_name: 'c0ffee0123456789.mp4', file_content_type: 'video/mp4' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp4', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 video/ogg: small → .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.ogv', file_content_type: 'video/ogg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.ogv', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 audio/mpeg: original only; cover art is the thumbnail, original only',
    job: 'media_attachments',
    row: {
      id: '5',
      remote_url: '',
      type: 4,
      file_file_name: 'c0ffee0123456789.mp3',
      file_content_type: 'audio/mpeg',
      file_meta: { small: { width: 400, height: 400 } },
      thumbnail_file_name: 'a1b2c3d4e5f60718.png',
      thumbnail_content_type: 'image/png',
    },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp3', 'media_attachments/thumbnails/000/000/005/original/a1b2c3d4e5f60718.png'],
  },
  {
    name: '§2.1 other audio (audio/ogg): original only',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.ogg', file_content_type: 'audio/ogg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.ogg'],
  },
  {
    name: '§2.1 NULL content type: original only',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.png', file_content_type: null },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 unknown content type: original only',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 3, file_file_name: 'c0ffee0123456789.bin', file_content_type: 'application/octet-stream' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.bin'],
  },
  {
    name: '§2.1 processing: animated GIF is stored as mp4 (gifv) → original .mp4, small .png, no .gif key',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 1, file_file_name: 'c0ffee0123456789.mp4', file_content_type: 'video/mp4' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp4', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 processing: static GIF keeps .gif, its small key is .png',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 0, file_file_name: 'c0ffee0123456789.gif', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.gif', 'media_attachments/files/000/000/005/small/c0ffee0123456789.png'],
  },
  {
    name: '§2.1 the type column is not used for styles: type 4 (audio) with image/jpeg still has small .jpeg',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 4, file_file_name: 'c0ffee0123456789.jpeg', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.jpeg', 'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg'],
  },
  {
    name: '§2.1 the type column is not used for styles: type 0 (image) with audio/mpeg has original only',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', type: 0, file_file_name: 'c0ffee0123456789.mp3', file_content_type: 'audio/mpeg' },
    keys: ['media_attachments/files/000/000/005/original/c0ffee0123456789.mp3'],
  },

  // ----- §2.2 every site upload var -----
  {
    name: '§2.2 site_uploads favicon: 16, 32, 48 as png (an .ico original keeps its name)',
    job: 'site_uploads',
    row: { id: '5', var: 'favicon', file_file_name: 'f00dcafe12345678.ico', file_content_type: 'image/vnd.microsoft.icon' },
    keys: [
      'site_uploads/files/000/000/005/original/f00dcafe12345678.ico',
      'site_uploads/files/000/000/005/16/f00dcafe12345678.png',
      'site_uploads/files/000/000/005/32/f00dcafe12345678.png',
      'site_uploads/files/000/000/005/48/f00dcafe12345678.png',
    ],
  },
  {
    name: '§2.2 site_uploads app_icon: all 18 sizes as png, in order',
    job: 'site_uploads',
    row: { id: '6', var: 'app_icon', file_file_name: 'a99a99a99a99a99a.png', file_content_type: 'image/png' },
    keys: [
      'site_uploads/files/000/000/006/original/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/57/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/60/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/72/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/76/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/114/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/120/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/144/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/152/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/167/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/180/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/1024/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/36/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/48/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/96/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/192/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/256/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/384/a99a99a99a99a99a.png',
      'site_uploads/files/000/000/006/512/a99a99a99a99a99a.png',
    ],
  },
  {
    name: '§2.2 site_uploads thumbnail with a pre-v4.0 upload name: @1x/@2x keys still derived (png)',
    job: 'site_uploads',
    row: { id: '1', var: 'thumbnail', file_file_name: 'My Server Banner.jpg', file_content_type: 'image/jpeg' },
    keys: [
      'site_uploads/files/000/000/001/original/My Server Banner.jpg',
      'site_uploads/files/000/000/001/@1x/My Server Banner.png',
      'site_uploads/files/000/000/001/@2x/My Server Banner.png',
    ],
  },
  {
    name: '§2.2 site_uploads mascot: no styles',
    job: 'site_uploads',
    row: { id: '7', var: 'mascot', file_file_name: 'mascot.gif', file_content_type: 'image/gif' },
    keys: ['site_uploads/files/000/000/007/original/mascot.gif'],
  },
  {
    name: '§2.2 site_uploads legacy hero (any other var): no styles',
    job: 'site_uploads',
    row: { id: '2', var: 'hero', file_file_name: 'hero image.png', file_content_type: 'image/png' },
    keys: ['site_uploads/files/000/000/002/original/hero image.png'],
  },

  // ----- §1.2 :filename -----
  {
    name: '§1.2 filename: original keeps the stored name even when styles have a format (static png)',
    job: 'custom_emojis',
    row: { id: '8', domain: null, image_file_name: 'Blob Cat.GIF', image_content_type: 'image/gif' },
    keys: ['custom_emojis/images/000/000/008/original/Blob Cat.GIF', 'custom_emojis/images/000/000/008/static/Blob Cat.png'],
  },
  {
    name: '§1.2 filename: a style without format keeps the original extension as written (.JPG, spaces)',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'IMG 0001.JPG', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/IMG 0001.JPG', 'media_attachments/files/000/000/005/small/IMG 0001.JPG'],
  },
  {
    name: '§1.2 filename: several dots, format replaces only the last extension',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'holiday.2019.final.gif', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/holiday.2019.final.gif', 'media_attachments/files/000/000/005/small/holiday.2019.final.png'],
  },
  {
    name: '§1.2 filename: several dots, no format keeps the whole name',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'holiday.2019.final.jpg', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/holiday.2019.final.jpg', 'media_attachments/files/000/000/005/small/holiday.2019.final.jpg'],
  },
  {
    name: '§1.2 filename: empty extension means no dot (no format: small is the bare name)',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'noextension', file_content_type: 'image/png' },
    keys: ['media_attachments/files/000/000/005/original/noextension', 'media_attachments/files/000/000/005/small/noextension'],
  },
  {
    name: '§1.2 filename: empty extension with a format gets only the format',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'noextension', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/noextension', 'media_attachments/files/000/000/005/small/noextension.png'],
  },
  {
    name: '§1.2 filename: a leading dot does not start an extension (".hidden" → small ".hidden")',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: '.hidden', file_content_type: 'image/jpeg' },
    keys: ['media_attachments/files/000/000/005/original/.hidden', 'media_attachments/files/000/000/005/small/.hidden'],
  },
  {
    name: '§1.2 filename: a leading dot with a format (".hidden" → ".hidden.png")',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: '.hidden', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/.hidden', 'media_attachments/files/000/000/005/small/.hidden.png'],
  },
  {
    name: '§1.2 filename: a leading dot and an extension (".hidden.gif" → ".hidden.png")',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: '.hidden.gif', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/.hidden.gif', 'media_attachments/files/000/000/005/small/.hidden.png'],
  },
  {
    name: '§1.2 filename: two leading dots and no other dot: no extension, whole name is the basename',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: '..hidden', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/..hidden', 'media_attachments/files/000/000/005/small/..hidden.png'],
  },
  {
    name: '§1.2 filename: a trailing dot is an empty extension, so no dot (no format)',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'photo.', file_content_type: 'image/png' },
    keys: ['media_attachments/files/000/000/005/original/photo.', 'media_attachments/files/000/000/005/small/photo'],
  },
  {
    name: '§1.2 filename: a trailing dot with a format ("photo." → "photo.png")',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'photo.', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/photo.', 'media_attachments/files/000/000/005/small/photo.png'],
  },
  {
    name: '§1.2/§2.3 filename: unicode and spaces are kept as written',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'ñandú café 😀.gif', file_content_type: 'image/gif' },
    keys: ['media_attachments/files/000/000/005/original/ñandú café 😀.gif', 'media_attachments/files/000/000/005/small/ñandú café 😀.png'],
  },
  {
    name: '§1.2/§2.3 filename: "+" is kept as written (no encoding in the key)',
    job: 'media_attachments',
    row: { id: '5', remote_url: '', file_file_name: 'a+b c.webp', file_content_type: 'image/webp' },
    keys: ['media_attachments/files/000/000/005/original/a+b c.webp', 'media_attachments/files/000/000/005/small/a+b c.webp'],
  },
  {
    name: '§1.2/§2 filename: preview card GIF keeps .gif although its original has format jpg',
    job: 'preview_cards',
    row: { id: '3', image_file_name: 'feedface00112233.gif', image_content_type: 'image/gif' },
    keys: ['preview_cards/images/000/000/003/original/feedface00112233.gif'],
  },
];

describe('keys a row owns (§0, §1.2, §2, §2.1, §2.2, §2.4)', () => {
  for (const c of KEY_CASES) {
    test(c.name, () => {
      const keys = ownedObjects(c.job, c.row).map((object) => applyKeyPrefix(c.prefix, object.key));
      assert.deepEqual(keys, c.keys);
    });
  }
});

test('§2 every table that owns files has a job, and no other', () => {
  assert.deepEqual([...JOB_NAMES].sort(), [
    'accounts',
    'backups',
    'custom_emojis',
    'imports',
    'media_attachments',
    'preview_card_providers',
    'preview_cards',
    'site_uploads',
  ]);
});

// ---------------------------------------------------------------------------------------------------------------
// §6 ACL visibility
// ---------------------------------------------------------------------------------------------------------------
const VISIBILITY_CASES: ReadonlyArray<[name: string, job: JobName, row: Row, expected: 'default' | 'private' | 'owner']> = [
  [
    "§6 ACL: backup dumps are their owner's (private ACL, served by link)",
    'backups',
    { id: '12', dump_file_name: 'archive-20240101120000-0123456789abcdef0123456789abcdef.zip' },
    'owner',
  ],
  [
    '§6 ACL: media (every style, file and thumbnail) of a suspended account is private',
    'media_attachments',
    {
      id: '5',
      remote_url: '',
      account_suspended: true,
      status_discarded: false,
      file_file_name: 'c0ffee0123456789.mp4',
      file_content_type: 'video/mp4',
      thumbnail_file_name: 'a1b2c3d4e5f60718.png',
    },
    'private',
  ],
  [
    '§6 ACL: remote cached media of a suspended account is private',
    'media_attachments',
    {
      id: '5',
      remote_url: REMOTE_URL,
      account_suspended: true,
      file_file_name: 'c0ffee0123456789.png',
      file_content_type: 'image/png',
      file_storage_schema_version: 1,
    },
    'private',
  ],
  [
    '§6 ACL: media of a removed-but-preserved (discarded) status is private',
    'media_attachments',
    {
      id: '5',
      remote_url: '',
      account_suspended: false,
      status_discarded: true,
      file_file_name: 'c0ffee0123456789.png',
      file_content_type: 'image/png',
      thumbnail_file_name: 'a1b2c3d4e5f60718.png',
    },
    'private',
  ],
  [
    '§6 ACL: media of an active account and a kept status uses the default ACL',
    'media_attachments',
    {
      id: '5',
      remote_url: '',
      account_suspended: false,
      status_discarded: false,
      file_file_name: 'c0ffee0123456789.png',
      file_content_type: 'image/png',
    },
    'default',
  ],
  [
    '§6 ACL: media without the suspension/discard fields uses the default ACL',
    'media_attachments',
    { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.png', file_content_type: 'image/png' },
    'default',
  ],
  [
    '§6 ACL: avatars and headers of a suspended account are NOT made private',
    'accounts',
    {
      id: '1',
      domain: null,
      suspended_at: '2024-01-01 00:00:00',
      account_suspended: true,
      avatar_file_name: '8c2b5e7d9f0a1b3c.gif',
      avatar_content_type: 'image/gif',
      header_file_name: 'fedcba9876543210.png',
      header_content_type: 'image/png',
    },
    'default',
  ],
  [
    '§6 ACL: custom emoji use the default ACL',
    'custom_emojis',
    { id: '4321', domain: null, image_file_name: '3e4f5a6b7c8d9e0f.gif', image_content_type: 'image/gif' },
    'default',
  ],
  ['§6 ACL: preview cards use the default ACL', 'preview_cards', { id: '3', image_file_name: 'feedface00112233.gif' }, 'default'],
  ['§6 ACL: preview card provider icons use the default ACL', 'preview_card_providers', { id: '2', icon_file_name: '99aa88bb77cc66dd.png' }, 'default'],
  ['§6 ACL: site uploads use the default ACL', 'site_uploads', { id: '3', var: 'thumbnail', file_file_name: 'd00dfeed12345678.png' }, 'default'],
  ['§6 ACL: imports use the default ACL', 'imports', { id: '7', data_file_name: 'following_accounts.csv' }, 'default'],
];

describe('§6 ACL visibility', () => {
  for (const [name, job, row, expected] of VISIBILITY_CASES) {
    test(name, () => {
      const objects = ownedObjects(job, row);
      assert.ok(objects.length > 0, 'the row must own at least one object');
      for (const object of objects) assert.equal(object.visibility, expected, object.key);
    });
  }
});

// ---------------------------------------------------------------------------------------------------------------
// §7/§4/§2.1 legacy alternates: the other side of cache/ (remote rows only), then (non-original styles) the original's extension
// ---------------------------------------------------------------------------------------------------------------
const ALTERNATE_CASES: ReadonlyArray<[name: string, job: JobName, row: Row, key: string, alternates: string[]]> = [
  [
    '§4 alternates: local avatar original → none (local records never move to cache/)',
    'accounts',
    { id: '1', domain: null, avatar_file_name: '8c2b5e7d9f0a1b3c.gif', avatar_content_type: 'image/gif', avatar_storage_schema_version: 1 },
    'accounts/avatars/000/000/001/original/8c2b5e7d9f0a1b3c.gif',
    [],
  ],
  [
    '§4/§2.1 alternates: local avatar static → the original extension only (no cache/ side for local rows)',
    'accounts',
    { id: '1', domain: null, avatar_file_name: '8c2b5e7d9f0a1b3c.gif', avatar_content_type: 'image/gif', avatar_storage_schema_version: 1 },
    'accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.png',
    ['accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.gif'],
  ],
  [
    '§4/§7 alternates: cached remote emoji original → the key without cache/',
    'custom_emojis',
    { id: '4321', domain: 'other.example', image_file_name: '3e4f5a6b7c8d9e0f.gif', image_content_type: 'image/gif', image_storage_schema_version: 1 },
    'cache/custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif',
    ['custom_emojis/images/000/004/321/original/3e4f5a6b7c8d9e0f.gif'],
  ],
  [
    '§4/§7/§2.1 alternates: cached remote emoji static → no-cache side, then .gif under cache/, then .gif without',
    'custom_emojis',
    { id: '4321', domain: 'other.example', image_file_name: '3e4f5a6b7c8d9e0f.gif', image_content_type: 'image/gif', image_storage_schema_version: 1 },
    'cache/custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png',
    [
      'custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.png',
      'cache/custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.gif',
      'custom_emojis/images/000/004/321/static/3e4f5a6b7c8d9e0f.gif',
    ],
  ],
  [
    '§2.1 alternates: local avif small (v4.0–4.1 kept .avif) → .avif only',
    'media_attachments',
    { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.avif', file_content_type: 'image/avif', file_storage_schema_version: 1 },
    'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg',
    ['media_attachments/files/000/000/005/small/c0ffee0123456789.avif'],
  ],
  [
    '§2.1/§4 alternates: remote avif small, version 0 → cache/ side, then .avif on both sides',
    'media_attachments',
    {
      id: '5',
      remote_url: 'https://other.example/a.avif',
      file_file_name: 'c0ffee0123456789.avif',
      file_content_type: 'image/avif',
      file_storage_schema_version: null,
    },
    'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg',
    [
      'cache/media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg',
      'media_attachments/files/000/000/005/small/c0ffee0123456789.avif',
      'cache/media_attachments/files/000/000/005/small/c0ffee0123456789.avif',
    ],
  ],
  [
    '§2.1 alternates: a local small with the original extension already → none',
    'media_attachments',
    { id: '5', remote_url: '', file_file_name: 'c0ffee0123456789.jpeg', file_content_type: 'image/jpeg' },
    'media_attachments/files/000/000/005/small/c0ffee0123456789.jpeg',
    [],
  ],
  [
    '§4 alternates: site uploads never move → none',
    'site_uploads',
    { id: '3', var: 'mascot', file_file_name: 'd00dfeed12345678.png', file_content_type: 'image/png' },
    'site_uploads/files/000/000/003/original/d00dfeed12345678.png',
    [],
  ],
  [
    '§1.2 alternates: remote, no extension → no extension alternate, the cache/ side only',
    'media_attachments',
    { id: '5', remote_url: 'https://other.example/x', file_file_name: 'noextension', file_content_type: 'image/gif' },
    'media_attachments/files/000/000/005/small/noextension.png',
    ['cache/media_attachments/files/000/000/005/small/noextension.png'],
  ],
  [
    '§2.4 A/§4 alternates: version-NULL thumbnail of remote media → its cache/ side',
    'media_attachments',
    {
      id: '109349205816583424',
      remote_url: 'https://other.example/m/a.mp4',
      file_file_name: '5f2c0d9e4b7a1c38.mp4',
      file_content_type: 'video/mp4',
      file_storage_schema_version: 1,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_storage_schema_version: null,
    },
    'media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg',
    ['cache/media_attachments/thumbnails/109/349/205/816/583/424/original/a1b2c3d4e5f60718.jpeg'],
  ],
  [
    '§1.2/§4 alternates: a 10-digit id also at the 9-digit padding of Paperclip before 6.1, which drops its last digit',
    'site_uploads',
    { id: '1234567890', var: 'mascot', file_file_name: 'd00dfeed12345678.png', file_content_type: 'image/png' },
    'site_uploads/files/001/234/567/890/original/d00dfeed12345678.png',
    ['site_uploads/files/123/456/789/original/d00dfeed12345678.png'],
  ],
];

describe('§7 legacy alternates', () => {
  for (const [name, job, row, key, alternates] of ALTERNATE_CASES) {
    test(name, () => {
      const object = ownedObjects(job, row).find((candidate) => candidate.key === key);
      assert.ok(object, `no object with key ${key}`);
      assert.deepEqual(object.alternates, alternates);
    });
  }
});

describe("the row's size of an original (storedSize: what a copy refuses an original shorter than)", () => {
  const media = (extra: Row) =>
    ownedObjects('media_attachments', {
      id: '5',
      remote_url: '',
      file_file_name: 'c0ffee0123456789.png',
      file_content_type: 'image/png',
      file_file_size: 4000,
      thumbnail_file_name: 'a1b2c3d4e5f60718.jpeg',
      thumbnail_content_type: 'image/jpeg',
      thumbnail_file_size: 700,
      ...extra,
    }).map((object) => [object.attachment, object.style, object.storedSize]);

  test("the original's *_file_size, which Paperclip sets to the stored file's after processing; none for a style", () => {
    assert.deepEqual(media({ processing: 2 }), [
      ['file', 'original', 4000],
      ['file', 'small', null],
      ['thumbnail', 'original', 700],
    ]);
    // Rows from before delayed processing have no processing value: processed inline, the size is the stored file's.
    assert.deepEqual(media({ processing: null })[0], ['file', 'original', 4000]);
  });

  test("a media file queued, being processed or whose processing failed: its size is not the stored file's yet; the thumbnail's is", () => {
    for (const processing of [0, 1, 3]) {
      assert.deepEqual(media({ processing }), [
        ['file', 'original', null],
        ['file', 'small', null],
        ['thumbnail', 'original', 700],
      ]);
    }
  });

  test('a NULL or 0 size says nothing', () => {
    assert.deepEqual(media({ file_file_size: null, thumbnail_file_size: 0 }), [
      ['file', 'original', null],
      ['file', 'small', null],
      ['thumbnail', 'original', null],
    ]);
  });
});
