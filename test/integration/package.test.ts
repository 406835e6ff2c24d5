/**
 * The npm package as an admin installs it: `npm pack`, then `npm install -g` of the tarball into a scratch
 * prefix (dependencies from the npm cache or the registry), then `mastosync` from that prefix's bin/, run from
 * another folder. The tarball carries the launcher and the bundle, not the compiled tree, the executable or the
 * sources; its `prepare` script does nothing where there are no sources, so an npm that runs it on install passes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runProgram, writeConfig } from '../support/cli.js';
import { assertDestinationExact, buildCopyWorld, type CopyWorld } from '../support/exact.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { OWN_VERSION } from '../support/build.js';

const execFileAsync = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');

describe('npm pack, then npm install -g of the tarball', () => {
  let scratch: string;
  let prefix: string;
  let tarball: string;
  let files: string[];
  let postgres: PostgresServer;
  let db: TestDatabase;
  let s3: S3Server;
  let world: CopyWorld;

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'mastosync-package-'));
    prefix = join(scratch, 'prefix');
    // npm test has built dist/ already: packing skips `prepare`, which would build it again (the same bytes).
    const packed = await execFileAsync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], { cwd: root });
    const [report] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    tarball = join(scratch, report!.filename);
    files = report!.files.map((file) => file.path).sort();
    // From another folder, as an admin installs a downloaded tarball. Without install scripts: ssh2's would compile
    // its optional native crypto and cpu-features (45 s of node-gyp) that no test here uses, ssh2 working without them;
    // the package's own script (prepare) is run by the last test.
    await execFileAsync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
      cwd: scratch,
    });
    postgres = await startPostgres();
    db = await createDatabase('current');
    s3 = await startS3();
    await s3.createBucket('package-source');
    await s3.createBucket('package-destination');
    world = await buildCopyWorld(db, s3, 'package-source');
  });

  after(async () => {
    await s3?.stop();
    await db?.drop();
    await postgres?.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  test('the tarball holds the launcher, the bundle and the sample config, and nothing built for this machine', () => {
    assert.ok(files.includes('bin/mastosync.js'), files.join('\n'));
    assert.ok(files.includes('dist/bundle/main.js'), files.join('\n'));
    assert.ok(files.includes('config.sample.toml'), files.join('\n'));
    assert.deepEqual(
      files.filter((file) => !/^(bin\/|dist\/bundle\/|config\.sample\.toml$|package\.json$|README\.md$)/.test(file)),
      [],
      'no sources, tests, compiled tree or executable',
    );
  });

  test('mastosync --version from the prefix, in another folder', async () => {
    const result = await runProgram(join(prefix, 'bin', 'mastosync'), ['--version'], { cwd: tmpdir() });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), OWN_VERSION);
    // The launcher is also a shell script (its second line): the shell must say nothing.
    assert.equal(result.stderr, '');
  });

  test('a real run from the config folder copies exactly', async () => {
    const config = writeConfig({
      databaseUrl: db.url,
      source: { endpoint: s3.endpoint, bucket: 'package-source' },
      destination: { endpoint: s3.endpoint, bucket: 'package-destination' },
    });
    try {
      const result = await runProgram(join(prefix, 'bin', 'mastosync'), ['run', 'all', '--json'], { cwd: config.dir });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((JSON.parse(result.stdout) as { total: { failed: number } }).total.failed, 0);
      await assertDestinationExact(s3, 'package-destination', world);
    } finally {
      rmSync(config.dir, { recursive: true, force: true });
    }
  });

  test('the install pulls only what the bundle loads at run time: ssh2 (for the SSH tunnel) and what ssh2 needs', () => {
    // Everything else is in the bundle: an install of 111 packages (71 MB) the bundle never loads is gone.
    const modules = join(prefix, 'lib', 'node_modules', 'mastosync', 'node_modules');
    const installed = readdirSync(modules).filter((name) => !name.startsWith('.'));
    const needed = new Set<string>();
    const visit = (name: string): void => {
      if (needed.has(name) || !installed.includes(name)) return;
      needed.add(name);
      const manifest = JSON.parse(readFileSync(join(modules, name, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
      for (const dependency of Object.keys({ ...manifest.dependencies, ...manifest.optionalDependencies })) visit(dependency);
    };
    visit('ssh2');
    assert.ok(needed.has('ssh2'), installed.join(', '));
    assert.deepEqual(
      installed.filter((name) => !needed.has(name)),
      [],
      'installed beside ssh2 and its own dependencies',
    );
  });

  test("the installed package's prepare script passes where there are no sources (an npm that runs it on install)", async () => {
    const installed = join(prefix, 'lib', 'node_modules', 'mastosync');
    assert.ok(!readdirSync(installed).includes('src'));
    const result = await runProgram('npm', ['run', 'prepare'], { cwd: installed });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!readdirSync(installed).includes('dist') || readdirSync(join(installed, 'dist')).join() === 'bundle', 'prepare built nothing');
  });
});
