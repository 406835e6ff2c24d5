// What a build is, for both bundles (scripts/bundle.mjs, scripts/build-binary.mjs) to embed (src/cli/build.ts): the
// package's version and, when the build runs in a git checkout of this very folder, the commit and whether tracked
// files differed from it (uncommitted changes). Built anywhere else (a source tarball, an unpacked npm package), or
// without git on PATH, it is the version alone: --version then prints the version, as releases always did.
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync } from 'node:fs';
import { join } from 'node:path';

/** @returns {{ version: string, commit?: string, dirty?: boolean }} */
export function buildInfo(root) {
  const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  const git = (...args) => spawnSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  // Only a checkout of this folder itself: an npm package unpacked inside some other repository is not that commit.
  const top = git('rev-parse', '--show-toplevel');
  if (top.status !== 0 || realpathSync(top.stdout.trim()) !== realpathSync(root)) return { version };
  const head = git('rev-parse', '--verify', 'HEAD');
  if (head.status !== 0) return { version };
  // 0: tracked files as committed; 1: they differ (staged or not). Untracked files are not looked at (git describe --dirty).
  const diff = git('diff', '--quiet', 'HEAD', '--');
  if (diff.status !== 0 && diff.status !== 1) return { version };
  return { version, commit: head.stdout.trim(), dirty: diff.status === 1 };
}
