#!/usr/bin/env node
// Thin launcher. `npm run build` (run by `npm ci` through `prepare`) compiles src/ to dist/ and bundles it into
// dist/bundle/: a few CommonJS chunks to load instead of hundreds of modules, each with V8's code cache, which
// together take most of the start's CPU off (docs/performance.md, start-up). ssh2 stays outside and is loaded only
// for a tunnel. CommonJS (bin/package.json), not an ES module: Node's ES module loader alone costs a start about 10 ms.
// No V8 flags on the line above: each would cost every start its built-ins' code cache (src/cli/heap.ts), and the
// bundle's.
'use strict';
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

// The pinned AWS SDK supports Node 20 (package.json engines); its advice to upgrade is noise in cron mail.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const bundle = join(__dirname, '../dist/bundle');
const chunks = new Map();
/** The wrapper CommonJS puts around a module; scripts/bundle.mjs compiles the cache in the same one. */
const CODE_CACHE_PREFIX = '(function (exports, require, module, __filename, __dirname) { ';
const requireFromBundle = require('node:module').createRequire(join(bundle, 'main.js'));
const requireInChunk = (id) => (id.startsWith('./') ? loadChunk(id) : requireFromBundle(id));

let main;
if (process.env.MASTOSYNC_DEBUG) {
  // Stack traces name src/ lines, not the bundle's: Node's own loader maps them (and uses no code cache).
  process.setSourceMapsEnabled(true);
  ({ main } = require(join(bundle, 'main.js')));
} else {
  ({ main } = loadChunk('./main.js'));
}
const { version } = JSON.parse(readFileSync(join(__dirname, '../package.json'), 'utf8'));
main(process.argv.slice(2), undefined, version).then((code) => {
  process.exitCode = code;
});

/**
 * A chunk of the bundle, as require() would load it, but compiled from the code cache `npm run build` made beside it
 * (scripts/bundle.mjs), where V8 accepts it: one from another Node, or made under other V8 flags, is refused by V8,
 * and one made from another chunk by the check below; without it the chunk is compiled as require() would.
 */
function loadChunk(id) {
  const file = join(bundle, id);
  const loaded = chunks.get(file);
  if (loaded !== undefined) return loaded.exports;
  const chunk = { exports: {} };
  chunks.set(file, chunk);
  try {
    const source = readFileSync(file);
    const script = new (require('node:vm').Script)(`${CODE_CACHE_PREFIX}${source.toString('utf8')}\n})`, {
      filename: file,
      columnOffset: -CODE_CACHE_PREFIX.length,
      cachedData: codeCache(file, source),
    });
    script.runInThisContext().call(chunk.exports, chunk.exports, requireInChunk, chunk, file, bundle);
  } catch (error) {
    chunks.delete(file);
    throw error;
  }
  return chunk.exports;
}

/** The cache made from exactly `source` by exactly this Node (its first 20 bytes are the key, bin/codeCacheKey.js). */
function codeCache(file, source) {
  let cache;
  try {
    cache = readFileSync(`${file}.cache`);
  } catch {
    return undefined;
  }
  const key = require('./codeCacheKey.js').codeCacheKey(source);
  return cache.length > key.length && key.equals(cache.subarray(0, key.length)) ? cache.subarray(key.length) : undefined;
}
