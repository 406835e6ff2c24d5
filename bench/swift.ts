/**
 * `npm run bench:swift [-- --repeat N --concurrency N]`: streamed copies into and out of OpenStack Swift, mastosync
 * against rclone's swift backend, on the same servers: a private Swift (Debian's packages, as the tests start it:
 * test/support/swift.ts) and s3rver in a process of its own, both on loopback. A Mastodon-shaped mix (bench/
 * dataset.ts) goes s3 → swift, then swift → s3; each tool copies the same keys (rclone from the key list, as
 * `mastosync manifest --format rclone` writes it) into a fresh container or bucket; runs alternate and the median
 * is kept. Prints a Markdown table for BENCHMARKS.md. Needs `npm run build` first.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createDatabase } from '../test/support/postgres.js';
import { makeS3Client } from '../test/support/s3.js';
import { SWIFT_KEY, SWIFT_USER, startSwift, swiftSection, type SwiftServer } from '../test/support/swift.js';
import { insertRows, planMix, uploadObjects, type PlannedObject } from './dataset.js';
import { MASTOSYNC_BIN, ensureDebianPackage, measure, rcloneVersion, type Measurement } from './tools.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const { values: flags } = parseArgs({
  options: {
    repeat: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '16' },
    images: { type: 'string', default: '60' },
    videos: { type: 'string', default: '2' },
  },
});
const repeat = Number(flags.repeat);
const concurrency = Number(flags.concurrency);
const JOBS = ['media_attachments', 'accounts', 'custom_emojis', 'preview_cards'];
const TIMEOUT_MS = 30 * 60_000;

type Tool = 'mastosync' | 'rclone';
type Direction = 'into' | 'out';

/** s3rver in its own process (bench/s3server.ts), data in memory-backed /dev/shm. */
async function startS3(dir: string): Promise<{ endpoint: string; stop: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 's3server.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((done) => createInterface({ input: child.stdout }).once('line', done));
  const { port } = JSON.parse(line) as { port: number };
  return { endpoint: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGTERM') };
}

async function s3Sizes(client: S3Client, bucket: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const object of page.Contents ?? []) sizes.set(object.Key!, object.Size!);
    token = page.NextContinuationToken;
  } while (token !== undefined);
  return sizes;
}

async function swiftSizes(swift: SwiftServer, container: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  const token = await swift.token();
  for (let marker = ''; ;) {
    const response = await fetch(`${swift.storageUrl}/${container}?format=json&marker=${encodeURIComponent(marker)}`, { headers: { 'x-auth-token': token } });
    const page = (await response.json()) as Array<{ name: string; bytes: number }>;
    if (page.length === 0) return sizes;
    for (const entry of page) sizes.set(entry.name, entry.bytes);
    marker = page.at(-1)!.name;
  }
}

function exactly(sizes: Map<string, number>, objects: readonly PlannedObject[]): string | undefined {
  const wrong = objects.filter((object) => sizes.get(object.key) !== object.size);
  return wrong.length === 0 && sizes.size === objects.length ? undefined : `${wrong.length} of ${objects.length} missing or wrong, ${sizes.size} present`;
}

async function main(): Promise<void> {
  ensureDebianPackage('rclone', 'rclone');
  ensureDebianPackage('/usr/bin/time', 'time');
  const work = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-swift-'));
  const data = mkdtempSync(join('/dev/shm', 'mastosync-bench-swift-s3-'));
  const [swift, s3, db] = await Promise.all([startSwift(), startS3(data), createDatabase('current')]);
  const client = makeS3Client(s3.endpoint);
  try {
    const plan = planMix(
      { accounts: 60, emojis: 40, cards: 60, images: Number(flags.images), videos: Number(flags.videos), videoMinMb: 10, videoMaxMb: 40 },
      7,
    );
    await insertRows(db.client, plan.rows);
    await client.send(new CreateBucketCommand({ Bucket: 'source' }));
    await uploadObjects(client, 'source', plan.objects);
    const keys = join(work, 'keys.txt');
    writeFileSync(keys, `${plan.objects.map((object) => object.key).join('\n')}\n`);
    const sizes = plan.objects.map((object) => object.size).sort((a, b) => a - b);
    const describe = `${plan.objects.length} objects, ${(plan.bytes / 1e6).toFixed(1)} MB (median ${(sizes[sizes.length >> 1]! / 1000).toFixed(0)} KB, largest ${(sizes.at(-1)! / 1e6).toFixed(1)} MB)`;
    console.error(`bench: ${describe}`);

    const swiftLines = (container: string) => swiftSection(swift.authUrl, container);
    const s3Lines = (bucket: string) => [
      'type = "s3"',
      `endpoint = "${s3.endpoint}"`,
      `bucket = "${bucket}"`,
      'access_key_id = "S3RVER"',
      'secret_access_key = "S3RVER"',
      'force_path_style = true',
    ];
    const rcloneEnv: NodeJS.ProcessEnv = {
      ...process.env,
      RCLONE_CONFIG: '/dev/null',
      RCLONE_CONFIG_S3_TYPE: 's3',
      RCLONE_CONFIG_S3_PROVIDER: 'Other',
      RCLONE_CONFIG_S3_ENDPOINT: s3.endpoint,
      RCLONE_CONFIG_S3_ACCESS_KEY_ID: 'S3RVER',
      RCLONE_CONFIG_S3_SECRET_ACCESS_KEY: 'S3RVER',
      RCLONE_CONFIG_S3_REGION: 'us-east-1',
      RCLONE_CONFIG_S3_FORCE_PATH_STYLE: 'true',
      RCLONE_CONFIG_S3_ACL: 'public-read',
      RCLONE_CONFIG_SW_TYPE: 'swift',
      RCLONE_CONFIG_SW_AUTH: swift.authUrl,
      RCLONE_CONFIG_SW_USER: SWIFT_USER,
      RCLONE_CONFIG_SW_KEY: SWIFT_KEY,
    };
    delete rcloneEnv.AWS_CA_BUNDLE; // rclone fails with LoadCustomCABundleError when it is set
    const env = { ...process.env };
    for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_')) delete env[name];

    let made = 0;
    /** One run of `tool` in `direction`, into a fresh container (into) or bucket (out); checked exact afterwards. */
    const runOnce = async (tool: Tool, direction: Direction, swiftSource: string): Promise<Measurement> => {
      const target = `${tool}-${direction}-${++made}`;
      if (direction === 'into') await swift.createContainer(target);
      else await client.send(new CreateBucketCommand({ Bucket: target }));
      let measured: Measurement;
      if (tool === 'mastosync') {
        const dir = mkdtempSync(join(work, 'run-'));
        const config = join(dir, 'mastosync.toml');
        const [source, destination] = direction === 'into' ? [s3Lines('source'), swiftLines(target)] : [swiftLines(swiftSource), s3Lines(target)];
        writeFileSync(
          config,
          [
            '[database]',
            `url = "${db.url}"`,
            '[source]',
            ...source,
            '[destination]',
            ...destination,
            ...(direction === 'out' ? ['acl = "public-read"'] : []),
            '[sync]',
            `concurrency = ${concurrency}`,
            'copy_mode = "stream"',
          ].join('\n'),
        );
        measured = await measure(process.execPath, [MASTOSYNC_BIN, 'run', ...JOBS, '--config', config, '--json'], { env, cwd: dir, timeoutMs: TIMEOUT_MS });
      } else {
        const [from, to] = direction === 'into' ? ['S3:source', `SW:${target}`] : [`SW:${swiftSource}`, `S3:${target}`];
        measured = await measure(
          'rclone',
          [
            'copy',
            from,
            to,
            '--files-from-raw',
            keys,
            '--no-traverse',
            '--transfers',
            String(concurrency),
            '--checkers',
            String(concurrency),
            '--retries',
            '1',
            '--stats',
            '0',
          ],
          { env: rcloneEnv, cwd: work, timeoutMs: TIMEOUT_MS },
        );
      }
      if (measured.exitCode !== 0)
        throw new Error(`${tool} ${direction}: exit ${measured.exitCode}: ${measured.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const wrong = exactly(direction === 'into' ? await swiftSizes(swift, target) : await s3Sizes(client, target), plan.objects);
      if (wrong !== undefined) throw new Error(`${tool} ${direction}: destination not exact: ${wrong}`);
      return measured;
    };

    const results = new Map<string, Measurement[]>();
    // The container "out of Swift" reads from: filled once by mastosync (the same bytes either tool would write).
    await swift.createContainer('filled');
    const filled = join(work, 'filled.toml');
    writeFileSync(
      filled,
      ['[database]', `url = "${db.url}"`, '[source]', ...s3Lines('source'), '[destination]', ...swiftLines('filled'), '[sync]', 'copy_mode = "stream"'].join(
        '\n',
      ),
    );
    const fill = await measure(process.execPath, [MASTOSYNC_BIN, 'run', ...JOBS, '--config', filled, '--json'], { env, cwd: work, timeoutMs: TIMEOUT_MS });
    if (fill.exitCode !== 0) throw new Error(`filling the source container failed: ${fill.stderr}`);
    for (let round = 0; round < repeat; round++) {
      for (const direction of ['into', 'out'] as const) {
        // Alternating which goes first, so the machine's load falls on both alike.
        const order: Tool[] = round % 2 === 0 ? ['mastosync', 'rclone'] : ['rclone', 'mastosync'];
        for (const tool of order) {
          const measured = await runOnce(tool, direction, 'filled');
          console.error(`bench: ${direction} ${tool} round ${round + 1}: ${(measured.wallMs / 1000).toFixed(2)} s`);
          const key = `${direction} ${tool}`;
          results.set(key, [...(results.get(key) ?? []), measured]);
        }
      }
    }

    const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
    const of = (direction: Direction, tool: Tool) => {
      const runs = results.get(`${direction} ${tool}`)!;
      return { wall: median(runs.map((run) => run.wallMs)), cpu: median(runs.map((run) => run.cpuMs)), rss: median(runs.map((run) => run.peakRssBytes)) };
    };
    console.log(
      `${describe}; ${concurrency} in flight; Swift 2.30 (Debian, tempauth, one replica, one worker per server) and s3rver on loopback, no added latency; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), load ${os
        .loadavg()
        .map((load) => load.toFixed(1))
        .join(' ')} at the end; ${rcloneVersion()}; median of ${repeat} alternating runs each.`,
    );
    console.log('');
    console.log('| direction | tool | wall s | CPU s | peak RSS MB | wall × rclone |');
    console.log('|---|---|---|---|---|---|');
    for (const direction of ['into', 'out'] as const) {
      const base = of(direction, 'rclone');
      for (const tool of ['mastosync', 'rclone'] as const) {
        const figure = of(direction, tool);
        console.log(
          `| ${direction === 'into' ? 's3 → swift' : 'swift → s3'} | ${tool} | ${(figure.wall / 1000).toFixed(2)} | ${(figure.cpu / 1000).toFixed(2)} | ${(figure.rss / 1e6).toFixed(0)} | ${(figure.wall / base.wall).toFixed(2)} |`,
        );
      }
    }
  } finally {
    client.destroy();
    await db.drop();
    s3.stop();
    await swift.stop();
    rmSync(work, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
}

await main();
