/**
 * `npm run bench:checkpoint [-- --lines N,N --above N --failed N]`: the time and peak RSS of loading a resume
 * checkpoint (src/sync/checkpoint.ts, the loader --resume uses) of a few sizes, each in a fresh process, so the
 * figures show whether memory grows with the lines below the watermark. Each file is what cron leaves after many
 * nights without compaction: one fresh run, object lines of two keys per row in id order with a watermark line
 * every 1000 rows, a synced line per night, a share of failures, and the lines of a run killed above the last
 * watermark (which resuming must keep). Prints a Markdown table for BENCHMARKS.md.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint } from '../src/sync/checkpoint.js';

const IDENTITY = { source: 's3://old', destination: 's3://new', scope: 'the whole database' };
const MARGIN = { changeMarginMs: 60 * 60_000 };

if (process.argv[2] === '--load') {
  // The child: load one checkpoint, report time, peak RSS and what resuming would hold.
  const started = performance.now();
  const state = await loadCheckpoint(process.argv[3]!, IDENTITY, MARGIN);
  const ms = performance.now() - started;
  const mark = state.watermark('media_attachments');
  process.stdout.write(
    JSON.stringify({
      ms,
      cpuMs: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      maxRssKb: process.resourceUsage().maxRSS,
      watermark: mark,
      outstanding: state.outstanding('media_attachments').length,
    }) + '\n',
  );
  process.exit(0);
}

const { values } = parseArgs({
  options: {
    lines: { type: 'string', default: '100000,1000000,10000000' },
    above: { type: 'string', default: '20000' },
    failed: { type: 'string', default: '1000' },
    dir: { type: 'string', default: os.tmpdir() },
  },
});

const sizes = values.lines.split(',').map(Number);
const above = Number(values.above);
const failed = Number(values.failed);
const folder = mkdtempSync(join(values.dir, 'mastosync-bench-checkpoint-'));

/** Writes a checkpoint of about `lines` object lines; returns its path and size. */
function writeCheckpoint(lines: number): { path: string; bytes: number } {
  const path = join(folder, `checkpoint-${lines}.jsonl`);
  const fd = openSync(path, 'w');
  let buffer = '';
  const flush = (force = false) => {
    if (buffer.length > (force ? 0 : 1 << 20)) {
      writeSync(fd, buffer);
      buffer = '';
    }
  };
  const base = 109349205816583424n;
  const rows = Math.floor((lines - above) / 2);
  const failEvery = failed > 0 ? Math.floor(rows / failed) : Number.POSITIVE_INFINITY;
  buffer += `{"run":"2026-01-01T00:00:00.000Z","mode":"fresh","source":"s3://old","destination":"s3://new","started":"2026-01-01T00:00:00.000Z","scope":"the whole database"}\n`;
  const objectLine = (id: bigint, style: string, status: string) => {
    const partition = id.toString().match(/\d{3}/g)!.join('/');
    return `{"job":"media_attachments","id":"${id}","key":"cache/media_attachments/files/${partition}/${style}/5f2c0d9e4b7a1c38.png","status":"${status}","bytes":${status === 'copied' ? 48213 : 0},"ms":31}\n`;
  };
  let night = 1;
  for (let row = 0; row < rows; row++) {
    const id = base + BigInt(row) * 65536n;
    const status = row % failEvery === failEvery - 1 ? 'failed' : 'copied';
    buffer += objectLine(id, 'original', status);
    buffer += objectLine(id, 'small', 'copied');
    if (row % 1000 === 999) buffer += `{"job":"media_attachments","watermark":"${id}"}\n`;
    // A new night every 100,000 rows: its header and, before it, the synced line of the night that finished.
    if (row % 100_000 === 99_999) {
      const day = String((night % 28) + 1).padStart(2, '0');
      buffer += `{"job":"media_attachments","synced":"2026-02-${day}T03:00:00.000Z"}\n`;
      buffer += `{"run":"2026-02-${day}T03:00:00.000Z","mode":"resume","source":"s3://old","destination":"s3://new","started":"2026-02-${day}T03:00:00.000Z","scope":"the whole database"}\n`;
      night++;
    }
    flush();
  }
  // The last night was killed: rows above its last watermark finished out of order.
  for (let index = 0; index < above; index++) {
    buffer += objectLine(base + BigInt(rows + 1000 + index) * 65536n, 'original', 'copied');
    flush();
  }
  flush(true);
  closeSync(fd);
  return { path, bytes: statSync(path).size };
}

const self = fileURLToPath(import.meta.url);
const results: string[] = [];
try {
  for (const lines of sizes) {
    const { path, bytes } = writeCheckpoint(lines);
    const child = spawnSync(process.execPath, ['--import', 'tsx', self, '--load', path], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (child.status !== 0) throw new Error(`loading ${path} failed: ${child.stderr}`);
    const { ms, cpuMs, maxRssKb, outstanding } = JSON.parse(child.stdout.trim().split('\n').pop()!) as {
      ms: number;
      cpuMs: number;
      maxRssKb: number;
      outstanding: number;
    };
    rmSync(path);
    const row = `| ${lines.toLocaleString('en')} | ${(bytes / 1e6).toFixed(0)} | ${(ms / 1000).toFixed(2)} | ${(cpuMs / 1000).toFixed(2)} | ${(maxRssKb / 1024).toFixed(0)} | ${above.toLocaleString('en')} | ${outstanding} |`;
    process.stdout.write(row + '\n');
    results.push(row);
  }
} finally {
  rmSync(folder, { recursive: true, force: true });
}

process.stdout.write(
  [
    '',
    `Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), ${new Date().toISOString()}, load ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}`,
    '',
    '| object lines | MB | load s | CPU s (whole process) | peak RSS MB | lines above the watermark (kept) | failed (kept) |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    ...results,
    '',
  ].join('\n'),
);
