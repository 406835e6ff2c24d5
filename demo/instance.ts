/**
 * A small Mastodon instance for the demo, generated from a fixed seed: rows for every table that owns files
 * (local and remote accounts, media, emoji, preview cards, site uploads, backups), the objects those rows own
 * (keys from src/mastodon, the same rules a copy uses), a few style objects missing at the source, and a few
 * orphans no row owns, as a real bucket has.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ownedObjects } from '../src/mastodon/keys.js';
import type { JobName } from '../src/mastodon/tables.js';
import { seededRandom } from '../test/support/random.js';

export interface DemoRow {
  readonly table: JobName;
  readonly values: Record<string, unknown>;
}

interface DemoObject {
  readonly key: string;
  readonly body: Buffer;
  readonly md5: string;
  readonly contentType: string;
  readonly acl: 'public-read' | 'private';
}

export interface DemoInstance {
  readonly rows: DemoRow[];
  /** Owned objects present at the source. */
  readonly present: DemoObject[];
  /** Owned keys with no object at the source (a style Mastodon never wrote). */
  readonly missing: string[];
  /** Objects no row owns: must stay behind. */
  readonly orphans: DemoObject[];
}

const DOMAINS = ['mastodon.social', 'fosstodon.org', 'hachyderm.io', 'chaos.social', 'mstdn.jp', 'infosec.exchange'];
const TYPE_OF_EXTENSION: Record<string, string> = {
  png: 'image/png',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  mp4: 'video/mp4',
  zip: 'application/zip',
};

/** `scale` multiplies the number of rows (1: about 670 rows owning about 1,300 objects and 110 MB). */
export function generateInstance(scale = 1, seed = 42): DemoInstance {
  const scaled = (rows: number) => Math.max(1, Math.round(rows * scale));
  const next = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!;
  const between = (low: number, high: number) => Math.floor(low + next() * (high - low));
  const hex = () => Array.from({ length: 16 }, () => Math.floor(next() * 16).toString(16)).join('');
  const chance = (probability: number) => next() < probability;
  let snowflake = 109_349_205_816_583_424n;
  const nextSnowflake = () => String((snowflake += BigInt(between(1_000, 90_000_000))));
  const now = new Date('2025-11-01T12:00:00Z').getTime();
  const when = () => new Date(now - between(0, 400) * 86_400_000).toISOString().replace('T', ' ').replace('Z', '');

  const rows: DemoRow[] = [];
  const sizes = new Map<string, number>();
  const add = (table: JobName, values: Record<string, unknown>) => rows.push({ table, values: { created_at: when(), updated_at: when(), ...values } });
  /** Attachment columns, with the original's size remembered for its object. */
  const file = (prefix: string, extension: string, size: number, extra: Record<string, unknown> = {}) => {
    const name = `${hex()}.${extension}`;
    sizes.set(name, size);
    return {
      [`${prefix}_file_name`]: name,
      [`${prefix}_content_type`]: TYPE_OF_EXTENSION[extension],
      [`${prefix}_file_size`]: size,
      [`${prefix}_updated_at`]: when(),
      ...extra,
    };
  };

  // Accounts: the instance actor, local users, and remote accounts whose media sit under cache/.
  add('accounts', { id: '-99', username: 'demo.example', domain: null, ...file('avatar', 'png', 9_000, { avatar_storage_schema_version: 1 }) });
  for (let id = 1; id <= scaled(30); id++) {
    add('accounts', {
      id: String(id),
      username: `user${id}`,
      domain: null,
      ...file('avatar', chance(0.2) ? 'gif' : pick(['png', 'jpeg']), between(5_000, 60_000), { avatar_storage_schema_version: 1 }),
      ...(chance(0.7) ? file('header', 'jpeg', between(30_000, 150_000), { header_storage_schema_version: 1 }) : {}),
    });
  }
  for (let n = 0; n < scaled(100); n++) {
    add('accounts', {
      id: String(110_528_637_375_951_012n + BigInt(n * 7919)),
      username: `friend${n}`,
      domain: pick(DOMAINS),
      ...(chance(0.9)
        ? file('avatar', chance(0.1) ? 'gif' : 'jpeg', between(5_000, 40_000), {
            avatar_storage_schema_version: 1,
            avatar_remote_url: 'https://remote.example/a',
          })
        : {}),
      ...(chance(0.5)
        ? file('header', 'jpeg', between(20_000, 100_000), { header_storage_schema_version: 1, header_remote_url: 'https://remote.example/h' })
        : {}),
    });
  }

  // Media: local uploads and remote media (cache/), images with a small style, GIFV and videos with a png one.
  for (let n = 0; n < scaled(400); n++) {
    const remote = n % 8 >= 3;
    const kind = pick(['jpeg', 'jpeg', 'jpeg', 'jpeg', 'png', 'png', 'webp', 'gifv', 'gifv', 'video'] as const);
    const extension = kind === 'gifv' || kind === 'video' ? 'mp4' : kind;
    const size = kind === 'video' ? between(500_000, 2_000_000) : kind === 'gifv' ? between(100_000, 300_000) : between(20_000, 150_000);
    add('media_attachments', {
      id: nextSnowflake(),
      account_id: '1',
      type: kind === 'gifv' ? 1 : kind === 'video' ? 2 : 0,
      processing: 2,
      remote_url: remote ? `https://${pick(DOMAINS)}/media/${n}` : '',
      ...file('file', extension, size, { file_storage_schema_version: 1 }),
      ...(kind === 'video' ? file('thumbnail', 'jpeg', between(20_000, 60_000)) : {}),
    });
  }

  // Custom emoji (static png always), preview cards (always cache/ once upgraded), providers, site uploads, backups.
  for (let id = 1; id <= scaled(70); id++) {
    const local = id <= scaled(20);
    add('custom_emojis', {
      id: String(id),
      shortcode: `emoji_${id}`,
      domain: local ? null : pick(DOMAINS),
      ...file('image', chance(0.3) ? 'gif' : 'png', between(1_000, 8_000), { image_storage_schema_version: 1 }),
    });
  }
  for (let id = 1; id <= scaled(60); id++) {
    add('preview_cards', {
      id: String(1000 + id),
      url: `https://news.example/${id}`,
      ...file('image', 'jpeg', between(10_000, 60_000), { image_storage_schema_version: 1 }),
    });
  }
  for (let id = 1; id <= 3; id++)
    add('preview_card_providers', { id: String(id), domain: `video${id}.example`, ...file('icon', 'png', between(1_000, 4_000)) });
  ['thumbnail', 'favicon', 'app_icon'].forEach((variable, index) =>
    add('site_uploads', { id: String(index + 1), var: variable, ...file('file', 'png', between(20_000, 80_000)) }),
  );
  for (let id = 1; id <= 2; id++) {
    const name = `archive-2025101${id}120000-${hex()}${hex()}.zip`;
    sizes.set(name, 200_000);
    add('backups', {
      id: String(id),
      user_id: String(id),
      processed: true,
      dump_file_name: name,
      dump_content_type: 'application/zip',
      dump_file_size: 200_000,
      dump_updated_at: when(),
    });
  }

  const present: DemoObject[] = [];
  const missing: string[] = [];
  const object = (key: string, size: number, contentType: string, acl: DemoObject['acl']): DemoObject => {
    const body = randomBytes(size);
    return { key, body, md5: createHash('md5').update(body).digest('hex'), contentType, acl };
  };
  for (const row of rows) {
    for (const owned of ownedObjects(row.table, row.values)) {
      const name = owned.key.slice(owned.key.lastIndexOf('/') + 1);
      const original = owned.style === 'original';
      // A handful of styles Mastodon never wrote (a failed remote download, an interrupted processing).
      if (!original && owned.underCache && chance(0.012)) {
        missing.push(owned.key);
        continue;
      }
      const extension = name.slice(name.lastIndexOf('.') + 1);
      const size = original ? sizes.get(name)! : Math.max(800, Math.floor((owned.storedSize ?? 20_000) / between(4, 12)));
      present.push(
        object(
          owned.key,
          size,
          original ? owned.storedContentType! : TYPE_OF_EXTENSION[extension]!,
          owned.visibility === 'private' ? 'private' : 'public-read',
        ),
      );
    }
  }
  const orphans = [
    'media_attachments/files/000/000/404/original/0badc0de0badc0de.png',
    `media_attachments/files/${present
      .find((item) => item.key.startsWith('media_attachments/files/'))!
      .key.split('/')
      .slice(2, -2)
      .join('/')}/original/raw-upload.mov`,
    'cache/accounts/avatars/000/000/007/original/feedfacefeedface.jpeg',
    'preview_cards/images/000/001/001/original/stale-name.jpeg',
    'site_uploads/files/000/000/009/original/old-thumbnail.png',
    'backups/dumps/000/000/099/original/archive-20240101000000-deleted.zip',
  ].map((key) => object(key, between(2_000, 40_000), 'application/octet-stream', 'public-read'));
  return { rows, present, missing, orphans };
}
