/**
 * Content-Types that say nothing of the bytes. A provider labels an object written without a type so (S3
 * binary/octet-stream, Azure application/octet-stream), and so do tools that knew none; Mastodon never sends one
 * for a medium it identified. A copy gives such an object the type its row names (docs/storage-layout.md §6).
 */
function saysNothing(contentType: string | undefined): boolean {
  if (contentType === undefined) return true;
  const type = contentType.split(';', 1)[0]!.trim().toLowerCase();
  return type === '' || type === 'application/octet-stream' || type === 'binary/octet-stream';
}

/** The Content-Type a copy writes: the source object's, unless it says nothing and the row names one. */
export function typeToWrite(sourceType: string | undefined, rowType: string | undefined): string | undefined {
  return saysNothing(sourceType) && !saysNothing(rowType) ? rowType : (sourceType ?? rowType);
}
