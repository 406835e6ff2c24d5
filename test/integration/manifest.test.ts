/**
 * `mastosync manifest` against the fixture: each format lists exactly the owned keys (with the source's key
 * prefix where the format wants it, odd file names intact or correctly encoded), and a real rclone given the
 * rclone manifest copies the owned objects and no orphan.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { runCli, writeConfig } from '../support/cli.js';

const PREFIX = 'mastodon';

let postgres: PostgresServer;
let s3: S3Server;
let fixture: Fixture;
let db: TestDatabase;
let config: ReturnType<typeof writeConfig>;

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  fixture = buildFixture('current');
  db = await createDatabase('current');
  await s3.createBucket('manifest-source');
  await s3.createBucket('manifest-destination');
  await loadFixture(fixture, db.client, s3, 'manifest-source', PREFIX);
  config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'manifest-source', keyPrefix: PREFIX },
    destination: { endpoint: s3.endpoint, bucket: 'manifest-destination' },
  });
});

after(async () => {
  if (config) rmSync(config.dir, { recursive: true, force: true });
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

async function manifest(...flags: string[]): Promise<string[]> {
  const result = await runCli(['manifest', 'all', ...flags], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split('\n').filter((line) => line !== '');
}

const owned = () => fixture.expected.map((object) => object.key);

describe('manifest', () => {
  test('--format keys: every owned key once, as the source bucket stores it (with its key prefix)', async () => {
    const lines = await manifest('--format', 'keys');
    assert.deepEqual(
      lines.sort(),
      owned()
        .map((key) => `${PREFIX}/${key}`)
        .sort(),
    );
    assert.ok(lines.includes(`${PREFIX}/media_attachments/files/000/000/012/original/My Photo + café 100% #1.jpg`), 'odd names kept as they are');
    assert.deepEqual((await manifest('--format', 'keys', '-o', '-')).sort(), [...lines].sort(), '-o - is stdout, not a file named "-"');
    assert.equal(existsSync(join(config.dir, '-')), false);
  });

  test('--format rclone: paths relative to the source root, written to --output', async () => {
    const output = join(config.dir, 'files.txt');
    await manifest('--format', 'rclone', '--output', output);
    const lines = readFileSync(output, 'utf8')
      .split('\n')
      .filter((line) => line !== '');
    assert.deepEqual(lines.sort(), owned().sort());
  });

  test('--format s3-batch-csv: bucket,key with the key URL-encoded, one owned object per line', async () => {
    const lines = await manifest('--format', 's3-batch-csv');
    assert.equal(lines.length, fixture.expected.length);
    const keys = lines.map((line) => {
      const fields = line.split(',');
      assert.equal(fields.length, 2, `two CSV fields: ${line}`);
      assert.equal(fields[0], 'manifest-source');
      assert.doesNotMatch(fields[1]!, /[ +#%](?![0-9A-F]{2})/, `encoded: ${fields[1]}`);
      return decodeURIComponent(fields[1]!);
    });
    assert.deepEqual(
      keys.sort(),
      owned()
        .map((key) => `${PREFIX}/${key}`)
        .sort(),
    );
    assert.ok(lines.includes('manifest-source,mastodon/media_attachments/files/000/000/012/original/My%20Photo%20%2B%20caf%C3%A9%20100%25%20%231.jpg'));
  });

  test('scope flags narrow the manifest as they narrow a run', async () => {
    const lines = await manifest('--format', 'rclone', '--skip-remote-cache=all');
    assert.deepEqual(
      lines.sort(),
      fixture.expected
        .filter((object) => !object.cache)
        .map((object) => object.key)
        .sort(),
    );
  });

  test('s3-batch-csv from a folder source is a usage error', async () => {
    const folder = writeConfig({ databaseUrl: db.url, source: { type: 'fs', path: config.dir }, destination: { endpoint: s3.endpoint, bucket: 'x' } });
    try {
      const result = await runCli(['manifest', 'all', '--format', 's3-batch-csv'], { cwd: folder.dir });
      assert.equal(result.code, 2);
      assert.match(result.stderr, /type = "fs"/);
      assert.equal(result.stdout, '');
    } finally {
      rmSync(folder.dir, { recursive: true, force: true });
    }
  });

  const rclone = spawnSync('rclone', ['version']).status === 0;
  test('rclone copy --files-from-raw with the manifest copies the owned objects and no orphan', { skip: !rclone && 'rclone is not installed' }, async () => {
    const output = join(config.dir, 'rclone.txt');
    await manifest('--format', 'rclone', '--output', output);
    const env: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: '/dev/null' };
    delete env.AWS_CA_BUNDLE; // rclone 1.60 fails on it (components.md)
    for (const side of ['SRC', 'DST']) {
      Object.assign(env, {
        [`RCLONE_CONFIG_${side}_TYPE`]: 's3',
        [`RCLONE_CONFIG_${side}_PROVIDER`]: 'Other',
        [`RCLONE_CONFIG_${side}_ENDPOINT`]: s3.endpoint,
        [`RCLONE_CONFIG_${side}_ACCESS_KEY_ID`]: 'S3RVER',
        [`RCLONE_CONFIG_${side}_SECRET_ACCESS_KEY`]: 'S3RVER',
        [`RCLONE_CONFIG_${side}_FORCE_PATH_STYLE`]: 'true',
      });
    }
    // Asynchronously: s3rver answers from this very process.
    const copy = await new Promise<{ status: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn('rclone', ['copy', `SRC:manifest-source/${PREFIX}`, 'DST:manifest-destination', '--files-from-raw', output, '--no-traverse'], {
        env,
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stderr }));
    });
    // Missing style objects (which mastosync reports and skips) and relocated ones make rclone report errors.
    assert.ok(copy.status === 0 || /not found|doesn't exist|object not found/i.test(copy.stderr), copy.stderr);
    const copied = (await s3.listKeys('manifest-destination')).sort();
    const atExactKey = fixture.present
      .filter((object) => object.relocated === undefined)
      .map((object) => object.key)
      .sort();
    assert.deepEqual(copied, atExactKey, 'rclone copied every owned object found at its exact key, and nothing else');
  });
});
