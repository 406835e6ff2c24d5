/**
 * A Mastodon-shaped data set for the bench: rows in the `current` schema and one source object per key those
 * rows own, with sizes drawn from the mix a real instance holds (mostly small avatars, headers, emoji and
 * cards; media originals of 100 KB–3 MB with small previews; a few large videos). Keys come from
 * src/mastodon/keys.ts, the same derivation mastosync uses, so rclone can be given the very same key list.
 */
import { randomBytes } from 'node:crypto';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type pg from 'pg';
import { ownedObjects, type OwnedObject } from '../src/mastodon/keys.js';
import type { JobName, Row } from '../src/mastodon/tables.js';
import { seededRandom } from '../test/support/random.js';

const CACHE_CONTROL = 'public, max-age=315576000, immutable';

export interface MixCounts {
  /** Account rows: an avatar and a header each (a GIF one also a static png). */
  readonly accounts: number;
  /** Custom emoji rows: an image and its static png. */
  readonly emojis: number;
  /** Preview card rows: one image. */
  readonly cards: number;
  /** Image media rows: an original of 100 KB–3 MB and a small preview. */
  readonly images: number;
  /** Video media rows: an mp4 original and a small png. */
  readonly videos: number;
  readonly videoMinMb: number;
  readonly videoMaxMb: number;
}

export interface PlannedObject {
  readonly key: string;
  readonly size: number;
  readonly contentType: string;
}

export interface DataSet {
  readonly rows: ReadonlyMap<JobName, Record<string, unknown>[]>;
  readonly objects: readonly PlannedObject[];
  readonly bytes: number;
}

const KB = 1000;
const MB = 1000 * KB;
const TIMESTAMP = '2024-05-01 12:00:00';
/** Snowflake-sized ids (18 digits, six-group partitions), as media and accounts have since v3.2/v3.4. */
const SNOWFLAKE_BASE = 110_000_000_000_000_000n;

export function planMix(counts: MixCounts, seed = 1): DataSet {
  const next = seededRandom(seed);
  const uniform = (low: number, high: number) => Math.round(low + next() * (high - low));
  const logUniform = (low: number, high: number) => Math.round(Math.exp(Math.log(low) + next() * (Math.log(high) - Math.log(low))));
  const hex = () => Array.from({ length: 16 }, () => Math.floor(next() * 16).toString(16)).join('');
  const rows = new Map<JobName, Record<string, unknown>[]>();
  const objects: PlannedObject[] = [];
  const sizeOf = new Map<string, number>();
  const add = (job: JobName, row: Record<string, unknown>, size: (object: OwnedObject) => number) => {
    (rows.get(job) ?? rows.set(job, []).get(job)!).push(row);
    for (const object of ownedObjects(job, row as Row)) {
      const contentType = object.style === 'original' ? object.storedContentType! : contentTypeOf(object.key);
      const bytes = size(object);
      sizeOf.set(object.key, bytes);
      objects.push({ key: object.key, size: bytes, contentType });
    }
  };
  const stamps = { created_at: TIMESTAMP, updated_at: TIMESTAMP };

  for (let i = 0; i < counts.accounts; i++) {
    const remote = next() < 0.7; // most accounts an instance stores are remote (under cache/)
    const gif = next() < 0.1;
    const avatarType = gif ? 'image/gif' : 'image/jpeg';
    add(
      'accounts',
      {
        id: String(SNOWFLAKE_BASE + BigInt(i) * 65_536n),
        username: `user${i}`,
        domain: remote ? `instance${i % 50}.example` : null,
        avatar_file_name: `${hex()}.${gif ? 'gif' : 'jpg'}`,
        avatar_content_type: avatarType,
        avatar_file_size: 0,
        avatar_updated_at: TIMESTAMP,
        avatar_storage_schema_version: 1,
        header_file_name: `${hex()}.jpg`,
        header_content_type: 'image/jpeg',
        header_file_size: 0,
        header_updated_at: TIMESTAMP,
        header_storage_schema_version: 1,
        ...stamps,
      },
      (object) => (object.attachment === 'header' && object.style === 'original' ? uniform(30 * KB, 150 * KB) : uniform(10 * KB, 60 * KB)),
    );
  }
  for (let i = 0; i < counts.emojis; i++) {
    add(
      'custom_emojis',
      {
        id: String(i + 1),
        shortcode: `emoji_${i}`,
        domain: `instance${i % 50}.example`,
        image_file_name: `${hex()}.png`,
        image_content_type: 'image/png',
        image_file_size: 0,
        image_updated_at: TIMESTAMP,
        image_storage_schema_version: 1,
        ...stamps,
      },
      () => uniform(2 * KB, 30 * KB),
    );
  }
  for (let i = 0; i < counts.cards; i++) {
    add(
      'preview_cards',
      {
        id: String(i + 1),
        url: `https://news.example/${i}`,
        image_file_name: `${hex()}.jpg`,
        image_content_type: 'image/jpeg',
        image_file_size: 0,
        image_updated_at: TIMESTAMP,
        image_storage_schema_version: 1,
        ...stamps,
      },
      () => uniform(10 * KB, 60 * KB),
    );
  }
  const media = (i: number, video: boolean, originalSize: () => number) => {
    const remote = next() < 0.6;
    add(
      'media_attachments',
      {
        id: String(SNOWFLAKE_BASE + 1_000_000_000n + BigInt(i) * 65_536n),
        account_id: String(SNOWFLAKE_BASE),
        status_id: String(SNOWFLAKE_BASE + BigInt(i)),
        file_file_name: `${hex()}.${video ? 'mp4' : 'jpeg'}`,
        file_content_type: video ? 'video/mp4' : 'image/jpeg',
        file_file_size: 0,
        file_updated_at: TIMESTAMP,
        file_storage_schema_version: 1,
        remote_url: remote ? `https://instance${i % 50}.example/media/${i}` : '',
        type: video ? 2 : 0,
        ...stamps,
      },
      (object) => (object.style === 'original' ? originalSize() : uniform(10 * KB, 60 * KB)),
    );
  };
  for (let i = 0; i < counts.images; i++) media(i, false, () => logUniform(100 * KB, 3 * MB));
  for (let i = 0; i < counts.videos; i++) {
    // Spread evenly from the smallest to the largest, so the largest is always in the set.
    const fraction = counts.videos === 1 ? 1 : i / (counts.videos - 1);
    const size = Math.round((counts.videoMinMb + fraction * (counts.videoMaxMb - counts.videoMinMb)) * MB);
    media(counts.images + i, true, () => size);
  }

  // The stored sizes of originals, as Mastodon records them.
  for (const [job, jobRows] of rows) {
    for (const row of jobRows) {
      for (const object of ownedObjects(job, row as Row)) {
        if (object.style === 'original') row[`${object.attachment}_file_size`] = sizeOf.get(object.key);
      }
    }
  }
  return { rows, objects, bytes: objects.reduce((sum, object) => sum + object.size, 0) };
}

function contentTypeOf(key: string): string {
  if (key.endsWith('.png')) return 'image/png';
  if (key.endsWith('.gif')) return 'image/gif';
  return 'image/jpeg';
}

/** Inserts the rows, many to a statement. */
export async function insertRows(db: pg.Client, rows: ReadonlyMap<JobName, Record<string, unknown>[]>): Promise<void> {
  for (const [job, jobRows] of rows) {
    for (let start = 0; start < jobRows.length; start += 500) {
      const batch = jobRows.slice(start, start + 500);
      const columns = Object.keys(batch[0]!);
      const values: unknown[] = [];
      const tuples = batch.map((row) => `(${columns.map((column) => `$${values.push(row[column] ?? null)}`).join(', ')})`);
      await db.query(`INSERT INTO ${job} (${columns.map((column) => `"${column}"`).join(', ')}) VALUES ${tuples.join(', ')}`, values);
    }
  }
}

/**
 * `count` preview card rows that own no file (a table mastosync must read through without copying), with a
 * card that owns one at the very start and then every tenth of the way, so the first copy can be timed.
 */
export async function insertFilelessRows(db: pg.Client, count: number): Promise<PlannedObject[]> {
  await db.query(
    `INSERT INTO preview_cards (id, url, created_at, updated_at)
     SELECT g, 'https://news.example/' || g, $2, $2 FROM generate_series(1, $1::bigint) g`,
    [count, TIMESTAMP],
  );
  const step = Math.max(1, Math.floor(count / 10));
  const objects: PlannedObject[] = [];
  for (let id = 1; id <= count; id += step) {
    const name = `card${id}.jpg`;
    await db.query(
      `UPDATE preview_cards SET image_file_name = $2, image_content_type = 'image/jpeg', image_file_size = $3,
       image_updated_at = $4, image_storage_schema_version = 1 WHERE id = $1`,
      [id, name, 20 * KB, TIMESTAMP],
    );
    const [object] = ownedObjects('preview_cards', {
      id: String(id),
      image_file_name: name,
      image_content_type: 'image/jpeg',
      image_storage_schema_version: 1,
    });
    objects.push({ key: object!.key, size: 20 * KB, contentType: 'image/jpeg' });
  }
  return objects;
}

/** Mastodon (Paperclip over aws-sdk-ruby's upload_file) uploads files above 100 MiB multipart. */
const MULTIPART_ABOVE = 100 * 1024 * 1024;

/** Uploads each object with random bytes, Mastodon's Content-Type, Cache-Control and ACL. */
export async function uploadObjects(client: S3Client, bucket: string, objects: readonly PlannedObject[], concurrency = 8): Promise<void> {
  const queue = [...objects];
  const worker = async () => {
    for (let object = queue.shift(); object; object = queue.shift()) {
      const params = {
        Bucket: bucket,
        Key: object.key,
        Body: randomBytes(object.size),
        ContentType: object.contentType,
        CacheControl: CACHE_CONTROL,
        ACL: 'public-read' as const,
      };
      if (object.size > MULTIPART_ABOVE) await new Upload({ client, params, partSize: 8 * 1024 * 1024, queueSize: 4 }).done();
      else await client.send(new PutObjectCommand(params));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
