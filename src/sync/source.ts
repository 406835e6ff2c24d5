/**
 * Where an owned object is at the source: under the exact key the database names, else under one of its legacy
 * alternates (docs/storage-layout.md), tried in that order.
 */
import type { OwnedObject } from '../mastodon/keys.js';

/** The first of the object's candidate keys that `look` finds something under, with that key; undefined for none. */
export async function findAtSource<T>(object: OwnedObject, look: (key: string) => Promise<T | undefined>): Promise<{ found: T; from: string } | undefined> {
  for (const key of [object.key, ...object.alternates]) {
    const found = await look(key);
    if (found !== undefined) return { found, from: key };
  }
  return undefined;
}
