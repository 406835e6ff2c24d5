/**
 * The database's clock. Mastodon writes `*_updated_at` in UTC (`timestamp without time zone`), so times that are
 * compared with them come from the same server, never from this machine's clock, which may be off or in another
 * zone. Formatted as JavaScript's toISOString (milliseconds, `Z`), so such times compare as strings.
 */
import type { Database } from './connection.js';

export const ISO_UTC_FORMAT = `'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'`;

export async function databaseNow(db: Database): Promise<string> {
  const [row] = await db.query<{ now: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', ${ISO_UTC_FORMAT}) AS now`);
  return row!.now;
}
