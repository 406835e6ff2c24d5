/**
 * The two copiers as an admin runs them, each under GNU time so wall time, CPU and peak RSS are measured the
 * same way for both: mastosync (the real CLI, bin/mastosync.js) and rclone (Debian's package).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';

export const MASTOSYNC_BIN = resolve(import.meta.dirname, '../bin/mastosync.js');

export interface Measurement {
  readonly exitCode: number | null;
  /** From spawn to exit, as the bench saw it. */
  readonly wallMs: number;
  /** Date.now() at spawn, to set request times against. */
  readonly startedAt: number;
  /** User + system CPU of the whole process tree. */
  readonly cpuMs: number;
  readonly peakRssBytes: number;
  readonly stderr: string;
  readonly stdout: string;
  /** Instructions the process ran, counted by callgrind (bench --callgrind); absent otherwise. */
  readonly instructions?: number;
}

/** Installs Debian packages the bench needs (rclone, GNU time) when missing. */
export function ensureDebianPackage(command: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${command}`]).status === 0) return;
  console.error(`bench: ${command} is missing; installing the Debian package ${pkg}`);
  const install = (args: string[]) => spawnSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (install(['install', '-y', '-qq', pkg]).status !== 0) {
    install(['update', '-qq']);
    if (install(['install', '-y', '-qq', pkg]).status !== 0) throw new Error(`could not install ${pkg}: install it and run the bench again`);
  }
}

export function rcloneVersion(): string {
  return spawnSync('rclone', ['version'], { encoding: 'utf8' }).stdout.split('\n')[0]?.trim() ?? 'unknown';
}

/** Runs `command` under `/usr/bin/time -v`. */
/**
 * The environment of a Node tool (mastosync, the bare copier): without NODE_EXTRA_CA_CERTS, which this machine's
 * sandbox sets and an admin's server does not. Node 20 reads and parses that file at every start (about 50 ms of
 * CPU here), a cost rclone does not pay; the bench's servers speak plain HTTP, so no certificate is needed.
 */
function nodeToolEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

export async function measure(command: string, args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number }): Promise<Measurement> {
  const timeFile = join(options.cwd, `time-${process.hrtime.bigint()}.txt`);
  const startedAt = Date.now();
  const started = performance.now();
  const child = spawn('/usr/bin/time', ['-v', '-o', timeFile, command, ...args], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk.length + stderr.length > 1_000_000 ? '' : chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
  const exitCode = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
  clearTimeout(timer);
  const wallMs = performance.now() - started;
  const report = existsSync(timeFile) ? readFileSync(timeFile, 'utf8') : '';
  rmSync(timeFile, { force: true });
  const field = (name: string) => Number(new RegExp(`${name}: ([\\d.]+)`).exec(report)?.[1] ?? NaN);
  return {
    exitCode,
    wallMs,
    startedAt,
    cpuMs: (field('User time \\(seconds\\)') + field('System time \\(seconds\\)')) * 1000,
    peakRssBytes: field('Maximum resident set size \\(kbytes\\)') * 1024,
    stderr,
    stdout,
  };
}

interface S3Place {
  readonly endpoint: string;
  readonly bucket: string;
}

/**
 * Runs a Node program under valgrind's callgrind, which counts the instructions it runs: unlike CPU time on this shared
 * machine, the same run counts the same within about 1% (docs/performance.md, the sixth pass). Node's JIT writes code
 * into its own memory, so valgrind must check every write for code (--smc-check), or it would run stale code. Node is
 * started directly, not through the launcher's `#!/usr/bin/env node`: valgrind would follow env, not its exec.
 */
async function measureNode(
  nodeArgs: readonly string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number; callgrind?: string },
): Promise<Measurement> {
  if (options.callgrind === undefined) return measure(process.execPath, [...nodeArgs], options);
  const tool = ['--tool=callgrind', `--callgrind-out-file=${options.callgrind}`, '--smc-check=all-non-file', '--dump-instr=no'];
  const measured = await measure('valgrind', [...tool, process.execPath, ...nodeArgs], options);
  const totals = existsSync(options.callgrind) ? /^(?:summary|totals): (\d+)/m.exec(readFileSync(options.callgrind, 'utf8')) : null;
  return { ...measured, instructions: totals ? Number(totals[1]) : undefined };
}

export interface MastosyncRun {
  readonly databaseUrl: string;
  readonly source: S3Place;
  readonly destination: S3Place;
  readonly concurrency: number;
  readonly copyMode: 'stream' | 'server';
  readonly jobs: readonly string[];
  /** More flags for `mastosync run`. */
  readonly extraArgs?: readonly string[];
  /** Print the result as JSON (default); false runs it as cron does, with default flags. */
  readonly json?: boolean;
  readonly dir: string;
  readonly timeoutMs: number;
  /** Another build's launcher to run instead of this checkout's (bench --compare). */
  readonly bin?: string;
  /**
   * More flags for Node (bench --cpu-prof, which Node 20 refuses in NODE_OPTIONS): the launcher is then run as
   * `node FLAGS bin/mastosync.js`, as its shebang runs it with the flags added.
   */
  readonly nodeFlags?: readonly string[];
  /** Run under callgrind, its output written to this file (bench --callgrind). */
  readonly callgrind?: string;
}

export async function runMastosync(run: MastosyncRun): Promise<Measurement> {
  const store = (section: string, place: S3Place) => [
    `[${section}]`,
    'type = "s3"',
    `endpoint = "${place.endpoint}"`,
    `bucket = "${place.bucket}"`,
    'access_key_id = "S3RVER"',
    'secret_access_key = "S3RVER"',
    'force_path_style = true',
  ];
  const config = join(run.dir, 'mastosync.toml');
  const checkpoint = join(run.dir, 'checkpoint.jsonl');
  rmSync(checkpoint, { force: true });
  writeFileSync(
    config,
    [
      '[database]',
      `url = "${run.databaseUrl}"`,
      ...store('source', run.source),
      ...store('destination', run.destination),
      'acl = "public-read"',
      '[sync]',
      `concurrency = ${run.concurrency}`,
      `checkpoint = "${checkpoint}"`,
      `copy_mode = "${run.copyMode}"`,
    ].join('\n'),
  );
  const env = nodeToolEnv();
  for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_')) delete env[name];
  // The launcher is run as a command, as an admin runs it (npm's bin link), so the flags it starts Node with apply.
  const args = ['run', ...run.jobs, '--config', config, ...(run.json === false ? [] : ['--json']), ...(run.extraArgs ?? [])];
  const bin = run.bin ?? MASTOSYNC_BIN;
  const options = { env, cwd: run.dir, timeoutMs: run.timeoutMs, callgrind: run.callgrind };
  if (run.nodeFlags === undefined && run.callgrind === undefined) return measure(bin, args, options);
  return measureNode([...(run.nodeFlags ?? []), bin, ...args], options);
}

export interface RcloneRun {
  readonly source: S3Place;
  readonly destination: S3Place;
  readonly concurrency: number;
  /** Both sides through one remote, so rclone copies server-side (CopyObject). */
  readonly serverSide: boolean;
  /** The keys to copy, one a line; absent: the whole bucket, as an admin copies one (`--fast-list`, both sides listed). */
  readonly keys?: readonly string[];
  readonly extraFlags: readonly string[];
  readonly dir: string;
  readonly timeoutMs: number;
}

/**
 * rclone as the issue sets it up: the same transfers as mastosync's concurrency, the same key list
 * (--files-from-raw), the same ACL, and --metadata so Cache-Control is carried over as mastosync does.
 * --no-traverse makes rclone look up each listed key instead of listing its folders: s3rver loses deep
 * prefixes when listing with a delimiter, which rclone does for --files-from even with --fast-list (it then
 * copied only the top-level keys).
 */
export async function runRclone(run: RcloneRun): Promise<Measurement> {
  const list = join(run.dir, 'keys.txt');
  if (run.keys !== undefined) writeFileSync(list, `${run.keys.join('\n')}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: '/dev/null' };
  delete env.AWS_CA_BUNDLE; // rclone fails with LoadCustomCABundleError when it is set
  const remote = (name: string, endpoint: string) => {
    Object.assign(env, {
      [`RCLONE_CONFIG_${name}_TYPE`]: 's3',
      [`RCLONE_CONFIG_${name}_PROVIDER`]: 'Other',
      [`RCLONE_CONFIG_${name}_ENDPOINT`]: endpoint,
      [`RCLONE_CONFIG_${name}_ACCESS_KEY_ID`]: 'S3RVER',
      [`RCLONE_CONFIG_${name}_SECRET_ACCESS_KEY`]: 'S3RVER',
      [`RCLONE_CONFIG_${name}_REGION`]: 'us-east-1',
      [`RCLONE_CONFIG_${name}_FORCE_PATH_STYLE`]: 'true',
      [`RCLONE_CONFIG_${name}_ACL`]: 'public-read',
    });
  };
  remote('SRC', run.source.endpoint);
  remote('DST', run.destination.endpoint);
  const [from, to] = run.serverSide ? ['SRC', 'SRC'] : ['SRC', 'DST'];
  return measure(
    'rclone',
    [
      'copy',
      `${from}:${run.source.bucket}`,
      `${to}:${run.destination.bucket}`,
      ...(run.keys === undefined ? [] : ['--files-from-raw', list]),
      '--transfers',
      String(run.concurrency),
      ...(run.keys === undefined ? [] : ['--checkers', String(run.concurrency)]),
      '--fast-list',
      // The bucket copy is the command as an admin types it: without --metadata (which costs a HEAD per object).
      ...(run.keys === undefined ? [] : ['--no-traverse', '--metadata']),
      '--retries',
      '1',
      '--stats',
      '0',
      ...run.extraFlags,
    ],
    { env, cwd: run.dir, timeoutMs: run.timeoutMs },
  );
}

export interface FloorRun {
  readonly source: S3Place;
  readonly destination: S3Place;
  readonly concurrency: number;
  /** Copy nothing: Node's start, the agents, no request. */
  readonly nothing?: boolean;
  /** More flags for Node (bench --cpu-prof). */
  readonly nodeFlags?: readonly string[];
  /** Run under callgrind, its output written to this file (bench --callgrind). */
  readonly callgrind?: string;
  readonly dir: string;
  readonly timeoutMs: number;
}

/** bench/floorCopier.ts as plain JavaScript, compiled once, so Node runs it without a loader (tsx would add to its start). */
let floorScript: string | undefined;

/**
 * The bare Node copier (bench/floorCopier.ts): the floor under any Node copier of the bucket, run as the launcher
 * runs mastosync (plain `node`, the young generation stopped from inside), with the same ACL.
 */
export async function runFloor(run: FloorRun): Promise<Measurement> {
  if (floorScript === undefined) {
    const script = join(run.dir, '..', 'floorCopier.mjs');
    buildSync({
      entryPoints: [resolve(import.meta.dirname, 'floorCopier.ts')],
      outfile: script,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'warning',
    });
    floorScript = script;
  }
  const url = (place: S3Place) => `${place.endpoint}/${place.bucket}`;
  return measureNode(
    [
      ...(run.nodeFlags ?? []),
      floorScript,
      '--source',
      url(run.source),
      '--destination',
      url(run.destination),
      '--concurrency',
      String(run.concurrency),
      '--acl',
      'public-read',
      ...(run.nothing ? ['--limit', '0'] : []),
    ],
    {
      env: {
        ...nodeToolEnv(),
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
      },
      cwd: run.dir,
      timeoutMs: run.timeoutMs,
      callgrind: run.callgrind,
    },
  );
}
