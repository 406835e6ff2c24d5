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

/** Marks what loadChunk throws when a chunk cannot be read or compiled; src/cli/main.ts looks for it too. */
const BROKEN_BUNDLE = 'MASTOSYNC_BROKEN_BUNDLE';
const TRANSIENT_READ_ERRORS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'EAGAIN', 'EINTR']);

let main;
try {
  if (process.env.MASTOSYNC_DEBUG) {
    // Stack traces name src/ lines, not the bundle's: Node's own loader maps them (and uses no code cache).
    process.setSourceMapsEnabled(true);
    try {
      ({ main } = require(join(bundle, 'main.js')));
    } catch (error) {
      const missing = error.code === 'MODULE_NOT_FOUND' && /Cannot find module '([^']+)'/.exec(error.message)?.[1];
      throw missing && missing.startsWith(bundle) ? brokenBundle(missing, 'is missing', error) : error;
    }
  } else {
    ({ main } = loadChunk('./main.js'));
  }
  if (typeof main !== 'function') throw brokenBundle(join(bundle, 'main.js'), 'is damaged (it exports no main)');
} catch (error) {
  failed(error);
}
if (main !== undefined) {
  // main() turns every error of a command into one line and an exit code; what escapes it (a chunk its error handling
  // loads, missing) must still be one line, not an unhandled rejection's stack.
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  }, failed);
}

/**
 * One line and exit 2 for a dist/ that is missing or damaged (a checkout pulled and not rebuilt, a chunk deleted or
 * cut short), as for any other problem the admin must fix first; exit 1 for anything else.
 */
function failed(error) {
  const broken = error?.code === BROKEN_BUNDLE;
  process.stderr.write(`mastosync: ${broken ? error.message : `error: ${error?.message ?? error}`}\n`);
  if (process.env.MASTOSYNC_DEBUG) process.stderr.write(`${error?.stack}\n`);
  process.exitCode = broken ? 2 : 1;
}

/** The line for a chunk that cannot be loaded: in a checkout, rebuild; in an installed package, reinstall. */
function brokenBundle(file, problem, cause) {
  const root = join(__dirname, '..');
  const checkout = require('node:fs').existsSync(join(root, 'src'));
  const fix = checkout ? `run \`npm run build\` in ${root}` : 'reinstall mastosync';
  const error = new Error(`${checkout ? require('node:path').relative(root, file) : file} ${problem}: ${fix}`, { cause });
  error.code = BROKEN_BUNDLE;
  return error;
}

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
    let source;
    try {
      source = readFileSync(file);
    } catch (error) {
      // Out of file descriptors or memory (EMFILE, ENFILE, ENOMEM, EAGAIN) passes: not the installation's fault, and a
      // chunk loaded mid-run (the S3 SDK's) is read again by the object's next try; the run must not stop for it.
      if (TRANSIENT_READ_ERRORS.has(error.code)) throw error;
      throw brokenBundle(file, error.code === 'ENOENT' ? 'is missing' : `cannot be read (${error.code ?? error.message})`, error);
    }
    // Every chunk esbuild writes has code: an empty one was cut short (a full disk, an interrupted copy).
    if (source.length === 0) throw brokenBundle(file, 'is empty (damaged)');
    let script;
    try {
      script = new (require('node:vm').Script)(`${CODE_CACHE_PREFIX}${source.toString('utf8')}\n})`, {
        filename: file,
        columnOffset: -CODE_CACHE_PREFIX.length,
        cachedData: codeCache(file, source),
      });
    } catch (error) {
      throw brokenBundle(file, `is damaged (${error.message})`, error);
    }
    script.runInThisContext().call(chunk.exports, chunk.exports, requireInChunk, chunk, file, bundle);
  } catch (error) {
    chunks.delete(file);
    throw error;
  }
  return chunk.exports;
}

/**
 * The cache made from exactly `source` by exactly this Node, undamaged (its first 20 bytes are the key,
 * bin/codeCacheKey.js); anything else is left unused, as if there were no cache.
 */
function codeCache(file, source) {
  let cache;
  try {
    cache = readFileSync(`${file}.cache`);
  } catch {
    return undefined;
  }
  const { codeCacheKey, CODE_CACHE_KEY_LENGTH } = require('./codeCacheKey.js');
  if (cache.length <= CODE_CACHE_KEY_LENGTH) return undefined;
  const data = cache.subarray(CODE_CACHE_KEY_LENGTH);
  return codeCacheKey(source, data).equals(cache.subarray(0, CODE_CACHE_KEY_LENGTH)) ? data : undefined;
}
