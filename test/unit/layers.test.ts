/**
 * The layers (imports point down only), read from every import of every file under src:
 *   src/mastodon  <-  src/ssh  <-  src/db;  src/mastodon  <-  src/storage;  then src/sync  <-  src/cli
 * src/mastodon imports nothing of ours; src/ssh and src/storage import only src/mastodon, src/errors.ts, src/log.ts and
 * themselves; src/db also imports src/ssh (a database session may run through the tunnel); src/sync imports no
 * src/cli. Only src/storage names a backend or its SDK: elsewhere a store is an
 * ObjectStore, reached through src/storage/index.ts, types.ts and errors.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

/** Packages only src/storage may import: the providers' SDKs. */
const SDK = /^@(aws-sdk|smithy|azure)\//;
/** What the rest of the program may import of src/storage: the interface, its errors, and the one factory. */
const STORAGE_ENTRIES = new Set(['src/storage/index.ts', 'src/storage/types.ts', 'src/storage/errors.ts']);

function sourceFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module a file imports or re-exports, statically or with import(): relative ones as src paths. */
function importsOf(file: string, text = readFileSync(file, 'utf8')): string[] {
  const specifiers = [
    ...text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s*'([^']+)'/gms),
    ...text.matchAll(/^\s*import\s*'([^']+)'/gm),
    ...text.matchAll(/\bimport\(\s*'([^']+)'\s*\)/g),
  ].map((match) => match[1]!);
  return specifiers.map((specifier) =>
    specifier.startsWith('.')
      ? relative(ROOT, resolve(dirname(file), specifier))
          .replace(/\.js$/, '.ts')
          .split('\\')
          .join('/')
      : specifier,
  );
}

/** `mastodon`, `db`, `ssh`, `storage`, `sync`, `cli`, or the file itself for one at the top of src (errors.ts). */
function layerOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? parts[1]! : path;
}

const LOWEST = new Set(['db', 'ssh', 'storage']);
/** At the top of src, shared by every layer: the errors and what a logger must do (an interface, no code). */
const SHARED = new Set(['src/errors.ts', 'src/log.ts']);

/** Why `from` may not import `to`, or undefined when it may. */
function violation(from: string, to: string): string | undefined {
  const fromLayer = layerOf(from);
  if (!to.startsWith('src/')) {
    return SDK.test(to) && fromLayer !== 'storage' ? 'only src/storage imports a provider SDK' : undefined;
  }
  const toLayer = layerOf(to);
  if (toLayer === fromLayer) return undefined;
  if (fromLayer === 'mastodon') return 'src/mastodon imports nothing of ours';
  // The database session opens through the SSH tunnel: the one step down between the lowest layers.
  if (fromLayer === 'db' && toLayer === 'ssh') return undefined;
  if (LOWEST.has(fromLayer) && toLayer !== 'mastodon' && !SHARED.has(to)) {
    return `src/${fromLayer} imports only src/mastodon, src/errors.ts, src/log.ts and itself`;
  }
  if (fromLayer === 'sync' && toLayer === 'cli') return 'src/sync imports no src/cli';
  if (toLayer === 'storage' && !STORAGE_ENTRIES.has(to)) {
    return 'outside src/storage a store is an ObjectStore: import src/storage/index.ts, types.ts or errors.ts, never a backend';
  }
  return undefined;
}

function violations(): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = relative(ROOT, file).split('\\').join('/');
    for (const to of importsOf(file)) {
      const why = violation(from, to);
      if (why !== undefined) found.push(`${from} -> ${to}: ${why}`);
    }
  }
  return found;
}

test('imports point down the layers only, and only src/storage names a backend or its SDK', () => {
  assert.deepEqual(violations(), []);
});

test('the rules catch what they forbid', () => {
  assert.match(violation('src/mastodon/keys.ts', 'src/errors.ts') ?? '', /src\/mastodon imports nothing/);
  assert.match(violation('src/storage/s3.ts', 'src/sync/integrity.ts') ?? '', /src\/storage imports only/);
  assert.match(violation('src/db/rows.ts', 'src/cli/config.ts') ?? '', /src\/db imports only/);
  assert.match(violation('src/sync/copy.ts', 'src/cli/stores.ts') ?? '', /src\/sync imports no src\/cli/);
  assert.match(violation('src/cli/commands/run.ts', 'src/storage/s3.ts') ?? '', /never a backend/);
  assert.match(violation('src/sync/rateLimit.ts', '@aws-sdk/client-s3') ?? '', /only src\/storage imports a provider SDK/);
  assert.equal(violation('src/storage/s3.ts', '@smithy/types'), undefined);
  assert.equal(violation('src/sync/copy.ts', 'src/storage/types.ts'), undefined);
  assert.equal(violation('src/sync/verify.ts', 'src/db/rows.ts'), undefined);
  // Every import form is read: a type import over several lines, a re-export, a bare import, a dynamic import.
  const text = [
    "import type {\n  Config,\n  Other,\n} from '../cli/config.js';",
    "export { x } from './s3.js';",
    "import '@azure/storage-blob';",
    "const { openTunnel } = await import('../ssh/tunnel.js');",
  ].join('\n');
  assert.deepEqual(importsOf(join(SRC, 'db/connection.ts'), text), ['src/cli/config.ts', 'src/db/s3.ts', '@azure/storage-blob', 'src/ssh/tunnel.ts']);
});
