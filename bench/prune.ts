/**
 * `npm run bench:prune [-- --keys N,N --latency MS]`: `mastosync prune all` (dry, then --delete) over a bucket of
 * N keys on a listing server of the bench's own (in this process: keys held in a sorted array, ListObjectsV2 with
 * continuation, HEAD, quiet DeleteObjects, each request delayed by --latency and counted) against a PostgreSQL
 * database of media rows with snowflake ids: 94% of the keys owned, 5% of rows deleted since (their two keys
 * orphans), 1% of rows whose file was removed (NULL file name). Measures wall time, CPU and peak RSS of the CLI
 * (/usr/bin/time -v), the requests by kind and the orphans found and deleted. Prints a Markdown table.
 */
import http from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { createDatabase } from '../test/support/postgres.js';
import { idPartition } from '../src/mastodon/idPartition.js';
import { ensureDebianPackage, MASTOSYNC_BIN, measure } from './tools.js';

/**
 * The CPU of the database backends serving `database` while a run lasts (the lookups' cost the CLI's own CPU
 * does not show): their /proc/PID/stat user + system time, sampled every 100 ms, so a backend's last 100 ms can be missed.
 */
function sampleBackendCpu(client: pg.Client, database: string): { stop(): Promise<number> } {
  const ticks = new Map<number, number>();
  const tickMs = 1000 / 100; // USER_HZ
  const sample = async () => {
    const { rows } = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [database]);
    for (const { pid } of rows) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        ticks.set(pid, Number(fields[11]) + Number(fields[12]));
      } catch {
        // exited between the query and the read
      }
    }
  };
  let sampling = Promise.resolve();
  const timer = setInterval(() => (sampling = sampling.then(sample).catch(() => undefined)), 100);
  return {
    async stop() {
      clearInterval(timer);
      await sampling;
      return [...ticks.values()].reduce((sum, value) => sum + value, 0) * tickMs;
    },
  };
}

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '100000,1000000' },
    latency: { type: 'string', default: '30' },
    builds: { type: 'string' },
    modes: { type: 'string', default: 'dry,delete' },
    'node-args': { type: 'string', default: '' },
  },
});
const latencyMs = Number(values.latency);
// `--builds before=/elsewhere/bin/mastosync.js,after=bin/mastosync.js` compares builds in one run.
const builds = (values.builds ?? `this=${MASTOSYNC_BIN}`).split(',').map((entry) => {
  const [name, bin] = entry.split('=');
  return { name: name!, bin: resolve(bin!) };
});
const modes = values.modes.split(',') as Array<'dry' | 'delete'>;
// e.g. `--node-args=--cpu-prof,--cpu-prof-dir=/tmp/prof`; the CLI's stderr is then printed.
const nodeArgs = values['node-args'] === '' ? [] : values['node-args'].split(',');
const BASE = 109349205816583424n;

ensureDebianPackage('/usr/bin/time', 'time');

interface Served {
  keys: string[];
  deleted: Set<string>;
  counts: Map<string, number>;
  deletedKeys: number;
}

/** The listing server: path-style `/bucket/key`, answers only what prune sends. */
function serve(state: Served): Promise<http.Server> {
  const count = (kind: string) => state.counts.set(kind, (state.counts.get(kind) ?? 0) + 1);
  const lowerBound = (key: string) => {
    let [low, high] = [0, state.keys.length];
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (state.keys[middle]! < key) low = middle + 1;
      else high = middle;
    }
    return low;
  };
  const server = http.createServer((request, response) => {
    const url = new URL(request.url!, 'http://x');
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () =>
      setTimeout(() => {
        const key = decodeURIComponent(url.pathname.split('/').slice(2).join('/'));
        if (request.method === 'GET' && key === '') {
          const v2 = url.searchParams.get('list-type') === '2';
          count(v2 ? 'ListObjectsV2' : 'ListObjects');
          const prefix = url.searchParams.get('prefix') ?? '';
          const after = url.searchParams.get('continuation-token') ?? url.searchParams.get('start-after') ?? url.searchParams.get('marker') ?? '';
          const max = Number(url.searchParams.get('max-keys') ?? 1000);
          let index = lowerBound(after === '' ? prefix : after > prefix ? after : prefix);
          if (after !== '' && state.keys[index] === after) index++;
          const page: string[] = [];
          for (; index < state.keys.length && page.length < max && state.keys[index]!.startsWith(prefix); index++) {
            if (!state.deleted.has(state.keys[index]!)) page.push(state.keys[index]!);
          }
          const truncated = page.length === max && index < state.keys.length && state.keys[index]!.startsWith(prefix);
          const contents = page
            .map((item) => `<Contents><Key>${item}</Key><Size>48213</Size><ETag>"0123456789abcdef0123456789abcdef"</ETag></Contents>`)
            .join('');
          const next = truncated ? (v2 ? `<NextContinuationToken>${page.at(-1)}</NextContinuationToken>` : `<NextMarker>${page.at(-1)}</NextMarker>`) : '';
          response.writeHead(200, { 'content-type': 'application/xml' });
          response.end(`<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><IsTruncated>${truncated}</IsTruncated>${contents}${next}</ListBucketResult>`);
        } else if (request.method === 'HEAD') {
          count('HeadObject');
          const index = lowerBound(key);
          const found = state.keys[index] === key && !state.deleted.has(key);
          response.writeHead(found ? 200 : 404, found ? { 'content-length': 48213, etag: '"0123456789abcdef0123456789abcdef"' } : {});
          response.end();
        } else if (request.method === 'POST' && url.searchParams.has('delete')) {
          count('DeleteObjects');
          for (const match of Buffer.concat(chunks)
            .toString('utf8')
            .matchAll(/<Key>([^<]*)<\/Key>/g)) {
            state.deleted.add(match[1]!);
            state.deletedKeys++;
          }
          response.writeHead(200, { 'content-type': 'application/xml' });
          response.end('<?xml version="1.0" encoding="UTF-8"?><DeleteResult></DeleteResult>');
        } else {
          count(`other ${request.method}`);
          response.writeHead(400);
          response.end();
        }
      }, latencyMs),
    );
  });
  server.keepAliveTimeout = 60_000;
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
}

const fileName = (row: number) => `${row.toString(16).padStart(16, '0')}.png`;
const rowId = (row: number) => BASE + BigInt(row) * 65536n;

const results: string[] = [];
for (const size of values.keys.split(',').map(Number)) {
  const rows = Math.floor(size / 2);
  const db = await createDatabase('current');
  const folder = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-prune-'));
  try {
    // Every row owns original/ and small/ (image/png). 5% deleted since (row % 20 === 0), 1% fileless (row % 100 === 1).
    await db.client.query(
      `INSERT INTO media_attachments (id, file_file_name, file_content_type, file_file_size, file_storage_schema_version, remote_url, type, created_at, updated_at)
       SELECT $1::bigint + g::bigint * 65536, CASE WHEN g % 100 = 1 THEN NULL ELSE lpad(to_hex(g), 16, '0') || '.png' END, 'image/png', 48213, 1, '', 0, now(), now()
         FROM generate_series(0, $2::int - 1) g WHERE g % 20 <> 0`,
      [BASE.toString(), rows],
    );
    const keys: string[] = [];
    for (let row = 0; row < rows; row++) {
      const folderKey = `media_attachments/files/${idPartition(rowId(row))}`;
      keys.push(`${folderKey}/original/${fileName(row)}`, `${folderKey}/small/${fileName(row)}`);
    }
    keys.sort();
    const expectedOrphans = 2 * Array.from({ length: rows }, (_, row) => row).filter((row) => row % 20 === 0 || row % 100 === 1).length;
    const state: Served = { keys, deleted: new Set(), counts: new Map(), deletedKeys: 0 };
    const server = await serve(state);
    const port = (server.address() as { port: number }).port;
    writeFileSync(
      join(folder, 'mastosync.toml'),
      [
        '[database]',
        `url = ${JSON.stringify(db.url)}`,
        '[source]',
        'type = "fs"',
        `path = ${JSON.stringify(folder)}`,
        '[destination]',
        'type = "s3"',
        `endpoint = "http://127.0.0.1:${port}"`,
        'bucket = "bench"',
        'access_key_id = "x"',
        'secret_access_key = "x"',
        'force_path_style = true',
      ].join('\n'),
    );
    for (const mode of modes) {
      // Builds alternate within a mode, so they share the machine's load; each --delete starts from the full bucket.
      for (const build of builds) {
        state.counts.clear();
        state.deleted.clear();
        state.deletedKeys = 0;
        const manifest = join(folder, `deleted-${build.name}.jsonl`);
        const args = [...nodeArgs, build.bin, 'prune', 'all', '--json', ...(mode === 'delete' ? ['--delete', '--manifest', manifest] : [])];
        const backends = sampleBackendCpu(db.client, db.name);
        const run = await measure(process.execPath, args, { env: process.env, cwd: folder, timeoutMs: 3_600_000 });
        const dbCpuMs = await backends.stop();
        if (run.exitCode !== 0) throw new Error(`prune ${mode} (${build.name}) exited ${run.exitCode}: ${run.stderr.slice(-2000)}`);
        const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { total: { listed: number; orphans: number; deleted: number } };
        if (summary.total.orphans !== expectedOrphans)
          throw new Error(`prune ${mode} (${build.name}) found ${summary.total.orphans} orphans, not ${expectedOrphans}`);
        if (mode === 'delete' && state.deletedKeys !== expectedOrphans)
          throw new Error(`${build.name}: ${state.deletedKeys} keys deleted, not ${expectedOrphans}`);
        const requests = [...state.counts].map(([kind, count]) => `${kind} ${count}`).join(', ');
        const cells = [
          size.toLocaleString('en'),
          build.name,
          mode === 'dry' ? 'dry run' : '--delete',
          summary.total.listed.toLocaleString('en'),
          summary.total.orphans.toLocaleString('en'),
          summary.total.deleted.toLocaleString('en'),
          (run.wallMs / 1000).toFixed(1),
          (run.cpuMs / 1000).toFixed(1),
          (dbCpuMs / 1000).toFixed(1),
          (run.peakRssBytes / 2 ** 20).toFixed(0),
          requests,
        ];
        const row = `| ${cells.join(' | ')} |`;
        process.stdout.write(row + '\n');
        results.push(row);
        if (values['node-args'] !== '') process.stderr.write(run.stderr.slice(-2000));
      }
    }
    server.close();
  } finally {
    rmSync(folder, { recursive: true, force: true });
    await db.drop();
  }
}

process.stdout.write(
  [
    '',
    `Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${new Date().toISOString()}, ${latencyMs} ms per request, load ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}`,
    '',
    '| keys | build | mode | listed | orphans | deleted | wall s | CPU s | DB CPU s | peak RSS MB | requests |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...results,
    '',
  ].join('\n'),
);
process.exit(0);
