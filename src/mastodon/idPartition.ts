/**
 * Paperclip's `:id_partition` (docs/storage-layout.md §1.2), reproduced quirks included.
 *
 * Ruby formats the id with "%09d" (below 1e9) or "%012d", then keeps every run of three digits that
 * `scan(/\d{3}/)` finds. So trailing digits that do not fill a group are dropped (a 17-digit id loses its last
 * two) and a negative id keeps only the groups after its sign (-99 → "000/000").
 */
const PARTITION_LIMIT = 1_000_000_000n;

export function idPartition(id: string | number | bigint): string {
  // An id as PostgreSQL writes a positive bigint (no sign, no leading zero): below 1e9 exactly when it has at most 9
  // digits, padded without a BigInt. Once per row read.
  if (typeof id === 'string' && isPlainDigits(id)) return groupsOf(id.padStart(id.length <= 9 ? 9 : 12, '0'));
  const value = BigInt(id);
  return groupsOf(rubyZeroPad(value, value < PARTITION_LIMIT ? 9 : 12));
}

/**
 * The partition of Paperclip before 6.1 (thoughtbot's gem, until about 2018), which padded every id to 9 digits:
 * it differs from idPartition only for ids of 10 or 11 digits, whose last one or two digits it drops (§1.2).
 */
export function legacyIdPartition(id: string | number | bigint): string {
  if (typeof id === 'string' && isPlainDigits(id)) return groupsOf(id.padStart(9, '0'));
  return groupsOf(rubyZeroPad(BigInt(id), 9));
}

/** Digits only, the first not 0 (or "0" itself): the decimal text of a non-negative integer. */
function isPlainDigits(text: string): boolean {
  if (text.length === 0 || text.length > 19 || (text.length > 1 && text.charCodeAt(0) === 48)) return false;
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    if (code < 48 || code > 57) return false;
  }
  return true;
}

/** `scan(/\d{3}/)` over a sign and digits: the digits in threes from the left, a shorter rest dropped (no regex: hot in prune). */
function groupsOf(formatted: string): string {
  const start = formatted.startsWith('-') ? 1 : 0;
  let groups = '';
  for (let at = start; at + 3 <= formatted.length; at += 3) groups += at === start ? formatted.slice(at, at + 3) : `/${formatted.slice(at, at + 3)}`;
  return groups;
}

/** Ruby's `"%0<width>d" % n`: the sign counts towards the width and zeros go between sign and digits. */
function rubyZeroPad(value: bigint, width: number): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString();
  const sign = negative ? '-' : '';
  return sign + digits.padStart(width - sign.length, '0');
}
