/**
 * The image of Containerfile, as far as this sandbox lets a container go: podman builds it (on a base made here,
 * FROM scratch plus the shared libraries the executable links, since no registry serves base images), then
 * the image's filesystem is exported and its executable run under chroot as the image's non-root user, with the
 * image's environment, a config in the mounted /data folder and a secret from a MASTOSYNC_* variable, against
 * the test PostgreSQL and s3rver. (Running the container itself fails here: crun cannot set RLIMIT_NOFILE.)
 *
 * Skipped with a note when podman is not installed (apt-get install -y podman); under CI, where .ci/run installs
 * it, its absence fails.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ROOT, ensureExecutable } from '../support/binary.js';
import { runProgram, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildIntegrityWorld, type IntegrityWorld } from '../support/exact.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { OWN_VERSION } from '../support/build.js';

const havePodman = spawnSync('podman', ['--version']).status === 0;
if (!havePodman && process.env.CI) throw new Error('CI: podman is missing (.ci/run installs it: apt-get install -y podman)');
const skip = havePodman ? false : 'podman is not installed (apt-get install -y podman): the container image is not tested';

/** The image's user, uid:gid, as Containerfile sets it. */
const IMAGE_USER = '65532:65532';

const podman = (...args: string[]) => execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

/** The shared libraries `ldd` says the executable loads, by their real paths, for a base FROM scratch. */
function librariesOf(executable: string): string[] {
  const libraries: string[] = [];
  for (const line of execFileSync('ldd', [executable], { encoding: 'utf8' }).split('\n')) {
    const path = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1];
    if (path !== undefined) libraries.push(path);
  }
  return libraries;
}

describe('the container image, exported and run under chroot', { skip }, () => {
  const tag = randomBytes(4).toString('hex');
  const baseImage = `localhost/mastosync-test-base:${tag}`;
  const image = `localhost/mastosync-test:${tag}`;
  let scratch: string;
  let root: string;
  let imageConfig: { User: string; Entrypoint: string[]; Env: string[]; WorkingDir: string };
  let postgres: PostgresServer;
  let db: TestDatabase;
  let s3: S3Server;
  let world: IntegrityWorld;

  before(async () => {
    const executable = ensureExecutable();
    scratch = mkdtempSync(join(tmpdir(), 'mastosync-container-'));
    // The base: nothing but the libraries, at the paths the executable asks for them.
    const baseContext = join(scratch, 'base');
    for (const library of librariesOf(executable)) {
      mkdirSync(join(baseContext, 'files', dirname(library)), { recursive: true });
      copyFileSync(library, join(baseContext, 'files', library));
    }
    writeFileSync(join(baseContext, 'Containerfile'), 'FROM scratch\nCOPY files/ /\n');
    podman('build', '-q', '-t', baseImage, baseContext);
    podman('build', '-q', '--build-arg', `BASE=${baseImage}`, '-t', image, '-f', join(ROOT, 'Containerfile'), ROOT);
    imageConfig = JSON.parse(podman('image', 'inspect', image, '--format', '{{json .Config}}')) as typeof imageConfig;
    const container = podman('create', image);
    root = join(scratch, 'root');
    mkdirSync(root);
    try {
      execFileSync('sh', ['-c', `podman export ${container} | tar -x -C ${root}`]);
    } finally {
      podman('rm', container);
    }
    chmodSync(root, 0o755); // the non-root user must be able to walk from /
    postgres = await startPostgres();
    db = await createDatabase('current');
    s3 = await startS3();
    await s3.createBucket('container-source');
    await s3.createBucket('container-destination');
    world = await buildIntegrityWorld(db, s3, 'container-source');
  });

  after(async () => {
    await s3?.stop();
    await db?.drop();
    await postgres?.stop();
    spawnSync('podman', ['rmi', '-f', image, baseImage], { stdio: 'ignore' });
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  /** Runs the image's entrypoint in the exported filesystem as its user, with its environment plus `env`. */
  const runImage = (args: string[], env: Record<string, string> = {}) => {
    const imageEnv = Object.fromEntries(imageConfig.Env.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
    return runProgram('chroot', [`--userspec=${imageConfig.User}`, root, ...imageConfig.Entrypoint, ...args], {
      replaceEnv: true,
      env: { ...imageEnv, ...env },
    });
  };

  test('the image runs the executable as a non-root user, config from /data', () => {
    assert.equal(imageConfig.User, IMAGE_USER);
    assert.deepEqual(imageConfig.Entrypoint, ['/usr/local/bin/mastosync']);
    assert.ok(imageConfig.Env.includes('MASTOSYNC_CONFIG=/data/mastosync.toml'), imageConfig.Env.join(' '));
    assert.equal(imageConfig.WorkingDir, '/data');
    assert.ok(existsSync(join(root, 'usr/local/bin/mastosync')));
    assert.ok(!existsSync(join(root, 'usr/bin/node')) && !existsSync(join(root, 'bin/sh')), 'nothing but the executable and its libraries');
  });

  test('--version, then check and an exact run with the database from MASTOSYNC_DATABASE_URL', async () => {
    const version = await runImage(['--version']);
    assert.equal(version.code, 0, version.stderr);
    assert.match(version.stdout.trim(), OWN_VERSION);

    // The mounted folder: the config (without the database's secret URL) and, beside it, the checkpoint.
    const config = writeConfig({
      databaseUrl: 'postgres://nobody@127.0.0.1:1/set-by-the-environment',
      source: { endpoint: s3.endpoint, bucket: 'container-source' },
      destination: { endpoint: s3.endpoint, bucket: 'container-destination' },
    });
    const data = join(root, 'data');
    mkdirSync(data, { recursive: true });
    copyFileSync(config.file, join(data, 'mastosync.toml'));
    rmSync(config.dir, { recursive: true, force: true });
    const [uid, gid] = IMAGE_USER.split(':').map(Number);
    chownSync(data, uid!, gid!);
    const env = { MASTOSYNC_DATABASE_URL: db.url };

    // The sample config, which the image carries inside its executable.
    const init = await runImage(['init', '--out', '/data/sample.toml']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(readFileSync(join(data, 'sample.toml'), 'utf8'), readFileSync(join(ROOT, 'config.sample.toml'), 'utf8'));

    const check = await runImage(['check'], env);
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const run = await runImage(['run', 'all', '--json'], env);
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { total: { failed: number } }).total.failed, 0);
    await assertDestinationExact(s3, 'container-destination', world);
    assert.ok(existsSync(join(data, 'mastosync.checkpoint.jsonl')), 'the checkpoint is kept in the mounted folder');
  });
});
