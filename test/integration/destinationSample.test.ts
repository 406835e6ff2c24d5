/**
 * A resumed run first asks the destination for a few objects the checkpoint records as copied, from rows sampled in
 * the database (readSampleRows). Under a --since scope, a migration's delta pass, the rows in scope are the newest
 * few, and no index holds the window: each probe walked the primary key from its point until it met one, most of the
 * table (review1 LOW-6: 2.5 s over 3 million rows, growing with the table, one statement holding a snapshot on the
 * production database, up to its statement_timeout). Asserted on what PostgreSQL does with the very queries sent
 * (EXPLAIN ANALYZE): the rows read stay under a bound that does not grow with the table, whatever the scope.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createDatabase, type TestDatabase } from '../support/postgres.js';
import { connectDatabase, type Database } from '../../src/db/connection.js';
import { probeSchema, type Schema } from '../../src/db/schema.js';
import { SAMPLE_PROBE_ROWS, readSampleRows } from '../../src/db/rows.js';
import type { Scope } from '../../src/db/scope.js';
import type { JobName } from '../../src/mastodon/tables.js';
import { createLogger } from '../../src/cli/logger.js';

/** Rows of each table: enough that a walk through most of them dwarfs the bound. */
const ROWS = 200_000;
/** The newest rows, changed since yesterday: a delta pass's window. */
const IN_WINDOW = 300;
const FRACTIONS = [0.1, 0.5];

let db: TestDatabase;
let database: Database;
let schema: Schema;

before(async () => {
  db = await createDatabase('current');
  await db.client.query(
    `INSERT INTO accounts (id, username, created_at, updated_at, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at)
     SELECT g, 'u' || g, '2020-01-01', '2020-01-01', 'a.png', 'image/png', 100, '2020-01-01' FROM generate_series(1, ${ROWS}) g`,
  );
  await db.client.query(
    `INSERT INTO media_attachments (id, account_id, file_file_name, file_content_type, file_file_size, file_updated_at, created_at, updated_at)
     SELECT g, 1 + g % 1000, 'f.png', 'image/png', 100, '2020-01-01', '2020-01-01', '2020-01-01' FROM generate_series(1, ${ROWS}) g`,
  );
  for (const [table, attachment] of [
    ['accounts', 'avatar'],
    ['media_attachments', 'file'],
  ])
    await db.client.query(`UPDATE ${table} SET ${attachment}_updated_at = (now() AT TIME ZONE 'UTC') WHERE id > ${ROWS - IN_WINDOW}`);
  await db.client.query('ANALYZE accounts');
  await db.client.query('ANALYZE media_attachments');
  database = await connectDatabase({ connectionString: db.url, ssl: false, batchSize: 1000 }, createLogger('error'));
  schema = await probeSchema(database);
});

after(async () => {
  await database?.close();
  await db?.drop();
});

interface PlanNode {
  readonly 'Node Type': string;
  readonly 'Relation Name'?: string;
  readonly 'Actual Rows': number;
  readonly 'Actual Loops': number;
  readonly 'Rows Removed by Filter'?: number;
  readonly Plans?: readonly PlanNode[];
}

/** Rows each table's scans read (those returned and those a filter dropped), and its sequential scans. */
function tableReads(node: PlanNode, reads = new Map<string, { rows: number; seqScans: number }>()) {
  const table = node['Relation Name'];
  if (table !== undefined) {
    const read = reads.get(table) ?? { rows: 0, seqScans: 0 };
    read.rows += (node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0)) * node['Actual Loops'];
    if (node['Node Type'] === 'Seq Scan') read.seqScans += 1;
    reads.set(table, read);
  }
  for (const child of node.Plans ?? []) tableReads(child, reads);
  return reads;
}

/** The sample's rows, and what PostgreSQL read for each query it sent. */
async function sampleAndPlans(job: JobName, scope: Scope) {
  const sent: Array<{ text: string; values: readonly unknown[] }> = [];
  const recording: Database = Object.create(database, {
    query: { value: (text: string, values: readonly unknown[] = []) => (sent.push({ text, values }), database.query(text, values)) },
  });
  const rows = await readSampleRows(recording, schema, job, String(ROWS), { newest: 2, fractions: FRACTIONS }, scope);
  assert.equal(sent.length, 2, 'the newest rows, then the points');
  const plans = [];
  for (const { text, values } of sent) {
    const { rows: explained } = await db.client.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`EXPLAIN (ANALYZE, FORMAT JSON) ${text}`, [...values]);
    plans.push(tableReads(explained[0]!['QUERY PLAN'][0]!.Plan));
  }
  return { rows, plans };
}

const yesterday = () => new Date(Date.now() - 86_400_000).toISOString();

for (const job of ['accounts', 'media_attachments'] as const) {
  test(`${job}: the sample reads a bounded number of rows through the primary key, under a --since window too`, async () => {
    for (const [label, scope] of [
      ['the whole database', {}],
      ['--since yesterday', { since: yesterday() }],
      ['--since yesterday, shard 1/3', { since: yesterday(), shard: { index: 1, count: 3 } }],
    ] as const) {
      const { rows, plans } = await sampleAndPlans(job, scope);
      // The newest rows in scope are found (the window's rows are the newest); the points may find none.
      const newest = rows.slice(0, 2).map((row) => Number(row.id));
      assert.equal(newest.length, 2, `${label}: the newest rows in scope`);
      for (const id of newest) assert.ok(id > ROWS - IN_WINDOW, `${label}: row ${id} is in scope`);
      // Each probe (the newest rows, each point) reads SAMPLE_PROBE_ROWS rows at most, and as many rows it joins;
      // the points' query reads the lowest id too.
      const bound = FRACTIONS.length * SAMPLE_PROBE_ROWS + 1;
      for (const [index, reads] of plans.entries()) {
        for (const [table, read] of reads) {
          assert.equal(read.seqScans, 0, `${label}, query ${index + 1}: a sequential scan of ${table}`);
          assert.ok(read.rows <= bound, `${label}, query ${index + 1}: ${read.rows} rows of ${table} read (at most ${bound}, the table has ${ROWS})`);
        }
      }
    }
  });
}
