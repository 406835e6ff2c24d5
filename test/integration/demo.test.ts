/**
 * `npm run demo`, at a fifth of its size: it must succeed on this machine (embedded PostgreSQL on a free port
 * beside the machine's own, s3rver, the real CLI), prove its own result, and leave nothing running or behind.
 * It runs from a copy of the checkout inside a folder only its owner may enter, as a clone in /root is: as root,
 * PostgreSQL runs as another user, who cannot reach anything in there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The checkout's files as a clone would have them after `npm ci` (node_modules, hard-linked, and the dist/ its
 * `prepare` script builds, which `npm test` has just built), under a mode-700 folder. Without dist/ the demo built
 * the CLI itself first (its ensureBuilt), a minute of tsc under load and most of this test's time.
 */
function privateCheckout(): { checkout: string; remove: () => void } {
  const home = mkdtempSync(join(tmpdir(), 'mastosync-home-'));
  assert.equal(statSync(home).mode & 0o777, 0o700);
  const checkout = join(home, 'mastosync');
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((file) => file && existsSync(join(ROOT, file)));
  execFileSync('mkdir', ['-p', checkout]);
  execFileSync('cp', ['-a', '--parents', '-t', checkout, ...files], { cwd: ROOT });
  execFileSync('cp', ['-al', join(ROOT, 'node_modules'), join(checkout, 'node_modules')]);
  // Hard links keep the build's times, so the demo finds it newer than src/ and runs it as it is.
  execFileSync('cp', ['-al', join(ROOT, 'dist'), join(checkout, 'dist')]);
  return { checkout, remove: () => rmSync(home, { recursive: true, force: true }) };
}

test('the demo runs end to end from a private folder (as root, too), checks the copy, and cleans up', async (t) => {
  const { checkout, remove } = privateCheckout();
  t.after(remove);
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_')) delete env[name];
  const result = await new Promise<{ code: number | null; output: string }>((done, reject) => {
    const child = spawn('npm', ['run', '--silent', 'demo', '--', '--scale', '0.2'], { cwd: checkout, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => done({ code, output }));
  });
  assert.equal(result.code, 0, result.output);
  assert.match(result.output, /mastodon-new holds exactly the [\d,]+ owned objects/);
  assert.match(result.output, /orphans? left behind/);
  assert.match(result.output, /"msg":"progress"/, 'off a terminal, the run prints JSON progress lines');
  assert.match(result.output, /Demo finished/);
  assert.doesNotMatch(result.output, /building the CLI/, 'the clone has its build (dist/) already');
  assert.doesNotMatch(result.output, /EACCES|Error:|\n\s+at /, 'no error and no stack trace');

  const config = /config: (\S+)\/mastosync\.toml/.exec(result.output)![1]!;
  assert.equal(existsSync(config), false, 'the demo folder is removed');
  const port = Number(/PostgreSQL [\d.]+ at 127\.0\.0\.1:(\d+)\//.exec(result.output)![1]);
  assert.notEqual(port, 5432, 'the demo brings its own PostgreSQL on a free port');
  const listening = await new Promise<boolean>((done) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), done(true)));
    socket.once('error', () => done(false));
  });
  assert.equal(listening, false, 'the embedded PostgreSQL is stopped');
});
