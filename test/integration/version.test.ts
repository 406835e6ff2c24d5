/**
 * --version names the build (src/cli/build.ts, scripts/buildInfo.mjs): `npm run build`'s bundling step, run in a copy
 * of the checkout's built tree, outside git (a source tarball), then in a git repository of its own, clean, then with
 * a tracked file changed (an untracked one does not count).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PACKAGE_VERSION } from '../support/build.js';

const root = resolve(import.meta.dirname, '../..');

test('--version: the package version outside git; in a checkout, + its commit, and .dirty with uncommitted changes', () => {
  const home = mkdtempSync(join(tmpdir(), 'mastosync-version-'));
  try {
    for (const part of ['package.json', 'config.sample.toml', 'bin', 'scripts']) cpSync(join(root, part), join(home, part), { recursive: true });
    cpSync(join(root, 'dist'), join(home, 'dist'), { recursive: true, filter: (source) => !source.startsWith(join(root, 'dist', 'bundle')) });
    symlinkSync(join(root, 'node_modules'), join(home, 'node_modules'));
    const build = () => execFileSync(process.execPath, ['scripts/bundle.mjs'], { cwd: home, stdio: ['ignore', 'ignore', 'inherit'] });
    const printed = () => execFileSync(process.execPath, [join(home, 'bin/mastosync.js'), '--version'], { cwd: tmpdir(), encoding: 'utf8' });
    build();
    assert.equal(printed(), `${PACKAGE_VERSION}\n`);

    const git = (...args: string[]) =>
      execFileSync('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.org', ...args], { cwd: home, encoding: 'utf8' }).trim();
    writeFileSync(join(home, '.gitignore'), 'node_modules\ndist/\n');
    git('init', '-q');
    git('add', '.');
    git('commit', '-q', '-m', 'a release');
    const commit = git('rev-parse', 'HEAD');
    writeFileSync(join(home, 'scripts', 'local-change.mjs'), '// untracked: not a change to what is built\n');
    build();
    assert.equal(printed(), `${PACKAGE_VERSION}+${commit.slice(0, 12)}\n`);

    writeFileSync(join(home, 'bin', 'codeCacheKey.js'), '\n', { flag: 'a' });
    build();
    assert.equal(printed(), `${PACKAGE_VERSION}+${commit.slice(0, 12)}.dirty\n`);
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});
