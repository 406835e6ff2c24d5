/**
 * The bundle's code caches (scripts/bundle.mjs, bin/mastosync.js): V8 gets a chunk's cache only when the cache was
 * made from that chunk by exactly this Node. V8's own check lets any Node 20 release take another's cache, whose
 * bytecode it then runs wrong: an admin whose Node differs from the one that built or packed the bundle (a distro's
 * 20.x, an upgrade after `npm ci`) had a CLI that failed at start. What V8 is handed is watched by a preload that
 * records each vm.Script the launcher compiles.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { OWN_VERSION } from '../support/build.js';

const root = resolve(import.meta.dirname, '../..');
let scratch: string;

/** Each chunk the launcher compiled: whether it handed V8 a cache, and whether V8 took it. */
interface Compiled {
  readonly file: string;
  readonly given: boolean;
  readonly rejected: boolean | undefined;
}

const SPY = `
const vm = require('node:vm');
const { writeFileSync } = require('node:fs');
const compiled = [];
const Original = vm.Script;
vm.Script = class extends Original {
  constructor(source, options) {
    super(source, options);
    compiled.push({ file: options?.filename, given: options?.cachedData !== undefined, rejected: this.cachedDataRejected });
  }
};
process.on('exit', () => writeFileSync(process.env.SPY_OUT, JSON.stringify(compiled)));
`;

/** Another Node 20 release: the same V8, as every Node 20 has. */
const OTHER_NODE = `Object.defineProperty(process, 'version', { value: 'v20.11.0' });`;

/** Rewrites each cache's key (its head) as the Node running this computes it from the chunk, keeping V8's bytes. */
const REKEY = `
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const [home, ...caches] = process.argv.slice(2);
const { codeCacheKey, CODE_CACHE_KEY_LENGTH } = require(join(home, 'bin/codeCacheKey.js'));
for (const name of caches) {
  const file = join(home, 'dist/bundle', name);
  const data = readFileSync(file).subarray(CODE_CACHE_KEY_LENGTH);
  writeFileSync(file, Buffer.concat([codeCacheKey(readFileSync(file.slice(0, -'.cache'.length)), data), data]));
}
`;

function launch(home: string): { version: string; compiled: Compiled[] } {
  const out = join(scratch, `compiled-${Math.random().toString(36).slice(2)}.json`);
  const version = execFileSync(process.execPath, ['--require', join(scratch, 'spy.cjs'), join(home, 'bin/mastosync.js'), '--version'], {
    env: { ...process.env, SPY_OUT: out, MASTOSYNC_DEBUG: '' },
    encoding: 'utf8',
  }).trim();
  return { version, compiled: JSON.parse(readFileSync(out, 'utf8')) as Compiled[] };
}

before(() => {
  scratch = mkdtempSync(join(tmpdir(), 'mastosync-code-cache-'));
  writeFileSync(join(scratch, 'spy.cjs'), SPY);
  writeFileSync(join(scratch, 'other-node.cjs'), OTHER_NODE);
  writeFileSync(join(scratch, 'rekey.cjs'), REKEY);
});
after(() => rmSync(scratch, { recursive: true, force: true }));

test('the Node that built the bundle starts from its caches, and V8 takes them', () => {
  const { version, compiled } = launch(root);
  assert.match(version, OWN_VERSION);
  const main = compiled.find((chunk) => chunk.file?.endsWith('/dist/bundle/main.js'));
  assert.deepEqual(main && { given: main.given, rejected: main.rejected }, { given: true, rejected: false }, JSON.stringify(compiled));
});

/** A copy of the package: the launcher, package.json and the bundle. */
function copyOfPackage(name: string): string {
  const home = join(scratch, name);
  for (const part of ['bin', 'package.json', 'dist/bundle']) cpSync(join(root, part), join(home, part), { recursive: true });
  return home;
}

test('caches made by another Node are never handed to V8, and the CLI starts without them', () => {
  // A copy of the package whose caches say another Node made them: the same chunk, V8 and architecture.
  const home = copyOfPackage('other-node');
  const bundle = join(home, 'dist/bundle');
  const caches = readdirSync(bundle).filter((name) => name.endsWith('.js.cache'));
  assert.ok(caches.length > 0, 'the build made no caches');
  // The launcher's own key, computed by a Node that says it is another release of the same V8.
  execFileSync(process.execPath, ['--require', join(scratch, 'other-node.cjs'), join(scratch, 'rekey.cjs'), home, ...caches]);
  const { version, compiled } = launch(home);
  assert.match(version, OWN_VERSION);
  assert.ok(compiled.length > 0, 'no chunk compiled through the launcher');
  assert.deepEqual(
    compiled.filter((chunk) => chunk.given),
    [],
  );
});

test('a damaged cache is never handed to V8, and the CLI starts and runs as without it', () => {
  // V8 checks a cache's length, not its bytes: one damaged in place (bit rot, a block of zeros after a crash) with its
  // key intact was a segmentation fault at every start.
  const home = copyOfPackage('damaged');
  const cache = join(home, 'dist/bundle/main.js.cache');
  const whole = readFileSync(cache);
  const damaged = Buffer.from(whole);
  damaged.fill(0, 1000, 5000);
  for (let at = 6000; at < damaged.length; at += 997) damaged[at]! ^= 0xff;
  const cases = {
    'damaged in place': damaged,
    'cut short': whole.subarray(0, whole.length / 2),
    'shorter than its key': whole.subarray(0, 7),
    empty: Buffer.alloc(0),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    writeFileSync(cache, bytes);
    const { version, compiled } = launch(home);
    assert.match(version, OWN_VERSION, name);
    const main = compiled.find((chunk) => chunk.file?.endsWith('/dist/bundle/main.js'));
    assert.equal(main?.given, false, `${name}: ${JSON.stringify(main)}`);
  }
  // What the CLI does is the same: its help, word for word.
  const help = (dir: string) => execFileSync(process.execPath, [join(dir, 'bin/mastosync.js'), '--help'], { encoding: 'utf8' });
  assert.equal(help(home), help(root));
});
