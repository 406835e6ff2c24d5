/**
 * The inverse of the key derivation (docs/storage-layout.md §0, §1.2, §8): from a relative key, which table,
 * attachment, style, stored name and ids could own it. It narrows down the rows to look up; whether one of them
 * really owns the key is decided by deriving that row's keys again (ownedObjects), never here. So every key a row
 * can own must come out with that row among its candidates, and a key that no row can own comes out with none.
 *
 * Also the folders Mastodon writes under (`mastodonPrefixes`): a tool that deletes never touches a key outside them.
 */
import { idPartition, legacyIdPartition } from './idPartition.js';
import { JOB_NAMES, TABLES, type JobName } from './tables.js';

const CACHE = 'cache/';

/** Ids from `from` to `to`, both included. */
export interface IdRange {
  readonly from: bigint;
  readonly to: bigint;
}

/** One way to read a key: a row of `job` with an id in `ids` could own it through `attachment`. */
export interface KeyOwner {
  readonly job: JobName;
  /** The attachment's name, the prefix of its columns: `file`, `avatar`, ... */
  readonly attachment: string;
  readonly underCache: boolean;
  /** The id partition as it appears in the key, e.g. `000/000/001`. */
  readonly partition: string;
  readonly style: string;
  /** The key's last part: the stored file name for `original`, else the style's file name (§1.2 `:filename`). */
  readonly fileName: string;
  /** Every id whose partition (current, or that of Paperclip before 6.1) is the key's; a partition can drop digits. */
  readonly ids: readonly IdRange[];
}

/** A folder Mastodon writes objects of `job`'s `attachment` under, e.g. `cache/accounts/avatars/`. */
export interface MastodonPrefix {
  readonly job: JobName;
  readonly attachment: string;
  readonly prefix: string;
}

/**
 * Every folder Mastodon writes under for `jobs`, in ascending byte order (the order of a listing): CLASS/ATTACH/
 * for each attachment, and cache/CLASS/ATTACH/ for the models that define local? (§1.2, §2).
 */
export function mastodonPrefixes(jobs: readonly JobName[] = JOB_NAMES): MastodonPrefix[] {
  const prefixes: MastodonPrefix[] = [];
  for (const job of jobs) {
    const table = TABLES[job];
    for (const attachment of table.attachments) {
      const folder = `${job}/${attachment.folder}/`;
      prefixes.push({ job, attachment: attachment.name, prefix: folder });
      if (table.isLocal !== undefined) prefixes.push({ job, attachment: attachment.name, prefix: CACHE + folder });
    }
  }
  return prefixes.sort((a, b) => compareKeys(a.prefix, b.prefix));
}

/** The byte order of S3 listings (UTF-8), which differs from JavaScript's UTF-16 order above U+FFFF. */
function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

let everyPrefix: MastodonPrefix[] | undefined;

/** The ways `key` (relative, without S3_KEY_PREFIX) can be read as Mastodon's; none when no row can own it. */
export function ownersOfKey(key: string): KeyOwner[] {
  const owners: KeyOwner[] = [];
  for (const { job, attachment, prefix } of (everyPrefix ??= mastodonPrefixes())) {
    if (!key.startsWith(prefix)) continue;
    // KEY = [cache/]CLASS/ATTACH/g1/…/gk/STYLE/NAME: groups of three digits, then the style, then the name (a
    // file name, which holds no "/"). An app icon style such as 120 looks like a group, but it is never last but one.
    const segments = key.slice(prefix.length).split('/');
    if (segments.length < 4) continue;
    const fileName = segments.pop()!;
    const style = segments.pop()!;
    if (style === '' || fileName === '' || !segments.every((group) => /^\d{3}$/.test(group))) continue;
    const partition = segments.join('/');
    const ids = idsWithPartition(partition);
    if (ids.length > 0) owners.push({ job, attachment, underCache: prefix.startsWith(CACHE), partition, style, fileName, ids });
  }
  return owners;
}

let lastPartition: { readonly partition: string; readonly ranges: IdRange[] } | undefined;

const BIGINT_MIN = -(2n ** 63n);
const BIGINT_MAX = 2n ** 63n - 1n;

/**
 * Every PostgreSQL bigint whose partition is `partition` (§1.2): the groups are the first digits of the id as
 * padded, and zero, one or two more digits may have been dropped; a negative id keeps the groups after its sign.
 * Within one such range every id has as many digits, so its ends decide for all of it.
 */
export function idsWithPartition(partition: string): IdRange[] {
  // The two keys of a row's folder (original and a style) come one after the other in a listing.
  if (lastPartition?.partition === partition) return lastPartition.ranges;
  const value = BigInt(partition.split('/').join(''));
  const ranges: IdRange[] = [];
  const matches = (id: bigint) => idPartition(id) === partition || (id >= 1_000_000_000n && id < 100_000_000_000n && legacyIdPartition(id) === partition);
  for (const dropped of [0n, 1n, 2n]) {
    const scale = 10n ** dropped;
    const low = value * scale;
    const high = low + scale - 1n;
    const candidates: IdRange[] = [{ from: low, to: high }];
    // Negative: -high … -low, leaving out 0, which is not negative.
    if (high > 0n) candidates.push({ from: -high, to: low === 0n ? -1n : -low });
    for (const range of candidates) {
      if (range.from < BIGINT_MIN || range.to > BIGINT_MAX) continue;
      // The ends have as many digits unless the range starts at 0: then both ends are checked.
      if (matches(range.from) && (low !== 0n || matches(range.to))) ranges.push(range);
    }
  }
  // Only an all-zero partition gives nested ranges (-9…-1 within -99…-1): keep the widest.
  const widest =
    value !== 0n
      ? ranges
      : ranges.filter(
          (inner, index) =>
            !ranges.some(
              (outer, other) => other !== index && outer.from <= inner.from && inner.to <= outer.to && (outer.from < inner.from || inner.to < outer.to),
            ),
        );
  lastPartition = { partition, ranges: widest };
  return widest;
}

/**
 * The bigint ids split by length and sign: 0–9, 10–99, … up to the largest bigint, and -9…-1, -99…-10, … down to the
 * smallest. A table's rows usually fill a few of them (sequential ids of up to 9 digits, 18-digit snowflakes,
 * the instance actor -99), while a partition names ids in up to six (a dropped digit or two, a sign): prune reads
 * which of these spans hold rows, and where each begins and ends, before it looks up any candidate (clipToRows).
 */
export const ID_LENGTH_SPANS: readonly IdRange[] = (() => {
  const spans: IdRange[] = [];
  for (let digits = 1n; digits <= 19n; digits++) {
    const low = digits === 1n ? 0n : 10n ** (digits - 1n);
    const high = 10n ** digits - 1n;
    spans.push({ from: low, to: high < BIGINT_MAX ? high : BIGINT_MAX });
    spans.push({ from: -high > BIGINT_MIN ? -high : BIGINT_MIN, to: digits === 1n ? -1n : -low });
  }
  return spans.sort((a, b) => (a.from < b.from ? -1 : 1));
})();

/**
 * The ids of `ranges` that lie within `rows`, the lowest to the highest id of each span of ID_LENGTH_SPANS that
 * holds rows (sorted, disjoint): the only ids a row had when those were read. A row created since can fall
 * outside, so what this leaves out must be looked up again, unclipped, before anything is deleted.
 */
export function clipToRows(ranges: readonly IdRange[], rows: readonly IdRange[]): IdRange[] {
  const clipped: IdRange[] = [];
  for (const range of ranges) {
    for (const span of rows) {
      if (span.to < range.from) continue;
      if (span.from > range.to) break;
      clipped.push({ from: range.from > span.from ? range.from : span.from, to: range.to < span.to ? range.to : span.to });
    }
  }
  return clipped;
}
