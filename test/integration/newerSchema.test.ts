/**
 * A database a newer Mastodon migrated (MED-5): a new table with an attachment (`collections.cover_*`), a new
 * attachment on a known table (`media_attachments.preview_*`) and a schema_migrations version beyond the one
 * mastosync was checked against. Before, `check` said all ok, `run` copied none of their files without a word, and
 * `prune --delete` deleted, as an orphan, a file under a known folder that no row known to mastosync owns.
 * - `check` warns (exit 0), naming the columns and the version;
 * - `run` says it once, one line;
 * - `prune` lists with the warning; `prune --delete` refuses: exit 2, one line naming the columns, nothing deleted.
 * A database mastosync knows gets no such line (the other integration tests' schemas).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let db: TestDatabase;
let root: string;
let config: string;

const avatar = (id: number) => `accounts/avatars/000/000/00${id}/original/a${id}.png`;
/** Under a known folder, owned by no row mastosync knows: a file of a style or attachment it does not know. */
const stray = 'accounts/avatars/000/000/001/medium/a1.png';
const NEWER = /newer than mastosync knows: .*collections\.cover_file_name, media_attachments\.preview_file_name.*schema_migrations is at 20991231000000/;

function put(folder: string, key: string, body: string): void {
  mkdirSync(dirname(join(folder, key)), { recursive: true });
  writeFileSync(join(folder, key), body);
}

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  root = mkdtempSync(join(tmpdir(), 'mastosync-newer-'));
  await insertAvatarAccounts(db.client, 'generate_series(1, 3) AS g');
  for (const id of [1, 2, 3]) {
    put(join(root, 'source'), avatar(id), `avatar ${id}`);
    put(join(root, 'destination'), avatar(id), `avatar ${id}`);
  }
  put(join(root, 'destination'), stray, 'a style mastosync does not know');
  const written = writeConfig({
    databaseUrl: db.url,
    source: { type: 'fs', path: join(root, 'source') },
    destination: { type: 'fs', path: join(root, 'destination') },
  });
  config = written.file;
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const newerLines = (text: string) => text.split('\n').filter((line) => /newer than mastosync knows/.test(line));

describe('a database newer than mastosync knows', () => {
  test('known schema: check has no warning line', async () => {
    const result = await runCli(['check', '--config', config]);
    assert.equal(result.code, 0, result.stdout + result.stderr);
    assert.doesNotMatch(result.stdout + result.stderr, /newer than mastosync knows/);
  });

  test('check warns, run says it once, prune lists with it and prune --delete refuses', async () => {
    await db.client.query(`
      CREATE TABLE collections (id bigserial PRIMARY KEY, name varchar NOT NULL DEFAULT '',
        cover_file_name varchar, cover_content_type varchar, cover_file_size integer, cover_updated_at timestamp);
      INSERT INTO collections (name, cover_file_name, cover_content_type, cover_file_size, cover_updated_at)
        VALUES ('c', 'c.png', 'image/png', 3, now());
      ALTER TABLE media_attachments ADD COLUMN preview_file_name varchar, ADD COLUMN preview_content_type varchar;
      -- Not Paperclip's: a name column without its siblings, and a view over an attachment.
      ALTER TABLE accounts ADD COLUMN export_file_name varchar;
      CREATE VIEW cover_names AS SELECT id, cover_file_name, cover_content_type FROM collections;
      CREATE TABLE schema_migrations (version varchar PRIMARY KEY);
      INSERT INTO schema_migrations VALUES ('20250101000000'), ('20991231000000');`);

    const check = await runCli(['check', '--config', config]);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, new RegExp(`^warn schema: this database is ${NEWER.source}`, 'm'));
    assert.doesNotMatch(check.stdout, /accounts\.export_file_name|cover_names/);

    const run = await runCli(['run', 'all', '--quiet', '--config', config]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    assert.equal(newerLines(run.stderr).length, 1, run.stderr);
    assert.match(newerLines(run.stderr)[0]!, NEWER);

    const dry = await runCli(['prune', 'all', '--config', config]);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stdout, new RegExp(stray.replaceAll('/', '\\/')));
    assert.equal(newerLines(dry.stderr).length, 1, dry.stderr);

    const manifest = join(root, 'manifest.jsonl');
    const prune = await runCli(['prune', 'all', '--delete', '--max-delete', '100%', '--manifest', manifest, '--config', config]);
    assert.equal(prune.code, 2, prune.stdout + prune.stderr);
    const lines = prune.stderr.trim().split('\n');
    assert.equal(lines.length, 1, prune.stderr);
    assert.match(lines[0]!, /prune --delete refused: .*collections\.cover_file_name, media_attachments\.preview_file_name.*nothing deleted/);
    assert.ok(existsSync(join(root, 'destination', stray)), 'the file stays');
    assert.ok(!existsSync(manifest));
  });
});
