/**
 * Where an owned object is at the source: under the exact key the database names, else under one of its legacy
 * alternates (docs/storage-layout.md), tried in that order.
 */
import type { Database } from '../db/connection.js';
import { readNewestRows } from '../db/rows.js';
import { hasTable, type Schema } from '../db/schema.js';
import { ownedObjects, type OwnedObject } from '../mastodon/keys.js';
import type { JobName } from '../mastodon/tables.js';
import type { ObjectStore } from '../storage/types.js';

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

/** The newest rows of these tables (those this Mastodon has) are looked for at the source, NEWEST_ROWS each. */
export const PROBED_JOBS: readonly JobName[] = ['media_attachments', 'accounts'];
const NEWEST_ROWS = 5;

/**
 * The originals of the newest rows of PROBED_JOBS, each looked for at its key or a legacy one as a run looks: the keys
 * looked for, and how many were there. None there says the source is not Mastodon's (an unmounted public/system,
 * another bucket or key_prefix); an old instance's oldest files may be lost, its newest are not.
 */
export async function lookForNewest(db: Database, schema: Schema, source: ObjectStore): Promise<{ looked: string[]; found: number }> {
  const looked: string[] = [];
  let found = 0;
  for (const job of PROBED_JOBS.filter((name) => hasTable(schema, name))) {
    for (const row of await readNewestRows(db, schema, job, NEWEST_ROWS)) {
      const original = ownedObjects(job, row)[0];
      if (original === undefined) continue;
      looked.push(original.key);
      if ((await findAtSource(original, (key) => source.head(key))) !== undefined) found += 1;
    }
  }
  return { looked, found };
}
