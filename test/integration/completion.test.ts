/**
 * `mastosync completion bash|zsh`: the script each shell sources. The bash one is sourced in a real bash with
 * `mastosync` on PATH (the built CLI) and asked to complete, as pressing Tab does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, runCli } from '../support/cli.js';

test('completion bash: sourced in bash, Tab completes commands and the options of a command', async () => {
  const script = await runCli(['completion', 'bash'], { env: { SHELL: '/bin/zsh' } });
  assert.equal(script.code, 0, script.stderr);
  assert.match(script.stdout, /^complete .* mastosync$/m, 'the bash script, whatever $SHELL says');
  const { complete, folder } = await bashCompletion();
  try {
    assert.deepEqual(complete('mastosync', 've'), ['verify']);
    assert.deepEqual(complete('mastosync', 'run', '--metrics-h'), ['--metrics-hold']);
    assert.ok(complete('mastosync', '').includes('run'));
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("completion bash: the jobs after a command that takes them, a flag's choices, the shells; nothing but the completions", async () => {
  const { complete, stderr, folder } = await bashCompletion();
  try {
    const jobs = ['media_attachments', 'accounts', 'custom_emojis', 'preview_cards', 'preview_card_providers', 'site_uploads', 'backups', 'imports'];
    assert.deepEqual(complete('mastosync', 'run', '').sort(), ['all', ...jobs].sort());
    assert.deepEqual(complete('mastosync', 'verify', 'me'), ['media_attachments']);
    assert.deepEqual(complete('mastosync', 'plan', 'pre'), ['preview_cards', 'preview_card_providers']);
    // Those named already are not offered again, nor `all` after a job.
    assert.deepEqual(complete('mastosync', 'run', 'accounts', '--resume', '').sort(), jobs.filter((job) => job !== 'accounts').sort());
    assert.deepEqual(complete('mastosync', 'prune', 'all', ''), []);
    // A flag's choices, at the top level and after a command.
    assert.deepEqual(complete('mastosync', 'run', 'all', '--log-level', ''), ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);
    assert.deepEqual(complete('mastosync', '--log-level', 'd'), ['debug']);
    assert.deepEqual(complete('mastosync', 'manifest', 'all', '--format', '').sort(), ['keys', 'rclone', 's3-batch-csv']);
    // A flag whose value is free (a file, a number): no word of ours, so that bash offers file names.
    assert.deepEqual(complete('mastosync', 'run', 'all', '--config', ''), []);
    assert.deepEqual(complete('mastosync', 'run', 'all', '--concurrency', ''), []);
    assert.deepEqual(complete('mastosync', 'completion', ''), ['bash', 'zsh']);
    assert.equal(stderr(), '', 'no error printed while completing');
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

/** The bash script, sourced in bash with `mastosync` on PATH; complete() asks it as Tab does; stderr() is what the CLI printed there. */
async function bashCompletion() {
  const script = await runCli(['completion', 'bash'], { env: { SHELL: '/bin/bash' } });
  assert.equal(script.code, 0, script.stderr);
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-completion-'));
  writeFileSync(join(folder, 'mastosync'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@" 2>>stderr.txt\n`);
  chmodSync(join(folder, 'mastosync'), 0o755);
  writeFileSync(join(folder, 'completion.bash'), script.stdout);
  writeFileSync(join(folder, 'stderr.txt'), '');
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
  return { complete, folder, stderr: () => readFileSync(join(folder, 'stderr.txt'), 'utf8') };
}

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
