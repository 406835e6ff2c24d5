/**
 * `mastosync plan` against the hand-written fixture: its totals must be what the database owns, as the fixture
 * spells it out (rows, every owned key, the *_file_size of every attachment with a file, what is under cache/),
 * on each schema generation; scope flags must narrow it exactly; and no object store may be contacted.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { buildFixture, type ExpectedObject, type Fixture, type FixtureRow } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { runCli, writeConfig } from '../support/cli.js';
import type { SchemaName } from '../support/schema.js';

interface PlanJson {
  jobs: Array<{ job: string; rows: number; objects: number; bytes: number; cached_objects: number; local_objects: number }>;
  total: { rows: number; objects: number; bytes: number };
}

let postgres: PostgresServer;
let proxy: HttpProxy;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  postgres = await startPostgres();
  // Both stores point here; nothing may arrive. (Its upstream is a closed port: any request would fail.)
  proxy = await startProxy({ upstreamPort: 1 });
});

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await proxy?.stop();
  await postgres?.stop();
});

async function world(schema: SchemaName): Promise<{ fixture: Fixture; db: TestDatabase; dir: string }> {
  const fixture = buildFixture(schema);
  const db = await createDatabase(schema);
  cleanups.push(() => db.drop());
  // Rows only: plan never looks at objects, so the fixture's objects are not uploaded anywhere.
  const { loadFixture } = await import('../support/fixture.js');
  await loadFixture({ ...fixture, sourceObjects: [] }, db.client, { put: async () => undefined }, 'unused');
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: 'old-media' },
    destination: { endpoint: proxy.endpoint, bucket: 'new-media' },
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  return { fixture, db, dir: config.dir };
}

async function plan(dir: string, ...flags: string[]): Promise<PlanJson> {
  const result = await runCli(['plan', 'all', '--json', ...flags], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as PlanJson;
}

/** `<prefix>_file_size` of every attachment with a file name: what the database knows of the bytes it owns. */
function ownedBytes(row: FixtureRow): number {
  let bytes = 0;
  for (const [column, value] of Object.entries(row.values)) {
    if (!column.endsWith('_file_name') || typeof value !== 'string' || value === '') continue;
    bytes += Number(row.values[column.replace(/_file_name$/, '_file_size')] ?? 0);
  }
  return bytes;
}

const jobRows = (fixture: Fixture) => fixture.rows.filter((row) => row.table !== 'statuses');

for (const schema of ['current', 'v4.3', 'old'] as const) {
  describe(`plan all on the ${schema} schema`, () => {
    let fixture: Fixture;
    let dir: string;
    before(async () => ({ fixture, dir } = await world(schema)));

    test('--json totals and per-job figures equal what the database owns; no object store contacted', async () => {
      proxy.reset();
      const result = await plan(dir);
      assert.deepEqual(Object.keys(result), ['jobs', 'total']);
      assert.deepEqual(Object.keys(result.total), ['rows', 'objects', 'bytes']);
      assert.deepEqual(Object.keys(result.jobs[0]!), ['job', 'rows', 'objects', 'bytes', 'cached_objects', 'local_objects']);

      const rows = jobRows(fixture);
      assert.deepEqual(result.total, {
        rows: rows.length,
        objects: fixture.expected.length,
        bytes: rows.reduce((sum, row) => sum + ownedBytes(row), 0),
      });
      for (const job of result.jobs) {
        const owned = fixture.expected.filter((object) => object.table === job.job);
        const tableRows = rows.filter((row) => row.table === job.job);
        assert.deepEqual(
          job,
          {
            job: job.job,
            rows: tableRows.length,
            objects: owned.length,
            bytes: tableRows.reduce((sum, row) => sum + ownedBytes(row), 0),
            cached_objects: owned.filter((object) => object.cache).length,
            local_objects: owned.filter((object) => !object.cache).length,
          },
          job.job,
        );
      }
      assert.equal(proxy.requests.length, 0, 'plan must not contact any object store');
    });

    test('--shard I/3 splits the totals exactly, by id modulo 3', async () => {
      const shards = await Promise.all([0, 1, 2].map((index) => plan(dir, '--shard', `${index}/3`)));
      shards.forEach((shard, index) => {
        const mine = (object: ExpectedObject) => Number(((BigInt(object.rowId) % 3n) + 3n) % 3n) === index;
        assert.equal(shard.total.objects, fixture.expected.filter(mine).length, `shard ${index}`);
      });
      assert.equal(
        shards.reduce((sum, shard) => sum + shard.total.rows, 0),
        jobRows(fixture).length,
      );
      // With two shards, -99 % 2 is -1 in SQL: the instance actor must still land in one (shard 1).
      const halves = await Promise.all([0, 1].map((index) => plan(dir, '--shard', `${index}/2`)));
      assert.equal(halves[0]!.total.objects + halves[1]!.total.objects, fixture.expected.length);
    });
  });
}

describe('plan scope flags', () => {
  let fixture: Fixture;
  let dir: string;
  before(async () => ({ fixture, dir } = await world('current')));

  test('--skip-remote-cache leaves out remote media and cards under cache/, keeping avatars, headers and emoji; =all leaves those out too', async () => {
    const kept = (await plan(dir, '--skip-remote-cache')).total.objects;
    const keptByAll = (await plan(dir, '--skip-remote-cache=all')).total.objects;
    const isMediaCache = (object: ExpectedObject) => object.cache && ['media_attachments', 'preview_cards'].includes(object.table);
    assert.equal(kept, fixture.expected.filter((object) => !isMediaCache(object)).length);
    assert.equal(keptByAll, fixture.expected.filter((object) => !object.cache).length);
    assert.ok(keptByAll < kept && kept < fixture.expected.length);
  });

  test('--min-id/--max-id bound the rows by id, inclusively', async () => {
    const result = await plan(dir, '--min-id', '5', '--max-id', '4321');
    const inRange = (object: ExpectedObject) => BigInt(object.rowId) >= 5n && BigInt(object.rowId) <= 4321n;
    assert.equal(result.total.objects, fixture.expected.filter(inRange).length);
    const negative = await plan(dir, '--max-id', '-1');
    assert.equal(negative.total.objects, 1, 'the instance actor, id -99, has one avatar');
  });

  test('the text report names the scope, the style objects of unknown size, requests and time at --rate', async () => {
    const result = await runCli(['plan', 'all', '--rate', '10', '--skip-remote-cache'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /no object store was contacted/);
    assert.match(result.stdout, /without remote media and preview cards under cache\//);
    assert.match(result.stdout, /Requests: about \d+/);
    assert.match(result.stdout, /Time: about .* at 10 objects\/s/);
    assert.match(result.stdout, /tootctl media remove/, 'skipping remote media comes with its warning');
    const total = result.stdout.split('\n').find((line) => line.startsWith('total'))!;
    assert.ok(total, result.stdout);
  });

  test('bad scope flags are usage errors naming the fix', async () => {
    for (const [flags, message] of [
      [['--since', 'yesterday'], /--since must be a UTC date/],
      [['--min-id', '10', '--max-id', '2'], /--min-id 10 is above --max-id 2/],
      [['--skip-remote-cache=media_attachments'], /--skip-remote-cache takes no value/],
      [['--shard', '1/0'], /number of shards must be from 1/],
      [['--shard', '0/2', '--shards', '2'], /not both/],
    ] as const) {
      const result = await runCli(['plan', 'all', ...flags], { cwd: dir });
      assert.equal(result.code, 2, `${flags.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
    }
  });
});
