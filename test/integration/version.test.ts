/**
 * --version names the build (src/cli/build.ts, scripts/buildInfo.mjs): the package version built outside git (a
 * source tarball); in a git repository of its own, + its commit, and .dirty when a tracked file was changed (an
 * untracked one does not count). One real bundling (`npm run build`'s step, in a copy of the checkout's built tree
 * outside git) shows the identity embedded and printed; the checkout's own bundle printing its commit is
 * cli.test.ts's. What each git state gives is read by the very function the bundling calls, in real repositories.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { versionText, type BuildInfo } from '../../src/cli/build.js';
import { PACKAGE_VERSION } from '../support/build.js';

const root = resolve(import.meta.dirname, '../..');

test('--version of a build outside git: the package version', () => {
  const home = mkdtempSync(join(tmpdir(), 'mastosync-version-'));
  try {
    for (const part of ['package.json', 'config.sample.toml', 'bin', 'scripts']) cpSync(join(root, part), join(home, part), { recursive: true });
    cpSync(join(root, 'dist'), join(home, 'dist'), { recursive: true, filter: (source) => !source.startsWith(join(root, 'dist', 'bundle')) });
    symlinkSync(join(root, 'node_modules'), join(home, 'node_modules'));
    execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: home, stdio: ['ignore', 'ignore', 'inherit'] });
    const printed = execFileSync(process.execPath, [join(home, 'bin/mastosync.js'), '--version'], { cwd: tmpdir(), encoding: 'utf8' });
    assert.equal(printed, `${PACKAGE_VERSION}\n`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('in a git checkout: + its commit, .dirty with a tracked file changed, not for an untracked one; not for a package inside another repository', async () => {
  const { buildInfo } = (await import(pathToFileURL(join(root, 'scripts', 'buildInfo.mjs')).href)) as { buildInfo: (root: string) => BuildInfo };
  const home = mkdtempSync(join(tmpdir(), 'mastosync-version-'));
  try {
    writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'mastosync', version: PACKAGE_VERSION }));
    mkdirSync(join(home, 'bin'));
    writeFileSync(join(home, 'bin', 'mastosync.js'), '// the launcher\n');
    const printed = (folder = home) => versionText(buildInfo(folder));
    assert.equal(printed(), PACKAGE_VERSION, 'outside git');

    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', ...args], { cwd: home, encoding: 'utf8' }).trim();
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'a release');
    const commit = git('rev-parse', 'HEAD');
    assert.equal(printed(), `${PACKAGE_VERSION}+${commit.slice(0, 12)}`, 'clean');
    writeFileSync(join(home, 'bin', 'local-change.mjs'), '// untracked: not a change to what is built\n');
    assert.equal(printed(), `${PACKAGE_VERSION}+${commit.slice(0, 12)}`, 'an untracked file');
    writeFileSync(join(home, 'bin', 'mastosync.js'), '\n', { flag: 'a' });
    assert.equal(printed(), `${PACKAGE_VERSION}+${commit.slice(0, 12)}.dirty`, 'a tracked file changed');

    // An npm package unpacked inside some other repository is not that repository's commit.
    const unpacked = join(home, 'node_modules', 'mastosync');
    mkdirSync(unpacked, { recursive: true });
    writeFileSync(join(unpacked, 'package.json'), JSON.stringify({ name: 'mastosync', version: PACKAGE_VERSION }));
    assert.equal(printed(unpacked), PACKAGE_VERSION, 'a package inside another repository');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
