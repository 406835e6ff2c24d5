/**
 * What --version prints for a build of this checkout (src/cli/build.ts): the package's version and, in a git
 * checkout, `+` the first 12 digits of the commit it is at, then `.dirty` if tracked files were changed at the build
 * (which the test cannot know: either is accepted).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '../..');

export const PACKAGE_VERSION = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;

/** The commit this checkout is at, or undefined outside git. */
export function gitHead(): string | undefined {
  const head = spawnSync('git', ['-C', root, 'rev-parse', '--verify', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return head.status === 0 ? head.stdout.trim() : undefined;
}

const head = gitHead();
const escaped = PACKAGE_VERSION.replaceAll('.', '\\.');

export const OWN_VERSION = head === undefined ? new RegExp(`^${escaped}$`) : new RegExp(`^${escaped}\\+${head.slice(0, 12)}(\\.dirty)?$`);
