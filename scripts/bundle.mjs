#!/usr/bin/env node
// The bundle `npm run build` makes after tsc (docs/performance.md, start-up): dist/cli/main.js and everything it
// imports into dist/bundle/, as ES modules split into chunks, so that a start loads main.js and only the chunks
// of the command it runs (src/cli/commandLine.ts) and of the stores it uses. ssh2 stays outside (loaded only for
// a tunnel), as do pg's optional libpq binding and the optional native parts.
import { build } from 'esbuild';
import { lazyHelpText } from './lazyHelpText.mjs';

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
  // compiled out.
  mainFields: ['module', 'main'],
  minify: true,
  keepNames: true,
  define: { Response: 'undefined' },
  sourcemap: true,
  logLevel: 'warning',
  outdir: 'dist/bundle',
  // The CommonJS packages inside call require() for Node's built-ins.
  banner: { js: "import { createRequire as bundleRequire } from 'node:module'; const require = bundleRequire(import.meta.url);" },
  plugins: [lazyHelpText],
});
