/**
 * `mastosync completion bash|zsh`: the script each shell sources. The bash one is sourced in a real bash with
 * `mastosync` on PATH (the built CLI) and asked to complete, as pressing Tab does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runCli } from '../support/cli.js';

test('completion bash: sourced in bash, Tab completes commands and the options of a command', async () => {
  const script = await runCli(['completion', 'bash'], { env: { SHELL: '/bin/zsh' } });
  assert.equal(script.code, 0, script.stderr);
  assert.match(script.stdout, /^complete .* mastosync$/m, 'the bash script, whatever $SHELL says');
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-completion-'));
  try {
    writeFileSync(join(folder, 'mastosync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`);
    chmodSync(join(folder, 'mastosync'), 0o755);
    writeFileSync(join(folder, 'completion.bash'), script.stdout);
    const complete = (...words: string[]) =>
      execFileSync(
        'bash',
        [
          '-c',
          `source completion.bash; COMP_WORDS=(${words.map((word) => `'${word}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _mastosync_yargs_completions; printf '%s\\n' "\${COMPREPLY[@]}"`,
        ],
        { cwd: folder, env: { ...process.env, PATH: `${folder}:${process.env.PATH}` }, encoding: 'utf8' },
      )
        .split('\n')
        .filter((line) => line !== '');
    assert.deepEqual(complete('mastosync', 've'), ['verify']);
    assert.deepEqual(complete('mastosync', 'run', '--metrics-h'), ['--metrics-hold']);
    assert.ok(complete('mastosync', '').includes('run'));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test('completion zsh: the zsh script, whatever $SHELL says', async () => {
  const script = await runCli(['completion', 'zsh'], { env: { SHELL: '/bin/bash' } });
  assert.equal(script.code, 0, script.stderr);
  assert.match(script.stdout, /^#compdef mastosync$/m);
  assert.match(script.stdout, /^\s*compdef _mastosync_yargs_completions mastosync$/m);
});

test('completion of another shell is one line and exit 2', async () => {
  const result = await runCli(['completion', 'fish']);
  assert.equal(result.code, 2);
  assert.equal(result.stderr.trim(), 'mastosync: completion takes bash or zsh (or nothing: the shell in $SHELL)');
  assert.equal(result.stdout, '');
});
