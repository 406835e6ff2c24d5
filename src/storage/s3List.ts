/**
 * Reads a ListObjectsV2 answer's XML bytes for what a listing needs: each object's Key, Size and ETag, and whether
 * (and from which token) the listing continues. The SDK builds a full object tree per 1000-key page, whose garbage
 * made V8 grow its heap with the size of the bucket (+57 MB of peak RSS from 10 k to 1 M keys) and was most of a
 * prune's CPU; this scans the text for the few elements it needs and builds nothing else.
 *
 * It relies on what S3's answer is: elements without attributes inside ListBucketResult, text escaped as XML
 * requires (a key's `<` or `&` arrives as an entity, so a literal `<` always starts a tag), no CDATA.
 */

interface ListedEntry {
  readonly key: string;
  readonly size: number;
  /** The ETag when it is a plain MD5 (a single-part upload's), lower-case hex without quotes. */
  readonly md5?: string;
}

export interface ListPage {
  readonly contents: readonly ListedEntry[];
  readonly isTruncated: boolean;
  readonly nextContinuationToken?: string;
}

/** Thrown when a 2xx answer's text is not a ListObjectsV2 answer (a proxy's or a portal's page): the listing fails. */
export class ListingParseError extends Error {
  constructor(
    message: string,
    readonly excerpt: string,
  ) {
    super(message);
    this.name = 'ListingParseError';
  }
}

export function parseListPage(xml: Buffer): ListPage {
  const end = xml.lastIndexOf('</ListBucketResult>');
  if (xml.indexOf('<ListBucketResult') === -1 || end === -1) {
    throw new ListingParseError('the listing answer is not a complete ListBucketResult', xml.toString('utf8', 0, 200));
  }
  const contents: ListedEntry[] = [];
  let from = 0;
  for (;;) {
    const start = xml.indexOf('<Contents>', from);
    if (start === -1) break;
    const close = xml.indexOf('</Contents>', start);
    if (close === -1) throw new ListingParseError('a <Contents> element is not closed', xml.toString('utf8', start, start + 200));
    const key = element(xml, 'Key', start, close);
    if (key === undefined) throw new ListingParseError('a listed object has no <Key>', xml.toString('utf8', start, Math.min(close, start + 200)));
    const size = element(xml, 'Size', start, close);
    const etag = bounds(xml, 'ETag', start, close);
    const md5 = etag === undefined ? undefined : md5Of(xml, etag[0], etag[1]);
    const decodedKey = decodeXml(key);
    const bytes = size === undefined ? 0 : Number(size);
    // One object per entry, of one of two shapes, and no string for the ETag beyond its MD5: every entry of a page
    // lives a thousand keys and is promoted, so what it allocates is what a long listing's collections cost.
    contents.push(md5 === undefined ? { key: decodedKey, size: bytes } : { key: decodedKey, size: bytes, md5 });
    from = close + '</Contents>'.length;
  }
  // IsTruncated and NextContinuationToken are unique names in the answer (no object carries either).
  const token = element(xml, 'NextContinuationToken', 0, end);
  return {
    contents,
    isTruncated: element(xml, 'IsTruncated', 0, end)?.trim() === 'true',
    ...(token !== undefined && { nextContinuationToken: decodeXml(token) }),
  };
}

/**
 * The text of the first `<name>…</name>` between `from` and `to`; `<name/>` is empty text. Decoded from the bytes
 * on its own: a slice of one string for the whole page would keep that page alive as long as any key is.
 */
function element(xml: Buffer, name: string, from: number, to: number): string | undefined {
  const found = bounds(xml, name, from, to);
  return found === undefined ? undefined : xml.toString('utf8', found[0], found[1]);
}

/** Where the text of the first `<name>…</name>` between `from` and `to` lies: [start, end) of its bytes. */
function bounds(xml: Buffer, name: string, from: number, to: number): [number, number] | undefined {
  const open = xml.indexOf(`<${name}`, from);
  if (open === -1 || open >= to) return undefined;
  const after = open + name.length + 1;
  if (xml[after] === 0x2f /* / */ && xml[after + 1] === 0x3e /* > */) return [after, after];
  if (xml[after] !== 0x3e /* > */) return bounds(xml, name, after, to); // a longer name with this one as its start
  const close = xml.indexOf(`</${name}>`, after);
  if (close === -1 || close > to) return undefined;
  return [after + 1, close];
}

const QUOT = Buffer.from('&quot;');
const HEX_MD5 = /^[0-9a-f]{32}$/i;

/**
 * The MD5 an ETag's text (bytes `from` to `to`) carries, read from the bytes where it is spelled as S3 spells it
 * (`&quot;` or `"` around 32 hex digits); any other spelling decoded first. None for a multipart upload's ETag.
 */
function md5Of(xml: Buffer, from: number, to: number): string | undefined {
  let start = from;
  let end = to;
  if (end - start === 32 + 2 * QUOT.length && xml.subarray(start, start + QUOT.length).equals(QUOT) && xml.subarray(end - QUOT.length, end).equals(QUOT)) {
    start += QUOT.length;
    end -= QUOT.length;
  } else if (end - start === 34 && xml[start] === 0x22 && xml[end - 1] === 0x22) {
    start += 1;
    end -= 1;
  }
  if (end - start === 32) {
    const hex = xml.toString('latin1', start, end);
    return HEX_MD5.test(hex) ? hex.toLowerCase() : undefined;
  }
  const decoded = decodeXml(xml.toString('utf8', from, to)).replace(/^"|"$/g, '');
  return HEX_MD5.test(decoded) ? decoded.toLowerCase() : undefined;
}

const NAMED: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** The text of the first <name> element of `xml` (one without child elements), decoded; undefined without one. */
export function xmlField(xml: string, name: string): string | undefined {
  const text = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
  return text === undefined ? undefined : decodeXml(text);
}

/** XML's five named entities and numeric references (decimal and hex) decoded; most keys have none. */
export function decodeXml(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(/&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(amp|lt|gt|quot|apos));/g, (entity, hex?: string, decimal?: string, name?: string) => {
    if (name !== undefined) return NAMED[name]!;
    const code = hex !== undefined ? Number.parseInt(hex, 16) : Number(decimal);
    return code <= 0x10ffff ? String.fromCodePoint(code) : entity;
  });
}
