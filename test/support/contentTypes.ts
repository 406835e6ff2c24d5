/**
 * The Content-Type Mastodon sends for an object, derived by hand for a source that keeps none (a folder), as the
 * folder tests check it (docs/storage-layout.md §6): the database's type for `original`, the style's format otherwise.
 */
import type { ExpectedObject, Fixture } from './fixture.js';

const COLUMN_PREFIX: Record<string, string> = {
  files: 'file',
  thumbnails: 'thumbnail',
  avatars: 'avatar',
  headers: 'header',
  images: 'image',
  icons: 'icon',
  dumps: 'dump',
  data: 'data',
};
const TYPE_OF_EXTENSION: Record<string, string> = { png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif' };

/** Undefined where a NULL type in the database leaves the type to the server's default. */
export function expectedContentType(fixture: Fixture, expected: ExpectedObject): string | undefined {
  const row = fixture.rows.find((candidate) => candidate.table === expected.table && String(candidate.values.id) === expected.rowId)!;
  const databaseType = row.values[`${COLUMN_PREFIX[expected.attachment]}_content_type`] as string | null;
  if (expected.style === 'original') return databaseType ?? undefined;
  const name = expected.key.slice(expected.key.lastIndexOf('/') + 1);
  // A style without a format of its own keeps the original's extension, or none: then it is the original's type.
  if (!name.includes('.')) return databaseType ?? undefined;
  return TYPE_OF_EXTENSION[name.slice(name.lastIndexOf('.') + 1)];
}
