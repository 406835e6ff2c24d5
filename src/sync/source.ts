/**
 * Where an owned object is at the source: under the exact key the database names, else under one of its legacy
 * alternates (docs/storage-layout.md), tried in that order.
 */
import type { OwnedObject } from '../mastodon/keys.js';

/** The first of the object's candidate keys that `look` finds something under, with that key; undefined for none. */
export async function findAtSource<T>(object: OwnedObject, look: (key: string) => Promise<T | undefined>): Promise<{ found: T; from: string } | undefined> {
  // The exact key first, on its own: most objects are there, and then no array of candidates is made.
  const exact = await look(object.key);
  if (exact !== undefined) return { found: exact, from: object.key };
  for (const key of object.alternates) {
    const found = await look(key);
    if (found !== undefined) return { found, from: key };
  }
  return undefined;
}
