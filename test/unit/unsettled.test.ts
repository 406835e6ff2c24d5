/**
 * The last guard of src/cli/main.ts: a command still awaiting when Node has nothing left to run (a promise nothing can
 * settle any more) ends with one line and exit 1, whether the CLI awaits it at the top level or with .then
 * (bin/mastosync.js and the single executable), instead of vanishing with exit 13 or, worse, 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

const guardModule = resolve(import.meta.dirname, '../../src/cli/unsettled.ts');
const exitModule = resolve(import.meta.dirname, '../../src/cli/exit.ts');

/** Runs `body` as an ES module with the guard imported; its exit code and stderr. */
function runScript(body: string): Promise<{ code: number | null; stderr: string }> {
  const script = `import { guardUnsettled } from ${JSON.stringify(guardModule)};
    import { processOutput } from ${JSON.stringify(exitModule)};
    ${body}`;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stderr }));
  });
}

const NEVER = 'new Promise(() => {})';
const LINE =
  /^mastosync: stopped: internal error: the run ended with work pending \(mastosync run was still waiting, with nothing left that could answer\): please report this bug$/;

test('awaited at the top level: without the guard a silent exit 13; with it one line and exit 1', async () => {
  const bare = await runScript(`process.exitCode = await ${NEVER};`);
  assert.equal(bare.code, 13, 'what the guard is for: Node ends an unsettled top-level await with 13');

  const guarded = await runScript(`const settled = guardUnsettled(processOutput, 'mastosync run'); process.exitCode = await ${NEVER}; settled();`);
  assert.equal(guarded.code, 1, guarded.stderr);
  assert.deepEqual(guarded.stderr.trim().split('\n'), [guarded.stderr.trim()], 'one line');
  assert.match(guarded.stderr.trim(), LINE);
});

test('awaited with .then, as bin/mastosync.js and the single executable do: without the guard exit 0; with it one line and exit 1', async () => {
  const bare = await runScript(`${NEVER}.then((code) => (process.exitCode = code));`);
  assert.equal(bare.code, 0, 'what the guard is for: a vanished run would pass for a clean one');

  const guarded = await runScript(
    `const settled = guardUnsettled(processOutput, 'mastosync run'); ${NEVER}.then((code) => { settled(); process.exitCode = code; });`,
  );
  assert.equal(guarded.code, 1, guarded.stderr);
  assert.match(guarded.stderr.trim(), LINE);
});

test('a command that finishes: the guard says nothing and leaves the exit code alone', async () => {
  const finished = await runScript(
    `const settled = guardUnsettled(processOutput, 'mastosync run'); process.exitCode = await new Promise((done) => setTimeout(() => done(0), 50)); settled();`,
  );
  assert.equal(finished.code, 0, finished.stderr);
  assert.equal(finished.stderr, '');
});
