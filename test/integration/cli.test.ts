/**
 * The launcher itself (bin/mastosync.js and the bundle it loads), as an admin meets it: run from any folder,
 * including Mastodon's own `live/`, which has a package.json of its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runCli } from '../support/cli.js';

const ownVersion = (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;

test("--version prints mastosync's version, not that of the folder it runs in", async () => {
  const live = mkdtempSync(join(tmpdir(), 'mastosync-live-'));
  try {
    writeFileSync(join(live, 'package.json'), JSON.stringify({ name: '@mastodon/mastodon', version: '4.3.2' }));
    const result = await runCli(['--version'], { cwd: live });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), ownVersion);
  } finally {
    rmSync(live, { recursive: true, force: true });
  }
});

test('--help lists every command', async () => {
  const result = await runCli(['--help'], { cwd: tmpdir() });
  assert.equal(result.code, 0, result.stderr);
  for (const command of ['run', 'init', 'check', 'plan', 'manifest', 'verify']) assert.match(result.stdout, new RegExp(`mastosync ${command}\\b`), command);
});
