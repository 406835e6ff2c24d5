/**
 * `npm run bench [-- options]`: mastosync against rclone on a Mastodon-shaped data set in s3rver behind a
 * latency proxy, side by side, with the latency limit N × round trips × latency / C. Prints the figures and
 * writes them to BENCHMARKS.md. `npm run bench -- --help` lists the options.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';

/** The line in BENCHMARKS.md after which figures measured by other commands are kept on a rerun. */
const OTHER_FIGURES = '<!-- other figures: not written by npm run bench -->';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { CreateBucketCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { createDatabase, type TestDatabase } from '../test/support/postgres.js';
import { makeS3Client } from '../test/support/s3.js';
import { startProxy, type HttpProxy, type RecordedRequest } from '../test/support/httpProxy.js';
import { describeTimeline } from './timeline.js';
import { insertFilelessRows, insertRows, planMix, uploadObjects, type MixCounts, type PlannedObject } from './dataset.js';
import { scenarioMarkdown, scenarioText, perObject, type ScenarioResult, type ToolResult } from './report.js';
import { ensureDebianPackage, measure, rcloneVersion, runFloor, runMastosync, runRclone, type Measurement } from './tools.js';

/**
 * s3rver stands in for two remote providers, so its disk writes should not slow the copiers down: on this
 * machine's ext4 disk (mounted with discard) its PUTs took up to three times the CPU after the bench deleted a
 * bucket, and how much changed from run to run. Memory-backed /dev/shm keeps that out of the figures.
 */
const DEFAULT_DATA_DIR = roomIn('/dev/shm') >= 2e9 ? '/dev/shm' : os.tmpdir();

/** Bytes free for us at `folder`; 0 when it does not exist. The default data sets take about 1 GB at once. */
function roomIn(folder: string): number {
  if (!existsSync(folder)) return 0;
  const { bavail, bsize } = statfsSync(folder);
  return bavail * bsize;
}

/** Choices for the part-size study: single-PUT limit, part size (MiB), parts in flight. */
const DEFAULT_PARTS = '8:8:2,8:8:1,8:5:1,8:16:2,64:8:2,512:8:2';

// The pinned SDK's advice to move to Node 22 is noise here (as in bin/mastosync.js).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const COPY_SCENARIOS = ['requests', 'bucket', 'acceptance', 'stream', 'bound', 'server', 'videos', 'parts', 'rows'] as const;
/**
 * The listing scenarios of issue 12, each a script of its own (also run alone by its npm script) whose Markdown
 * table goes into the report; minutes each at a million keys, so only when named in --scenarios.
 */
const SCRIPT_SCENARIOS = {
  listing: { script: 'bench/listing.ts', title: 'verify by listing against by HEAD, and run --skip-existing over a complete destination' },
  prune: { script: 'bench/prune.ts', title: 'prune: the destination listed and joined with the rows, dry and --delete' },
  checkpoint: { script: 'bench/checkpoint.ts', title: 'resuming from checkpoints of up to 10 million lines' },
} as const;
type ScriptScenario = keyof typeof SCRIPT_SCENARIOS;
const SCENARIOS = [...COPY_SCENARIOS, ...(Object.keys(SCRIPT_SCENARIOS) as ScriptScenario[])] as const;
type Tool = 'mastosync' | 'rclone' | 'node-floor';
/** The bare Node copier's name in the tables: the floor under any Node copier (bench/floorCopier.ts). */
const FLOOR_LABEL = 'node-floor (node:http, minimal SigV4)';

const HELP = `npm run bench -- [options]
  --latency MS          added by the proxy to every request (default 30)
  --concurrency LIST    copies in flight for the stream scenario, e.g. 16,64 (default 16,64)
  --accounts N --emojis N --cards N --images N
                        rows of the mix (defaults 150, 100, 150, 120: about 900 objects)
  --acceptance-latency MS  the acceptance scenario (issue 5's independent check): about 700 objects of the mix,
                        16 in flight, through proxies adding this latency (default 40)
  --bucket-latency MS   the bucket scenario (issue 15): a bucket of about 680 objects copied whole, mastosync \`run all\`
                        against rclone's \`copy --fast-list\`, 16 in flight through proxies adding this latency
                        (default 40); then 64 in flight at 0 ms, and a 200 MB video at 8 in flight
  --bound-latency MS    the bound scenario: a third of the mix at each concurrency with this latency, so the
                        latency, not s3rver, bounds the copy (default 250)
  --videos N --video-min-mb N --video-max-mb N --video-images N
                        the videos scenario: N videos from min to max MB plus some images (3, 20, 200, 40)
  --parts LIST          the parts scenario: single-PUT limit:part size:parts in flight, in MiB, comma-separated
                        (default ${DEFAULT_PARTS})
  --rows N --base-rows N
                        the rows scenario: a table of N fileless rows against one of base-rows (1000000, 10000)
  --scenarios LIST      any of ${SCENARIOS.join(',')} (default: all but ${Object.keys(SCRIPT_SCENARIOS).join(', ')},
                        which run bench/<name>.ts with its defaults: minutes each at a million keys)
  --tools LIST          mastosync,rclone,node-floor (default all three); node-floor, the bare Node copier of
                        bench/floorCopier.ts (the floor under any Node copier), runs in the bucket scenarios only
  --compare LIST        the bucket scenarios also run these other builds of mastosync, each as NAME=PATH of its
                        bin/mastosync.js (a copy of the launcher, package.json and dist/bundle), e.g. the build
                        before a change: before=/tmp/before/bin/mastosync.js
  --rclone-flags "..."  extra rclone flags, e.g. "--s3-no-head"
  --repeat N            run each tool N times (alternating) and keep its median run (default 1)
  --trace               after each streamed run, where its time went (bench/timeline.ts)
  --cpu-prof DIR        the Node tools (mastosync and node-floor) write a CPU profile of each run under DIR/<run>/
                        (node --cpu-prof, 250 µs samples; mastosync then runs as its launcher would run it, plain
                        node with the flags added; the profiler adds CPU, so compare profiles, not figures)
  --callgrind DIR       the Node tools (mastosync and node-floor) run under valgrind's callgrind, its output for each run
                        under DIR (for callgrind_annotate); the tables add the instructions each ran per object, in
                        all and beyond start, and against the bare Node copier's: counts that repeat within about 1%
                        where CPU time on this shared machine does not. Valgrind slows them about 50 times, so their
                        wall time, CPU and RSS mean nothing and no target is judged; each runs once (no best of two)
  --hold DIR            build the bucket scenario's world (the two providers behind proxies adding --bucket-latency,
                        the bucket and its rows) and keep it up until Ctrl-C, described in DIR/world.json; nothing runs
  --held DIR            run against the world --hold keeps described in DIR: this build, the --compare builds and
                        (with --tools naming it) the bare copier, --repeat rounds alternating, at the first
                        --concurrency, each whole and at --limit 0, into a fresh destination bucket with a fresh
                        checkpoint; with --callgrind, counted. Prints a line a run, then each one's median
  --data-dir DIR        where s3rver keeps its buckets (default ${DEFAULT_DATA_DIR}); the tools' own files (config,
                        checkpoint, key list) stay in the system's temporary folder
  --out FILE            where to write the report (default BENCHMARKS.md; "-" writes none)
  --help`;

const { values: flags } = parseArgs({
  options: {
    latency: { type: 'string', default: '30' },
    concurrency: { type: 'string', default: '16,64' },
    accounts: { type: 'string', default: '150' },
    emojis: { type: 'string', default: '100' },
    cards: { type: 'string', default: '150' },
    images: { type: 'string', default: '120' },
    'acceptance-latency': { type: 'string', default: '40' },
    'bound-latency': { type: 'string', default: '250' },
    'bucket-latency': { type: 'string', default: '40' },
    videos: { type: 'string', default: '3' },
    'video-min-mb': { type: 'string', default: '20' },
    'video-max-mb': { type: 'string', default: '200' },
    'video-images': { type: 'string', default: '40' },
    parts: { type: 'string', default: DEFAULT_PARTS },
    rows: { type: 'string', default: '1000000' },
    'base-rows': { type: 'string', default: '10000' },
    scenarios: { type: 'string', default: COPY_SCENARIOS.join(',') },
    tools: { type: 'string', default: 'mastosync,rclone,node-floor' },
    compare: { type: 'string', default: '' },
    'rclone-flags': { type: 'string', default: '' },
    repeat: { type: 'string', default: '1' },
    trace: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string', default: '' },
    callgrind: { type: 'string', default: '' },
    hold: { type: 'string', default: '' },
    held: { type: 'string', default: '' },
    'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
    out: { type: 'string', default: 'BENCHMARKS.md' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  console.log(HELP);
  process.exit(0);
}

const number = (name: keyof typeof flags) => {
  const value = Number(flags[name]);
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} must be a number, not ${String(flags[name])}`);
  return value;
};
const list = <T extends string>(name: keyof typeof flags, allowed: readonly T[]) =>
  String(flags[name])
    .split(',')
    .filter(Boolean)
    .map((item) => {
      if (!allowed.includes(item as T)) throw new Error(`--${name}: "${item}" is not one of ${allowed.join(', ')}`);
      return item as T;
    });

const latencyMs = number('latency');
const concurrencies = String(flags.concurrency).split(',').map(Number);
const scenarios = list('scenarios', SCENARIOS);
const tools = list('tools', ['mastosync', 'rclone', 'node-floor'] as const);
/** The tools of the scenarios other than the bucket ones: the floor copier copies whole buckets only. */
const copiers = tools.filter((tool): tool is 'mastosync' | 'rclone' => tool !== 'node-floor');
const rcloneFlags = String(flags['rclone-flags']).split(' ').filter(Boolean);
const repeat = Math.max(1, Math.round(number('repeat')));
/** Other builds of mastosync to run beside this one in the bucket scenarios: name → launcher path. */
const compared = String(flags.compare)
  .split(',')
  .filter(Boolean)
  .map((item) => {
    const [name, path] = item.split('=');
    if (!name || !path || !existsSync(path)) throw new Error(`--compare: "${item}" is not NAME=PATH of an existing bin/mastosync.js`);
    return { name, bin: resolve(path) };
  });
const TIMEOUT_MS = 15 * 60_000;

interface DataSet {
  readonly db: TestDatabase;
  readonly bucket: string;
  readonly jobs: readonly string[];
  readonly objects: readonly PlannedObject[];
  readonly bytes: number;
}

/** One S3 provider: s3rver in its own process, behind its own latency proxy. */
interface Provider {
  readonly name: string;
  readonly directory: string;
  readonly child: ChildProcess;
  /** Straight to s3rver: loading and checking, never measured. */
  readonly direct: S3Client;
  readonly directEndpoint: string;
  readonly proxy: HttpProxy;
}

interface World {
  /** The tools' own files: configs, checkpoints, key lists. */
  readonly work: string;
  /** Holds every source bucket; also the destination of server-side copies. */
  readonly source: Provider;
  /** Where streamed copies go: another provider, as in a migration. */
  readonly destination: Provider;
  destinations: number;
}

async function startProvider(data: string, name: string): Promise<Provider> {
  const directory = join(data, name);
  mkdirSync(directory);
  const child = spawn(process.execPath, ['--import', 'tsx', resolve(import.meta.dirname, 's3server.ts'), directory], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((done, fail) => {
    createInterface({ input: child.stdout! }).once('line', done);
    child.once('exit', (code) => fail(new Error(`s3rver exited with ${code}`)));
  });
  const { port } = JSON.parse(line) as { port: number };
  const directEndpoint = `http://127.0.0.1:${port}`;
  const proxy = await startProxy({ upstreamPort: port, latencyMs: flags.hold ? number('bucket-latency') : latencyMs });
  return { name, directory, child, direct: makeS3Client(directEndpoint), directEndpoint, proxy };
}

async function stopProvider(provider: Provider): Promise<void> {
  await provider.proxy.stop();
  provider.direct.destroy();
  provider.child.kill('SIGTERM');
}

async function makeDataSet(world: World, bucket: string, jobs: string[], build: (db: TestDatabase) => Promise<PlannedObject[]>): Promise<DataSet> {
  const db = await createDatabase('current');
  await world.source.direct.send(new CreateBucketCommand({ Bucket: bucket }));
  const objects = await build(db);
  await uploadObjects(world.source.direct, bucket, objects);
  return { db, bucket, jobs, objects, bytes: objects.reduce((sum, object) => sum + object.size, 0) };
}

async function listSizes(client: S3Client, bucket: string): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const object of page.Contents ?? []) sizes.set(object.Key!, object.Size ?? -1);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return sizes;
}

interface RunSpec {
  readonly tool: Tool;
  readonly data: DataSet;
  readonly concurrency: number;
  readonly mode: 'stream' | 'server';
  /** The proxies' latency for this run (the zero-latency floor uses 0). */
  readonly latencyMs: number;
  /** Copy nothing: measures what the tool spends besides objects (start, connect, check). */
  readonly nothing?: boolean;
  /**
   * As an admin copies a whole bucket: mastosync `run all` with default flags (no --json), rclone
   * `copy SRC:bucket DST:bucket --fast-list` (both sides listed, no key list).
   */
  readonly wholeBucket?: boolean;
  /** The name in the table, instead of the tool's. */
  readonly label?: string;
  /** Another build's launcher (--compare). */
  readonly bin?: string;
}

/** A measured run as the report shows it; `requests` are what the proxies saw, counted per S3 operation. */
function toolResult(tool: string, data: DataSet, measured: Measurement, problem: string | undefined, requests: readonly RecordedRequest[]): ToolResult {
  const perOperation: Record<string, number> = {};
  for (const request of requests) perOperation[request.operation] = (perOperation[request.operation] ?? 0) + 1;
  return {
    tool,
    ok: problem === undefined,
    problem,
    wallMs: measured.wallMs,
    objects: data.objects.length,
    bytes: data.bytes,
    cpuMs: measured.cpuMs,
    peakRssBytes: measured.peakRssBytes,
    requests: perOperation,
    instructions: measured.instructions,
  };
}

/** Runs one tool on one data set into a fresh destination bucket, then checks the destination is exact. */
async function runTool(world: World, spec: RunSpec): Promise<ToolResult> {
  const { tool, data, concurrency, mode } = spec;
  const to = mode === 'server' ? world.source : world.destination;
  const destination = `bench-destination-${++world.destinations}`;
  await to.direct.send(new CreateBucketCommand({ Bucket: destination }));
  const dir = join(world.work, destination);
  mkdirSync(dir);
  const source = { endpoint: world.source.proxy.endpoint, bucket: data.bucket };
  const target = { endpoint: to.proxy.endpoint, bucket: destination };
  for (const provider of [world.source, world.destination]) {
    provider.proxy.reset();
    provider.proxy.setLatency(spec.latencyMs);
  }
  const connectionsBefore = world.source.proxy.connections + world.destination.proxy.connections;
  const othersBefore = flags.trace ? othersCpu(world) : undefined;
  let measured: Measurement;
  const profile = flags['cpu-prof']
    ? [
        '--cpu-prof',
        '--cpu-prof-interval',
        '250',
        `--cpu-prof-dir=${resolve(String(flags['cpu-prof']), `${destination}-${spec.label ?? tool}`.replace(/[^\w.-]+/g, '_'))}`,
      ]
    : undefined;
  const callgrind =
    flags.callgrind && tool !== 'rclone'
      ? resolve(String(flags.callgrind), `callgrind.${destination}-${spec.label ?? tool}.out`.replace(/[^\w.-]+/g, '_'))
      : undefined;
  if (tool === 'mastosync') {
    measured = await runMastosync({
      databaseUrl: data.db.url,
      source,
      destination: target,
      concurrency,
      copyMode: mode,
      jobs: spec.wholeBucket ? ['all'] : data.jobs,
      json: !spec.wholeBucket,
      extraArgs: spec.nothing ? ['--limit', '0'] : [],
      dir,
      timeoutMs: TIMEOUT_MS,
      bin: spec.bin,
      nodeFlags: profile,
      callgrind,
    });
  } else if (tool === 'node-floor') {
    measured = await runFloor({ source, destination: target, concurrency, nothing: spec.nothing, dir, timeoutMs: TIMEOUT_MS, nodeFlags: profile, callgrind });
  } else {
    const keys = spec.nothing ? [] : spec.wholeBucket ? undefined : data.objects.map((object) => object.key);
    measured = await runRclone({
      source,
      destination: target,
      concurrency,
      serverSide: mode === 'server',
      keys,
      extraFlags: rcloneFlags,
      dir,
      timeoutMs: TIMEOUT_MS,
    });
  }
  const seen = [...world.source.proxy.requests, ...(to === world.source ? [] : world.destination.proxy.requests)];
  let firstWrite = Number.POSITIVE_INFINITY;
  for (const request of seen) {
    const writes = request.operation === 'PutObject' || request.operation === 'CopyObject' || request.operation === 'CompleteMultipartUpload';
    if (writes && request.bucket === destination && request.status === 200 && request.finishedAt !== undefined)
      firstWrite = Math.min(firstWrite, request.finishedAt);
  }
  if (othersBefore !== undefined && !spec.nothing && mode === 'stream') {
    const others = othersCpu(world);
    const spent = (name: keyof typeof others) => `${((others[name] - othersBefore[name]) / 1000).toFixed(2)} s`;
    console.error(
      `bench: ${tool} at ${spec.latencyMs} ms, ${(measured.wallMs / 1000).toFixed(2)} s: ${describeTimeline(world.source.proxy.requests, world.destination.proxy.requests, measured.startedAt, measured.startedAt + measured.wallMs)}; CPU: the tool ${(measured.cpuMs / 1000).toFixed(2)} s, source s3rver ${spent('source')}, destination s3rver ${spent('destination')}, proxies and bench ${spent('bench')}`,
    );
  }
  const problem = await checkDestination(to.direct, destination, spec.nothing ? [] : data.objects, measured);
  rmSync(join(to.directory, destination), { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
  for (const provider of [world.source, world.destination]) provider.proxy.setLatency(latencyMs);
  const label = [tool, ...(mode === 'server' ? ['server-side'] : []), ...(spec.latencyMs === 0 && latencyMs !== 0 ? ['proxies at 0 ms'] : [])];
  return {
    ...toolResult(spec.label ?? (label.length > 1 ? `${label[0]} (${label.slice(1).join(', ')})` : tool), data, measured, problem, seen),
    connections: world.source.proxy.connections + world.destination.proxy.connections - connectionsBefore,
    firstObjectMs: Number.isFinite(firstWrite) ? firstWrite - measured.startedAt : undefined,
  };
}

/** CPU milliseconds used so far by each s3rver process (from /proc) and by this process, which runs the proxies. */
function othersCpu(world: World): { source: number; destination: number; bench: number } {
  const ticks = (provider: Provider) => {
    // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th; 100 ticks a second.
    const stat = readFileSync(`/proc/${provider.child.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  };
  const own = process.cpuUsage();
  return { source: ticks(world.source), destination: ticks(world.destination), bench: (own.user + own.system) / 1000 };
}

/** `repeat` runs (tools alternating), keeping each tool's median run by wall time. */
function runMedian(world: World, specs: readonly RunSpec[]): Promise<ToolResult[]> {
  return runAlternating(world, specs, repeat, (results) => [...results].sort((a, b) => a.wallMs - b.wallMs)[Math.floor((results.length - 1) / 2)]!);
}

/** `times` runs of each spec, alternating their order each round; `pick` chooses the run shown (a failed one wins). */
async function runAlternating(world: World, specs: readonly RunSpec[], times: number, pick: (results: ToolResult[]) => ToolResult): Promise<ToolResult[]> {
  const runs = specs.map(() => [] as ToolResult[]);
  for (let round = 0; round < times; round++) {
    const order = round % 2 === 0 ? specs.map((_, index) => index) : specs.map((_, index) => specs.length - 1 - index);
    for (const index of order) runs[index]!.push(await runTool(world, specs[index]!));
  }
  return runs.map((results) => results.find((result) => !result.ok) ?? pick(results));
}

/** The quickest of each spec's runs: best of two, as issue 15 is measured (one under callgrind, which counts the same). */
function runBest(world: World, specs: readonly RunSpec[]): Promise<ToolResult[]> {
  return runAlternating(world, specs, flags.callgrind ? 1 : 2, (results) => results.reduce((best, result) => (result.wallMs < best.wallMs ? result : best)));
}

async function checkDestination(
  client: S3Client,
  bucket: string,
  expected: readonly Pick<PlannedObject, 'key' | 'size'>[],
  measured: Measurement,
): Promise<string | undefined> {
  if (measured.exitCode !== 0) return `exit code ${measured.exitCode}: ${measured.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  const actual = await listSizes(client, bucket);
  const wrong = expected.filter((object) => actual.get(object.key) !== object.size);
  if (wrong.length > 0 || actual.size !== expected.length) {
    return `destination not exact: ${wrong.length} of ${expected.length} objects missing or of the wrong size, ${actual.size} objects present`;
  }
  return undefined;
}

function describeSet(data: DataSet): string {
  const sizes = data.objects.map((object) => object.size).sort((a, b) => a - b);
  const median = sizes[Math.floor(sizes.length / 2)] ?? 0;
  return `${data.objects.length} objects, ${(data.bytes / 1e6).toFixed(1)} MB (median ${(median / 1000).toFixed(0)} KB, largest ${((sizes.at(-1) ?? 0) / 1e6).toFixed(1)} MB)`;
}

async function main(): Promise<void> {
  if (flags.held) return runHeld(resolve(String(flags.held)));
  ensureDebianPackage('rclone', 'rclone');
  ensureDebianPackage('/usr/bin/time', 'time');

  if (flags.callgrind) {
    ensureDebianPackage('valgrind', 'valgrind');
    mkdirSync(String(flags.callgrind), { recursive: true });
  }
  const serverData = mkdtempSync(join(String(flags['data-dir']), 'mastosync-bench-s3rver-'));
  const work = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-'));
  const providers: Provider[] = [];
  const removeFolders = () => {
    for (const folder of [work, serverData]) rmSync(folder, { recursive: true, force: true });
  };
  // Ctrl-C skips the finally below: the servers must not outlive the bench, nor the data sets stay in memory-backed
  // /dev/shm until a reboot. (Scratch databases are left; test/support/postgres.ts names them mastosync_test_*.)
  let stopHolding: (() => void) | undefined;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      // A held world is taken down as a finished bench's is, its databases dropped.
      if (stopHolding) return stopHolding();
      for (const provider of providers) provider.child.kill('SIGTERM');
      removeFolders();
      process.exit(130);
    });
  }
  const databases: TestDatabase[] = [];
  const results: ScenarioResult[] = [];
  const notes: string[] = [];
  const started = new Date();
  const loadBefore = os.loadavg();
  let requestCost: RequestCost | undefined;
  const scriptResults: ScriptResult[] = [];
  try {
    for (const name of Object.keys(SCRIPT_SCENARIOS) as ScriptScenario[])
      if (scenarios.includes(name) && !flags.hold) scriptResults.push(runScriptScenario(name));
    if (scenarios.includes('requests') && !flags.hold) requestCost = await measureRequestCost();
    providers.push(await startProvider(serverData, 'source'), await startProvider(serverData, 'destination'));
    const world: World = { work, source: providers[0]!, destination: providers[1]!, destinations: 0 };
    const mix: MixCounts = {
      accounts: number('accounts'),
      emojis: number('emojis'),
      cards: number('cards'),
      images: number('images'),
      videos: 0,
      videoMinMb: number('video-min-mb'),
      videoMaxMb: number('video-max-mb'),
    };
    const mixJobs = ['media_attachments', 'accounts', 'custom_emojis', 'preview_cards'];

    if (flags.hold) {
      const data = await makeBucketSet(world, mix, databases);
      const held: HeldWorld = {
        databaseUrl: data.db.url,
        source: { endpoint: world.source.proxy.endpoint, bucket: data.bucket },
        destination: { endpoint: world.destination.proxy.endpoint, direct: world.destination.directEndpoint, directory: world.destination.directory },
        latencyMs: number('bucket-latency'),
        objects: data.objects.map(({ key, size }) => ({ key, size })),
      };
      mkdirSync(String(flags.hold), { recursive: true });
      writeFileSync(join(String(flags.hold), 'world.json'), JSON.stringify(held));
      console.error(`bench: holding ${describeSet(data)} at ${held.latencyMs} ms until Ctrl-C; run builds against it with --held ${flags.hold}`);
      await new Promise<void>((done) => (stopHolding = done));
      return;
    }

    if (scenarios.includes('bucket')) results.push(...(await runBucket(world, mix, databases, notes)));

    if (scenarios.includes('acceptance')) {
      // As issue 5 is judged: about 700 objects of the mix through a 40 ms proxy at 16 in flight, both tools.
      console.error('bench: building the acceptance set');
      const data = await makeDataSet(world, 'bench-acceptance', mixJobs, async (db) => {
        databases.push(db);
        const plan = planMix({ ...mix, accounts: 110, emojis: 80, cards: 120, images: 90 }, 4);
        await insertRows(db.client, plan.rows);
        return [...plan.objects];
      });
      notes.push(`acceptance: ${describeSet(data)}`);
      const latency = number('acceptance-latency');
      const floor = tools.includes('mastosync') ? [{ tool: 'mastosync' as const, data, concurrency: 16, mode: 'stream' as const, latencyMs: 0 }] : [];
      results.push(
        await runScenario(
          world,
          'acceptance, 16 in flight',
          `The issue's own check: ${describeSet(data)} of the mix, ${latency} ms per request, GET from one provider, PUT to another. Holds when mastosync is at least as fast as rclone and within 1.5× of the latency limit.`,
          data,
          16,
          'stream',
          floor,
          latency,
        ),
      );
    }

    if (scenarios.includes('stream') || scenarios.includes('server')) {
      console.error('bench: building the Mastodon-shaped mix');
      const data = await makeDataSet(world, 'bench-mix', mixJobs, async (db) => {
        databases.push(db);
        const plan = planMix(mix);
        await insertRows(db.client, plan.rows);
        return [...plan.objects];
      });
      notes.push(`mix: ${describeSet(data)}`);
      if (scenarios.includes('stream')) {
        for (const concurrency of concurrencies) {
          const floor = tools.includes('mastosync') ? [{ tool: 'mastosync' as const, data, concurrency, mode: 'stream' as const, latencyMs: 0 }] : [];
          results.push(
            await runScenario(
              world,
              `stream, ${concurrency} in flight`,
              `Mastodon-shaped mix, ${describeSet(data)}; GET from one provider, PUT to another. The run with the proxies at 0 ms shows what s3rver and the proxies allow on this machine.`,
              data,
              concurrency,
              'stream',
              floor,
            ),
          );
        }
      }
      if (scenarios.includes('server')) {
        const concurrency = concurrencies[0]!;
        const floor = tools.includes('mastosync') ? [{ tool: 'mastosync' as const, data, concurrency, mode: 'server' as const, latencyMs: 0 }] : [];
        results.push(
          await runScenario(
            world,
            `server-side copy, ${concurrency} in flight`,
            `The same mix between two buckets of one provider with the same credentials: CopyObject, no bytes through the copier. The run with the proxy at 0 ms shows what s3rver allows on this machine.`,
            data,
            concurrency,
            'server',
            floor,
          ),
        );
      }
    }

    if (scenarios.includes('bound')) {
      console.error('bench: building the latency-bound set');
      const bound = await makeDataSet(world, 'bench-bound', mixJobs, async (db) => {
        databases.push(db);
        const plan = planMix(
          {
            ...mix,
            accounts: Math.round(mix.accounts / 3),
            emojis: Math.round(mix.emojis / 3),
            cards: Math.round(mix.cards / 3),
            images: Math.round(mix.images / 3),
          },
          3,
        );
        await insertRows(db.client, plan.rows);
        return [...plan.objects];
      });
      notes.push(`bound: ${describeSet(bound)}`);
      const latency = number('bound-latency');
      for (const concurrency of concurrencies) {
        results.push(
          await runScenario(
            world,
            `latency-bound, ${concurrency} in flight`,
            `A third of the mix, ${describeSet(bound)}, with ${latency} ms per request: slow enough that s3rver is not the limit even at ${concurrencies.at(-1)} in flight, so the latency limit is reachable.`,
            bound,
            concurrency,
            'stream',
            [],
            latency,
          ),
        );
      }
    }
    if (scenarios.includes('videos') || scenarios.includes('parts')) {
      console.error('bench: building the video set');
      const data = await makeDataSet(world, 'bench-videos', ['media_attachments'], async (db) => {
        databases.push(db);
        const plan = planMix({ ...mix, accounts: 0, emojis: 0, cards: 0, images: number('video-images'), videos: number('videos') }, 2);
        await insertRows(db.client, plan.rows);
        return [...plan.objects];
      });
      notes.push(`videos: ${describeSet(data)}`);
      if (scenarios.includes('videos')) {
        results.push(
          await runScenario(
            world,
            'videos, 16 in flight',
            `Images with ${number('videos')} videos of ${number('video-min-mb')}–${number('video-max-mb')} MB, ${describeSet(data)}; peak RSS must not follow object size.`,
            data,
            16,
            'stream',
          ),
        );
      }
      if (scenarios.includes('parts')) results.push(await runParts(world, data));
    }

    if (scenarios.includes('rows') && tools.includes('mastosync')) {
      for (const count of [number('base-rows'), number('rows')]) {
        console.error(`bench: a table of ${count} rows`);
        const data = await makeDataSet(world, `bench-rows-${count}`, ['preview_cards'], async (db) => {
          databases.push(db);
          return insertFilelessRows(db.client, count);
        });
        const [result] = await runMedian(world, [{ tool: 'mastosync', data, concurrency: 16, mode: 'stream', latencyMs }]);
        results.push({
          name: `rows: ${count} preview_cards rows`,
          description: `${count} rows, ${data.objects.length} of them owning a 20 KB image (the first row among them), 16 in flight.`,
          concurrency: 16,
          latencyMs,
          limitMs: (data.objects.length * 2 * latencyMs) / 16,
          results: [result!],
        });
        console.log(`${scenarioText(results.at(-1)!)}\n  first object copied ${result!.firstObjectMs?.toFixed(0)} ms after start\n`);
      }
    }
  } finally {
    for (const provider of providers) await stopProvider(provider);
    for (const db of databases) await db.drop().catch(() => undefined);
    removeFolders();
  }

  const verdicts = judge(results);
  console.log(verdicts.join('\n'));
  if (flags.out !== '-') {
    const load = `${loadBefore.map((value) => value.toFixed(2)).join(' ')} at the start, ${os
      .loadavg()
      .map((value) => value.toFixed(2))
      .join(' ')} at the end`;
    // Figures other commands measure (the tunnel, the fault tests) follow a marker and are kept as they are.
    const previous = existsSync(String(flags.out)) ? readFileSync(String(flags.out), 'utf8') : '';
    const kept = previous.includes(OTHER_FIGURES) ? previous.slice(previous.indexOf(OTHER_FIGURES)) : '';
    writeFileSync(String(flags.out), markdown(results, notes, verdicts, started, load, requestCost, scriptResults) + (kept ? `\n${kept}` : ''));
    console.error(`bench: wrote ${flags.out}`);
  }
}

interface RequestCost {
  readonly objects: number;
  /** CPU ms per object (GET + PUT), median of three runs each. */
  readonly sdk: number;
  readonly direct: number;
  /** The floor: node:http alone, signed by a minimal SigV4, and not signed. */
  readonly bare: number;
  readonly unsigned: number;
}

const REQUEST_COST_MODES = ['sdk', 'direct', 'bare', 'unsigned'] as const;

/**
 * The request-cost study: the same S3Store copying 40 KB objects from and to a trivial server (bench/fakeS3.ts),
 * through the SDK's commands and through its direct requests, and the floor under both (node:http alone, with and
 * without a signature) (bench/requestCost.ts), three runs each, the modes' order rotating.
 */
async function measureRequestCost(): Promise<RequestCost> {
  console.error('bench: request cost');
  const objects = 3000;
  const tsx = import.meta.resolve('tsx');
  const server = spawn(process.execPath, ['--import', tsx, resolve(import.meta.dirname, 'fakeS3.ts'), '40000'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const line = await new Promise<string>((done) => createInterface({ input: server.stdout! }).once('line', done));
    const { port } = JSON.parse(line) as { port: number };
    const runs: Record<(typeof REQUEST_COST_MODES)[number], number[]> = { sdk: [], direct: [], bare: [], unsigned: [] };
    for (let round = 0; round < 3; round++) {
      for (const [index] of REQUEST_COST_MODES.entries()) {
        const mode = REQUEST_COST_MODES[(index + round) % REQUEST_COST_MODES.length]!;
        const child = spawn(process.execPath, ['--import', tsx, resolve(import.meta.dirname, 'requestCost.ts'), mode, String(port), String(objects)], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        const output = await new Promise<string>((done) => createInterface({ input: child.stdout! }).once('line', done));
        runs[mode].push((JSON.parse(output) as { cpuMsPerObject: number }).cpuMsPerObject);
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[1]!;
    const cost = { objects, sdk: median(runs.sdk), direct: median(runs.direct), bare: median(runs.bare), unsigned: median(runs.unsigned) };
    console.log(
      `request cost (CPU ms per object, GET + PUT of 40 KB): SDK commands ${cost.sdk.toFixed(2)}, direct requests ${cost.direct.toFixed(2)}, node:http signed ${cost.bare.toFixed(2)}, unsigned ${cost.unsigned.toFixed(2)}\n`,
    );
    return cost;
  } finally {
    server.kill('SIGTERM');
  }
}

/**
 * The part-size study: the video set copied by mastosync's copy path (bench/partsChild.ts) under each choice of
 * single-PUT limit, part size and parts in flight, 16 objects in flight.
 */
async function runParts(world: World, data: DataSet): Promise<ScenarioResult> {
  console.error('bench: part sizes');
  const MiB = 1024 * 1024;
  const choices = String(flags.parts)
    .split(',')
    .map((choice) => choice.split(':').map(Number) as [number, number, number]);
  const results: ToolResult[] = [];
  for (const [limit, part, queue] of choices) {
    const destination = `bench-destination-${++world.destinations}`;
    await world.destination.direct.send(new CreateBucketCommand({ Bucket: destination }));
    const spec = {
      source: { endpoint: world.source.proxy.endpoint, bucket: data.bucket },
      destination: { endpoint: world.destination.proxy.endpoint, bucket: destination },
      keys: data.objects.map((object) => object.key),
      singlePutLimit: limit * MiB,
      partSize: part * MiB,
      queueSize: queue,
      concurrency: 16,
    };
    world.source.proxy.reset();
    world.destination.proxy.reset();
    const measured = await measure(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), resolve(import.meta.dirname, 'partsChild.ts'), JSON.stringify(spec)],
      { env: process.env, cwd: world.work, timeoutMs: TIMEOUT_MS },
    );
    const problem = await checkDestination(world.destination.direct, destination, data.objects, measured);
    rmSync(join(world.destination.directory, destination), { recursive: true, force: true });
    results.push(
      toolResult(`single PUT ≤ ${limit} MiB, parts of ${part} MiB × ${queue}`, data, measured, problem, [
        ...world.source.proxy.requests,
        ...world.destination.proxy.requests,
      ]),
    );
  }
  const scenario = {
    name: 'parts: single-PUT limit, part size and parts in flight',
    description: `The video set (${describeSet(data)}) copied by mastosync's copy path in a process of its own (bench/partsChild.ts, no database or CLI), 16 in flight, under each choice.`,
    concurrency: 16,
    latencyMs,
    limitMs: (data.objects.length * 2 * latencyMs) / 16,
    results,
  };
  console.log(`${scenarioText(scenario)}\n`);
  return scenario;
}

/**
 * Issue 15: a whole bucket copied as an admin would. mastosync `run all` with default flags against rclone's own
 * bucket copy (`copy SRC:bucket DST:bucket --fast-list --transfers C`: both sides listed, then only GET and PUT),
 * with rclone's key-list mode beside it; best of two runs each. Then the CPU-bound case (64 in flight, proxies at
 * 0 ms) and the memory case (a 200 MB video among images, 8 in flight).
 */
/** The bucket of issue 15: mostly small objects (avatars, headers, emoji, cards) and one 1 MB video with its preview. */
function makeBucketSet(world: World, mix: MixCounts, databases: TestDatabase[]): Promise<DataSet> {
  console.error('bench: building the bucket set');
  return makeDataSet(world, 'bench-bucket', [], async (db) => {
    databases.push(db);
    const plan = planMix({ ...mix, accounts: 150, emojis: 100, cards: 150, images: 0, videos: 1, videoMinMb: 1, videoMaxMb: 1 }, 5);
    await insertRows(db.client, plan.rows);
    return [...plan.objects];
  });
}

/** What --hold writes to DIR/world.json for --held: the world's places and the objects a copy must leave. */
interface HeldWorld {
  readonly databaseUrl: string;
  readonly source: { readonly endpoint: string; readonly bucket: string };
  /** The proxy the copiers write through, s3rver behind it (to make and check buckets), and its data folder. */
  readonly destination: { readonly endpoint: string; readonly direct: string; readonly directory: string };
  readonly latencyMs: number;
  readonly objects: readonly { readonly key: string; readonly size: number }[];
}

/**
 * --held: builds run alternately against the world another bench keeps up (--hold), each whole and at --limit 0,
 * each run into a fresh destination bucket with a fresh checkpoint, so two builds are compared in the same
 * conditions without the world built again for every comparison.
 */
async function runHeld(folder: string): Promise<void> {
  const held = JSON.parse(readFileSync(join(folder, 'world.json'), 'utf8')) as HeldWorld;
  const client = makeS3Client(held.destination.direct);
  const concurrency = concurrencies[0]!;
  const builds = [
    ...(tools.includes('mastosync') ? [{ name: 'mastosync', bin: undefined as string | undefined }] : []),
    ...compared,
    ...(tools.includes('node-floor') ? [{ name: 'node-floor', bin: undefined }] : []),
  ];
  const counts = new Map(builds.map(({ name }) => [name, [] as { whole: number; start: number }[]]));
  const work = mkdtempSync(join(os.tmpdir(), 'mastosync-bench-held-'));
  const stamp = process.hrtime.bigint();
  let runs = 0;
  const runOnce = async (build: (typeof builds)[number], nothing: boolean) => {
    const bucket = `bench-held-${stamp}-${++runs}`;
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
    const dir = join(work, bucket);
    mkdirSync(dir);
    const destination = { endpoint: held.destination.endpoint, bucket };
    const label = `${build.name}${nothing ? ' --limit 0' : ''}`;
    const callgrind = flags.callgrind ? resolve(String(flags.callgrind), `callgrind.${bucket}-${label}.out`.replace(/[^\w.-]+/g, '_')) : undefined;
    const common = { source: held.source, destination, concurrency, dir, timeoutMs: TIMEOUT_MS, callgrind };
    const measured =
      build.name === 'node-floor'
        ? await runFloor({ ...common, nothing })
        : await runMastosync({
            ...common,
            databaseUrl: held.databaseUrl,
            copyMode: 'stream',
            jobs: ['all'],
            json: false,
            extraArgs: nothing ? ['--limit', '0'] : [],
            bin: build.bin,
          });
    const problem = await checkDestination(client, bucket, nothing ? [] : held.objects, measured);
    rmSync(join(held.destination.directory, bucket), { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    if (problem) throw new Error(`${label}: ${problem}`);
    const counted = measured.instructions === undefined ? '' : `, ${(measured.instructions / 1e6).toFixed(1)} M instructions`;
    console.log(
      `${label}: ${(measured.wallMs / 1000).toFixed(2)} s, ${measured.cpuMs.toFixed(0)} ms CPU, peak RSS ${(measured.peakRssBytes / 1e6).toFixed(0)} MB${counted}`,
    );
    return measured.instructions ?? measured.cpuMs * 1e6;
  };
  try {
    if (flags.callgrind) mkdirSync(String(flags.callgrind), { recursive: true });
    for (let round = 0; round < repeat; round++) {
      for (const build of round % 2 === 0 ? builds : [...builds].reverse()) {
        const whole = await runOnce(build, false);
        counts.get(build.name)!.push({ whole, start: await runOnce(build, true) });
      }
    }
  } finally {
    client.destroy();
    rmSync(work, { recursive: true, force: true });
  }
  // Per object beyond the start: instructions under --callgrind, else CPU nanoseconds.
  const unit = flags.callgrind ? 'M instructions' : 'ms CPU';
  for (const [name, runsOf] of counts) {
    const beyond = runsOf.map(({ whole, start }) => (whole - start) / held.objects.length / 1e6).sort((a, b) => a - b);
    const middle = (beyond.length - 1) / 2;
    const median = (beyond[Math.floor(middle)]! + beyond[Math.ceil(middle)]!) / 2;
    console.log(`${name}: beyond start, per object: median ${median.toFixed(4)} ${unit} (${beyond.map((value) => value.toFixed(4)).join(', ')})`);
  }
}

async function runBucket(world: World, mix: MixCounts, databases: TestDatabase[], notes: string[]): Promise<ScenarioResult[]> {
  const latency = number('bucket-latency');
  const data = await makeBucketSet(world, mix, databases);
  notes.push(`bucket: ${describeSet(data)}`);
  const scenarios: ScenarioResult[] = [];
  const both = (concurrency: number, latencyMs: number, set: DataSet): RunSpec[] => [
    ...tools.map((tool) => ({
      tool,
      data: set,
      concurrency,
      mode: 'stream' as const,
      latencyMs,
      wholeBucket: true,
      label: tool === 'mastosync' ? 'mastosync run all' : tool === 'rclone' ? 'rclone copy --fast-list' : FLOOR_LABEL,
    })),
    ...compared.map(({ name, bin }) => ({
      tool: 'mastosync' as const,
      data: set,
      concurrency,
      mode: 'stream' as const,
      latencyMs,
      wholeBucket: true,
      bin,
      label: `mastosync run all (${name})`,
    })),
  ];
  const scenario = (name: string, description: string, set: DataSet, concurrency: number, latencyMs: number, results: ToolResult[], notes: string[] = []) => {
    const result = {
      name,
      description,
      concurrency,
      latencyMs,
      limitMs: (set.objects.length * 2 * latencyMs) / concurrency,
      results,
      notes: [...notes, ...floorNotes(results)],
    };
    console.log(`${scenarioText(result)}\n`);
    return result;
  };

  console.error('bench: bucket, 16 in flight');
  const keyList: RunSpec[] = tools.includes('rclone')
    ? [{ tool: 'rclone', data, concurrency: 16, mode: 'stream', latencyMs: latency, label: 'rclone copy --files-from-raw (key list)' }]
    : [];
  const main = await runBest(world, [...both(16, latency, data), ...keyList]);
  // What each tool spends copying nothing: mastosync `run all --limit 0`, rclone an empty key list.
  const idle = await runBest(
    world,
    tools.map((tool) => ({ tool, data, concurrency: 16, mode: 'stream' as const, latencyMs: latency, wholeBucket: true, nothing: true })),
  );
  const fixed = new Map(idle.map((result) => [result.tool, result]));
  const start = fixed.get('mastosync');
  // The floor under any Node program's start: Node itself, loading nothing.
  const bareNode: Measurement[] = [];
  for (let round = 0; round < 2; round++) bareNode.push(await measure(process.execPath, ['-e', '0'], { env: process.env, cwd: world.work, timeoutMs: 60_000 }));
  const node = bareNode.reduce((best, run) => (run.cpuMs < best.cpuMs ? run : best));
  scenarios.push(
    scenario(
      'bucket, 16 in flight',
      `A Mastodon-shaped bucket, ${describeSet(data)}, copied whole from one provider to another through proxies adding ${latency} ms per request; best of two runs each.`,
      data,
      16,
      latency,
      main.map((result) => ({ ...result, fixedCpuMs: fixed.get(toolOf(result))?.cpuMs, fixedInstructions: fixed.get(toolOf(result))?.instructions })),
      start === undefined
        ? []
        : [
            `mastosync's start-up (\`run all --limit 0\`: Node, the bundle, the database session and schema probe, the bucket checks): ${(start.wallMs / 1000).toFixed(2)} s, ${start.cpuMs.toFixed(0)} ms CPU, peak RSS ${(start.peakRssBytes / 1e6).toFixed(0)} MB; "beyond start" takes it off (rclone's: an empty key list, ${fixed.get('rclone')?.cpuMs.toFixed(0) ?? '–'} ms CPU; the bare Node copier's: Node starting it and copying nothing, \`--limit 0\`, ${fixed.get('node-floor')?.cpuMs.toFixed(0) ?? '–'} ms CPU). Node alone (\`node -e 0\`): ${node.cpuMs.toFixed(0)} ms CPU, peak RSS ${(node.peakRssBytes / 1e6).toFixed(0)} MB.`,
          ],
    ),
  );

  console.error('bench: bucket, 64 in flight, proxies at 0 ms');
  scenarios.push(
    scenario(
      'bucket, 64 in flight, proxies at 0 ms',
      `The same bucket with no added latency: the copiers, the servers and the proxies share the 2 cores, so this is CPU-bound; best of two runs each.`,
      data,
      64,
      0,
      await runBest(world, both(64, 0, data)),
    ),
  );

  console.error('bench: building the bucket video set');
  const videos = await makeDataSet(world, 'bench-bucket-videos', [], async (db) => {
    databases.push(db);
    const plan = planMix({ ...mix, accounts: 0, emojis: 0, cards: 0, images: 40, videos: 1, videoMinMb: 200, videoMaxMb: 200 }, 6);
    await insertRows(db.client, plan.rows);
    return [...plan.objects];
  });
  notes.push(`bucket videos: ${describeSet(videos)}`);
  console.error('bench: bucket with a 200 MB video, 8 in flight');
  scenarios.push(
    scenario(
      'bucket with a 200 MB video, 8 in flight',
      `Images and one 200 MB video, ${describeSet(videos)}, copied whole through proxies adding ${latency} ms; peak RSS must not follow the video's size; best of two runs each.`,
      videos,
      8,
      latency,
      await runBest(world, both(8, latency, videos)),
    ),
  );
  return scenarios;
}

/** The tool a row of the bucket scenarios belongs to: its label's first word (mastosync, rclone, node-floor). */
const toolOf = (result: ToolResult) => result.tool.split(' ')[0]!;

/**
 * How close mastosync (this build's row) is to the bare Node copier, and the bare copier to rclone's bucket copy: where
 * the copier is over one of issue 15's targets, no Node copier of this bucket meets it on this machine.
 */
function floorNotes(results: readonly ToolResult[]): string[] {
  const floor = results.find((result) => toolOf(result) === 'node-floor' && result.ok);
  if (floor === undefined) return [];
  const ours = results.find((result) => toolOf(result) === 'mastosync' && result.ok);
  const rclone = results.find((result) => result.tool.startsWith('rclone copy --fast-list') && result.ok);
  const [f, m, r] = [floor, ours, rclone].map((result) => (result === undefined ? undefined : perObject(result)));
  const mb = (result: ToolResult) => (result.peakRssBytes / 1e6).toFixed(0);
  const beyond = (a?: number, b?: number) => (a !== undefined && b !== undefined ? `, ${(a / b).toFixed(2)}× beyond start` : '');
  const lines: string[] = [];
  if (ours && m)
    lines.push(
      `mastosync against the bare Node copier: CPU per object ${(m.cpuMsPerObject / f!.cpuMsPerObject).toFixed(2)}×${beyond(m.marginalCpuMsPerObject, f!.marginalCpuMsPerObject)}, peak RSS ${mb(ours)} against ${mb(floor)} MB, wall ${(ours.wallMs / floor.wallMs).toFixed(2)}×.`,
    );
  if (rclone && r)
    lines.push(
      `The bare Node copier against rclone's copy --fast-list: CPU per object ${(f!.cpuMsPerObject / r.cpuMsPerObject).toFixed(2)}×${beyond(f!.marginalCpuMsPerObject, r.marginalCpuMsPerObject)}, peak RSS ${mb(floor)} against ${mb(rclone)} MB, wall ${(floor.wallMs / rclone.wallMs).toFixed(2)}× (objects/s ${(rclone.wallMs / floor.wallMs).toFixed(2)}×).`,
    );
  return lines;
}

/** Each tool's CPU when it copies nothing (median of three), per mode: what is not per object. */
const fixedCpu = new Map<string, number>();

async function runScenario(
  world: World,
  name: string,
  description: string,
  data: DataSet,
  concurrency: number,
  mode: 'stream' | 'server',
  extra: readonly RunSpec[] = [],
  latency = latencyMs,
): Promise<ScenarioResult> {
  console.error(`bench: ${name}`);
  for (const tool of copiers) {
    if (fixedCpu.has(`${tool} ${mode}`)) continue;
    const runs: number[] = [];
    for (let round = 0; round < 3; round++) runs.push((await runTool(world, { tool, data, concurrency, mode, latencyMs: latency, nothing: true })).cpuMs);
    fixedCpu.set(`${tool} ${mode}`, runs.sort((a, b) => a - b)[1]!);
  }
  const measured = await runMedian(world, [...copiers.map((tool) => ({ tool, data, concurrency, mode, latencyMs: latency })), ...extra]);
  const results = measured.map((result) => ({ ...result, fixedCpuMs: fixedCpu.get(`${result.tool.split(' ')[0]} ${mode}`) }));
  const roundTrips = mode === 'server' ? 1 : 2;
  const scenario = { name, description, concurrency, latencyMs: latency, limitMs: (data.objects.length * roundTrips * latency) / concurrency, results };
  console.log(`${scenarioText(scenario)}\n`);
  return scenario;
}

/** The issue's targets, each as a line that says whether it held. */
function judge(results: readonly ScenarioResult[]): string[] {
  if (flags.callgrind) return ['Not judged: the Node tools ran under callgrind, which slows them about 50 times.'];
  const lines: string[] = [];
  const verdict = (holds: boolean, text: string) => lines.push(`${holds ? 'PASS' : 'FAIL'}  ${text}`);
  for (const scenario of results) {
    const ours = scenario.results.find((result) => result.tool.startsWith('mastosync'));
    const rclone = scenario.results.find((result) => result.tool.startsWith('rclone'));
    if (!ours) continue;
    if (!ours.ok) verdict(false, `${scenario.name}: mastosync did not finish exactly (${ours.problem})`);
    if (scenario.name.startsWith('bucket')) {
      judgeBucket(scenario, ours, rclone, verdict);
      // The same targets for the bare Node copier: one it misses is out of reach for any Node copier here.
      const floor = scenario.results.find((result) => toolOf(result) === 'node-floor');
      if (floor?.ok) judgeBucket(scenario, floor, rclone, (holds, text) => verdict(holds, `node-floor, the bare Node copier: ${text}`));
      continue;
    }
    if (scenario.name.startsWith('acceptance')) {
      if (rclone?.ok)
        verdict(ours.wallMs <= rclone.wallMs, `${scenario.name}: wall time ${(ours.wallMs / rclone.wallMs).toFixed(2)}× rclone's (acceptance ≤ 1)`);
      verdict(
        ours.wallMs <= 1.5 * scenario.limitMs,
        `${scenario.name}: wall time ${(ours.wallMs / scenario.limitMs).toFixed(2)}× the latency limit (acceptance ≤ 1.5)`,
      );
    }
    if (scenario.name.startsWith('stream') || scenario.name.startsWith('latency-bound') || scenario.name.startsWith('server')) {
      if (rclone?.ok) verdict(ours.wallMs <= rclone.wallMs, `${scenario.name}: wall time ${(ours.wallMs / rclone.wallMs).toFixed(2)}× rclone's (target ≤ 1)`);
      verdict(
        ours.wallMs <= 1.25 * scenario.limitMs,
        `${scenario.name}: wall time ${(ours.wallMs / scenario.limitMs).toFixed(2)}× the latency limit (target ≤ 1.25)`,
      );
    }
    if (rclone?.ok && !scenario.name.startsWith('rows')) {
      const [a, b] = [perObject(ours), perObject(rclone)];
      const ratio = a.cpuMsPerObject / b.cpuMsPerObject;
      const beyond =
        a.marginalCpuMsPerObject !== undefined && b.marginalCpuMsPerObject !== undefined
          ? `; beyond each tool's start-up cost ${(a.marginalCpuMsPerObject / b.marginalCpuMsPerObject).toFixed(2)}×`
          : '';
      verdict(ratio <= 1.5, `${scenario.name}: CPU per object ${ratio.toFixed(2)}× rclone's (target ≤ 1.5)${beyond}`);
    }
    if (scenario.name.startsWith('acceptance'))
      verdict(ours.peakRssBytes < 200e6, `${scenario.name}: peak RSS ${(ours.peakRssBytes / 1e6).toFixed(0)} MB (acceptance < 200)`);
    if (scenario.name.startsWith('videos')) {
      // The issue's check streams a 200 MB object and allows 200 MB; its target for this set is 150.
      verdict(
        ours.peakRssBytes < 150e6,
        `${scenario.name}: peak RSS ${(ours.peakRssBytes / 1e6).toFixed(0)} MB with a 200 MB video (target < 150, acceptance < 200)`,
      );
    }
  }
  const rowRuns = results.filter((scenario) => scenario.name.startsWith('rows')).map((scenario) => scenario.results[0]!);
  if (rowRuns.length === 2) {
    const [base, large] = rowRuns as [ToolResult, ToolResult];
    verdict(
      Math.abs(large.peakRssBytes - base.peakRssBytes) <= 20e6,
      `rows: peak RSS ${(large.peakRssBytes / 1e6).toFixed(0)} MB on the large table against ${(base.peakRssBytes / 1e6).toFixed(0)} MB on the small one (target: within 20 MB)`,
    );
    verdict(
      (large.firstObjectMs ?? Infinity) <= 1000,
      `rows: first object copied ${large.firstObjectMs?.toFixed(0)} ms after start on the large table (target ≤ 1000)`,
    );
  }
  return lines;
}

/** Issue 15's targets, against rclone's own bucket copy (`copy --fast-list`). */
function judgeBucket(scenario: ScenarioResult, ours: ToolResult, rclone: ToolResult | undefined, verdict: (holds: boolean, text: string) => void): void {
  const name = scenario.name;
  const rss = ours.peakRssBytes / 1e6;
  if (name === 'bucket, 16 in flight') {
    if (rclone?.ok) {
      const wall = ours.wallMs / rclone.wallMs;
      verdict(wall <= 0.7, `${name}: wall time ${wall.toFixed(2)}× rclone's copy --fast-list (target ≤ 0.7)`);
      const [a, b] = [perObject(ours), perObject(rclone)];
      const beyond =
        a.marginalCpuMsPerObject !== undefined && b.marginalCpuMsPerObject !== undefined ? a.marginalCpuMsPerObject / b.marginalCpuMsPerObject : undefined;
      verdict(
        a.cpuMsPerObject <= b.cpuMsPerObject,
        `${name}: CPU per object ${a.cpuMsPerObject.toFixed(2)} ms against rclone's ${b.cpuMsPerObject.toFixed(2)}, ${(a.cpuMsPerObject / b.cpuMsPerObject).toFixed(2)}× (target ≤ 1.0)`,
      );
      if (beyond !== undefined)
        verdict(
          beyond <= 1,
          `${name}: CPU per object beyond each tool's start ${a.marginalCpuMsPerObject!.toFixed(2)} ms against ${b.marginalCpuMsPerObject!.toFixed(2)}, ${beyond.toFixed(2)}× (target ≤ 1.0)`,
        );
    }
    const limit = ours.wallMs / scenario.limitMs;
    verdict(limit <= 1.25, `${name}: wall time ${limit.toFixed(2)}× the latency limit (target ≤ 1.25)`);
    verdict(rss <= 80, `${name}: peak RSS ${rss.toFixed(0)} MB (target ≤ 80)`);
  } else if (name.startsWith('bucket, 64') && rclone?.ok) {
    const ratio = rclone.wallMs / ours.wallMs;
    verdict(
      ratio >= 1.3,
      `${name}: ${perObject(ours).objectsPerSecond.toFixed(0)} objects/s against rclone's ${perObject(rclone).objectsPerSecond.toFixed(0)}, ${ratio.toFixed(2)}× (target ≥ 1.3)`,
    );
  } else if (name.startsWith('bucket with')) {
    verdict(rss <= 100, `${name}: peak RSS ${rss.toFixed(0)} MB (target ≤ 100)`);
  }
}

function markdown(
  results: readonly ScenarioResult[],
  notes: readonly string[],
  verdicts: readonly string[],
  started: Date,
  load: string,
  requestCost: RequestCost | undefined,
  scriptResults: readonly ScriptResult[],
): string {
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  return [
    '# Benchmarks',
    '',
    `Written by \`${command}\` on ${started.toISOString()}; rerun it to reproduce. How to read the figures, and the`,
    'choices made from them: [docs/performance.md](docs/performance.md).',
    '',
    '## Setup',
    '',
    `- Machine: ${os.cpus().length} CPUs (\`nproc\` ${os.availableParallelism()}, ${os.cpus()[0]?.model.trim()}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB memory, ${os.type()} ${os.release()}; load average ${load} (other work on the machine shows here)`,
    `- Node ${process.version}; ${rcloneVersion()}; two providers, each s3rver 3.7.1 in its own process behind its own latency proxy (test/support/httpProxy.ts, in the bench process) adding ${latencyMs} ms to every request: the source buckets on one, streamed copies going to the other; server-side copies stay on the first. s3rver keeps its buckets in ${flags['data-dir']}${flags['data-dir'] === '/dev/shm' ? ' (memory-backed, so the disk does not slow the servers: see docs/performance.md)' : ''}; each tool's config, checkpoint or key list is in ${os.tmpdir()}`,
    '- mastosync: `bin/mastosync.js run <jobs> --json` with `[sync] concurrency = C`; rclone: `rclone copy SRC:bucket DST:bucket --files-from-raw keys.txt --transfers C --checkers C --fast-list --no-traverse --metadata --retries 1` with the ACL set and the same key list' +
      (rcloneFlags.length ? ` plus \`${rcloneFlags.join(' ')}\`` : '') +
      '; in the bucket scenarios, as an admin copies a whole bucket: `bin/mastosync.js run all` with default flags, against `rclone copy SRC:bucket DST:bucket --transfers C --fast-list --retries 1` (the command of issue 15; without `--metadata`, so Cache-Control is not carried over, and no HEAD per object)' +
      (tools.includes('node-floor')
        ? ', and node-floor, the floor under any Node copier: bench/floorCopier.ts compiled to plain JavaScript and run as `node floorCopier.mjs` (as the launcher runs mastosync: no V8 flag, the young generation kept at two 2 MiB semi-spaces from inside), which lists the source as `--fast-list` does and pipes each GET into a PUT over node:http keep-alive agents with a minimal SigV4 signature (unsigned payload), C in flight, with Content-Type, Cache-Control, the ACL and Content-MD5, a failed copy tried again from a fresh GET; no SDK, database, checkpoint, progress or integrity check'
        : ''),
    `- Each tool runs ${repeat > 1 ? `${repeat} times, alternating with the other, and its median run by wall time is shown; each run ` : ''}under \`/usr/bin/time -v\` (CPU = user + system, peak RSS = maximum resident set size); wall time is from spawn to exit. After each run the destination is listed and must hold exactly the expected keys at the expected sizes.`,
    '- Latency limit: N objects × round trips per object (2 for GET + PUT, 1 for CopyObject) × latency / C in flight.',
    '- CPU ms/object is all the CPU of the run over N; "beyond start" first takes off what the same tool spends copying nothing (median of three runs: mastosync `--limit 0`, rclone an empty key list), i.e. starting, connecting and checking.',
    ...notes.map((note) => `- Data set ${note}`),
    '',
    '## Results',
    '',
    ...(requestCost === undefined
      ? []
      : [
          '### request cost',
          '',
          `CPU per object (one GET and one streamed PUT of 40 KB, 16 in flight, ${requestCost.objects} objects, median of 3) of the same S3Store against a trivial local server (bench/fakeS3.ts, bench/requestCost.ts): through the SDK's commands ${requestCost.sdk.toFixed(2)} ms, through its direct requests (src/storage/s3Direct.ts: its own SigV4 signer and the SDK's HTTP handler, without the SDK's middleware stack) ${requestCost.direct.toFixed(2)} ms; the floor, the same two requests with node:http alone and a minimal SigV4 signature, ${requestCost.bare.toFixed(2)} ms, and without a signature ${requestCost.unsigned.toFixed(2)} ms.`,
          '',
        ]),
    ...results.flatMap((scenario) => [
      scenarioMarkdown(scenario),
      '',
      ...(scenario.name.startsWith('rows') ? [`First object copied ${scenario.results[0]!.firstObjectMs?.toFixed(0)} ms after start.`, ''] : []),
    ]),
    ...scriptResults.flatMap((result) => [`### ${result.title}`, '', `\`${result.command}\`:`, '', result.table.trim(), '']),
    '## Targets (issues 5 and 15)',
    '',
    ...verdicts.map((line) => `- ${line}`),
    '',
  ].join('\n');
}

interface ScriptResult {
  readonly title: string;
  readonly command: string;
  readonly table: string;
}

/** Runs a listing scenario's script in a process of its own (its progress on stderr) and keeps its Markdown table. */
function runScriptScenario(name: ScriptScenario): ScriptResult {
  const { script, title } = SCRIPT_SCENARIOS[name];
  console.error(`bench: ${name}: node --import tsx ${script}`);
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (run.status !== 0) throw new Error(`${script} exited with ${run.status ?? run.signal}`);
  return { title, command: `node --import tsx ${script}`, table: finalTable(run.stdout) };
}

/** The last Markdown table a script printed, with the paragraph above it (rows printed as they came go before it). */
function finalTable(output: string): string {
  const lines = output.trimEnd().split('\n');
  let start = lines.length;
  while (start > 0 && lines[start - 1]!.startsWith('|')) start--;
  let paragraph = start;
  while (paragraph > 0 && lines[paragraph - 1] === '') paragraph--;
  while (paragraph > 0 && lines[paragraph - 1] !== '' && !lines[paragraph - 1]!.startsWith('|')) paragraph--;
  return lines.slice(paragraph).join('\n');
}

await main();
