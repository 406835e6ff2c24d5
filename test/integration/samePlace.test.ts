/**
 * Source and destination that are one place under two spellings (found by an admin-style test): a folder and a
 * symlink to it, an S3 endpoint as `localhost` and as `127.0.0.1`. The real CLI refuses them up front, as it refuses
 * the same spelling twice: one line naming the place, exit 2, nothing written (no object, no checkpoint).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDatabase, insertAvatarAccounts, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type LocalS3Server } from '../support/s3.js';
import { runCli, writeConfig, type StoreSettings } from '../support/cli.js';

const AVATAR = 'accounts/avatars/000/000/001/original/a1.png';

let postgres: PostgresServer;
let db: TestDatabase;
let s3: LocalS3Server;
let folder: string;

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
  await insertAvatarAccounts(db.client, 'generate_series(1, 1) AS g');
  s3 = await startS3();
  folder = mkdtempSync(join(tmpdir(), 'mastosync-same-'));
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
  await s3?.stop();
  if (folder) rmSync(folder, { recursive: true, force: true });
});

/** `run all` with these stores; the config's folder is removed after. */
async function run(source: StoreSettings, destination: StoreSettings) {
  const config = writeConfig({ databaseUrl: db.url, source, destination });
  try {
    const result = await runCli(['run', 'all', '--config', config.file], { cwd: config.dir });
    return { ...result, checkpointWritten: existsSync(config.checkpoint) };
  } finally {
    rmSync(config.dir, { recursive: true, force: true });
  }
}

describe('source and destination that are one place under two spellings', () => {
  test('a folder and a symlink to it: exit 2, one line naming the folder, nothing written', async () => {
    const media = join(folder, 'media');
    mkdirSync(join(media, 'accounts/avatars/000/000/001/original'), { recursive: true });
    writeFileSync(join(media, AVATAR), Buffer.from('avatar'));
    symlinkSync(media, join(folder, 'new'));
    const result = await run({ type: 'fs', path: media }, { type: 'fs', path: join(folder, 'new') });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^mastosync: \\[source\\] and \\[destination\\] are the same place, folder ${media} \\(${folder}/new leads there too\\).*point \\[destination\\] at the new bucket or folder\\n$`,
      ),
    );
    assert.equal(result.checkpointWritten, false);
    assert.deepEqual(readdirSync(media), ['accounts'], 'no temporary or other file in the folder');
  });

  test('an S3 endpoint as localhost and as 127.0.0.1, one bucket: exit 2, one line naming both, nothing written', async () => {
    await s3.createBucket('media');
    await s3.put('media', AVATAR, Buffer.from('avatar'));
    const result = await run({ endpoint: `http://127.0.0.1:${s3.port}`, bucket: 'media' }, { endpoint: `http://localhost:${s3.port}/`, bucket: 'media' });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr.trimEnd().split('\n').length, 1, result.stderr);
    assert.match(
      result.stderr,
      /same place, bucket "media" at http:\/\/127\.0\.0\.1:\d+ and http:\/\/localhost:\d+\/, one machine .*: point \[destination\] at the new bucket or folder/,
    );
    assert.equal(result.checkpointWritten, false);
    assert.deepEqual(await s3.listKeys('media'), [AVATAR]);
  });

  test('another bucket on the same endpoint, spelled either way, is another place: the run copies', async () => {
    await s3.createBucket('media-new');
    const result = await run({ endpoint: `http://127.0.0.1:${s3.port}`, bucket: 'media' }, { endpoint: `http://localhost:${s3.port}`, bucket: 'media-new' });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await s3.listKeys('media-new'), [AVATAR]);
  });
});
