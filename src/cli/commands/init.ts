/**
 * `mastosync init [--from-env FILE] [--out mastosync.toml] [--force]`: writes a config from what the admin already
 * has, Mastodon's `.env.production`: the database from DATABASE_URL or DB_*, the source from S3_* / AWS_*, or
 * SWIFT_* or AZURE_* (or the public/system folder when none is on), the destination ACL from S3_PERMISSION, and the rest of the
 * destination as commented placeholders. The file holds secrets, so it is created readable by its owner only,
 * and an existing file is replaced only with --force. Without --from-env it writes config.sample.toml (every setting
 * an example to fill in), the same text from the single executable and the image, which have no such file beside them.
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { UsageError, describeError } from '../../errors.js';
import { parseEnvFile, type EnvFile } from '../envFile.js';
import { EXIT, type Output } from '../exit.js';
import { sampleConfig } from '../sampleConfig.js';

interface InitFlags {
  readonly fromEnv?: string;
  readonly out: string;
  readonly force: boolean;
  readonly json: boolean;
}

/** What `init` derived, for the admin's summary (no secrets). */
export interface DerivedConfig {
  readonly text: string;
  readonly database: string;
  readonly source: string;
  readonly notes: string[];
}

export async function initCommand(flags: InitFlags, out: Output): Promise<number> {
  if (flags.fromEnv === undefined) return initFromSample(flags, out);
  const envPath = resolve(flags.fromEnv);
  let envText: string;
  try {
    envText = await readFile(envPath, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${flags.fromEnv} (${describeError(error)}): pass --from-env with Mastodon's .env.production, e.g. /home/mastodon/live/.env.production`,
    );
  }
  const env = parseEnvFile(envText);
  refuseOtherFile(env, envText, flags.fromEnv);
  const derived = configFromEnv(env.values, envPath);
  const notes = [...env.ignoredLines.map((line) => `line ${line} of ${flags.fromEnv} is not KEY=value: ignored`), ...derived.notes];
  const report = await writeConfigText(flags, derived.text, out);

  if (flags.json) {
    report(JSON.stringify({ config: flags.out, database: derived.database, source: derived.source, notes }));
  } else {
    report(
      flags.out === STDOUT ? 'wrote the config to standard output (it holds secrets)' : `wrote ${flags.out} (readable by its owner only: it holds secrets)`,
    );
    report(`  database: ${derived.database}`);
    report(`  source:   ${derived.source}`);
    report(`  destination: fill in the [destination] placeholders, then: mastosync check --config ${flags.out === STDOUT ? 'FILE' : flags.out}`);
    for (const note of notes) report(`note: ${note}`);
  }
  return EXIT.ok;
}

/** `--out -`: the config itself on standard output (to pipe into a secrets store, or `> file`), the rest on stderr. */
const STDOUT = '-';

/** Writes the config where --out says; returns where the lines about it go (stdout, or stderr when the config is there). */
async function writeConfigText(flags: InitFlags, text: string, out: Output): Promise<(line: string) => void> {
  if (flags.out !== STDOUT) {
    await writePrivateFile(flags.out, text, flags.force);
    return (line) => out.stdout(line);
  }
  out.stdout(text.replace(/\n$/, ''));
  return (line) => out.stderr(line);
}

/** `init` without --from-env: the sample, to fill in. */
async function initFromSample(flags: InitFlags, out: Output): Promise<number> {
  // Mode 0600 too: the admin is about to write the database's password and the stores' keys into it.
  const report = await writeConfigText(flags, await sampleConfig(), out);
  const file = flags.out === STDOUT ? 'FILE' : flags.out;
  const next = `fill in [database], [source] and [destination] (or init --from-env with Mastodon's .env.production), then: mastosync check --config ${file}`;
  if (flags.json) report(JSON.stringify({ config: flags.out, sample: true, notes: [] }));
  else
    report(
      `${flags.out === STDOUT ? 'wrote the sample config to standard output' : `wrote ${flags.out} from the sample config (readable by its owner only: it will hold secrets)`}\n  ${next}`,
    );
  return EXIT.ok;
}

/**
 * Variables every .env.production sets one of: those init reads, and LOCAL_DOMAIN, which mastodon:setup always
 * writes. Present counts, blank or not (`DB_PASS=`).
 */
const MASTODON_VARIABLE = /^(LOCAL_DOMAIN|DATABASE_URL|PAPERCLIP_ROOT_PATH|(DB|S3|AWS|SWIFT|AZURE)_[A-Z0-9_]+)$/;

/**
 * Refuses a file that is not a .env.production (`text`, parsed as `env`, named `name` on the command line): another
 * file given by mistake would still make a config, of Mastodon's defaults alone, and `init` would say it wrote one.
 * A TOML file (mastosync.toml itself) parses as KEY=value lines, so having some is not enough: one of Mastodon's
 * variables must be set.
 */
export function refuseOtherFile(env: EnvFile, text: string, name: string): void {
  const fix = "pass --from-env with Mastodon's .env.production, e.g. /home/mastodon/live/.env.production";
  if (env.values.size === 0) throw new UsageError(`${name} holds no KEY=value line: ${fix}`);
  if ([...env.values.keys()].some((key) => MASTODON_VARIABLE.test(key))) return;
  const lines = text.split(/\r?\n/);
  const section = lines.findIndex((line) => /^\s*\[[^\]=]+\]\s*(#.*)?$/.test(line));
  const looksLike = section === -1 ? '' : ` (it looks like TOML: ${lines[section]!.trim()} on line ${section + 1})`;
  throw new UsageError(`${name} sets none of Mastodon's variables (LOCAL_DOMAIN, DATABASE_URL or DB_*, S3_*, PAPERCLIP_ROOT_PATH…)${looksLike}: ${fix}`);
}

/** The config text for the values of a .env.production at `envPath` (pure: no I/O). */
export function configFromEnv(env: ReadonlyMap<string, string>, envPath: string): DerivedConfig {
  const get = (name: string): string | undefined => env.get(name);
  const given = (name: string): string | undefined => {
    const value = env.get(name);
    return value === undefined || value === '' ? undefined : value;
  };
  const notes: string[] = [];
  const liveDir = dirname(envPath);
  const lines: string[] = [
    `# mastosync configuration, written by \`mastosync init --from-env ${envPath}\`.`,
    '# It holds secrets copied from that file: keep it readable by its owner only.',
    '# Any key can also come from the environment as MASTOSYNC_<SECTION>_<KEY> (README, Configuration).',
    '',
  ];

  // [database]: Rails takes DATABASE_URL over the DB_* parts; the defaults are those of Mastodon's database.yml.
  lines.push('[database]');
  let database: string;
  const url = given('DATABASE_URL');
  if (url !== undefined) {
    lines.push(`# DATABASE_URL. Through SSH ([database.ssh] below), this names the database as the SSH server sees it.`);
    lines.push(`url = ${tomlString(url)}`);
    database = `DATABASE_URL ${redactUrl(url)}`;
  } else {
    const host = given('DB_HOST') ?? 'localhost';
    const portText = given('DB_PORT') ?? '5432';
    if (!/^\d+$/.test(portText)) throw new UsageError(`DB_PORT in ${envPath} must be a port number, not "${portText}"`);
    const user = given('DB_USER') ?? 'mastodon';
    const name = given('DB_NAME') ?? 'mastodon_production';
    lines.push(`# DB_HOST, DB_PORT, DB_USER, DB_PASS, DB_NAME (Mastodon's defaults where unset).`);
    lines.push(`# Through SSH ([database.ssh] below), host and port name the database as the SSH server sees it.`);
    lines.push(`host = ${tomlString(host)}`);
    lines.push(`port = ${Number(portText)}`);
    lines.push(`user = ${tomlString(user)}`);
    const password = given('DB_PASS');
    if (password !== undefined) lines.push(`password = ${tomlString(password)}`);
    lines.push(`database = ${tomlString(name)}`);
    database = `${user}@${host}:${portText}/${name}`;
    if (host.startsWith('/')) {
      notes.push(
        `DB_HOST ${host} is a Unix socket folder: that works on the Mastodon server itself; through SSH, set host = "127.0.0.1" (PostgreSQL must listen on TCP)`,
      );
    }
  }
  const sslMode = given('DB_SSLMODE');
  if (sslMode !== undefined && /^(require|verify-ca|verify-full)$/.test(sslMode)) {
    lines.push(`# DB_SSLMODE=${sslMode}: uncomment to require TLS (the server certificate is verified).`);
    lines.push('# ssl = true');
  }
  lines.push('batch_size = 10000   # rows per keyset page; big pages keep an SSH tunnel fast');
  lines.push('');
  lines.push('# To reach the database over SSH, uncomment and fill in:');
  lines.push('# [database.ssh]');
  lines.push(`# host = ${tomlString(given('LOCAL_DOMAIN') ?? 'db.example.org')}`);
  lines.push('# port = 22');
  lines.push('# user = "mastodon"');
  lines.push('# private_key = "~/.ssh/id_ed25519"   # passphrase = "..." if it is encrypted; or password = "...", or agent = true');
  lines.push('# host_key = "SHA256:..."             # `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the server');
  lines.push('');

  // [source]: what Mastodon reads and writes (config/initializers/paperclip.rb).
  lines.push('[source]');
  let source: string;
  const keyPrefix = given('S3_KEY_PREFIX');
  if (get('S3_ENABLED') === 'true') {
    const bucket = given('S3_BUCKET');
    if (bucket === undefined) throw new UsageError(`${envPath} sets S3_ENABLED=true but no S3_BUCKET: add the bucket Mastodon uses`);
    const endpoint = given('S3_ENDPOINT');
    const region = given('S3_REGION') ?? 'us-east-1';
    lines.push('# S3_ENABLED=true: S3_BUCKET, S3_REGION, S3_ENDPOINT, S3_OVERRIDE_PATH_STYLE, AWS_*, S3_KEY_PREFIX.');
    lines.push('type = "s3"');
    lines.push(`bucket = ${tomlString(bucket)}`);
    lines.push(`region = ${tomlString(region)}`);
    if (endpoint !== undefined) {
      lines.push(`endpoint = ${tomlString(endpoint)}`);
      // Inverted in Mastodon: with an endpoint, path style is used unless S3_OVERRIDE_PATH_STYLE is "true".
      const pathStyle = get('S3_OVERRIDE_PATH_STYLE') !== 'true';
      lines.push(`force_path_style = ${pathStyle}   # S3_OVERRIDE_PATH_STYLE is ${pathStyle ? 'not "true"' : '"true"'}`);
    } else {
      lines.push('force_path_style = false   # AWS: virtual-hosted style, as Mastodon uses without S3_ENDPOINT');
    }
    const accessKeyId = given('AWS_ACCESS_KEY_ID');
    const secretAccessKey = given('AWS_SECRET_ACCESS_KEY');
    if (accessKeyId !== undefined && secretAccessKey !== undefined) {
      lines.push(`access_key_id = ${tomlString(accessKeyId)}`);
      lines.push(`secret_access_key = ${tomlString(secretAccessKey)}`);
    } else {
      lines.push('# No AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY pair: the AWS default credential chain is used.');
      notes.push('AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set: [source] uses the AWS default credential chain');
    }
    // An empty S3_KEY_PREFIX behaves as unset (docs/storage-layout.md §1.1); any other value is used as written.
    if (keyPrefix !== undefined) lines.push(`key_prefix = ${tomlString(keyPrefix)}`);
    source = `s3://${bucket}${keyPrefix !== undefined ? `/${keyPrefix}` : ''}${endpoint !== undefined ? ` at ${endpoint}` : ` (AWS ${region})`}`;
  } else if (get('SWIFT_ENABLED') === 'true') {
    source = swiftSource(given, envPath, lines);
  } else if (get('AZURE_ENABLED') === 'true') {
    // Mastodon 4.2+ (paperclip-azure): the relative keys with no prefix, in one container of one account.
    const names = ['AZURE_STORAGE_ACCOUNT', 'AZURE_STORAGE_ACCESS_KEY', 'AZURE_CONTAINER_NAME'] as const;
    const unset = names.filter((name) => given(name) === undefined);
    if (unset.length > 0) throw new UsageError(`${envPath} sets AZURE_ENABLED=true but no ${unset.join(', ')}: add what Mastodon uses`);
    const [account, accessKey, container] = names.map((name) => given(name)!);
    lines.push('# AZURE_ENABLED=true: AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_ACCESS_KEY, AZURE_CONTAINER_NAME (no key prefix on Azure).');
    lines.push('type = "azure"');
    lines.push(`account = ${tomlString(account!)}`);
    lines.push(`access_key = ${tomlString(accessKey!)}`);
    lines.push(`container = ${tomlString(container!)}`);
    source = `azure://${account}/${container}`;
  } else {
    // Paperclip interpolates :rails_root in the path; Rails runs in the folder that holds .env.production.
    const root = resolve(liveDir, (given('PAPERCLIP_ROOT_PATH') ?? join(liveDir, 'public', 'system')).replaceAll(':rails_root', liveDir));
    lines.push(`# S3_ENABLED is not "true": Mastodon keeps media in PAPERCLIP_ROOT_PATH (default <live>/public/system).`);
    lines.push('type = "fs"');
    lines.push(`path = ${tomlString(root)}`);
    source = `folder ${root}`;
  }
  lines.push('');

  // [destination]: only the ACL is known; the rest is the admin's choice.
  const acl = get('S3_PERMISSION') ?? 'public-read';
  const storageClass = given('S3_STORAGE_CLASS');
  lines.push('[destination]');
  lines.push('# Where the media should go: fill in and uncomment (or set MASTOSYNC_DESTINATION_<KEY> variables).');
  lines.push('# type = "s3"');
  lines.push('# endpoint = "https://<account>.r2.cloudflarestorage.com"');
  lines.push('# region = "auto"');
  lines.push('# bucket = "new-mastodon-media"');
  lines.push('# access_key_id = "..."');
  lines.push('# secret_access_key = "..."');
  lines.push('# force_path_style = true');
  // Mastodon reads the new bucket with the same S3_KEY_PREFIX unless the admin changes it too.
  lines.push(`# key_prefix = ${tomlString(keyPrefix ?? '')}`);
  if (storageClass !== undefined) lines.push(`# storage_class = ${tomlString(storageClass)}   # S3_STORAGE_CLASS; check the new provider offers it`);
  lines.push('# ...or OpenStack Swift: type = "swift" with auth_url, username, password, tenant, container (README).');
  lines.push('# ...or Azure Blob: type = "azure" with account, access_key (or sas_token, or connection_string), container (README).');
  lines.push('# ...or a folder (a new public/system):');
  lines.push('# type = "fs"');
  lines.push('# path = "/home/mastodon/live/public/system"');
  // Mastodon's default is mastosync's too: left commented, so that a Swift or Azure destination (no ACL there) passes.
  const aclNote = get('S3_PERMISSION') === undefined ? "S3_PERMISSION unset: Mastodon's default, and mastosync's" : 'S3_PERMISSION; remove for Swift or Azure';
  lines.push(`${get('S3_PERMISSION') === undefined ? '# ' : ''}acl = ${tomlString(acl)}   # ${aclNote}; "" sends no ACL`);
  lines.push('');
  return { text: lines.join('\n'), database, source, notes };
}

/**
 * [source] type = "swift" from Mastodon's SWIFT_* settings (config/initializers/paperclip.rb, through fog); the
 * lines are appended to `lines`, the description returned. Mastodon uses no key prefix on Swift.
 */
function swiftSource(given: (name: string) => string | undefined, envPath: string, lines: string[]): string {
  for (const name of ['SWIFT_AUTH_URL', 'SWIFT_USERNAME', 'SWIFT_PASSWORD', 'SWIFT_CONTAINER']) {
    if (given(name) === undefined) throw new UsageError(`${envPath} sets SWIFT_ENABLED=true but no ${name}: add the one Mastodon uses`);
  }
  lines.push('# SWIFT_ENABLED=true: SWIFT_AUTH_URL, SWIFT_USERNAME, SWIFT_PASSWORD, SWIFT_TENANT, SWIFT_PROJECT_ID,');
  lines.push('# SWIFT_DOMAIN_NAME, SWIFT_REGION, SWIFT_CONTAINER.');
  lines.push('type = "swift"');
  const keys: Array<[string, string]> = [
    ['auth_url', 'SWIFT_AUTH_URL'],
    ['username', 'SWIFT_USERNAME'],
    ['password', 'SWIFT_PASSWORD'],
    ['tenant', 'SWIFT_TENANT'],
    ['project_id', 'SWIFT_PROJECT_ID'],
    ['domain', 'SWIFT_DOMAIN_NAME'],
    ['region', 'SWIFT_REGION'],
    ['container', 'SWIFT_CONTAINER'],
  ];
  for (const [key, name] of keys) {
    const value = given(name);
    if (value !== undefined) lines.push(`${key} = ${tomlString(value)}`);
  }
  return `swift://${given('SWIFT_CONTAINER')!} at ${given('SWIFT_AUTH_URL')!}`;
}

/** A TOML basic string. JSON's escapes are valid TOML; DEL, which JSON leaves raw, must be escaped too. */
function tomlString(value: string): string {
  return JSON.stringify(value).replace(/\u007f/g, '\\u007F');
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(not a URL)';
  }
}

/**
 * Creates `path` with mode 0600 and all of `text`, atomically: a temporary file in the same folder is linked
 * into place (which fails if `path` exists) or, with `force`, renamed over it. A replaced file therefore never
 * keeps its old, possibly wider, permissions, and no reader ever sees half a file.
 */
async function writePrivateFile(path: string, text: string, force: boolean): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await writeFile(temp, text, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    throw new UsageError(`cannot write ${path} (${describeError(error)}): choose another --out`);
  }
  try {
    if (force) await rename(temp, path);
    else await link(temp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UsageError(`${path} already exists: pass --force to replace it, or --out FILE to write another file`);
    }
    throw new UsageError(`cannot write ${path} (${describeError(error)}): choose another --out`);
  } finally {
    // After a link the temporary name is a second name of the file; after a rename it is gone already.
    await rm(temp, { force: true });
  }
}
