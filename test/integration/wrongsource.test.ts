/**
 * A source that answers but is not Mastodon's (an unmounted public/system, another bucket): the real CLI must not
 * pass it for a complete copy (tester1 F11). Before, `check` said ok, a run recorded every object missing with one
 * warn line each and exit 0, the next --resume said nothing, and verify said "all 0 checked objects … match".
 * - `check` looks for the newest owned objects at the source and FAILs when none is there;
 * - a run stops once the first 100 objects it looks for are all missing (exit 1, one `stopped:` line), logs the
 *   first 20 missing at warn and counts the rest in its summary; a run in which most of what it looked for for the
 *   first time is missing exits 1 with a line saying so; once the source is right, --resume copies everything;
 * - verify exits 1 when most of what it checked is missing at the source.
 * The fixture's few objects genuinely missing (a real instance's) are no such alarm: those runs exit 0.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { PgRelay } from '../support/pgRelay.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let db: TestDatabase;
let fixture: Fixture;
let root: string;
let good: string;

/** Accounts beyond the fixture's, each with one PNG avatar: enough objects for a run to stop on an empty source. */
const EXTRA = 150;
const extraKey = (id: number) => {
  const digits = String(id).padStart(9, '0');
  return `accounts/avatars/${digits.slice(0, 3)}/${digits.slice(3, 6)}/${digits.slice(6)}/original/a${id}.png`;
};

function put(folder: string, key: string, body: Buffer | string): void {
  mkdirSync(dirname(join(folder, key)), { recursive: true });
  writeFileSync(join(folder, key), body);
}

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  fixture = buildFixture('current');
  root = mkdtempSync(join(tmpdir(), 'mastosync-wrongsource-'));
  good = join(root, 'good');
  // The rows, and the fixture's objects as files of a public/system folder.
  await loadFixture(fixture, db.client, { put: async (_bucket, key, body) => put(good, key, body) }, 'unused');
  await db.client.query(
    `INSERT INTO accounts (id, username, created_at, updated_at, avatar_file_name, avatar_content_type, avatar_file_size, avatar_updated_at)
     SELECT g, 'extra' || g, now(), now(), 'a' || g || '.png', 'image/png', 10, now() FROM generate_series(100001, ${100000 + EXTRA}) AS g`,
  );
  for (let id = 100001; id <= 100000 + EXTRA; id++) put(good, extraKey(id), `avatar ${id}`);
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

function configFor(source: string, name: string) {
  mkdirSync(join(root, name), { recursive: true });
  const config = writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: source }, destination: { type: 'fs', path: join(root, name) } });
  return config;
}

const warnedMissing = (stderr: string) =>
  stderr.split('\n').filter((line) => line.includes('"level":40') && line.includes('"msg":"missing at the source"')).length;

describe('a source that is empty or not Mastodon’s', () => {
  test('check: FAIL source objects, naming a key looked for; exit 2. The right source: ok', async () => {
    const empty = join(root, 'empty-check');
    mkdirSync(empty);
    const wrong = await runCli(['check', '--config', configFor(empty, 'dest-check').file]);
    assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
    assert.match(
      wrong.stdout,
      /^FAIL source objects: none of the newest media_attachments and accounts objects \(\d+, e\.g\. \S+\) is at .*empty-check.*mounted/m,
    );
    assert.match(wrong.stdout, /^ok {3}source: /m, 'the folder itself is readable');

    const right = await runCli(['check', '--config', configFor(good, 'dest-check2').file]);
    assert.equal(right.code, 0, right.stdout + right.stderr);
    assert.match(right.stdout, /^ok {3}source objects: \d+ of the newest media_attachments and accounts objects \(\d+\) found at /m);
  });

  test('check looks at the source objects through the session its database check opened, not a second one (review L8)', async () => {
    // A second session would be opened with a run's start patience: a database gone between the two waited 5 min.
    const relay = new PgRelay(postgres);
    try {
      const url = await relay.listen(db.url);
      mkdirSync(join(root, 'dest-check-relay'), { recursive: true });
      const config = writeConfig({ databaseUrl: url, source: { type: 'fs', path: good }, destination: { type: 'fs', path: join(root, 'dest-check-relay') } });
      const result = await runCli(['check', '--config', config.file]);
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.match(result.stdout, /^ok {3}source objects: \d+ of the newest/m);
      assert.equal(relay.statements.filter((text) => /pg_catalog\.pg_attribute/.test(text)).length, 1, relay.statements.join('\n'));
    } finally {
      await relay.close();
    }
  });

  test('run: stops after 100 objects missing in a row, 20 warn lines; each cron --resume exits 1 until the source is right, then copies everything', async () => {
    const empty = join(root, 'empty-run');
    mkdirSync(empty);
    const config = configFor(empty, 'dest-run');
    const first = await runCli(['run', 'all', '--quiet', '--config', config.file]);
    assert.equal(first.code, 1, first.stdout + first.stderr);
    assert.match(first.stderr, /mastosync: stopped: none of the 100 objects looked for is at the source .*empty-run.*run again with --resume\n$/);
    assert.equal(warnedMissing(first.stderr), 20);
    assert.match(first.stdout, /note: \d+ objects were newly missing at the source: the first 20 were logged at warn, the others at info/);

    // Cron, the source still empty: every night says so, with exit 1 (what was missing before is not counted again).
    let night = await runCli(['run', 'all', '--resume', '--quiet', '--config', config.file]);
    for (let nights = 0; nights < 5 && /stopped: none of the 100/.test(night.stderr); nights++)
      night = await runCli(['run', 'all', '--resume', '--quiet', '--config', config.file]);
    assert.equal(night.code, 1, night.stdout + night.stderr);
    assert.match(night.stderr, /mastosync: \d+ of the \d+ objects looked for are missing at the source .*empty-run.*run again with --resume/);
    const quiet = await runCli(['run', 'all', '--resume', '--quiet', '--config', config.file]);
    assert.equal(quiet.code, 0, 'nothing new looked for: the objects still missing are known');

    // The source mounted: everything is copied, and only the fixture's genuinely missing objects stay missing.
    cpSync(good, empty, { recursive: true });
    const resumed = await runCli(['run', 'all', '--resume', '--json', '--quiet', '--config', config.file]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    const summary = JSON.parse(resumed.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
    assert.equal(summary.total.missing, fixture.missing.length);
    assert.equal(summary.total.failed, 0);
  });

  test('run: an old instance that lost its oldest files goes past them, as its newest are there (review L7)', async () => {
    // Only the newest 50 extra avatars: every object a first run reads before them (more than 100) is missing.
    const lost = join(root, 'lost-oldest');
    for (let id = 100000 + EXTRA - 49; id <= 100000 + EXTRA; id++) put(lost, extraKey(id), `avatar ${id}`);
    const config = configFor(lost, 'dest-lost');
    const first = await runCli(['run', 'all', '--json', '--config', config.file]);
    assert.doesNotMatch(first.stderr, /stopped:/, first.stderr);
    assert.match(first.stderr, /"msg":"the first objects looked for are missing at the source but the newest are there/);
    const summary = JSON.parse(first.stdout.trim().split('\n').at(-1)!) as { total: Record<string, number> };
    assert.equal(summary.total.copied, 50, first.stdout);
  });

  test('a migration delta pass (--since): objects missing at the source but at the destination are expected (MED-2)', async () => {
    // After the switch Mastodon stores new media at the destination only: 145 of the 150 extra avatars, the source has
    // the 5 newest (stored before the switch). Before, run and verify exited 1 calling the source the wrong one.
    const source = join(root, 'delta-source');
    const destination = join(root, 'delta-destination');
    for (let id = 100001; id <= 100000 + EXTRA; id++) put(id > 100000 + EXTRA - 5 ? source : destination, extraKey(id), `avatar ${id}`);
    const config = writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: source }, destination: { type: 'fs', path: destination } });
    const delta = ['accounts', '--since', '2000-01-01T00:00:00Z', '--min-id', '100001', '--config', config.file];
    const run = await runCli(['run', ...delta, '--quiet', '--checkpoint', join(root, 'delta.jsonl')]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.doesNotMatch(run.stderr, /is it Mastodon's bucket/);
    assert.equal(warnedMissing(run.stderr), 0, 'expected, not warned');
    assert.match(run.stdout, /note: 145 objects missing at the source are at the destination already/);
    const verify = await runCli(['verify', ...delta]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    assert.doesNotMatch(verify.stderr, /is it Mastodon's bucket/);

    // The same pass from an empty source, the destination lacking the objects: still the wrong source.
    const empty = join(root, 'delta-empty');
    mkdirSync(empty);
    const wrong = writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: empty }, destination: { type: 'fs', path: join(root, 'delta-nothing') } });
    mkdirSync(join(root, 'delta-nothing'));
    const wrongRun = await runCli(['run', 'accounts', '--since', '2000-01-01T00:00:00Z', '--min-id', '100001', '--quiet', '--config', wrong.file]);
    assert.equal(wrongRun.code, 1, wrongRun.stdout + wrongRun.stderr);
  });

  test('verify: most of what it checks missing at the source is exit 1, with a line saying why; the right source: exit 0', async () => {
    const empty = join(root, 'empty-verify');
    mkdirSync(empty);
    // The destination filled from the right source first.
    const right = configFor(good, 'dest-verify');
    assert.equal((await runCli(['run', 'all', '--quiet', '--config', right.file])).code, 0);
    assert.equal((await runCli(['verify', 'all', '--config', right.file])).code, 0);
    const wrong = writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: empty }, destination: { type: 'fs', path: join(root, 'dest-verify') } });
    const result = await runCli(['verify', 'all', '--config', wrong.file]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /mastosync: \d+ of the \d+ objects looked for are missing at the source .*empty-verify.*verify again/);
  });
});
