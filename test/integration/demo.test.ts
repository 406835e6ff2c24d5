/**
 * `npm run demo`, at a fifth of its size: it must succeed on this machine (embedded PostgreSQL on a free port
 * beside the machine's own, s3rver, the real CLI), prove its own result, and leave nothing running or behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

test('the demo runs end to end, checks the copy, and cleans up', async () => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_')) delete env[name];
  const result = await new Promise<{ code: number | null; output: string }>((done, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'demo/demo.ts', '--scale', '0.2'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
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
