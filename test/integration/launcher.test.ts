/**
 * A dist/ that is missing or damaged (a checkout pulled and not rebuilt, a chunk deleted, a chunk cut short by a full
 * disk) is one line naming the file and the fix, exit 2: it was an unhandled exception's stack, exit 1. Each case runs
 * a copy of the package, as a checkout (src/ beside bin/: rebuild) or as an installed package (reinstall).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runProgram, type CliResult } from '../support/cli.js';

const root = resolve(import.meta.dirname, '../..');
let scratch: string;

before(() => (scratch = mkdtempSync(join(tmpdir(), 'mastosync-launcher-'))));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the package: the launcher, package.json and the bundle, and with `checkout` an (empty) src/. */
function copyOfPackage(name: string, checkout: boolean): string {
  const home = join(scratch, name);
  for (const part of ['bin', 'package.json', 'dist/bundle']) cpSync(join(root, part), join(home, part), { recursive: true });
  if (checkout) mkdirSync(join(home, 'src'));
  return home;
}

/** The bundle's file whose name starts with `prefix` (chunk names carry a hash). */
function chunk(home: string, prefix: string): string {
  const name = readdirSync(join(home, 'dist/bundle')).find((file) => file.startsWith(prefix) && file.endsWith('.js'));
  assert.ok(name, `no ${prefix}*.js in the bundle`);
  return join(home, 'dist/bundle', name);
}

function launch(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return runProgram(process.execPath, [join(home, 'bin/mastosync.js'), ...args], { env: { MASTOSYNC_DEBUG: '', ...env } });
}

function assertOneLine(result: CliResult, line: string): void {
  assert.deepEqual({ code: result.code, stderr: result.stderr }, { code: 2, stderr: `mastosync: ${line}\n` });
}

test('a checkout without dist/: rebuild, in one line', async () => {
  const home = copyOfPackage('unbuilt', true);
  rmSync(join(home, 'dist'), { recursive: true });
  const line = `dist/bundle/main.js is missing: run \`npm run build\` in ${home}`;
  assertOneLine(await launch(home, ['--version']), line);
  assertOneLine(await launch(home, ['run', 'all', '--resume']), line);
  // MASTOSYNC_DEBUG loads the bundle through Node's own require (for source maps): the same line, then the stack.
  const debug = await launch(home, ['--version'], { MASTOSYNC_DEBUG: '1' });
  assert.equal(debug.code, 2);
  assert.equal(debug.stderr.split('\n')[0], `mastosync: ${line}`);
});

test('a chunk deleted from an installed package: reinstall, whichever command needs it', async () => {
  const home = copyOfPackage('deleted', false);
  const commands = chunk(home, 'commands-');
  rmSync(commands);
  // --version loads no command: it still works.
  assert.equal((await launch(home, ['--version'])).code, 0);
  assertOneLine(await launch(home, ['check', '--config', join(home, 'none.toml')]), `${commands} is missing: reinstall mastosync`);
  const yargs = chunk(home, 'yargs-');
  rmSync(yargs);
  assertOneLine(await launch(home, ['--help']), `${yargs} is missing: reinstall mastosync`);
});

test('a chunk cut short, or emptied: damaged, in one line', async () => {
  const home = copyOfPackage('truncated', true);
  const commands = chunk(home, 'commands-');
  writeFileSync(commands, readFileSync(commands).subarray(0, 50_000));
  const result = await launch(home, ['check', '--config', join(home, 'none.toml')]);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^mastosync: dist\/bundle\/commands-\w+\.js is damaged \([^\n]+\): run `npm run build` in [^\n]+\n$/);
  writeFileSync(join(home, 'dist/bundle/main.js'), '');
  assertOneLine(await launch(home, ['--version']), `dist/bundle/main.js is empty (damaged): run \`npm run build\` in ${home}`);
});

test('a chunk that cannot be read for want of file descriptors is no broken installation: not the rebuild line', async () => {
  const home = copyOfPackage('descriptors', false);
  const commands = chunk(home, 'commands-');
  // The process is out of descriptors when it reads the chunk (a run at high concurrency under a low ulimit -n).
  const preload = join(scratch, 'emfile.cjs');
  writeFileSync(
    preload,
    `const fs = require('node:fs'); const read = fs.readFileSync;
fs.readFileSync = function (file, ...rest) {
  if (file === ${JSON.stringify(commands)}) throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
  return read.call(this, file, ...rest);
};`,
  );
  const result = await runProgram(process.execPath, ['--require', preload, join(home, 'bin/mastosync.js'), 'check', '--config', join(home, 'none.toml')], {
    env: { MASTOSYNC_DEBUG: '' },
  });
  assert.notEqual(result.code, 2, result.stderr);
  assert.doesNotMatch(result.stderr, /reinstall mastosync|is damaged|is missing/);
  assert.match(result.stderr, /EMFILE/);
});
