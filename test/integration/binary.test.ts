/**
 * The single executable (`npm run build:binary`, Node's single executable applications), as an admin uses it: one
 * file copied alone into an empty folder, run with a PATH that holds no `node` and an environment with nothing
 * of this machine's in it. It prints its version, passes `check`, copies exactly (`run`), and opens its SSH tunnel
 * (ssh2 is inside the executable) when an OpenSSH server is installed. Built once (~10 s; test/support/binary.ts).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readJsonLines, runProgram, writeConfig, type CliResult } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { isSshdAvailable, startSshd, type Sshd } from '../support/sshd.js';
import { ROOT, ensureExecutable } from '../support/binary.js';
import { OWN_VERSION } from '../support/build.js';

describe('the single executable, alone in an empty folder, without node', () => {
  let folder: string;
  let executable: string;
  let postgres: PostgresServer;
  let db: TestDatabase;
  let s3: S3Server;
  let world: IntegrityWorld;
  const cleanups: Array<() => unknown> = [];

  /** Runs the executable with nothing but a PATH (its own folder: this machine's /usr/bin holds node) and HOME. */
  const run = (args: string[], cwd = folder): Promise<CliResult> =>
    runProgram(executable, args, { cwd, replaceEnv: true, env: { PATH: folder, HOME: folder } });

  before(async () => {
    // npm test has built dist/ already; this adds the bundle, the blob and the injected copy of node.
    const built = ensureExecutable();
    folder = mkdtempSync(join(tmpdir(), 'mastosync-binary-'));
    executable = join(folder, 'mastosync');
    copyFileSync(built, executable);
    execFileSync('chmod', ['755', executable]);
    postgres = await startPostgres();
    db = await createDatabase('current');
    s3 = await startS3();
    await s3.createBucket('binary-source');
    world = await buildIntegrityWorld(db, s3, 'binary-source');
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await s3?.stop();
    await db?.drop();
    await postgres?.stop();
    if (folder) rmSync(folder, { recursive: true, force: true });
  });

  test('the folder, the whole PATH it runs with, holds the executable alone (no node)', () => {
    assert.deepEqual(readdirSync(folder), ['mastosync']);
  });

  test('--version prints the package version', async () => {
    const result = await run(['--version']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), OWN_VERSION);
    assert.equal(result.stderr, '', 'no experimental warning or other noise on stderr');
  });

  test('init without --from-env writes the sample config, as from a checkout (none beside the executable)', async () => {
    const result = await run(['init', '--out', 'sample.toml']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(readFileSync(join(folder, 'sample.toml'), 'utf8'), readFileSync(join(ROOT, 'config.sample.toml'), 'utf8'));
    rmSync(join(folder, 'sample.toml'));
  });

  test('bad input is one line and exit 2, as with node', async () => {
    const result = await run(['run', 'all', '--config', join(folder, 'missing.toml')]);
    assert.equal(result.code, 2);
    assert.match(result.stderr.trim(), /^mastosync: .*missing\.toml/);
  });

  test('check passes and run copies exactly, with JSON lines on stderr and a summary on stdout', async () => {
    await s3.createBucket('binary-destination');
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'binary-source' },
      destination: { endpoint: s3.endpoint, bucket: 'binary-destination' },
    });
    cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
    const check = await run(['check', '--config', config.file]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /database/);
    const result = await run(['run', 'all', '--config', config.file, '--json'], config.dir);
    assert.equal(result.code, 0, result.stderr);
    readJsonLines(result.stderr); // every stderr line is JSON
    const summary = JSON.parse(result.stdout) as { total: { copied: number; failed: number } };
    assert.equal(summary.total.failed, 0);
    assert.ok(summary.total.copied > 0);
    await assertDestinationExact(s3, 'binary-destination', world);
  });

  test('run through an SSH tunnel (ssh2 is inside the executable)', { skip: isSshdAvailable() ? false : 'OpenSSH server not installed' }, async () => {
    const sshd: Sshd = await startSshd();
    cleanups.push(() => sshd.stop());
    await s3.createBucket('binary-ssh-destination');
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'binary-source' },
      destination: { endpoint: s3.endpoint, bucket: 'binary-ssh-destination' },
      extra: [
        '[database.ssh]',
        `host = "${sshd.host}"`,
        `port = ${sshd.port}`,
        `user = "${sshd.user}"`,
        `private_key = ${JSON.stringify(sshd.clientKeyPath)}`,
        `host_key = ${JSON.stringify(sshd.hostKeyFingerprint)}`,
      ].join('\n'),
    });
    cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
    // As cron runs it (README: a clean run with --quiet --log-level warn writes nothing to stderr, so cron mails
    // nothing). ssh2's optional native parts must not go through the executable's require(), which prints a Node
    // warning on stderr for anything not built in. This world's objects missing at the source are warnings (JSON);
    // `check` (which has no --quiet) has none.
    const result = await run(['run', 'all', '--config', config.file, '--quiet', '--log-level', 'warn'], config.dir);
    assert.equal(result.code, 0, result.stderr);
    readJsonLines(result.stderr); // the world's warnings, and nothing that is not a log line
    await assertDestinationExact(s3, 'binary-ssh-destination', world);
    const check = await run(['check', '--config', config.file, '--log-level', 'warn'], config.dir);
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stderr, '', 'nothing on stderr through the tunnel with --log-level warn');
  });
});
