#!/usr/bin/env node
// `npm run build:binary`: one executable that needs no node_modules and no `node` on PATH (Node's single executable
// applications). Steps: bundle the CLI into one CommonJS file (SEA runs CommonJS only, and its `require` loads
// Node's built-ins only, so everything else must be inside), let Node turn it into a blob (with V8's code cache,
// which shortens the start: BENCHMARKS.md), copy the running `node` and inject the blob with postject.
//
// It builds for the machine it runs on: dist/mastosync-linux-x64 on x64, dist/mastosync-linux-arm64 on an arm64
// machine (the executable is a copy of that machine's `node`). Run after `npm run build` (npm run build:binary does).
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { buildInfo } from './buildInfo.mjs';
import { lazyHelpText } from './lazyHelpText.mjs';

// --no-code-cache and --out FILE are for bench/startup.ts, which compares the start with and without the cache.
const { values: flags } = parseArgs({ options: { 'no-code-cache': { type: 'boolean', default: false }, out: { type: 'string' } } });
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const output = resolve(flags.out ?? join(root, 'dist', `mastosync-${process.platform}-${process.arch}`));
const work = `${output}.sea`;
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });

// The entry does what bin/mastosync.js does.
const entry = `
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { main } = require('./dist/cli/main.js');
main(process.argv.slice(2)).then((code) => { process.exitCode = code; });
`;

/**
 * Each optional native part becomes a module that throws as a missing package does. Left as a require() of its
 * name, it would go to the executable's require(), which loads built-ins only and, before throwing, prints a
 * 4-line Node warning on stderr: at every run through an SSH tunnel (ssh2 tries both of its parts as it loads),
 * so cron mailed it every time. There is nothing on disk to load them from (the executable runs alone).
 */
const absentOptionalParts = {
  name: 'absent-optional-parts',
  setup(bundler) {
    bundler.onResolve({ filter: /^(cpu-features|pg-native)$|\.node$/ }, ({ path }) => ({ path, namespace: 'absent' }));
    bundler.onLoad({ filter: /.*/, namespace: 'absent' }, ({ path }) => ({
      contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find module '${path}' (not in the single executable)`)}), { code: 'MODULE_NOT_FOUND' });`,
      loader: 'js',
    }));
  },
};

const bundle = join(work, 'mastosync.cjs');
const bundled = await build({
  stdin: { contents: entry, resolveDir: root, sourcefile: 'sea-entry.cjs', loader: 'js' },
  bundle: true,
  format: 'cjs',
  platform: 'node',
  target: 'node20',
  outfile: bundle,
  logLevel: 'warning',
  // Optional native parts, each loaded inside a try by its user (ssh2's faster crypto and cpu-features; pg's
  // libpq binding, only on `pg.native`), are left out and those users fall back to their JavaScript code: see
  // absentOptionalParts above.
  // As `npm run build` bundles (docs/performance.md, start-up): packages from their ES modules, tree-shaken, minified
  // with names kept (the SDK's errors and yargs read constructor names), and pg's probe for Cloudflare Workers
  // (`new Response`, which loads Node's undici at start) compiled out, and the build's identity and the sample config
  // embedded as in the bundle (src/cli/build.ts, src/cli/sampleConfig.ts). The SDK's ES modules import two of Node's
  // built-ins with import(), which a single executable cannot run (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING): esbuild
  // turns those into require(), which loads built-ins there.
  mainFields: ['module', 'main'],
  supported: { 'dynamic-import': false },
  minify: true,
  keepNames: true,
  // ESM packages (yargs) read import.meta.url at load; in a CommonJS bundle it is the executable's own path.
  define: {
    'import.meta.url': 'importMetaUrl',
    Response: 'undefined',
    MASTOSYNC_BUILD: JSON.stringify(buildInfo(root)),
    MASTOSYNC_SAMPLE_CONFIG: JSON.stringify(readFileSync(join(root, 'config.sample.toml'), 'utf8')),
  },
  banner: { js: "const importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  plugins: [lazyHelpText, absentOptionalParts],
  metafile: true,
});
// Anything else the bundle still leaves to require() must be built in (else the same warning, then a throw): a
// dependency upgrade that adds one fails the build here rather than on an admin's cron. (`<define:…>`: a `define` of an
// object, which esbuild makes a module of its own, inside the bundle.)
const notBuiltIn = new Set(
  Object.values(bundled.metafile.inputs)
    .flatMap((input) => input.imports)
    .filter((imported) => imported.external && imported.path !== '<runtime>' && !imported.path.startsWith('<define:') && !isBuiltin(imported.path))
    .map((imported) => imported.path),
);
if (notBuiltIn.size > 0) throw new Error(`the single executable would require() from disk: ${[...notBuiltIn].join(', ')}`);

const blob = join(work, 'mastosync.blob');
const seaConfig = join(work, 'sea-config.json');
writeFileSync(seaConfig, JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: !flags['no-code-cache'] }));
// Quiet unless it fails: it announces the blob on stderr.
const prepared = spawnSync(process.execPath, ['--experimental-sea-config', seaConfig], { encoding: 'utf8' });
if (prepared.status !== 0) throw new Error(`node --experimental-sea-config failed:\n${prepared.stdout}${prepared.stderr}`);

rmSync(output, { force: true });
copyFileSync(process.execPath, output);
chmodSync(output, 0o755);
// postject warns once per ELF note section it cannot name ("Can't find string offset…"): harmless, and not news.
const injected = spawnSync(
  process.execPath,
  [
    join(root, 'node_modules', 'postject', 'dist', 'cli.js'),
    output,
    'NODE_SEA_BLOB',
    blob,
    '--sentinel-fuse',
    'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2',
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' },
);
const postjectErrors = injected.stderr.split('\n').filter((line) => line.trim() !== '' && !line.includes("Can't find string offset"));
if (postjectErrors.length > 0) console.error(postjectErrors.join('\n'));
if (injected.status !== 0) throw new Error(`postject failed (exit ${injected.status})`);
rmSync(work, { recursive: true, force: true });
console.log(`wrote ${output}`);
