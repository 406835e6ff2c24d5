/**
 * MASTOSYNC_* variables as a compose file passes them (`MASTOSYNC_DATABASE_PASSWORD: ${DB_PASS}`): a variable of
 * Mastodon's that is unset or empty (DB_PASS=, S3_ENDPOINT, S3_REGION, AWS_SESSION_TOKEN) arrives empty. The rule,
 * with the real CLI: an empty variable is as good as unset. It never overrides a value the file sets, so a first run
 * never writes at the bucket root because `MASTOSYNC_DESTINATION_KEY_PREFIX: ${S3_KEY_PREFIX}` was empty; where the
 * file sets none, the default stands, and MASTOSYNC_DESTINATION_ACL= sends no ACL, as S3_PERMISSION= does. Every
 * variable that overrides a file's value, and every empty one the file's value stands against, is one line at start.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import type { Fixture } from '../support/fixture.js';
import type { TestDatabase } from '../support/postgres.js';
import type { S3Server } from '../support/s3.js';
import type { HttpProxy } from '../support/httpProxy.js';
import { startFixtureWorld, type FixtureWorld } from '../support/fixtureWorld.js';
import { runCli, writeConfig, type CliResult } from '../support/cli.js';

let world: FixtureWorld;
let s3: S3Server;
let proxy: HttpProxy;
let fixture: Fixture;
let db: TestDatabase;
let destinations = 0;
const cleanups: Array<() => void> = [];
const SOURCE = 'env-source';
/** A job with a handful of objects: what is checked is where and how they are written, not the copy itself. */
const JOB = 'custom_emojis';

before(async () => {
  world = await startFixtureWorld(SOURCE);
  ({ s3, proxy, fixture, db } = world);
});

after(async () => {
  for (const cleanup of cleanups) cleanup();
  await world?.stop();
});

/** Runs `run JOB` with a fresh destination bucket described by `destination` (lines after type, endpoint, bucket, credentials). */
async function runWith(destination: string[], env: NodeJS.ProcessEnv): Promise<{ result: CliResult; bucket: string }> {
  const bucket = `env-destination-${++destinations}`;
  await s3.createBucket(bucket);
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: proxy.endpoint, bucket: SOURCE },
    destination: {
      lines: [
        'type = "s3"',
        `endpoint = ${JSON.stringify(proxy.endpoint)}`,
        `bucket = ${JSON.stringify(bucket)}`,
        'access_key_id = "S3RVER"',
        'secret_access_key = "S3RVER"',
        'force_path_style = true',
        ...destination,
      ],
    },
  });
  cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
  const result = await runCli(['run', JOB, '--quiet'], { cwd: config.dir, env: { MASTOSYNC_TEST_START_PATIENCE_MS: '2000', ...env } });
  return { result, bucket };
}

const expectedKeys = () =>
  fixture.present
    .filter((object) => object.table === JOB)
    .map((object) => object.key)
    .sort();

/** The info lines about the environment, as `variable → message`. */
function environmentLines(stderr: string): string[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { msg: string; level: number | string })
    .filter((line) => /^environment variable /.test(line.msg))
    .map((line) => line.msg);
}

test('values Mastodon leaves empty (DB_PASS=, S3_ENDPOINT, S3_REGION, AWS_SESSION_TOKEN) pass through a compose file empty: the run works', async () => {
  const { result, bucket } = await runWith([], {
    MASTOSYNC_DATABASE_PASSWORD: '',
    MASTOSYNC_SOURCE_REGION: '',
    MASTOSYNC_SOURCE_SESSION_TOKEN: '',
    MASTOSYNC_DESTINATION_REGION: '',
    MASTOSYNC_DESTINATION_SESSION_TOKEN: '',
  });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual((await s3.listKeys(bucket)).sort(), expectedKeys());
  // None of them stands against a value of the file: nothing to say.
  assert.deepEqual(environmentLines(result.stderr), []);
});

test('an empty endpoint leaves the file’s endpoint in place, and says so', async () => {
  const { result, bucket } = await runWith([], { MASTOSYNC_DESTINATION_ENDPOINT: '', MASTOSYNC_SOURCE_ENDPOINT: ' ' });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual((await s3.listKeys(bucket)).sort(), expectedKeys());
  assert.deepEqual(environmentLines(result.stderr).sort(), [
    'environment variable MASTOSYNC_DESTINATION_ENDPOINT is empty: [destination] endpoint from mastosync.toml stands (an empty variable never overrides the file)',
    'environment variable MASTOSYNC_SOURCE_ENDPOINT is empty: [source] endpoint from mastosync.toml stands (an empty variable never overrides the file)',
  ]);
});

test('an empty key prefix or storage class never overrides the file’s: nothing is written at the bucket root', async () => {
  proxy.reset();
  const { result, bucket } = await runWith(['key_prefix = "mastodon-backup"', 'storage_class = "STANDARD_IA"'], {
    MASTOSYNC_DESTINATION_KEY_PREFIX: '',
    MASTOSYNC_DESTINATION_STORAGE_CLASS: '',
  });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    (await s3.listKeys(bucket)).sort(),
    expectedKeys().map((key) => `mastodon-backup/${key}`),
  );
  const classes = new Set([...proxy.uploadsByKey(bucket).values()].map((upload) => upload.storageClass));
  assert.deepEqual([...classes], ['STANDARD_IA']);
  assert.deepEqual(environmentLines(result.stderr).sort(), [
    'environment variable MASTOSYNC_DESTINATION_KEY_PREFIX is empty: [destination] key_prefix from mastosync.toml stands (an empty variable never overrides the file)',
    'environment variable MASTOSYNC_DESTINATION_STORAGE_CLASS is empty: [destination] storage_class from mastosync.toml stands (an empty variable never overrides the file)',
  ]);
  // Warnings, which cron mails: the admin may have meant the empty variable to clear the file's value.
  const levels = result.stderr
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes(' is empty: '))
    .map((line) => (JSON.parse(line) as { level: number }).level);
  assert.deepEqual(levels, [40, 40], result.stderr);
});

test('MASTOSYNC_DESTINATION_ACL= sends no ACL where the file sets none (S3_PERMISSION=), and leaves the file’s ACL in place where it sets one', async () => {
  proxy.reset();
  const none = await runWith([], { MASTOSYNC_DESTINATION_ACL: '' });
  assert.equal(none.result.code, 0, none.result.stderr);
  assert.deepEqual([...new Set(proxy.aclByKey(none.bucket).values())], [undefined]);
  assert.deepEqual(environmentLines(none.result.stderr), []);

  const kept = await runWith(['acl = "private"'], { MASTOSYNC_DESTINATION_ACL: '' });
  assert.equal(kept.result.code, 0, kept.result.stderr);
  assert.deepEqual([...new Set(proxy.aclByKey(kept.bucket).values())], ['private']);
  assert.deepEqual(environmentLines(kept.result.stderr), [
    'environment variable MASTOSYNC_DESTINATION_ACL is empty: [destination] acl from mastosync.toml stands (an empty variable never overrides the file)',
  ]);
});

test('a variable that overrides a value of the file says so in one line, naming both and no value', async () => {
  const { result, bucket } = await runWith(['key_prefix = "from-the-file"'], { MASTOSYNC_DESTINATION_KEY_PREFIX: 'from-the-environment' });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(
    (await s3.listKeys(bucket)).sort(),
    expectedKeys().map((key) => `from-the-environment/${key}`),
  );
  assert.deepEqual(environmentLines(result.stderr), [
    'environment variable MASTOSYNC_DESTINATION_KEY_PREFIX overrides [destination] key_prefix from mastosync.toml',
  ]);
});
