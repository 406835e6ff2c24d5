/**
 * Runs the real CLI (bin/mastosync.js, built by `npm test`'s build step) as a child process, as an admin would,
 * and writes its config files.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const BIN = resolve(import.meta.dirname, '../../bin/mastosync.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with the child once it started (to send it signals). */
  onSpawn?: (child: ChildProcess) => void;
}

export function runCli(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return runProgram(process.execPath, [BIN, ...args], options);
}

/**
 * Runs `command` (the CLI under another form: the single executable, an installed package) the way runCli runs
 * bin/mastosync.js. With `options.replaceEnv` the child gets `options.env` alone, not this process's environment.
 */
export function runProgram(command: string, args: string[], options: CliOptions & { replaceEnv?: boolean } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const env = options.replaceEnv ? { ...options.env } : { ...process.env, ...options.env };
    for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_') && !(options.env && name in options.env)) delete env[name];
    const child = spawn(command, args, { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    options.onSpawn?.(child);
  });
}

export interface StoreSettings {
  endpoint?: string;
  bucket?: string;
  keyPrefix?: string;
  type?: 's3' | 'fs';
  path?: string;
  accessKeyId?: string;
  acl?: string;
  /** [destination] storage_class (S3). */
  storageClass?: string;
  /** Another backend (type = "swift", say): the section's lines as written, type included; the fields above are then unused. */
  lines?: readonly string[];
}

export interface ConfigSettings {
  databaseUrl: string;
  source: StoreSettings;
  destination: StoreSettings;
  concurrency?: number;
  /**
   * [sync] copy_mode. Default "stream": source and destination share the s3rver endpoint and credentials, which
   * "auto" would copy server-side, and most tests are about streaming.
   */
  copyMode?: 'auto' | 'stream' | 'server';
  /**
   * [sync] upload_cutoff in MiB. Default 8, not the product's 512: test objects are small, and those above 8 MiB
   * must go multipart so that path is exercised.
   */
  uploadCutoffMib?: number;
  batchSize?: number;
  retries?: number;
  extra?: string;
}

/** A fresh folder holding mastosync.toml; runs use it as cwd, so the checkpoint lands there too. */
export function writeConfig(settings: ConfigSettings): { dir: string; file: string; checkpoint: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mastosync-run-'));
  const store = (name: string, s: StoreSettings) => {
    const lines = [`[${name}]`];
    if (s.lines !== undefined) return [...lines, ...s.lines].join('\n');
    if (s.type === 'fs')
      return [...lines, 'type = "fs"', `path = ${JSON.stringify(s.path)}`, ...(s.acl !== undefined ? [`acl = ${JSON.stringify(s.acl)}`] : [])].join('\n');
    lines.push(
      'type = "s3"',
      `endpoint = ${JSON.stringify(s.endpoint)}`,
      `bucket = ${JSON.stringify(s.bucket)}`,
      `access_key_id = ${JSON.stringify(s.accessKeyId ?? 'S3RVER')}`,
      'secret_access_key = "S3RVER"',
      'force_path_style = true',
    );
    if (s.keyPrefix !== undefined) lines.push(`key_prefix = ${JSON.stringify(s.keyPrefix)}`);
    if (s.acl !== undefined) lines.push(`acl = ${JSON.stringify(s.acl)}`);
    if (s.storageClass !== undefined) lines.push(`storage_class = ${JSON.stringify(s.storageClass)}`);
    return lines.join('\n');
  };
  const text = [
    '[database]',
    `url = ${JSON.stringify(settings.databaseUrl)}`,
    ...(settings.batchSize !== undefined ? [`batch_size = ${settings.batchSize}`] : []),
    '',
    store('source', settings.source),
    '',
    store('destination', settings.destination),
    '',
    '[sync]',
    `concurrency = ${settings.concurrency ?? 8}`,
    `copy_mode = "${settings.copyMode ?? 'stream'}"`,
    `upload_cutoff = ${settings.uploadCutoffMib ?? 8}`,
    ...(settings.retries !== undefined ? [`retries = ${settings.retries}`] : []),
    settings.extra ?? '',
  ].join('\n');
  const file = join(dir, 'mastosync.toml');
  writeFileSync(file, text);
  return { dir, file, checkpoint: join(dir, 'mastosync.checkpoint.jsonl') };
}

export function readJsonLines<T = Record<string, unknown>>(text: string): T[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as T);
}
