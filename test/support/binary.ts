/**
 * The single executable for the tests that run it (binary, container): built by scripts/build-binary.mjs from the
 * dist/ that `npm test` has just built, once for all of them: a build newer than dist/cli/main.js is reused.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const EXECUTABLE = join(ROOT, 'dist', `mastosync-linux-${process.arch}`);

export function ensureExecutable(): string {
  const compiled = join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(EXECUTABLE) || statSync(EXECUTABLE).mtimeMs < statSync(compiled).mtimeMs) {
    execFileSync(process.execPath, [join(ROOT, 'scripts/build-binary.mjs')], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  }
  return EXECUTABLE;
}
