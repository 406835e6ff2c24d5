/**
 * `npm run bench:listing [-- --keys 10000,1000000 --s3rver 10000 --latency 30 --only listing,head,skip]`: verify by
 * listing against verify by HEAD, and `run --skip-existing` over a complete destination, as requests, wall time and
 * peak RSS of the real CLI (under GNU time), run as an admin runs it: the launcher as a command, which gives Node its
 * flags (bin/mastosync.js), not `node bin/mastosync.js`; every request answered after --latency ms. `--s3rver ''` or
 * `--keys ''` leaves a server out, `--only` picks the commands (listing: verify by listing; head: verify by HEAD, on
 * s3rver only; skip: run --skip-existing):
 * - on s3rver (its own process, data in /dev/shm, behind the recording proxy adding the latency): --s3rver media
 *   rows with one 30-byte object each at the source and the destination, by listing, by HEAD (64 in flight), and
 *   skip-existing;
 * - on bench/fakeListing.ts, a listing server generating its keys, for each of --keys: by listing and skip-existing
 *   (by HEAD at a million would be two million requests).
 * `--builds before=/elsewhere/bin/mastosync.js,after=bin/mastosync.js` runs each command with each build in turn (a
 * copy of bin/, dist/ and package.json is a build), so that they share the machine's load; `--node-options` sets
 * NODE_OPTIONS for the CLI only (e.g. `--import=/tmp/sampler.mjs`; the CLI's stdout and stderr then go to
 * the bench's).
 * Prints a Markdown table for BENCHMARKS.md.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { createDatabase, startPostgres, type TestDatabase } from '../test/support/postgres.js';
import { writeConfig } from '../test/support/cli.js';
import { makeS3Client } from '../test/support/s3.js';
import { startProxy } from '../test/support/httpProxy.js';
import { MASTOSYNC_BIN, ensureDebianPackage, measure, type Measurement } from './tools.js';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '10000,1000000' },
    s3rver: { type: 'string', default: '10000' },
    latency: { type: 'string', default: '30' },
    only: { type: 'string', default: 'listing,head,skip' },
    builds: { type: 'string' },
    'node-options': { type: 'string' },
  },
});
const builds = (values.builds ?? `this=${MASTOSYNC_BIN}`).split(',').map((entry) => {
  const [name, bin] = entry.split('=');
  return { name: name!, bin: resolve(bin!) };
});
const nodeOptions = values['node-options'];
const only = new Set(values.only.split(','));
const latencyMs = Number(values.latency);
const TIMEOUT_MS = 30 * 60_000;

interface Row {
  readonly server: string;
  readonly build: string;
  readonly keys: number;
  readonly what: string;
  readonly measured: Measurement;
  readonly requests: Record<string, number>;
}
const rows: Row[] = [];

/**
 * Rows a day old, as an instance's are: the checkpoint's compaction at the end of `run` keeps a hash of each object
 * whose row changed within the change margin (an hour), so rows all written a minute ago made the end of a 1 M
 * skip-existing peak 20-40 MB above its listing, a cost of the fixture.
 */
async function mediaRows(count: number): Promise<TestDatabase> {
  const db = await createDatabase('current');
  await db.client.query(
    `INSERT INTO media_attachments (id, account_id, type, file_file_name, file_content_type, file_file_size, created_at, updated_at)
     SELECT g, 1, 4, g || '.mp3', 'audio/mpeg', 30, now() - interval '1 day', now() - interval '1 day' FROM generate_series(1, $1::bigint) g`,
    [count],
  );
  await db.client.query('ANALYZE media_attachments');
  return db;
}

async function child(args: string[]): Promise<{ port: number; stop: () => void }> {
  const process_ = spawn(process.execPath, ['--import', 'tsx', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((done, fail) => {
    createInterface({ input: process_.stdout! }).once('line', done);
    process_.once('exit', (code) => fail(new Error(`${args[0]} exited with ${code}`)));
  });
  return { port: (JSON.parse(line) as { port: number }).port, stop: () => process_.kill('SIGTERM') };
}

/** The default checkpoint's names: this version's (after the config file) and an earlier build's, which a comparison may run. */
const CHECKPOINTS = ['mastosync.checkpoint.jsonl', 'mastosync-checkpoint.jsonl'];

async function cli(dir: string, args: string[], bin = MASTOSYNC_BIN): Promise<Measurement> {
  for (const name of CHECKPOINTS) rmSync(join(dir, name), { force: true });
  // The launcher execs `node` from PATH with the flags an admin's runs get: this Node, first on PATH.
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` };
  if (nodeOptions !== undefined) env.NODE_OPTIONS = nodeOptions;
  const measured = await measure(bin, [...args, '--json', '--config', join(dir, 'mastosync.toml')], { cwd: dir, env, timeoutMs: TIMEOUT_MS });
  if (measured.exitCode !== 0) throw new Error(`mastosync ${args.join(' ')} exited with ${measured.exitCode}: ${measured.stderr.slice(-2000)}`);
  if (nodeOptions !== undefined) process.stderr.write(measured.stdout + measured.stderr);
  return measured;
}

/** Runs `args` with each build in turn and records each run. */
async function eachBuild(
  server: string,
  keys: number,
  what: string,
  dir: string,
  args: string[],
  requests: () => Promise<Record<string, number>> | Record<string, number>,
) {
  for (const build of builds) {
    // Each build starts without a checkpoint, as measured; a run refuses to start over one that records progress.
    for (const name of CHECKPOINTS) rmSync(join(dir, name), { force: true });
    const measured = await cli(dir, args, build.bin);
    const row = { server, build: build.name, keys, what, measured, requests: await requests() };
    rows.push(row);
    console.error(`bench: ${line(row)}`);
  }
}

function line(row: Row): string {
  const total = Object.values(row.requests).reduce((sum, count) => sum + count, 0);
  const kinds = Object.entries(row.requests)
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ');
  const build = builds.length > 1 ? ` | ${row.build}` : '';
  return `| ${row.server}${build} | ${row.keys.toLocaleString('en')} | ${row.what} | ${total.toLocaleString('en')} (${kinds}) | ${(row.measured.wallMs / 1000).toFixed(1)} s | ${(row.measured.cpuMs / 1000).toFixed(1)} s | ${Math.round(row.measured.peakRssBytes / 1024 / 1024)} MB |`;
}

/** Both buckets at `endpoint`; 64 in flight for the HEADs; pages of 10 000 rows. */
function configFor(db: TestDatabase, endpoint: string) {
  const bucket = (name: string) => ({ endpoint, bucket: `listing-${name}` });
  return writeConfig({ databaseUrl: db.url, source: bucket('source'), destination: bucket('destination'), concurrency: 64, batchSize: 10_000 });
}

async function onS3rver(count: number, work: string): Promise<void> {
  const db = await mediaRows(count);
  const data = mkdtempSync(join(os.tmpdir().startsWith('/dev/shm') ? os.tmpdir() : '/dev/shm', 'mastosync-bench-listing-'));
  const server = await child([resolve(import.meta.dirname, 's3server.ts'), data]);
  const proxy = await startProxy({ upstreamPort: server.port, latencyMs });
  try {
    const client = makeS3Client(`http://127.0.0.1:${server.port}`);
    for (const bucket of ['listing-source', 'listing-destination']) {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      // Straight into s3rver's folder: 2 × 10 000 PUTs would take minutes and measure nothing of interest.
      for (let id = 1; id <= count; id++) {
        const partition = (String(id).padStart(9, '0').match(/\d{3}/g) ?? []).join('/');
        const file = join(data, bucket, 'media_attachments/files', partition, 'original', `${id}.mp3._S3rver_object`);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, `audio ${String(id).padStart(23, '0')}`);
      }
    }
    client.destroy();
    const config = configFor(db, proxy.endpoint);
    const counted = () => {
      const requests: Record<string, number> = {};
      for (const request of proxy.requests) requests[request.operation] = (requests[request.operation] ?? 0) + 1;
      proxy.reset();
      return requests;
    };
    // A first listing computes s3rver's MD5 files: not measured.
    await cli(config.dir, ['verify', 'all', '--by-listing']);
    proxy.reset();
    if (only.has('listing')) await eachBuild('s3rver', count, 'verify --by-listing', config.dir, ['verify', 'all', '--by-listing'], counted);
    if (only.has('head')) await eachBuild('s3rver', count, 'verify --by-head (64 in flight)', config.dir, ['verify', 'all', '--by-head'], counted);
    if (only.has('skip')) {
      await eachBuild('s3rver', count, 'run --skip-existing, complete destination', config.dir, ['run', 'all', '--skip-existing', '--quiet'], counted);
    }
    rmSync(config.dir, { recursive: true, force: true });
  } finally {
    await proxy.stop();
    server.stop();
    rmSync(data, { recursive: true, force: true });
    await db.drop();
  }
  void work;
}

async function onFakeServer(count: number): Promise<void> {
  const db = await mediaRows(count);
  const server = await child([resolve(import.meta.dirname, 'fakeListing.ts'), String(count), String(latencyMs)]);
  try {
    const endpoint = `http://127.0.0.1:${server.port}`;
    const counted = async () => (await (await fetch(`${endpoint}/__requests`)).json()) as Record<string, number>;
    const config = configFor(db, endpoint);
    await counted();
    if (only.has('listing')) await eachBuild('fake listing server', count, 'verify --by-listing', config.dir, ['verify', 'all', '--by-listing'], counted);
    if (only.has('skip')) {
      await eachBuild(
        'fake listing server',
        count,
        'run --skip-existing, complete destination',
        config.dir,
        ['run', 'all', '--skip-existing', '--quiet'],
        counted,
      );
    }
    rmSync(config.dir, { recursive: true, force: true });
  } finally {
    server.stop();
    await db.drop();
  }
}

ensureDebianPackage('/usr/bin/time', 'time');
const postgres = await startPostgres();
const work = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-listing-'));
try {
  for (const count of values.s3rver.split(',').filter(Boolean).map(Number)) await onS3rver(count, work);
  for (const count of values.keys.split(',').filter(Boolean).map(Number)) await onFakeServer(count);
} finally {
  rmSync(work, { recursive: true, force: true });
  await postgres.stop();
}
console.log(
  [
    `Every request answered after ${latencyMs} ms; ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), load ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')} at the end.`,
    '',
    builds.length > 1
      ? '| server | build | owned objects | command | requests | wall | CPU | peak RSS |'
      : '| server | owned objects | command | requests | wall | CPU | peak RSS |',
    builds.length > 1 ? '|---|---|---:|---|---:|---:|---:|---:|' : '|---|---:|---|---:|---:|---:|---:|',
    ...rows.map(line),
  ].join('\n'),
);
