#!/usr/bin/env node
// The bundle `npm run build` makes after tsc (docs/performance.md, start-up): dist/cli/main.js and everything it
// imports into dist/bundle/, split into chunks, so that a start loads main.js and only the chunks of the command it
// runs (src/cli/commandLine.ts) and of the stores it uses. ssh2 stays outside (loaded only for a tunnel), as do pg's
// optional libpq binding and the optional native parts.
//
// Three steps:
// 1. esbuild splits the code into ES module chunks (only ES modules can be split);
// 2. each chunk is turned into CommonJS, its imports of other chunks into require(): Node's ES module loader costs a
//    start about 20 ms of CPU more than require() for the same chunks (resolving, reading and linking each one
//    asynchronously, and each built-in it imports read whole through a facade, `node:fs` loading its streams);
// 3. V8's code cache of each chunk, compiled whole, which bin/mastosync.js hands to V8 so it does not compile the
//    chunk again (bin/mastosync.js checks that the cache was made from the very same chunk).
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { build } from 'esbuild';
import { buildInfo } from './buildInfo.mjs';
import { lazyHelpText } from './lazyHelpText.mjs';

const { codeCacheKey } = createRequire(import.meta.url)('../bin/codeCacheKey.js');

// What --version prints and mastosync_build_info carries (src/cli/build.ts): the version, and the commit when built
// in a git checkout; and config.sample.toml, which `init` writes (src/cli/sampleConfig.ts).
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const identity = buildInfo(root);
const sample = readFileSync(join(root, 'config.sample.toml'), 'utf8');
const modules = 'dist/bundle-esm';
const out = 'dist/bundle';

await build({
  entryPoints: ['dist/cli/main.js'],
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['ssh2', 'pg-native'],
  // Packages from their ES modules, tree-shaken; minified with names kept (the SDK's errors and yargs read
  // constructor names); pg's probe for Cloudflare Workers (`new Response`, which loads Node's undici at start)
  // compiled out; the build's identity and the sample config embedded.
  mainFields: ['module', 'main'],
  minify: true,
  keepNames: true,
  define: { Response: 'undefined', MASTOSYNC_BUILD: JSON.stringify(identity), MASTOSYNC_SAMPLE_CONFIG: JSON.stringify(sample) },
  sourcemap: true,
  logLevel: 'warning',
  outdir: modules,
  plugins: [lazyHelpText],
});

const chunks = readdirSync(modules).filter((name) => name.endsWith('.js'));
// Read as Node would not (the package is "type": "module"), so that an import() of a chunk's default export gets that
// export, not the chunk's whole module.exports, which is Node's rule for CommonJS imported by an ES module.
writeFileSync(join(modules, 'package.json'), '{ "type": "commonjs" }\n');
await build({
  entryPoints: chunks.map((name) => join(modules, name)),
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  // What the first pass left outside stays outside: bundled here, ssh2's own require('./agent.js') would name a chunk.
  external: ['ssh2', 'pg-native'],
  // import() of a chunk becomes a require() run when it is reached, as the import() was.
  supported: { 'dynamic-import': false },
  minify: true,
  // Maps through to src/ (esbuild follows each chunk's own map).
  sourcemap: true,
  logLevel: 'warning',
  outdir: out,
  plugins: [
    {
      name: 'chunks-stay-files',
      setup(bundler) {
        bundler.onResolve({ filter: /^\.\/.*\.js$/ }, ({ path, kind }) => (kind === 'entry-point' ? undefined : { path, external: true }));
        // yargs finds itself by import.meta.url; a CommonJS chunk is at __filename.
        bundler.onLoad({ filter: /\.js$/ }, ({ path }) => ({
          contents: readFileSync(path, 'utf8').replaceAll('import.meta.url', 'require("node:url").pathToFileURL(__filename).href'),
          loader: 'js',
        }));
      },
    },
  ],
});
rmSync(modules, { recursive: true, force: true });
// The package is "type": "module"; the chunks are CommonJS.
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');

// Compiled whole (V8 otherwise compiles a function when it first runs, and caches only what it compiled), then the
// flag put back, since V8 refuses a cache made under other flags. The cache file starts with its key
// (bin/codeCacheKey.js: the chunk, the exact Node that made it, and the cache itself), which the launcher compares
// before V8 sees the cache. CODE_CACHE_PREFIX is the wrapper bin/mastosync.js compiles each chunk in.
const CODE_CACHE_PREFIX = '(function (exports, require, module, __filename, __dirname) { ';
for (const name of chunks) {
  const file = join(out, name);
  const source = readFileSync(file);
  setFlagsFromString('--no-lazy');
  const script = new Script(`${CODE_CACHE_PREFIX}${source.toString('utf8')}\n})`, { filename: file, columnOffset: -CODE_CACHE_PREFIX.length });
  setFlagsFromString('--lazy');
  const cache = script.createCachedData();
  writeFileSync(`${file}.cache`, Buffer.concat([codeCacheKey(source, cache), cache]));
}
