/**
 * The inverse of the key derivation (docs/storage-layout.md §8): literal cases written from the document, then the
 * property prune relies on: every key (and alternate) any row owns reads back with that row among its owners, for
 * every table, attachment, style, id width and side of cache/.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { JOB_NAMES, ownedObjects, type JobName, type Row } from '../../src/mastodon/index.js';
import { clipToRows, ID_LENGTH_SPANS, idsWithPartition, mastodonPrefixes, ownersOfKey, type IdRange, type KeyOwner } from '../../src/mastodon/owners.js';
import { seededRandom } from '../support/random.js';

const range = (from: string, to = from) => ({ from: BigInt(from), to: BigInt(to) });

describe('§8 owners of a key: literal cases', () => {
  test('§2.4 A: a cached remote small of a snowflake id reads as media file, small, the whole id', () => {
    assert.deepEqual(ownersOfKey('cache/media_attachments/files/109/349/205/816/583/424/small/5f2c0d9e4b7a1c38.png'), [
      {
        job: 'media_attachments',
        attachment: 'file',
        underCache: true,
        partition: '109/349/205/816/583/424',
        style: 'small',
        fileName: '5f2c0d9e4b7a1c38.png',
        // 18 digits, or 19 with the last one dropped; either negative too (a negative id keeps the groups after its sign).
        ids: [
          range('109349205816583424'),
          range('-109349205816583424'),
          range('1093492058165834240', '1093492058165834249'),
          range('-1093492058165834249', '-1093492058165834240'),
        ],
      },
    ]);
  });

  test('§2.4 B: a local avatar of id 1 reads as accounts avatar, id 1', () => {
    const owners = ownersOfKey('accounts/avatars/000/000/001/static/8c2b5e7d9f0a1b3c.png');
    assert.equal(owners.length, 1);
    assert.deepEqual(
      { ...owners[0], ids: undefined },
      {
        job: 'accounts',
        attachment: 'avatar',
        underCache: false,
        partition: '000/000/001',
        style: 'static',
        fileName: '8c2b5e7d9f0a1b3c.png',
        ids: undefined,
      },
    );
    assert.deepEqual(owners[0]!.ids, [range('1')]);
  });

  test('§1.2: the instance actor -99 (partition 000/000) is among the owners of a 2-group key', () => {
    const [owner] = ownersOfKey('accounts/avatars/000/000/original/actor.png');
    assert.deepEqual(owner?.ids, [range('-99', '-1')]);
  });

  test('§1.2: a 17-digit id lost its last two digits, so 100 ids (and 10 16-digit ones, and the 15-digit one) share its folder', () => {
    assert.deepEqual(idsWithPartition('123/456/789/012/345'), [
      range('123456789012345'),
      range('-123456789012345'),
      range('1234567890123450', '1234567890123459'),
      range('-1234567890123459', '-1234567890123450'),
      range('12345678901234500', '12345678901234599'),
      range('-12345678901234599', '-12345678901234500'),
    ]);
  });

  test('§1.2: 3 groups are a 9-digit id, or (Paperclip before 6.1) a 10- or 11-digit one that lost digits', () => {
    assert.deepEqual(idsWithPartition('123/456/789'), [
      range('123456789'),
      range('-123456789'),
      range('1234567890', '1234567899'),
      range('-1234567899', '-1234567890'),
      range('12345678900', '12345678999'),
      range('-12345678999', '-12345678900'),
    ]);
    // Leading zeros: only the 9-digit id, padded (a longer id never starts with 0).
    assert.deepEqual(idsWithPartition('000/004/321'), [range('4321')]);
  });

  test('§1.2: 4 groups are a 12-digit id padded from 10 or more digits, or 13 and 14 digits that lost some', () => {
    assert.deepEqual(idsWithPartition('001/234/567/890'), [range('1234567890')]);
    assert.deepEqual(idsWithPartition('000/000/000/001'), [], 'a 12-digit padding never holds an id below 1e9');
  });

  test('§1.2/§2: a site upload style that looks like an id group (app icon 120) is read as the style', () => {
    const owners = ownersOfKey('site_uploads/files/000/000/003/120/d00dfeed12345678.png');
    assert.deepEqual(
      owners.map((owner) => [owner.partition, owner.style, owner.fileName]),
      [['000/000/003', '120', 'd00dfeed12345678.png']],
    );
  });

  test('keys that no row can own read as nobody: outside the folders, cache/ of a model without local?, bad shapes', () => {
    for (const key of [
      'robots.txt',
      'media_attachments/files/',
      'media_attachments/files/000/000/001/original/',
      'media_attachments/files/000/x.png',
      'media_attachments/files/original/x.png',
      'media_attachments/files/00a/000/001/original/x.png',
      'media_attachments/files/0000/000/001/original/x.png',
      'media_attachments/filesx/000/000/001/original/x.png',
      'media_attachments/other/000/000/001/original/x.png',
      'cache/site_uploads/files/000/000/003/original/x.png',
      'cache/backups/dumps/000/000/012/original/archive.zip',
      'cache/cache/accounts/avatars/000/000/001/original/x.png',
      'pfx/accounts/avatars/000/000/001/original/x.png',
      'statuses/000/000/001/original/x.png',
      'accounts/avatars/original/x.png',
      'accounts/avatars/-99/000/original/x.png',
      'media_attachments/files/000/-00/099/original/x.png',
    ]) {
      assert.deepEqual(ownersOfKey(key), [], key);
    }
  });

  test('the folders Mastodon writes: every CLASS/ATTACH/, and cache/ only for models with local?, in byte order', () => {
    assert.deepEqual(
      mastodonPrefixes().map((entry) => entry.prefix),
      [
        'accounts/avatars/',
        'accounts/headers/',
        'backups/dumps/',
        'cache/accounts/avatars/',
        'cache/accounts/headers/',
        'cache/custom_emojis/images/',
        'cache/media_attachments/files/',
        'cache/media_attachments/thumbnails/',
        'cache/preview_cards/images/',
        'custom_emojis/images/',
        'imports/data/',
        'media_attachments/files/',
        'media_attachments/thumbnails/',
        'preview_card_providers/icons/',
        'preview_cards/images/',
        'site_uploads/files/',
      ],
    );
    assert.deepEqual(
      mastodonPrefixes(['site_uploads', 'preview_cards']).map((entry) => entry.prefix),
      ['cache/preview_cards/images/', 'preview_cards/images/', 'site_uploads/files/'],
    );
  });
});

/** What readIdsWithinSpans answers for a table holding `ids`: the lowest and highest id within each span. */
function spansOf(ids: readonly bigint[]): IdRange[] {
  return ID_LENGTH_SPANS.flatMap((span) => {
    const inside = ids.filter((id) => span.from <= id && id <= span.to).sort((a, b) => (a < b ? -1 : 1));
    return inside.length === 0 ? [] : [{ from: inside[0]!, to: inside.at(-1)! }];
  });
}

describe('§8 candidate ids within the spans that hold rows (clipToRows)', () => {
  const accounts = spansOf([-99n, 1n, 2n, 57n, 109349205816583424n, 110000000000000000n]);
  const media = spansOf([1n, 4321n, 109349205816583424n, 110000000000000000n]);

  test('the spans split every bigint by length and sign, in order, without gaps', () => {
    assert.equal(ID_LENGTH_SPANS.length, 38);
    assert.deepEqual(ID_LENGTH_SPANS[0], range('-9223372036854775808', '-1000000000000000000'));
    assert.deepEqual(ID_LENGTH_SPANS.at(-1), range('1000000000000000000', '9223372036854775807'));
    for (let index = 1; index < ID_LENGTH_SPANS.length; index++) assert.equal(ID_LENGTH_SPANS[index]!.from, ID_LENGTH_SPANS[index - 1]!.to + 1n);
  });

  test('a snowflake folder names one id, not 22, when no row has 19 digits or a sign', () => {
    assert.deepEqual(clipToRows(idsWithPartition('109/349/205/816/583/424'), media), [range('109349205816583424')]);
  });

  test('the instance actor (-99) is still a candidate for its key, and the only one', () => {
    const [owner] = ownersOfKey('accounts/avatars/000/000/original/actor.png');
    assert.deepEqual(clipToRows(owner!.ids, accounts), [range('-99')]);
  });

  test('a media folder 000/000 names no id: media rows have no sign', () => {
    const [owner] = ownersOfKey('media_attachments/files/000/000/original/x.png');
    assert.deepEqual(clipToRows(owner!.ids, media), []);
  });

  test('a range is cut to the lowest to highest row of each length it crosses', () => {
    assert.deepEqual(clipToRows([range('-5', '60')], accounts), [range('1', '2'), range('57')]);
    assert.deepEqual(clipToRows([range('3', '50')], accounts), []);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// The property: every key a row owns, and every alternate, reads back with that row among its owners.
// ---------------------------------------------------------------------------------------------------------------

const CONTENT_TYPES = ['image/gif', 'image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/heic', 'video/mp4', 'video/webm', 'audio/mpeg', null];
const SITE_VARS = ['thumbnail', 'favicon', 'app_icon', 'mascot', 'hero'];
const NAMES = ['5f2c0d9e4b7a1c38.mp4', 'photo.JPG', 'a.b.gif', '.hidden', 'photo.', 'noextension', 'my file+1.png', 'été.jpeg'];

function randomId(random: () => number): string {
  const choice = Math.floor(random() * 7);
  if (choice === 0) return String(1 + Math.floor(random() * 999));
  if (choice === 1) return String(Math.floor(random() * 1e9));
  if (choice === 2) return String(1e9 + Math.floor(random() * 99e9)); // 10–11 digits: the legacy padding differs
  if (choice === 3) return (BigInt(Math.floor(random() * 1e9)) * 1000000n + BigInt(Math.floor(random() * 1e6))).toString(); // 13–15 digits
  if (choice === 4) return (100000000000000000n + BigInt(Math.floor(random() * 1e9)) * 1000000000n + BigInt(Math.floor(random() * 1e9))).toString(); // 18 digits
  if (choice === 5) return (BigInt(10 ** 16) + BigInt(Math.floor(random() * 1e15))).toString(); // 17 digits
  return '-99';
}

function randomRow(job: JobName, random: () => number): Row {
  const pick = <T>(values: readonly T[]): T => values[Math.floor(random() * values.length)]!;
  const row: Record<string, unknown> = { id: randomId(random), remote_url: pick(['', 'https://x.example/a']), domain: pick([null, 'x.example', '']) };
  row.var = pick(SITE_VARS);
  for (const attachment of ['file', 'thumbnail', 'avatar', 'header', 'image', 'icon', 'dump', 'data']) {
    row[`${attachment}_file_name`] = pick(NAMES);
    row[`${attachment}_content_type`] = pick(CONTENT_TYPES);
    row[`${attachment}_storage_schema_version`] = pick([null, 0, 1]);
  }
  return row;
}

const ownsThrough = (owners: readonly KeyOwner[], job: JobName, id: bigint) =>
  owners.some((owner) => owner.job === job && owner.ids.some((ids) => ids.from <= id && id <= ids.to));

describe('§8 owners of a key: every owned key and alternate reads back with its row', () => {
  for (const job of JOB_NAMES) {
    test(job, () => {
      const random = seededRandom(JOB_NAMES.indexOf(job) + 1);
      const rows = Array.from({ length: 400 }, () => randomRow(job, random));
      // As prune reads them: candidates clipped to the spans this table's rows fill.
      const spans = spansOf(rows.map((row) => BigInt(String(row.id))));
      let checked = 0;
      for (const row of rows) {
        for (const object of ownedObjects(job, row)) {
          for (const key of [object.key, ...object.alternates]) {
            const owners = ownersOfKey(key);
            assert.ok(
              ownsThrough(owners, job, BigInt(object.id)),
              `${key} (row ${object.id}) reads as ${JSON.stringify(owners, (_, v) => (typeof v === 'bigint' ? String(v) : v))}`,
            );
            const clipped = owners.map((owner) => ({ ...owner, ids: clipToRows(owner.ids, spans) }));
            assert.ok(ownsThrough(clipped, job, BigInt(object.id)), `${key} (row ${object.id}) within the rows' spans`);
            const exact = owners.find((owner) => owner.job === job && owner.attachment === object.attachment && owner.style === object.style);
            assert.ok(exact, `${key}: attachment ${object.attachment}, style ${object.style}`);
            checked++;
          }
        }
      }
      assert.ok(checked > 400, `only ${checked} keys checked`);
    });
  }
});
