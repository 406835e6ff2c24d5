/**
 * The configuration: a TOML file (--config, else $MASTOSYNC_CONFIG, else ./mastosync.toml) overlaid with
 * MASTOSYNC_<SECTION>_<KEY> environment variables, so secrets need not sit in the file. Every key is declared
 * below; an unknown key or a wrong type is a UsageError that names it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, extname, resolve as resolvePath } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ANSWER_TIMEOUT_MS, type DatabaseConfig } from '../db/config.js';
import { UsageError } from '../errors.js';
import { DEFAULT_CONFIG_FILE, MAX_WAIT_SECONDS } from './flags.js';
import { DEFAULT_STOP_GRACE_MS } from './interrupt.js';
import type { SshConfig } from '../ssh/config.js';
import {
  authVersion,
  isRegionName,
  shownEndpoint,
  type AzureCredentials,
  type AzureStoreConfig,
  type StoreConfig,
  type SwiftStoreConfig,
} from '../storage/index.js';

type KeyType = 'string' | 'integer' | 'boolean' | readonly string[];

/** type = "azure": Mastodon's AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_ACCESS_KEY, or a SAS or connection string (and container, as Swift's). */
const AZURE_KEYS = {
  account: 'string',
  access_key: 'string',
  sas_token: 'string',
  connection_string: 'string',
} as const;

const STORE_KEYS = {
  type: ['s3', 'fs', 'swift', 'azure'],
  endpoint: 'string',
  region: 'string',
  bucket: 'string',
  access_key_id: 'string',
  secret_access_key: 'string',
  session_token: 'string',
  force_path_style: 'boolean',
  key_prefix: 'string',
  path: 'string',
  // OpenStack Swift (type = "swift"); region and key_prefix are shared with S3.
  auth_url: 'string',
  username: 'string',
  password: 'string',
  tenant: 'string',
  project_id: 'string',
  domain: 'string',
  container: 'string',
  ...AZURE_KEYS,
} as const satisfies Record<string, KeyType>;

const SECTIONS = {
  database: {
    url: 'string',
    host: 'string',
    port: 'integer',
    user: 'string',
    password: 'string',
    database: 'string',
    ssl: 'boolean',
    batch_size: 'integer',
    answer_timeout: 'integer',
  },
  'database.ssh': {
    host: 'string',
    port: 'integer',
    user: 'string',
    private_key: 'string',
    passphrase: 'string',
    password: 'string',
    agent: 'boolean',
    host_key: 'string',
    known_hosts: 'string',
  },
  source: STORE_KEYS,
  destination: { ...STORE_KEYS, acl: 'string', storage_class: 'string', backup_only: 'boolean', segment_size: 'integer' },
  sync: {
    concurrency: 'integer',
    checkpoint: 'string',
    retries: 'integer',
    copy_mode: ['auto', 'stream', 'server'],
    max_rps: 'integer',
    upload_cutoff: 'integer',
    change_margin: 'integer',
    stop_grace: 'integer',
  },
} as const satisfies Record<string, Record<string, KeyType>>;

type SectionName = keyof typeof SECTIONS;
type RawSection = Record<string, string | number | boolean>;
type RawConfig = Partial<Record<SectionName, RawSection>>;

export interface Config {
  /** Where the settings came from, for messages: a file path or "the environment". */
  readonly origin: string;
  /** The config file read, as an absolute path (undefined: the environment alone), for the commands mastosync tells the admin to run. */
  readonly file?: string;
  /** Whether a MASTOSYNC_* variable gave a setting: a command told to the admin then needs it set too. */
  readonly fromEnvironment: boolean;
  /** Which variables overrode the file's values: an info line each at start. */
  readonly notices: readonly string[];
  /**
   * Which empty variables the file's values stood against: a warning each at start (cron mails it), since an admin may
   * have meant the empty variable to clear the file's value (a storage class, a key prefix), which it never does.
   */
  readonly warnings: readonly string[];
  readonly database: DatabaseConfig;
  readonly source: StoreConfig;
  readonly destination: StoreConfig & { readonly acl: string; readonly storageClass?: string };
  readonly sync: {
    readonly concurrency: number;
    readonly checkpoint: string;
    /**
     * The default checkpoint of earlier versions, `mastosync-checkpoint.jsonl` beside the config, when the checkpoint is
     * the default (named after the config file now): a run takes it over when it finds it alone (src/cli/earlierCheckpoint.ts).
     */
    readonly earlierCheckpoint?: string;
    readonly retries: number;
    readonly copyMode: 'auto' | 'stream' | 'server';
    readonly maxRps?: number;
    /** Bytes: larger objects are uploaded multipart, others in one streamed PUT. */
    readonly uploadCutoff: number;
    /** Milliseconds before a run's start from which its successor looks again for changed rows (docs/operations.md). */
    readonly changeMarginMs: number;
    /** Milliseconds the copies in flight may take to finish after a signal before they are aborted (src/cli/interrupt.ts). */
    readonly stopGraceMs: number;
  };
}

/** Streamed whole, memory does not follow object size; docs/performance.md has the measurements. */
const DEFAULT_UPLOAD_CUTOFF_MIB = 512;
/**
 * Minutes. Paperclip stamps `*_updated_at` with the app server's clock when a file is assigned, then processes and
 * uploads it, and the row commits only after that: a large video's row can become visible many minutes after its
 * timestamp, and app and database clocks may differ. A wide margin costs only database reads.
 */
const DEFAULT_CHANGE_MARGIN_MINUTES = 60;

/** Finds the config file: the flag, then $MASTOSYNC_CONFIG, then ./mastosync.toml if it exists. */
export function locateConfig(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  const named = flag ?? env.MASTOSYNC_CONFIG;
  if (named !== undefined && named !== '') {
    if (!existsSync(named)) throw new UsageError(`config file ${named} does not exist: pass --config FILE with a readable TOML file`);
    return named;
  }
  return existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined;
}

export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  const parts = loadConfigParts(file, env);
  if (parts.destination instanceof UsageError) throw parts.destination;
  if (parts.source instanceof UsageError) throw parts.source;
  return { ...parts, source: parts.source, destination: parts.destination };
}

/** The config with each store resolved on its own: what cannot be resolved is its UsageError. */
export interface ConfigParts extends Omit<Config, 'source' | 'destination'> {
  readonly source: Config['source'] | UsageError;
  readonly destination: Config['destination'] | UsageError;
}

/**
 * For `check`: a [destination] still to fill in (as `init --from-env` leaves it) must not hide whether the
 * database and the source work. Any other mistake throws, as loadConfig does.
 */
export function loadConfigParts(file: string | undefined, env: NodeJS.ProcessEnv = process.env): ConfigParts {
  const raw: RawConfig = file === undefined ? {} : readTomlFile(file);
  const overlay = overlayEnvironment(raw, env, file);
  const origin = file ?? 'the environment';
  if (file === undefined && Object.keys(raw).length === 0) {
    throw new UsageError(`no configuration: pass --config FILE, set MASTOSYNC_CONFIG, or write ./${DEFAULT_CONFIG_FILE} with \`mastosync init\``);
  }
  const variable = (section: string, key: string) => overlay.set.get(`${section} ${key}`);
  const setting: Setting = Object.assign(
    (section: string, key: string) => {
      const name = variable(section, key);
      return name === undefined ? `${origin}: [${section}] ${key}` : `environment variable ${name}`;
    },
    {
      key: (section: string, key: string) => {
        const name = variable(section, key);
        return name === undefined ? key : `${key} (environment variable ${name})`;
      },
    },
  );
  let resolved: ConfigParts;
  try {
    resolved = resolve(raw, origin, setting, overlay);
  } catch (error) {
    throw error instanceof UsageError ? namingEmptied(overlay, error) : error;
  }
  const config: ConfigParts = {
    ...resolved,
    source: resolved.source instanceof UsageError ? namingEmptied(overlay, resolved.source) : resolved.source,
    destination: resolved.destination instanceof UsageError ? namingEmptied(overlay, resolved.destination) : resolved.destination,
  };
  // A relative checkpoint sits beside the config file, wherever the run starts from (cron starts in $HOME).
  if (file === undefined) return config;
  const named = raw.sync?.checkpoint !== undefined;
  return {
    ...config,
    file: resolvePath(file),
    sync: {
      ...config.sync,
      checkpoint: resolvePath(dirname(file), named ? config.sync.checkpoint : checkpointNamedAfter(file)),
      earlierCheckpoint: named ? undefined : resolvePath(dirname(file), EARLIER_CHECKPOINT),
    },
  };
}

/**
 * The default checkpoint without a config file, and beside one before this version: shared by two configs in one
 * folder, whose runs then refused each other's checkpoint.
 */
const EARLIER_CHECKPOINT = 'mastosync-checkpoint.jsonl';

/** `mastosync.toml` → `mastosync.checkpoint.jsonl`: each config in a folder has its own default checkpoint. */
function checkpointNamedAfter(file: string): string {
  const stem = basename(file, extname(file));
  return `${stem === '' ? 'mastosync' : stem}.checkpoint.jsonl`;
}

function readTomlFile(file: string): RawConfig {
  let document: Record<string, unknown>;
  try {
    document = parseToml(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) {
      throw new UsageError(`${file}:${error.line}:${error.column}: invalid TOML: ${error.message.split('\n')[0]}`);
    }
    throw new UsageError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  const raw: RawConfig = {};
  for (const [sectionName, value] of Object.entries(document)) {
    if (!isTable(value)) throw new UsageError(`${file}: "${sectionName}" must be a [section]; known sections: ${knownSections()}`);
    if (sectionName === 'database' && isTable(value.ssh)) {
      const { ssh, ...database } = value;
      raw['database.ssh'] = checkSection(file, 'database.ssh', ssh as Record<string, unknown>);
      raw.database = checkSection(file, 'database', database);
      continue;
    }
    if (!(sectionName in SECTIONS)) throw new UsageError(`${file}: unknown section [${sectionName}]; known sections: ${knownSections()}`);
    raw[sectionName as SectionName] = checkSection(file, sectionName as SectionName, value);
  }
  return raw;
}

function checkSection(file: string, section: SectionName, values: Record<string, unknown>): RawSection {
  const declared: Record<string, KeyType> = SECTIONS[section];
  const checked: RawSection = {};
  for (const [key, value] of Object.entries(values)) {
    const type = declared[key];
    if (type === undefined) {
      // A mistyped sub-table ([database.sh]) is a mistyped section to the admin, not a key.
      if (isTable(value)) throw new UsageError(`${file}: unknown section [${section}.${key}]; known sections: ${knownSections()}`);
      throw new UsageError(`${file}: unknown key "${key}" in [${section}]; known keys: ${Object.keys(declared).join(', ')}`);
    }
    checked[key] = checkType(`${file}: [${section}] ${key}`, type, value);
  }
  return checked;
}

function checkType(where: string, type: KeyType, value: unknown): string | number | boolean {
  if (Array.isArray(type)) {
    if (typeof value === 'string' && type.includes(value)) return value;
    throw new UsageError(`${where} must be one of ${type.map((choice) => `"${choice}"`).join(', ')}, not ${JSON.stringify(value)}`);
  }
  if (type === 'integer' && typeof value === 'number' && Number.isInteger(value)) return value;
  if (type === 'integer' && typeof value === 'bigint') return Number(value);
  if (type === 'string' && typeof value === 'string') return value;
  if (type === 'boolean' && typeof value === 'boolean') return value;
  throw new UsageError(`${where} must be ${type === 'integer' ? 'an integer' : `a ${type}`}, not ${JSON.stringify(value)}`);
}

/** MASTOSYNC_ variables that are not settings: the config file's path, stack traces for bug reports, and the tests' patiences (./setup.ts). */
const NOT_SETTINGS = new Set([
  'MASTOSYNC_CONFIG',
  'MASTOSYNC_DEBUG',
  'MASTOSYNC_TEST_START_PATIENCE_MS',
  'MASTOSYNC_TEST_STORE_PATIENCE_MS',
  'MASTOSYNC_TEST_SECOND_LOOK_MS',
]);

/**
 * The one variable whose empty value is a setting of its own where the file sets none: `MASTOSYNC_DESTINATION_ACL=`
 * sends no ACL, as Mastodon's `S3_PERMISSION=` does, and nothing else says that from the environment. (An empty key
 * prefix or storage class is the default anyway.)
 */
const EMPTY_IS_A_VALUE = new Set(['MASTOSYNC_DESTINATION_ACL']);

/** What the environment did to the file, for the command to say at start; and the empty variables taken as unset. */
interface Overlay {
  readonly notices: string[];
  readonly warnings: string[];
  readonly emptied: Array<{ name: string; section: SectionName }>;
  /** `section key` → the variable that set it, to name it in the line that refuses its value. */
  readonly set: Map<string, string>;
}

/**
 * MASTOSYNC_DATABASE_SSH_HOST → [database.ssh] host, and so on; the longest matching section wins.
 *
 * An empty (or blank) variable counts as unset: it never overrides a value of the file, and where the file has
 * none the default stands (EMPTY_IS_A_VALUE aside). It is nearly always `MASTOSYNC_X: ${X}` in a compose file whose X
 * is unset or empty as Mastodon allows (DB_PASS=, S3_REGION, S3_KEY_PREFIX): refusing it broke those files, and
 * letting it blank the file's value made a first run write at the bucket root when it was the key prefix. Each
 * variable that overrides a value of the file, and each empty one the file's value stands against, is a notice.
 */
function overlayEnvironment(raw: RawConfig, env: NodeJS.ProcessEnv, file: string | undefined): Overlay {
  const overlay: Overlay = { notices: [], warnings: [], emptied: [], set: new Map() };
  const sections = (Object.keys(SECTIONS) as SectionName[]).sort((a, b) => b.length - a.length);
  for (const [name, value] of Object.entries(env).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!name.startsWith('MASTOSYNC_') || NOT_SETTINGS.has(name) || value === undefined) continue;
    const rest = name.slice('MASTOSYNC_'.length).toLowerCase();
    const section = sections.find((candidate) => rest.startsWith(`${candidate.replace('.', '_')}_`));
    const key = section === undefined ? undefined : rest.slice(section.length + 1);
    const type = section === undefined || key === undefined ? undefined : (SECTIONS[section] as Record<string, KeyType>)[key];
    if (section === undefined || key === undefined || type === undefined) {
      throw new UsageError(`unknown environment variable ${name}: expected MASTOSYNC_<SECTION>_<KEY>, for example MASTOSYNC_SOURCE_SECRET_ACCESS_KEY`);
    }
    const inFile = file !== undefined && raw[section]?.[key] !== undefined;
    if (value.trim() === '') {
      if (inFile)
        overlay.warnings.push(`environment variable ${name} is empty: [${section}] ${key} from ${file} stands (an empty variable never overrides the file)`);
      else if (EMPTY_IS_A_VALUE.has(name)) (raw[section] ??= {})[key] = '';
      else overlay.emptied.push({ name, section });
      continue;
    }
    if (inFile) overlay.notices.push(`environment variable ${name} overrides [${section}] ${key} from ${file}`);
    (raw[section] ??= {})[key] = checkType(`environment variable ${name}`, type, parseEnvValue(type, value));
    overlay.set.set(`${section} ${key}`, name);
  }
  return overlay;
}

/** A setting found missing may be one an empty variable was meant to give: say so, or the admin looks in the file alone. */
function namingEmptied(overlay: Overlay, error: UsageError): UsageError {
  const empty = overlay.emptied.filter(({ section }) => error.message.includes(`[${section}]`)).map(({ name }) => name);
  return empty.length === 0 ? error : new UsageError(`${error.message} (empty, so taken as unset: ${empty.join(', ')})`, { cause: error.cause });
}

/**
 * Names a setting in the line that refuses its value: the environment variable that set it (the file may not even
 * have the key), else the file's section and key. `key` names it inside a line that names its section already: the
 * key, and the variable that set it if one did.
 */
interface Setting {
  (section: string, key: string): string;
  key: (section: string, key: string) => string;
}

function parseEnvValue(type: KeyType, value: string): unknown {
  if (type === 'integer') return /^-?\d+$/.test(value.trim()) ? Number(value) : value;
  if (type === 'boolean') return value === 'true' ? true : value === 'false' ? false : value;
  return value;
}

function resolve(raw: RawConfig, origin: string, setting: Setting, { notices, warnings, set }: Pick<Overlay, 'notices' | 'warnings' | 'set'>): ConfigParts {
  const fromEnvironment = set.size > 0;
  const database = raw.database ?? {};
  const sync = raw.sync ?? {};
  const batchSize = positive(setting('database', 'batch_size'), database.batch_size, 10_000);
  if (database.url === undefined && database.database === undefined) {
    throw new UsageError(`${origin}: [database] needs url (postgres://user:pass@host:5432/mastodon_production) or database`);
  }
  const destinationRaw = raw.destination ?? {};
  const destination = resolveOrError(() => {
    const store = resolveStore(origin, setting, 'destination', raw.destination);
    return {
      store,
      acl: destinationAcl(setting, store.type, destinationRaw.acl as string | undefined),
      storageClass: destinationStorageClass(setting, destinationRaw),
    };
  });
  return {
    origin,
    fromEnvironment,
    notices,
    warnings,
    database: {
      connectionString: database.url as string | undefined,
      host: database.host as string | undefined,
      port: database.port as number | undefined,
      user: database.user as string | undefined,
      password: database.password as string | undefined,
      database: database.database as string | undefined,
      ssl: (database.ssl as boolean | undefined) ?? false,
      answerTimeoutMs: positive(setting('database', 'answer_timeout'), database.answer_timeout, ANSWER_TIMEOUT_MS / 1000) * 1000,
      batchSize,
      ssh: resolveSsh(origin, raw['database.ssh']),
    },
    source: resolveOrError(() => resolveStore(origin, setting, 'source', raw.source)),
    destination: destination instanceof UsageError ? destination : { ...destination.store, acl: destination.acl, storageClass: destination.storageClass },
    sync: {
      concurrency: positive(setting('sync', 'concurrency'), sync.concurrency, 8),
      checkpoint: expandHome((sync.checkpoint as string | undefined) ?? EARLIER_CHECKPOINT),
      retries: nonNegative(setting('sync', 'retries'), sync.retries, 5),
      copyMode: (sync.copy_mode as 'auto' | 'stream' | 'server' | undefined) ?? 'auto',
      maxRps: sync.max_rps === undefined ? undefined : positive(setting('sync', 'max_rps'), sync.max_rps, 1),
      uploadCutoff: uploadCutoffMib(setting('sync', 'upload_cutoff'), sync.upload_cutoff) * 1024 * 1024,
      changeMarginMs: nonNegative(setting('sync', 'change_margin'), sync.change_margin, DEFAULT_CHANGE_MARGIN_MINUTES) * 60_000,
      stopGraceMs: nonNegative(setting('sync', 'stop_grace'), sync.stop_grace, DEFAULT_STOP_GRACE_MS / 1000, MAX_WAIT_SECONDS) * 1000,
    },
  };
}

/**
 * S3's canned ACLs for an object, the values Mastodon's S3_PERMISSION can take (it hands it to the SDK as is). Any
 * other is sent as it is and refused by the provider object by object (400 InvalidArgument), or stored silently.
 */
const CANNED_ACLS = ['public-read', 'private', 'public-read-write', 'authenticated-read', 'bucket-owner-read', 'bucket-owner-full-control', 'aws-exec-read'];

/**
 * `[destination] acl`: a canned ACL or "" (none sent); public-read by default. Swift and Azure have none (their
 * resolvers refuse one). A folder has file modes, which only public-read (0644) and private (0600) name.
 */
function destinationAcl(setting: Setting, type: StoreConfig['type'], acl: string | undefined): string {
  if (type === 'swift' || type === 'azure') return acl ?? '';
  if (acl === undefined) return 'public-read';
  // A folder always has modes: "" (S3_PERMISSION="", carried over from an S3 config) left Mastodon's private
  // objects to the umask, world-readable under 022 (review); it keeps them 0600 as public-read does.
  if (type === 'fs' && acl === '') return 'public-read';
  if (type === 'fs' && acl !== 'public-read' && acl !== 'private') {
    throw new UsageError(
      `${setting('destination', 'acl')} for a folder (type = "fs") must be "public-read" (files 0644, Mastodon's private objects 0600; "" is taken as this) or "private" (every file 0600), not ${JSON.stringify(acl)}`,
    );
  }
  if (acl !== '' && !CANNED_ACLS.includes(acl)) {
    const allowed = CANNED_ACLS.map((name) => `"${name}"`).join(', ');
    throw new UsageError(`${setting('destination', 'acl')} must be one of ${allowed}, or "" (no ACL, as S3_PERMISSION=""), not ${JSON.stringify(acl)}`);
  }
  return acl;
}

/**
 * S3's storage classes whose objects cannot be read until each is restored (hours, a request per object): Mastodon
 * serving from such a bucket answers 403 InvalidObjectState for every medium. Glacier Instant Retrieval
 * (GLACIER_IR) reads at once, and is not among them.
 */
const ARCHIVE_CLASSES = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/**
 * `[destination] storage_class`, "" as unset. An archive class is refused unless `backup_only = true` says the
 * destination is a backup Mastodon never serves from: written silently, a migration's new bucket would serve nothing.
 */
function destinationStorageClass(setting: Setting, destination: RawSection): string | undefined {
  const storageClass = nonEmpty(destination.storage_class as string | undefined);
  if (storageClass === undefined || !ARCHIVE_CLASSES.has(storageClass.toUpperCase()) || destination.backup_only === true) return storageClass;
  throw new UsageError(
    `${setting('destination', 'storage_class')} is ${JSON.stringify(storageClass)}, an archive class: Mastodon cannot serve its objects (each must be restored before it can be read). For a bucket Mastodon serves from, set a class read at once (STANDARD, STANDARD_IA, INTELLIGENT_TIERING, GLACIER_IR) or "" for the bucket's default; for a backup Mastodon never serves from, add backup_only = true to [destination]`,
  );
}

function resolveOrError<T>(resolveSection: () => T): T | UsageError {
  try {
    return resolveSection();
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
}

/** Keys that say nothing of where a store is: `init --from-env` writes [destination] with only these. */
const NOT_WHERE = new Set(['acl', 'storage_class', 'backup_only', 'key_prefix', 'segment_size']);
/** The keys type = "fs" takes (acl only in [destination]: the sections' own keys say so). */
const FOLDER_KEYS = new Set(['type', 'path', 'acl']);
/** Keys only type = "swift" reads. */
const SWIFT_ONLY = ['auth_url', 'username', 'password', 'tenant', 'project_id', 'domain', 'container', 'segment_size'];

function resolveStore(origin: string, setting: Setting, section: 'source' | 'destination', store: RawSection | undefined): StoreConfig {
  if (store === undefined)
    throw new UsageError(`${origin}: missing [${section}] section (type = "s3" with bucket, type = "azure" with container, or type = "fs" with path)`);
  if (Object.keys(store).every((key) => NOT_WHERE.has(key))) {
    throw new UsageError(
      `${origin}: [${section}] is not configured yet: fill in${section === 'destination' ? ' the placeholders `mastosync init` wrote:' : ''} bucket, endpoint and credentials (or type = "fs" with path), or set MASTOSYNC_${section.toUpperCase()}_* variables`,
    );
  }
  // `init --from-env` writes these examples commented out; uncommented as they are, they would reach the network.
  for (const [key, value] of Object.entries(store)) {
    if (typeof value === 'string' && (value === '...' || /<[a-z_ -]+>/i.test(value))) {
      throw new UsageError(`${setting(section, key)} is still the placeholder ${JSON.stringify(value)}: fill in your own`);
    }
  }
  const type = (store.type as 's3' | 'fs' | 'swift' | 'azure' | undefined) ?? 's3';
  if (type === 'swift') return resolveSwift(origin, setting, section, store);
  if (type === 'azure') return resolveAzure(origin, setting, section, store);
  const foreign = SWIFT_ONLY.find((key) => store[key] !== undefined);
  if (foreign !== undefined) throw new UsageError(`${setting(section, foreign)} is a Swift setting: set type = "swift", or remove it`);
  if (type === 'fs') {
    if (typeof store.path !== 'string' || store.path === '')
      throw new UsageError(`${origin}: [${section}] type = "fs" needs path (Mastodon's public/system folder)`);
    // A bucket's keys in a folder's section are a mistake (a type changed, a section copied): refused, not ignored.
    const other = Object.keys(store).find((key) => !FOLDER_KEYS.has(key));
    if (other !== undefined)
      throw new UsageError(`${setting(section, other)} is not a folder setting: type = "fs" takes path (and acl in [destination]); remove it`);
    return { type, path: expandHome(store.path) };
  }
  if (typeof store.bucket !== 'string' || store.bucket === '') throw new UsageError(`${origin}: [${section}] needs bucket`);
  const accessKeyId = store.access_key_id as string | undefined;
  const secretAccessKey = store.secret_access_key as string | undefined;
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    const [given, lacking] = accessKeyId === undefined ? ['secret_access_key', 'access_key_id'] : ['access_key_id', 'secret_access_key'];
    throw new UsageError(
      `${origin}: [${section}] needs both access_key_id and secret_access_key (or neither, to use the AWS default credentials): ${setting.key(section, given)} is set, ${lacking} is not`,
    );
  }
  const endpoint = nonEmpty(store.endpoint as string | undefined);
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) {
    throw new UsageError(`${setting(section, 'endpoint')} must be a URL like https://s3.example.com, not ${JSON.stringify(shownEndpoint(endpoint))}`);
  }
  const region = nonEmpty(store.region as string | undefined);
  if (region !== undefined && !isRegionName(region)) {
    throw new UsageError(`${setting(section, 'region')} must be a region's name like us-east-1, fr-par or auto, not ${JSON.stringify(region)}`);
  }
  return {
    type,
    bucket: store.bucket,
    region: region ?? 'us-east-1',
    endpoint,
    // Like Mastodon: a custom endpoint means path-style unless told otherwise.
    forcePathStyle: (store.force_path_style as boolean | undefined) ?? endpoint !== undefined,
    credentials:
      accessKeyId === undefined || secretAccessKey === undefined
        ? undefined
        : { accessKeyId, secretAccessKey, sessionToken: store.session_token as string | undefined },
    keyPrefix: store.key_prefix as string | undefined,
  };
}

/**
 * A store without per-object ACLs takes acl only as "": refused rather than ignored, so that an admin who asks for
 * "private" does not believe those objects are private.
 */
function refuseAcl(setting: Setting, section: string, store: RawSection, backend: string): void {
  if (store.acl !== undefined && store.acl !== '') throw new UsageError(`${setting(section, 'acl')} does not apply to ${backend}: remove it, or set it to ""`);
}

/** [source] / [destination] type = "swift": Mastodon's SWIFT_* settings (README, OpenStack Swift). */
function resolveSwift(origin: string, setting: Setting, section: 'source' | 'destination', store: RawSection): SwiftStoreConfig {
  const text = (key: string) => nonEmpty(store[key] as string | undefined);
  for (const key of ['auth_url', 'username', 'password', 'container']) {
    if (text(key) === undefined) throw new UsageError(`${origin}: [${section}] type = "swift" needs ${key}`);
  }
  for (const key of ['bucket', 'endpoint', 'access_key_id', 'secret_access_key', 'session_token', 'force_path_style', 'path', 'storage_class']) {
    if (store[key] !== undefined) throw new UsageError(`${setting(section, key)} is not a Swift setting (type = "swift"): remove it`);
  }
  refuseAcl(setting, section, store, "Swift, which has no per-object ACL (who reads is the container's X-Container-Read)");
  try {
    authVersion(text('auth_url')!);
  } catch (error) {
    // The store's message starts with the key's name; the line names where it was set instead.
    throw error instanceof UsageError ? new UsageError(`${setting(section, 'auth_url')} ${error.message.replace(/^auth_url /, '')}`) : error;
  }
  const segmentSizeMib = store.segment_size === undefined ? undefined : positive(setting(section, 'segment_size'), store.segment_size, 1);
  if (segmentSizeMib !== undefined && segmentSizeMib > 5120) {
    throw new UsageError(`${setting(section, 'segment_size')} is in MiB and at most 5120 (5 GiB, the most one Swift object may hold), not ${segmentSizeMib}`);
  }
  return {
    type: 'swift',
    authUrl: text('auth_url')!,
    username: text('username')!,
    password: text('password')!,
    tenant: text('tenant'),
    projectId: text('project_id'),
    domain: text('domain'),
    region: text('region'),
    container: text('container')!,
    keyPrefix: store.key_prefix as string | undefined,
    segmentSize: segmentSizeMib === undefined ? undefined : segmentSizeMib * 1024 * 1024,
  };
}

/** The keys type = "azure" takes; acl only as "" (Azure has no per-blob ACL: resolveAzure refuses any other). */
const AZURE_STORE_KEYS = new Set(['type', 'endpoint', 'key_prefix', 'acl', 'container', ...Object.keys(AZURE_KEYS)]);

function resolveAzure(origin: string, setting: Setting, section: 'source' | 'destination', store: RawSection): AzureStoreConfig {
  const where = `${origin}: [${section}]`;
  const other = Object.keys(store).find((key) => !AZURE_STORE_KEYS.has(key));
  if (other !== undefined) {
    throw new UsageError(
      `${setting(section, other)} is not an Azure setting: type = "azure" takes account, container, access_key (or sas_token, or connection_string), endpoint and key_prefix`,
    );
  }
  refuseAcl(setting, section, store, "Azure, which has no per-blob ACL (who reads is the container's public access level)");
  const text = (key: string) => nonEmpty(store[key] as string | undefined);
  const container = text('container');
  if (container === undefined) throw new UsageError(`${where} type = "azure" needs container (Mastodon's AZURE_CONTAINER_NAME)`);
  // Azure answers any other name with 400 InvalidResourceName, which reads as a wrong account or endpoint.
  if (!/^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/.test(container) && container !== '$root' && container !== '$web') {
    throw new UsageError(
      `${setting(section, 'container')} ${JSON.stringify(container)} is not an Azure container name: 3 to 63 lowercase letters, digits and hyphens, beginning and ending with a letter or digit, no two hyphens in a row`,
    );
  }
  const given = (['access_key', 'sas_token', 'connection_string'] as const).filter((key) => text(key) !== undefined);
  if (given.length !== 1) {
    throw new UsageError(
      `${where} type = "azure" needs one of access_key (Mastodon's AZURE_STORAGE_ACCESS_KEY), sas_token or connection_string${given.length > 1 ? `, not ${given.map((key) => setting.key(section, key)).join(' and ')}` : ''}`,
    );
  }
  const account = text('account');
  const endpoint = text('endpoint');
  const credentials: AzureCredentials =
    given[0] === 'access_key'
      ? { kind: 'key', accessKey: text('access_key')! }
      : given[0] === 'sas_token'
        ? { kind: 'sas', sasToken: text('sas_token')! }
        : { kind: 'connectionString', connectionString: text('connection_string')! };
  if (credentials.kind !== 'connectionString' && account === undefined && endpoint === undefined) {
    throw new UsageError(`${where} type = "azure" needs account (Mastodon's AZURE_STORAGE_ACCOUNT), or endpoint`);
  }
  if (credentials.kind === 'key' && account === undefined)
    throw new UsageError(`${where} ${setting.key(section, 'access_key')} needs account (Mastodon's AZURE_STORAGE_ACCOUNT)`);
  if (credentials.kind === 'connectionString' && endpoint !== undefined) {
    throw new UsageError(
      `${where} ${setting.key(section, 'endpoint')} and ${setting.key(section, 'connection_string')} both name the service: leave out endpoint (the connection string's BlobEndpoint says it)`,
    );
  }
  if (endpoint !== undefined && !/^https?:\/\/[^/]/.test(endpoint)) {
    throw new UsageError(`${setting(section, 'endpoint')} must be a URL like https://<account>.blob.core.windows.net, not ${JSON.stringify(endpoint)}`);
  }
  return { type: 'azure', container, account, credentials, endpoint, keyPrefix: store.key_prefix as string | undefined };
}

function resolveSsh(origin: string, ssh: RawSection | undefined): SshConfig | undefined {
  if (ssh === undefined) return undefined;
  if (typeof ssh.host !== 'string' || typeof ssh.user !== 'string') {
    throw new UsageError(`${origin}: [database.ssh] needs host and user`);
  }
  return {
    host: ssh.host,
    port: (ssh.port as number | undefined) ?? 22,
    user: ssh.user,
    privateKey: ssh.private_key === undefined ? undefined : expandHome(ssh.private_key as string),
    passphrase: ssh.passphrase as string | undefined,
    password: ssh.password as string | undefined,
    agent: ssh.agent as boolean | undefined,
    hostKey: ssh.host_key as string | undefined,
    knownHosts: ssh.known_hosts === undefined ? undefined : expandHome(ssh.known_hosts as string),
  };
}

/** `where` names the setting (Setting). */
function positive(where: string, value: unknown, fallback: number): number {
  const number = (value as number | undefined) ?? fallback;
  if (number < 1) throw new UsageError(`${where} must be at least 1, not ${number}`);
  return number;
}

/** `[sync] upload_cutoff`, in MiB: at most 5 GiB, the most one PUT may carry. */
function uploadCutoffMib(where: string, value: unknown): number {
  const mib = positive(where, value, DEFAULT_UPLOAD_CUTOFF_MIB);
  if (mib > 5120) throw new UsageError(`${where} is in MiB and at most 5120 (5 GiB, the most one PUT may carry), not ${mib}`);
  return mib;
}

function nonNegative(where: string, value: unknown, fallback: number, maximum?: number): number {
  const number = (value as number | undefined) ?? fallback;
  if (number < 0) throw new UsageError(`${where} must be 0 or more, not ${number}`);
  if (maximum !== undefined && number > maximum) throw new UsageError(`${where} must be at most ${maximum}, not ${number}`);
  return number;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function knownSections(): string {
  return Object.keys(SECTIONS)
    .map((name) => `[${name}]`)
    .join(', ');
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}
