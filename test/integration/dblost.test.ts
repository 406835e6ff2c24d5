/**
 * The database lost for good partway (here: every connection cut at a chosen statement, and every reconnect refused
 * as a rotated password is, which no waiting heals), and a path that freezes as a command leaves:
 * - `verify` and `prune` (the real CLI) end as a run does on an error no retry fixes: their own summary of what they
 *   did before, then one `stopped:` line whose next step is their own (neither takes --resume), exit 1 (they ended
 *   with the bare `stopped:` line, which said to --resume);
 * - a --skip-existing run writes no watermark past rows its join never read (d3470c8);
 * - goodbyes that go unanswered (Terminate and FIN swallowed, the connections half-open for good) hold no process
 *   alive after its last line (16501f9).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { PgRelay } from '../support/pgRelay.js';
import { runCli, writeConfig } from '../support/cli.js';
import { manyFilesFolder } from '../support/files.js';
import pino from 'pino';
import { DatabaseLostError, connectDatabase, type Database } from '../../src/db/connection.js';
import { probeSchema } from '../../src/db/schema.js';
import { FsStore } from '../../src/storage/fs.js';
import { CheckpointWriter, EMPTY_RESUME_STATE, loadCheckpoint, type ResumeState } from '../../src/sync/checkpoint.js';
import { runJobs, type RunOptions } from '../../src/sync/run.js';

let postgres: PostgresServer;
let db: TestDatabase;
let folder: string;

/** Accounts 1..ROWS, each with a PNG avatar. */
const ROWS = 1200;

function avatarKey(id: number, name = `a${id}.png`): string {
  const digits = String(id).padStart(9, '0');
  return `accounts/avatars/${digits.slice(0, 3)}/${digits.slice(3, 6)}/${digits.slice(6)}/original/${name}`;
}

function put(root: string, key: string): void {
  mkdirSync(dirname(join(root, key)), { recursive: true });
  writeFileSync(join(root, key), `bytes of ${key}`);
}

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  await insertAvatarAccounts(db.client, `generate_series(1, ${ROWS}) AS g`);
  folder = manyFilesFolder('mastosync-dblost-');
  for (let id = 1; id <= ROWS; id++) put(join(folder, 'source'), avatarKey(id));
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

/** The CLI against `destination`, through a relay that loses the database at `statement`'s `occurrence`. */
async function lostPartway(args: string[], destination: string, statement: RegExp, occurrence: number) {
  const relay = new PgRelay(postgres);
  const config = writeConfig({
    databaseUrl: await relay.listen(db.url),
    source: { type: 'fs', path: join(folder, 'source') },
    destination: { type: 'fs', path: destination },
    batchSize: 10,
  });
  relay.loseAt(statement, occurrence);
  try {
    const result = await runCli([...args, '--config', config.file, '--log-level', 'error'], { cwd: config.dir });
    return { ...result, stderrLines: result.stderr.trimEnd().split('\n') };
  } finally {
    await relay.close();
    rmSync(config.dir, { recursive: true, force: true });
  }
}

const LOST = String.raw`lost the connection to postgres@127\.0\.0\.1:\d+/\S+ and could not restore it \(.*password authentication failed.*\)`;

describe('the database lost for good partway', () => {
  test('verify: its summary of what it checked, then a stop that says to run verify again; exit 1', async () => {
    const destination = join(folder, 'empty');
    mkdirSync(destination);
    // Rows come 10 a window, the next read while one is checked: the third window is asked for once the first is checked.
    const result = await lostPartway(['verify', 'accounts', '--by-head'], destination, /LIMIT \$2/, 3);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    const missing = lines.filter((line) => line.startsWith('missing '));
    const verdict = /^verify: stopped after checking (\d+) objects, (\d+) of them off \(the lines above\): the others were not checked$/.exec(lines.at(-1)!);
    assert.ok(verdict, lines.at(-1));
    const checked = Number(verdict[1]);
    assert.ok(checked >= 10 && checked < ROWS, `checked before the loss: ${checked}`);
    assert.equal(Number(verdict[2]), checked);
    assert.equal(missing.length, checked);
    assert.match(
      lines.find((line) => line.startsWith('total'))!,
      new RegExp(`^total\\s+${checked}\\s+${checked}\\s+0\\s+${checked}\\s`),
    );
    assert.match(
      result.stderrLines.at(-1)!,
      new RegExp(`^mastosync: stopped: ${LOST}: once the cause is fixed, run verify again: it checks every object from the start$`),
    );
    assert.doesNotMatch(result.stdout + result.stderr, /--resume/);
  });

  test('verify --json: the summary says it stopped, and why', async () => {
    const destination = join(folder, 'empty-json');
    mkdirSync(destination);
    const result = await lostPartway(['verify', 'accounts', '--by-head', '--json'], destination, /LIMIT \$2/, 3);
    assert.equal(result.code, 1, result.stderr);
    const summary = JSON.parse(result.stdout.trimEnd().split('\n').at(-1)!) as { total: { checked: number }; interrupted: boolean; stopped?: string };
    assert.ok(summary.total.checked >= 10 && summary.total.checked < ROWS);
    assert.equal(summary.interrupted, false);
    assert.match(summary.stopped ?? '', new RegExp(`^${LOST}: once the cause is fixed, run verify again`));
  });

  test('prune: its summary of what it listed and found, nothing deleted, then a stop that says to run prune again; exit 1', async () => {
    // Every owned object, and an orphan beside each of the first ten rows' (in the first page of 1000 listed keys).
    const destination = join(folder, 'copied');
    for (let id = 1; id <= ROWS; id++) put(destination, avatarKey(id));
    for (let id = 1; id <= 10; id++) put(destination, avatarKey(id, 'replaced.png'));
    // The listed keys' rows are looked up a page of 1000 at a time: lost at the second page's lookup.
    const result = await lostPartway(['prune', 'accounts', '--delete', '--max-delete', '100%'], destination, /= ANY\(\$1::bigint\[\]\)/, 2);
    assert.equal(result.code, 1, result.stderr);
    const lines = result.stdout.trimEnd().split('\n');
    assert.equal(lines.filter((line) => line.startsWith('orphan ')).length, 10);
    const verdict = /^prune: stopped after listing (\d+) objects, 10 of them found owned by no row; nothing deleted: (.*)$/.exec(lines.at(-1)!);
    assert.ok(verdict, lines.at(-1));
    assert.ok(Number(verdict[1]) >= 1000, `listed before the loss: ${verdict[1]}`);
    assert.match(
      result.stderrLines.at(-1)!,
      new RegExp(`^mastosync: stopped: ${LOST}: once the cause is fixed, run prune again: it lists every object from the start$`),
    );
    assert.doesNotMatch(result.stdout + result.stderr, /--resume/);
  });
});

describe('a --skip-existing run that loses the database partway', () => {
  let skipDb: TestDatabase;
  let world: string;
  before(async () => {
    // Rows of two id widths, which the join reads side by side (src/sync/listingJoin.ts, ID_WIDTHS): the few long
    // ids are all read before most short ones are.
    skipDb = await createDatabase('current');
    await insertAvatarAccounts(skipDb.client, '(SELECT generate_series(1, 600) AS g UNION ALL SELECT generate_series(1000000001, 1000000005)) AS ids');
    world = manyFilesFolder('mastosync-skiplost-');
  });
  after(async () => {
    await skipDb?.drop();
    if (world) rmSync(world, { recursive: true, force: true });
  });

  test('moves no watermark past rows it never read: the run resumed after it copies every object', async () => {
    const log = pino({ level: 'silent' });
    const source = new FsStore(join(world, 'source'), 'source');
    const destination = new FsStore(join(world, 'destination'), 'destination');
    const checkpoint = join(world, 'checkpoint.jsonl');
    const identity = { source: source.description, destination: destination.description, scope: 'the whole database' };
    const direct = await connectDatabase({ connectionString: skipDb.url, ssl: false, batchSize: 10 }, log);
    const schema = await probeSchema(direct);
    const run = (db: Database, resume: ResumeState, writer?: CheckpointWriter, onPlan?: RunOptions['onPlan']) =>
      runJobs({
        jobs: ['accounts'],
        db,
        schema,
        source,
        destination,
        batchSize: 10,
        concurrency: 2,
        acl: '',
        retries: 0,
        resume,
        // The plan of every key is that of a plain run: with nothing at the source, --skip-existing plans nothing.
        skipExisting: onPlan === undefined,
        checkpoint: writer,
        dryRun: writer === undefined,
        onPlan,
        stop: new AbortController().signal,
        abort: new AbortController().signal,
        log,
      });
    const relay = new PgRelay(postgres);
    const lossy = await connectDatabase({ connectionString: await relay.listen(skipDb.url), ssl: false, batchSize: 10 }, log);
    try {
      // The source holds every object the rows own.
      const keys: string[] = [];
      await run(direct, EMPTY_RESUME_STATE, undefined, (object) => keys.push(object.key));
      assert.equal(keys.length, 605);
      for (const key of keys) put(join(world, 'source'), key);

      // Every width's first window, then the short ids' windows: lost at the 30th, with most short ids unread.
      relay.loseAt(/LIMIT \$2/, 30);
      const writer = CheckpointWriter.open(checkpoint, { run: new Date().toISOString(), mode: 'fresh', ...identity });
      const lost = await run(lossy, EMPTY_RESUME_STATE, writer);
      writer.close();
      assert.ok(lost.stoppedBy instanceof DatabaseLostError, String(lost.stoppedBy));
      const unread = keys.filter((key) => !existsSync(join(world, 'destination', key)));
      assert.ok(unread.length > 0, 'the loss came after every row was read');

      const resume = await loadCheckpoint(checkpoint, identity, { changeMarginMs: 0 });
      const resumed = await run(direct, resume, CheckpointWriter.open(checkpoint, { run: new Date().toISOString(), mode: 'resume', ...identity }));
      assert.equal(resumed.stoppedBy, undefined);
      assert.deepEqual(
        keys.filter((key) => !existsSync(join(world, 'destination', key))),
        [],
        `objects never copied (the watermark was ${resume.watermark('accounts')})`,
      );
    } finally {
      await lossy.close();
      await direct.close();
      await relay.close();
    }
  });
});

describe('a path that freezes as the command leaves', () => {
  test('its goodbyes unanswered (Terminate and FIN swallowed, the connections half-open for good), the process still exits at once after its last line', async () => {
    const relay = new PgRelay(postgres, { swallowGoodbyes: true });
    mkdirSync(join(folder, 'unwritten'));
    const config = writeConfig({
      databaseUrl: await relay.listen(db.url),
      source: { type: 'fs', path: join(folder, 'source') },
      destination: { type: 'fs', path: join(folder, 'unwritten') },
      batchSize: 100,
    });
    let lastLine = 0;
    let exited = 0;
    try {
      const result = await runCli(['run', 'accounts', '--dry-run', '--config', config.file, '--log-level', 'error'], {
        cwd: config.dir,
        onSpawn: (child) => {
          child.stdout!.on('data', () => (lastLine = performance.now()));
          // Killed if it hangs, so that the test fails rather than waits.
          const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
          child.on('exit', () => {
            exited = performance.now();
            clearTimeout(timer);
          });
        },
      });
      assert.equal(result.signal, null, 'still running 30 s on: killed');
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /^dry run: nothing was written$/m);
      // Closing waits 5 s (POOL_END_PATIENCE_MS) for clients that do not end, then cuts what is left.
      assert.ok(exited - lastLine < 8000, `exited ${Math.round(exited - lastLine)} ms after its last line`);
    } finally {
      await relay.close();
      rmSync(config.dir, { recursive: true, force: true });
    }
  });
});
