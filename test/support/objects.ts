/** Owned objects as a run hands them to the copy, for tests and benches that copy objects no fixture row owns. */
import type { OwnedObject } from '../../src/mastodon/keys.js';

/** The original of a local media attachment (row 1) at `key`, with what its row says of the file. */
export function mediaOriginal(key: string, stored: { readonly contentType: string | null; readonly size: number | null }): OwnedObject {
  return {
    job: 'media_attachments',
    id: '1',
    attachment: 'file',
    style: 'original',
    key,
    alternates: [],
    visibility: 'default',
    storedContentType: stored.contentType,
    storedSize: stored.size,
    underCache: false,
  };
}
