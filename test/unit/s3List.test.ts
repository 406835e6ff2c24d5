/**
 * The listing's XML scan (src/storage/s3List.ts): the keys, sizes, ETags and continuation it reads from a
 * ListObjectsV2 answer, entities decoded as the SDK's parser decodes them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListingParseError, decodeXml, parseListPage as parseBytes } from '../../src/storage/s3List.js';

const parseListPage = (xml: string) => parseBytes(Buffer.from(xml));

const escapeXml = (text: string) => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');

function answer(objects: Array<{ key: string; size: number; etag?: string }>, tail: string): string {
  const contents = objects
    .map(
      ({ key, size, etag }) =>
        `<Contents><Key>${escapeXml(key)}</Key><LastModified>2026-12-06T23:00:00.000Z</LastModified>` +
        `${etag === undefined ? '' : `<ETag>${escapeXml(etag)}</ETag>`}<ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>${size}</Size>` +
        `<Owner><ID>abc</ID><DisplayName>x</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>`,
    )
    .join('');
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
    `<Name>media</Name><Prefix>pfx/</Prefix><KeyCount>${objects.length}</KeyCount><MaxKeys>1000</MaxKeys>${contents}${tail}</ListBucketResult>`
  );
}

test('a page: keys with entities, unicode, spaces and +, sizes, and the MD5 of each ETag that is one', () => {
  const objects = [
    { key: 'pfx/a&b <c> "d" \'e\'.png', size: 30, etag: '"9e107d9d372bb6826bd81d3542a419d6"' },
    { key: 'pfx/My Photo + café 100% #1 🐘.jpg', size: 0, etag: '"0f343b0931126a20f133d67c2b018a3b-2"' },
    { key: 'pfx/no-etag', size: 12345678901 },
    { key: 'pfx/upper', size: 1, etag: '"9E107D9D372BB6826BD81D3542A419D6"' },
    { key: 'pfx/bare', size: 2, etag: '9e107d9d372bb6826bd81d3542a419d6' },
  ];
  const page = parseListPage(answer(objects, '<IsTruncated>false</IsTruncated>'));
  assert.deepEqual(page, {
    contents: [
      { key: 'pfx/a&b <c> "d" \'e\'.png', size: 30, md5: '9e107d9d372bb6826bd81d3542a419d6' },
      { key: 'pfx/My Photo + café 100% #1 🐘.jpg', size: 0 },
      { key: 'pfx/no-etag', size: 12345678901 },
      { key: 'pfx/upper', size: 1, md5: '9e107d9d372bb6826bd81d3542a419d6' },
      { key: 'pfx/bare', size: 2, md5: '9e107d9d372bb6826bd81d3542a419d6' },
    ],
    isTruncated: false,
  });
  // Quotes spelled otherwise (a numeric reference, or not escaped at all) give the same MD5.
  const spelled = (etag: string) =>
    parseListPage(
      answer([], '<IsTruncated>false</IsTruncated>').replace('</MaxKeys>', `</MaxKeys><Contents><Key>k</Key><ETag>${etag}</ETag><Size>1</Size></Contents>`),
    ).contents[0]!.md5;
  assert.equal(spelled('&#34;9e107d9d372bb6826bd81d3542a419d6&#34;'), '9e107d9d372bb6826bd81d3542a419d6');
  assert.equal(spelled('"9e107d9d372bb6826bd81d3542a419d6"'), '9e107d9d372bb6826bd81d3542a419d6');
  assert.equal(spelled('&quot;9e107d9d372bb6826bd81d3542a419dX&quot;'), undefined, 'not hex: no MD5');
  assert.equal(spelled(''), undefined);
});

test('a truncated page carries its continuation token, decoded', () => {
  const page = parseListPage(
    answer(
      [{ key: 'pfx/a', size: 1, etag: '"x"' }],
      '<IsTruncated>true</IsTruncated><ContinuationToken>old</ContinuationToken><NextContinuationToken>1ueGcx+/a&amp;b==</NextContinuationToken>',
    ),
  );
  assert.equal(page.isTruncated, true);
  assert.equal(page.nextContinuationToken, '1ueGcx+/a&b==');
  assert.deepEqual(page.contents, [{ key: 'pfx/a', size: 1 }], 'an ETag that is no MD5 gives none');
});

test('an empty page, and an answer that is not a listing', () => {
  assert.deepEqual(parseListPage(answer([], '<IsTruncated>false</IsTruncated>')), { contents: [], isTruncated: false });
  const selfClosed = '<ListBucketResult><Name>media</Name><Prefix/><KeyCount>0</KeyCount><IsTruncated>false</IsTruncated></ListBucketResult>';
  assert.deepEqual(parseListPage(selfClosed), { contents: [], isTruncated: false });
  assert.throws(() => parseListPage('<html><body>Service unavailable</body></html>'), ListingParseError);
  assert.throws(() => parseListPage(answer([{ key: 'pfx/a', size: 1 }], '').slice(0, 150)), ListingParseError);
});

test('XML entities: the five named ones and numeric references, nothing else touched', () => {
  assert.equal(decodeXml('a&amp;b&lt;c&gt;d&quot;e&apos;f'), 'a&b<c>d"e\'f');
  assert.equal(decodeXml('tab&#9;cr&#xD;snow&#x2603;&#128024;'), 'tab\tcr\rsnow☃🐘');
  assert.equal(decodeXml('&amp;lt;'), '&lt;', 'decoded once');
  assert.equal(decodeXml('plain + key%20 ~'), 'plain + key%20 ~');
});
