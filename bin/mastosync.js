#!/usr/bin/env node
// Thin launcher. `npm run build` (run by `npm ci` through `prepare`) compiles src/ to dist/ and bundles it into
// dist/bundle/: one file to load instead of hundreds, which halves the start (docs/performance.md). ssh2 stays
// outside and is loaded only for a tunnel.
// No V8 flags on the line above: each would cost every start its built-ins' code cache (src/cli/heap.ts).
import { readFileSync } from 'node:fs';

// The pinned AWS SDK supports Node 20 (package.json engines); its advice to upgrade is noise in cron mail.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// Stack traces (MASTOSYNC_DEBUG) name src/ lines, not the bundle's.
if (process.env.MASTOSYNC_DEBUG) process.setSourceMapsEnabled(true);
const { main } = await import('../dist/bundle/main.js');
const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

process.exitCode = await main(process.argv.slice(2), undefined, version);
