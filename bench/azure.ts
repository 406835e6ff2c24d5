/**
 * `npm run bench:azure [-- options]`: streamed copies into and out of Azure Blob Storage, mastosync against rclone's
 * azureblob backend on the same server: Azurite (Microsoft's emulator) behind a proxy that adds latency to every
 * request, as a provider across a network does, with a local folder on the other side for both tools, so only the
 * Azure side is measured. Into Azure: a Mastodon-shaped mix (images, avatars, emoji, cards and a few videos, which
 * go as staged blocks) from a public/system folder; out of Azure: the container mastosync wrote, into a folder.
 * Both tools copy the same keys (rclone from a key list, as it would from `mastosync manifest --format rclone`),
 * with the same number of transfers. Wall time, CPU and peak RSS under GNU time; requests counted at the proxy.
 * Prints one Markdown table per direction, for BENCHMARKS.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  AccountSASPermissions,
  AccountSASResourceTypes,
  AccountSASServices,
  StorageSharedKeyCredential,
  generateAccountSASQueryParameters,
} from '@azure/storage-blob';
import { createDatabase } from '../test/support/postgres.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, endpointAt, startAzurite } from '../test/support/azurite.js';
import { startProxy, type RecordedRequest } from '../test/support/httpProxy.js';
import { insertRows, planMix } from './dataset.js';
import { ensureDebianPackage, measure, rcloneVersion, type Measurement } from './tools.js';
import { MASTOSYNC_BIN } from './tools.js';

const { values: flags } = parseArgs({
  options: {
    latency: { type: 'string', default: '20' },
    concurrency: { type: 'string', default: '16' },
    accounts: { type: 'string', default: '80' },
    emojis: { type: 'string', default: '60' },
    cards: { type: 'string', default: '80' },
    images: { type: 'string', default: '80' },
    videos: { type: 'string', default: '3' },
    'video-min-mb': { type: 'string', default: '10' },
    'video-max-mb': { type: 'string', default: '60' },
    repeat: { type: 'string', default: '1' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(`npm run bench:azure -- [--latency MS (20)] [--concurrency N (16)] [--accounts N --emojis N --cards N --images N
  (80, 60, 80, 80)] [--videos N --video-min-mb N --video-max-mb N (3, 10, 60)] [--repeat N (1: runs per tool, alternating; medians)]`);
  process.exit(0);
}
const number = (name: keyof typeof flags) => Number(flags[name]);
const concurrency = number('concurrency');
const latencyMs = number('latency');
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
ensureDebianPackage('rclone', 'rclone');
ensureDebianPackage('/usr/bin/time', 'time');

const work = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-azure-'));
const azurite = await startAzurite();
const proxy = await startProxy({ upstreamPort: azurite.port, latencyMs });
const db = await createDatabase('current');
try {
  const plan = planMix(
    {
      accounts: number('accounts'),
      emojis: number('emojis'),
      cards: number('cards'),
      images: number('images'),
      videos: number('videos'),
      videoMinMb: number('video-min-mb'),
      videoMaxMb: number('video-max-mb'),
    },
    7,
  );
  await insertRows(db.client, plan.rows);
  const system = join(work, 'system');
  for (const object of plan.objects) {
    mkdirSync(dirname(join(system, object.key)), { recursive: true });
    writeFileSync(join(system, object.key), randomBytes(object.size));
  }
  const keys = join(work, 'keys.txt');
  writeFileSync(keys, `${plan.objects.map((object) => object.key).join('\n')}\n`);
  const expected = { objects: plan.objects.length, bytes: plan.bytes };
  console.error(`bench: ${expected.objects} objects, ${(expected.bytes / 1e6).toFixed(1)} MB; ${concurrency} in flight; ${latencyMs} ms per request`);

  const endpoint = endpointAt(proxy.port);
  const azureSection = (section: string, container: string) => [
    `[${section}]`,
    'type = "azure"',
    `account = "${AZURITE_ACCOUNT}"`,
    `access_key = "${AZURITE_KEY}"`,
    `container = "${container}"`,
    `endpoint = "${endpoint}"`,
  ];
  const folderSection = (section: string, path: string) => [`[${section}]`, 'type = "fs"', `path = "${path}"`];
  const mastosync = (name: string, source: string[], destination: string[]): Promise<Measurement> => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'mastosync.toml');
    const lines = ['[database]', `url = "${db.url}"`, ...source, ...destination, '[sync]', `concurrency = ${concurrency}`, 'copy_mode = "stream"'];
    writeFileSync(config, `${lines.join('\n')}\n`);
    const env = { ...process.env };
    for (const variable of Object.keys(env)) if (variable.startsWith('MASTOSYNC_')) delete env[variable];
    return measure(process.execPath, [MASTOSYNC_BIN, 'run', 'all', '--config', config, '--quiet'], { env, cwd: dir, timeoutMs: 30 * 60_000 });
  };
  // rclone 1.60's azureblob takes an emulator only at the fixed port 10000 (use_emulator), or any blob service URL
  // through a SAS URL: an account SAS signed with Azurite's key.
  const sas = generateAccountSASQueryParameters(
    {
      permissions: AccountSASPermissions.parse('rwdlacup'),
      resourceTypes: AccountSASResourceTypes.parse('sco').toString(),
      services: AccountSASServices.parse('b').toString(),
      expiresOn: new Date(Date.now() + 24 * 3600_000),
    },
    new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY),
  ).toString();
  const rclone = (name: string, from: string, to: string): Promise<Measurement> => {
    const dir = join(work, name);
    mkdirSync(dir, { recursive: true });
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      RCLONE_CONFIG: '/dev/null',
      RCLONE_CONFIG_AZ_TYPE: 'azureblob',
      RCLONE_CONFIG_AZ_SAS_URL: `${endpoint}?${sas}`,
    };
    delete env.AWS_CA_BUNDLE;
    const args = ['copy', from, to, '--files-from-raw', keys, '--no-traverse', '--transfers', String(concurrency), '--checkers', String(concurrency)];
    return measure('rclone', [...args, '--retries', '1', '--stats', '0'], { env, cwd: dir, timeoutMs: 30 * 60_000 });
  };

  interface Row {
    tool: string;
    runs: Array<{ measurement: Measurement; requests: Record<string, number>; problem?: string }>;
  }
  const directions: Array<{ title: string; rows: Row[] }> = [];
  const repeat = number('repeat');

  // Into Azure: each tool into its own container, from the same folder.
  const into: Row[] = [
    { tool: 'mastosync', runs: [] },
    { tool: 'rclone', runs: [] },
  ];
  for (let round = 0; round < repeat; round++) {
    for (const row of round % 2 === 0 ? into : [...into].reverse()) {
      const container = `${row.tool}-in-${round}`;
      await azurite.createContainer(container);
      proxy.reset();
      const measurement =
        row.tool === 'mastosync'
          ? await mastosync(`${row.tool}-in-${round}`, folderSection('source', system), azureSection('destination', container))
          : await rclone(`${row.tool}-in-${round}`, system, `AZ:${container}`);
      row.runs.push({ measurement, requests: countRequests(proxy.requests), problem: await containerProblem(container) });
    }
  }
  directions.push({ title: 'into Azure (folder → Azurite)', rows: into });

  // Out of Azure: both tools from the container mastosync wrote in the first round, each into its own folder.
  const out: Row[] = [
    { tool: 'mastosync', runs: [] },
    { tool: 'rclone', runs: [] },
  ];
  for (let round = 0; round < repeat; round++) {
    for (const row of round % 2 === 0 ? out : [...out].reverse()) {
      const folder = join(work, `${row.tool}-out-${round}`, 'system');
      mkdirSync(folder, { recursive: true });
      proxy.reset();
      const measurement =
        row.tool === 'mastosync'
          ? await mastosync(`${row.tool}-out-${round}`, azureSection('source', 'mastosync-in-0'), folderSection('destination', folder))
          : await rclone(`${row.tool}-out-${round}`, 'AZ:mastosync-in-0', folder);
      row.runs.push({ measurement, requests: countRequests(proxy.requests), problem: folderProblem(folder) });
      rmSync(folder, { recursive: true, force: true });
    }
  }
  directions.push({ title: 'out of Azure (Azurite → folder)', rows: out });

  console.log(
    `rclone: ${rcloneVersion()}; Node ${process.version}; ${os.cpus().length} cores, ${os.cpus()[0]?.model ?? ''}; load average ${os.loadavg()[0]!.toFixed(1)}`,
  );
  for (const direction of directions) console.log(`\n${markdown(direction.title, direction.rows)}`);

  /** Why the container does not hold the plan's objects (count and bytes), or undefined. */
  async function containerProblem(container: string): Promise<string | undefined> {
    let objects = 0;
    let bytes = 0;
    for await (const blob of azurite.service.getContainerClient(container).listBlobsFlat()) {
      objects += 1;
      bytes += blob.properties.contentLength ?? 0;
    }
    return objects === expected.objects && bytes === expected.bytes ? undefined : `${objects} objects, ${bytes} bytes in ${container}`;
  }

  function folderProblem(folder: string): string | undefined {
    let objects = 0;
    let bytes = 0;
    const walk = (path: string) => {
      for (const entry of readdirSync(path, { withFileTypes: true })) {
        if (entry.isDirectory()) walk(join(path, entry.name));
        else {
          objects += 1;
          bytes += statSync(join(path, entry.name)).size;
        }
      }
    };
    walk(folder);
    return objects === expected.objects && bytes === expected.bytes ? undefined : `${objects} files, ${bytes} bytes in ${folder}`;
  }

  function markdown(title: string, rows: Row[]): string {
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const lines = [
      `### ${title}, ${concurrency} in flight, ${latencyMs} ms per request`,
      '',
      '| tool | wall s | objects/s | MB/s | CPU s | peak RSS MB | requests per object | ok |',
      '|---|---:|---:|---:|---:|---:|---|---|',
    ];
    const base = median(rows[0]!.runs.map((run) => run.measurement.wallMs));
    for (const row of rows) {
      const wall = median(row.runs.map((run) => run.measurement.wallMs));
      const cpu = median(row.runs.map((run) => run.measurement.cpuMs));
      const rss = median(row.runs.map((run) => run.measurement.peakRssBytes));
      const last = row.runs.at(-1)!;
      const total = Object.values(last.requests).reduce((sum, count) => sum + count, 0);
      const detail = Object.entries(last.requests)
        .sort((a, b) => b[1] - a[1])
        .map(([operation, count]) => `${operation} ${count}`)
        .join(', ');
      const problems = row.runs.map((run) => run.problem ?? (run.measurement.exitCode === 0 ? undefined : `exit ${run.measurement.exitCode}`)).filter(Boolean);
      lines.push(
        `| ${row.tool} | ${(wall / 1000).toFixed(1)} (${(wall / base).toFixed(2)}×) | ${(expected.objects / (wall / 1000)).toFixed(0)} | ${(expected.bytes / 1e6 / (wall / 1000)).toFixed(1)} | ${(cpu / 1000).toFixed(1)} | ${(rss / 1e6).toFixed(0)} | ${(total / expected.objects).toFixed(2)} (${detail}) | ${problems.length === 0 ? 'exact' : problems.join('; ')} |`,
      );
    }
    return lines.join('\n');
  }
} finally {
  await db.drop();
  await proxy.stop();
  await azurite.stop();
  rmSync(work, { recursive: true, force: true });
}

/** Blob service requests by operation, as Azure names them. */
function countRequests(requests: readonly RecordedRequest[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const request of requests) {
    const comp = request.query.comp;
    const operation =
      request.method === 'PUT'
        ? comp === 'block'
          ? 'Put Block'
          : comp === 'blocklist'
            ? 'Put Block List'
            : request.headers['x-ms-copy-source']
              ? 'Copy Blob'
              : request.query.restype === 'container'
                ? 'Create Container'
                : 'Put Blob'
        : request.method === 'GET'
          ? comp === 'list'
            ? 'List Blobs'
            : comp === undefined
              ? 'Get Blob'
              : `GET ${comp}`
          : request.method === 'HEAD'
            ? 'Get Blob Properties'
            : `${request.method} ${comp ?? ''}`.trim();
    counts[operation] = (counts[operation] ?? 0) + 1;
  }
  return counts;
}
