/**
 * What a job owns, without reading its rows one by one or touching any object store: the counted groups of
 * src/db/counts run through the same key rules as a copy, then multiplied out. Used by `mastosync plan` and for
 * the totals of the progress display.
 */
import type { Database } from '../db/connection.js';
import { countOwnership, type CountOptions } from '../db/counts.js';
import type { Schema } from '../db/schema.js';
import { ownedInScope, type Scope } from '../db/scope.js';
import type { JobName } from '../mastodon/tables.js';

export interface JobPlan {
  readonly job: JobName;
  /** Rows in scope, including rows that own no file (a run reads them too). */
  rows: number;
  /** Objects owned: every attachment with a file, `original` and every style. */
  objects: number;
  /** Sum of the `*_file_size` columns: the originals only (Mastodon records no size for styles). */
  bytes: number;
  /** Objects under cache/ (remote media Mastodon fetched) and the others. */
  cachedObjects: number;
  localObjects: number;
  /** Objects of styles other than `original`, whose size the database does not know. */
  styleObjects: number;
  /** Requests a streamed copy makes: a GET and a PUT per object, more for originals sent in parts. */
  requests: number;
}

export async function planJob(db: Database, schema: Schema, job: JobName, scope: Scope, options: CountOptions): Promise<JobPlan> {
  const plan: JobPlan = { job, rows: 0, objects: 0, bytes: 0, cachedObjects: 0, localObjects: 0, styleObjects: 0, requests: 0 };
  for (const group of await countOwnership(db, schema, job, scope, options)) {
    const objects = ownedInScope(job, group.row, scope);
    plan.rows += group.rows;
    for (const object of objects) {
      plan.objects += group.rows;
      plan.requests += 2 * group.rows;
      if (object.underCache) plan.cachedObjects += group.rows;
      else plan.localObjects += group.rows;
      if (object.style === 'original') {
        plan.bytes += group.bytes[object.attachment] ?? 0;
        plan.requests += group.extraRequests[object.attachment] ?? 0;
      } else {
        plan.styleObjects += group.rows;
      }
    }
  }
  return plan;
}
