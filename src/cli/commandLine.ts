/**
 * Every command's words, flags and help, as yargs command modules: all that parsing the command line and printing
 * --help need. What a command does lives in src/cli/commands/ and is imported by its handler only when it runs, so
 * a start loads the code, and the packages, of one command, not of all seven (`--version` and `--help` of none;
 * docs/performance.md, start-up).
 */
import type { CommandModule } from 'yargs';
import { UsageError } from '../errors.js';
import { JOB_NAMES } from '../mastodon/tables.js';
import type { DeleteLimit } from '../sync/prune.js';
import type { CommandContext } from './exit.js';
import {
  DEFAULT_CONFIG_FILE,
  LOG_LEVELS,
  MAX_WAIT_SECONDS,
  asGiven,
  metricsFromArgs,
  wholeNumber,
  withMetricsOptions,
  withProgressOptions,
  type MetricsArgs,
  type MetricsFlags,
  type ProgressArgs,
} from './flags.js';
import { scopeFromArgs, withScopeOptions, type ScopeArgs } from './scope.js';
import type { RunFlags } from './commands/run.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- yargs types arguments through the builder chain, which a module object cannot carry
type Command = CommandModule<object, any>;

/** Every command, in the order --help lists them; add new ones here. */
export function commandModules(context: CommandContext): Command[] {
  return [runCommandModule, initCommandModule, checkCommandModule, planCommandModule, manifestCommandModule, verifyCommandModule, pruneCommandModule].map(
    (command) => command(context),
  );
}

const MANIFEST_FORMATS = ['keys', 'rclone', 's3-batch-csv'] as const;
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number];

function runCommandModule(context: CommandContext): Command {
  return {
    command: 'run <jobs..>',
    describe: `copy what the database owns (jobs: ${JOB_NAMES.join(', ')}, or all)`,
    builder: (command) =>
      withMetricsOptions(
        withScopeOptions(
          withProgressOptions(
            command
              .positional('jobs', { type: 'string', array: true, describe: 'tables to copy, or all' })
              .option('concurrency', { type: 'number', requiresArg: true, describe: 'copies in flight (default: [sync] concurrency, 8)' })
              .option('resume', { type: 'boolean', default: false, describe: 'skip what the checkpoint says is done; retry what failed' })
              .option('retry-failed', { type: 'boolean', default: false, describe: 'copy only the objects the checkpoint records as failed' })
              .option('fresh', {
                type: 'boolean',
                default: false,
                describe: 'start over, replacing what the checkpoint records (without it, a run refuses a checkpoint that records progress)',
              })
              .option('skip-existing', {
                type: 'boolean',
                default: false,
                describe:
                  'list both stores and copy only what the destination lacks or holds with another size or MD5 (about one request per 1000 objects present)',
              })
              .option('max-rps', {
                type: 'number',
                requiresArg: true,
                describe: 'requests per second at most, over the whole run (default: [sync] max_rps, none)',
              })
              .option('dry-run', { type: 'boolean', default: false, describe: 'list source -> destination keys and counts; write nothing' })
              .option('dev', { type: 'boolean', default: false, describe: 'alias of --dry-run' })
              .option('limit', { type: 'number', requiresArg: true, describe: 'at most N rows per job' })
              .option('checkpoint', {
                type: 'string',
                requiresArg: true,
                describe: 'checkpoint file (default: [sync] checkpoint; with a shard, its own file named after it)',
              }),
          ).check((args) => {
            wholeNumber('--concurrency', args.concurrency, 1);
            wholeNumber('--limit', args.limit, 0);
            wholeNumber('--max-rps', args.maxRps, 1);
            if (args.resume && args.retryFailed) throw new UsageError('pass --resume or --retry-failed, not both (--resume retries what failed too)');
            if (args.fresh && (args.resume || args.retryFailed))
              throw new UsageError(
                `pass --fresh or --${args.resume ? 'resume' : 'retry-failed'}, not both (--fresh starts over; the other continues the checkpoint)`,
              );
            if (args.skipExisting && args.retryFailed) throw new UsageError('pass --skip-existing or --retry-failed, not both');
            if (args.skipExisting && args.limit !== undefined) throw new UsageError('--skip-existing reads every row in scope: leave out --limit');
            return true;
          }),
        ),
        'run',
      ),
    // Typed by the builder with its own options only; the global ones (--config, --log-level, --json) are there too.
    handler: (args) => runHandler(context, args as unknown as RunArgs),
  };
}

/**
 * RunFlags' fields that the handler makes of other arguments. Each other field is an argument of the same name and
 * type, passed on as parsed: RunFlags (src/cli/commands/run.ts) is the one list of them, and RunArgs and
 * RUN_FLAGS_AS_PARSED follow it, so a flag added there cannot be left out of what the handler reads or passes on.
 */
type MadeByHandler = 'jobs' | 'dryRun' | 'scope' | keyof MetricsFlags;
type AsParsed = Omit<RunFlags, MadeByHandler>;

/** What the run command's handler reads of its arguments, whether yargs parsed them or fastRunArgs did. */
interface RunArgs extends AsParsed, ScopeArgs, MetricsArgs, ProgressArgs {
  readonly jobs?: readonly (string | number)[];
  readonly logLevel: string;
  readonly dryRun: boolean;
  readonly dev: boolean;
  readonly quiet: boolean;
  readonly progressInterval: number;
}

/** The names of AsParsed's fields: `satisfies` refuses one missing here and one that is not a field. */
const RUN_FLAGS_AS_PARSED = {
  config: true,
  json: true,
  concurrency: true,
  resume: true,
  retryFailed: true,
  fresh: true,
  skipExisting: true,
  limit: true,
  checkpoint: true,
  maxRps: true,
} as const satisfies Record<keyof AsParsed, true>;

async function runHandler(context: CommandContext, args: RunArgs): Promise<void> {
  const { runCommand, progressAndLogger } = await import('./commands/index.js');
  const dryRun = Boolean(args.dryRun || args.dev);
  const { progress, log } = progressAndLogger({ quiet: args.quiet || dryRun, logLevel: args.logLevel, progressIntervalSeconds: args.progressInterval });
  // Each of AsParsed's fields, as RUN_FLAGS_AS_PARSED names them all.
  const asParsed = Object.fromEntries(Object.keys(RUN_FLAGS_AS_PARSED).map((name) => [name, args[name as keyof AsParsed]])) as AsParsed;
  context.exitCode = await runCommand(
    {
      ...asParsed,
      jobs: (args.jobs ?? []).map(String),
      dryRun,
      scope: scopeFromArgs(args),
      ...metricsFromArgs(args),
    },
    log,
    context.out,
    progress,
  );
}

/**
 * `run` as cron lines and scripts type it (`run JOBS… [--config F] [--resume] [--limit N]…`: the command first,
 * jobs by name, the flags below, each once, as `--flag value` or `--flag=value`), parsed without yargs, whose
 * loading and parsing cost every start about 45 ms of CPU (docs/performance.md, start-up). Anything else, or a
 * value yargs would refuse, is left to yargs (undefined): --help, other commands, other flags, short or camelCase
 * spellings, `--no-…`, repeated flags, a value that starts with `-`, a number that is not plain digits, a word
 * that is not a job's name (yargs reads `help` as --help). The arguments are those yargs gives the handler
 * (test/unit/commandLine.test.ts parses each case both ways and compares).
 */
export function fastRunArgs(argv: readonly string[]): RunArgs | undefined {
  if (argv[0] !== 'run') return undefined;
  const args: Record<string, unknown> = {
    logLevel: 'info',
    json: false,
    resume: false,
    retryFailed: false,
    fresh: false,
    skipExisting: false,
    dryRun: false,
    dev: false,
    quiet: false,
    progressInterval: 5,
    metricsHold: 0,
  };
  const jobs: string[] = [];
  const seen = new Set<string>();
  for (let index = 1; index < argv.length; index++) {
    const token = argv[index]!;
    if (!token.startsWith('-')) {
      // Only job names: yargs reads `help` anywhere as --help, `true` after a flag as its value, digits as numbers.
      if (token !== 'all' && !(JOB_NAMES as readonly string[]).includes(token)) return undefined;
      jobs.push(token);
      continue;
    }
    const equals = token.indexOf('=');
    const flag = equals === -1 ? token : token.slice(0, equals);
    if (seen.has(flag)) return undefined;
    seen.add(flag);
    const boolean = FAST_BOOLEANS[flag];
    if (boolean !== undefined) {
      if (equals !== -1) return undefined;
      args[boolean] = true;
      continue;
    }
    const valued = FAST_VALUES[flag];
    if (valued === undefined) return undefined;
    const value = equals === -1 ? argv[++index] : token.slice(equals + 1);
    if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    const [name, kind] = valued;
    if (kind === 'number') {
      if (!/^(?:0|[1-9]\d{0,8})$/.test(value)) return undefined;
      args[name] = Number(value);
    } else if (kind === 'level') {
      if (!(LOG_LEVELS as readonly string[]).includes(value)) return undefined;
      args[name] = value;
    } else args[name] = value;
  }
  if (jobs.length === 0) return undefined;
  args.jobs = jobs;
  const parsed = args as unknown as RunArgs;
  // What the builder's checks refuse, yargs refuses, with its own wording.
  const below = (value: number | undefined, minimum: number) => value !== undefined && value < minimum;
  if (below(parsed.concurrency, 1) || below(parsed.maxRps, 1) || below(parsed.progressInterval, 1)) return undefined;
  if (parsed.progressInterval !== undefined && parsed.progressInterval > MAX_WAIT_SECONDS) return undefined;
  if ((parsed.resume || parsed.skipExisting || parsed.fresh) && parsed.retryFailed) return undefined;
  if (parsed.fresh && parsed.resume) return undefined;
  if (parsed.skipExisting && parsed.limit !== undefined) return undefined;
  return parsed;
}

/** The run's flags without a value, and the argument each sets. */
const FAST_BOOLEANS: Readonly<Record<string, keyof RunArgs>> = {
  '--json': 'json',
  '--resume': 'resume',
  '--retry-failed': 'retryFailed',
  '--fresh': 'fresh',
  '--skip-existing': 'skipExisting',
  '--dry-run': 'dryRun',
  '--dev': 'dev',
  '--quiet': 'quiet',
};

/** The run's flags with a value: the argument each sets, and what its value must be. */
const FAST_VALUES: Readonly<Record<string, readonly [keyof RunArgs, 'string' | 'number' | 'level']>> = {
  '--config': ['config', 'string'],
  '--log-level': ['logLevel', 'level'],
  '--checkpoint': ['checkpoint', 'string'],
  '--concurrency': ['concurrency', 'number'],
  '--limit': ['limit', 'number'],
  '--max-rps': ['maxRps', 'number'],
  '--progress-interval': ['progressInterval', 'number'],
};

/** `run` parsed by fastRunArgs, as the handler to call; undefined: yargs parses the command line. */
export function fastCommand(argv: readonly string[], context: CommandContext): (() => Promise<void>) | undefined {
  const args = fastRunArgs(argv);
  return args === undefined ? undefined : () => runHandler(context, args);
}

function initCommandModule(context: CommandContext): Command {
  return {
    command: 'init',
    describe: "write a config from Mastodon's .env.production (destination left to fill in), or without it the sample to fill in",
    builder: (command) =>
      command
        .option('from-env', {
          type: 'string',
          requiresArg: true,
          describe: "Mastodon's .env.production, e.g. /home/mastodon/live/.env.production (without it: the sample config, every setting to fill in)",
        })
        .option('out', { type: 'string', requiresArg: true, default: DEFAULT_CONFIG_FILE, describe: 'the config file to write (mode 0600)' })
        .option('force', { type: 'boolean', default: false, describe: 'replace an existing file' }),
    handler: async (args) => {
      const { initCommand } = await import('./commands/init.js');
      context.exitCode = await initCommand({ fromEnv: args.fromEnv, out: args.out, force: args.force, json: args.json }, context.out);
    },
  };
}

function checkCommandModule(context: CommandContext): Command {
  return {
    command: 'check',
    describe: 'preflight, writes nothing: database (through SSH if configured), tables, source and destination',
    handler: async (args) => {
      const { checkCommand, createLogger } = await import('./commands/index.js');
      context.exitCode = await checkCommand({ config: args.config, json: args.json }, createLogger(args.logLevel), context.out);
    },
  };
}

function planCommandModule(context: CommandContext): Command {
  return {
    command: 'plan <jobs..>',
    describe: 'count what the database owns and what a copy would cost; contacts no object store',
    builder: (command) =>
      withScopeOptions(
        command
          .positional('jobs', { type: 'string', array: true, describe: `tables to count (${JOB_NAMES.join(', ')}), or all` })
          .option('rate', { type: 'number', requiresArg: true, describe: 'objects per second, for a time estimate' })
          .check((args) => {
            if (args.rate !== undefined && !(Number.isFinite(args.rate) && args.rate > 0)) {
              throw new UsageError(`--rate must be a number of objects per second above 0, not ${asGiven(args.rate, '--rate')}`);
            }
            return true;
          }),
      ),
    handler: async (args) => {
      const { planCommand, createLogger } = await import('./commands/index.js');
      context.exitCode = await planCommand(
        { jobs: (args.jobs ?? []).map(String), config: args.config, json: args.json, scope: scopeFromArgs(args as ScopeArgs), rate: args.rate },
        createLogger(args.logLevel),
        context.out,
      );
    },
  };
}

function manifestCommandModule(context: CommandContext): Command {
  return {
    command: 'manifest <jobs..>',
    describe: 'write the keys the database owns, for rclone --files-from-raw or S3 Batch Operations',
    builder: (command) =>
      withScopeOptions(
        command
          .positional('jobs', { type: 'string', array: true, describe: `tables to list (${JOB_NAMES.join(', ')}), or all` })
          .option('format', {
            requiresArg: true,
            choices: MANIFEST_FORMATS,
            default: 'keys' as ManifestFormat,
            describe: 'keys: source keys; rclone: paths relative to the source root; s3-batch-csv: bucket,url-encoded-key',
          })
          .option('output', { type: 'string', requiresArg: true, alias: 'o', describe: 'write to this file instead of stdout' }),
      ),
    handler: async (args) => {
      const { manifestCommand, createLogger } = await import('./commands/index.js');
      context.exitCode = await manifestCommand(
        { jobs: (args.jobs ?? []).map(String), config: args.config, format: args.format, output: args.output, scope: scopeFromArgs(args as ScopeArgs) },
        createLogger(args.logLevel),
        context.out,
      );
    },
  };
}

function verifyCommandModule(context: CommandContext): Command {
  return {
    command: 'verify <jobs..>',
    describe: 'check that the destination holds every owned object as the source has it (writes nothing unless --repair)',
    builder: (command) =>
      withMetricsOptions(withScopeOptions(withProgressOptions(command)), 'verify')
        .positional('jobs', { type: 'string', array: true, describe: `tables to check (${JOB_NAMES.join(', ')}), or all` })
        .option('sample', {
          type: 'number',
          requiresArg: true,
          describe:
            'by HEAD: check only this percentage of the objects, chosen at random (default 100); by listing: HEAD this share for Content-Type and Cache-Control (default none)',
        })
        .option('by-head', { type: 'boolean', describe: 'HEAD every owned object at both stores (the default up to 2000 objects)' })
        .option('by-listing', {
          type: 'boolean',
          describe: 'list both stores and join with the database, about one request per 1000 objects (the default above 2000)',
        })
        .option('checksum', {
          // No default: yargs takes a default for given, and would find it in conflict with --by-listing.
          type: 'boolean',
          describe:
            'read and hash both sides of each object whose bytes no MD5 compares (a folder on either side, a multipart ETag): reads every such byte twice; by HEAD',
        })
        .conflicts('by-head', 'by-listing')
        .conflicts('checksum', 'by-listing')
        .option('concurrency', { type: 'number', requiresArg: true, describe: 'objects checked at once (default: [sync] concurrency, 8)' })
        .option('max-rps', { type: 'number', requiresArg: true, describe: 'requests per second at most (default: [sync] max_rps, none)' })
        .option('repair', {
          type: 'boolean',
          default: false,
          describe: 'copy again, as run does, exactly the objects found missing or different at the destination',
        })
        .option('acl', {
          type: 'boolean',
          default: false,
          describe: 'also compare who may read each object (GetObjectAcl, a file mode) with what Mastodon sets: one more request per object',
        })
        .check((args) => {
          if (args.sample !== undefined && !(Number.isFinite(args.sample) && args.sample > 0 && args.sample <= 100)) {
            throw new UsageError(`--sample must be a percentage above 0 and at most 100, not ${asGiven(args.sample, '--sample')}`);
          }
          wholeNumber('--concurrency', args.concurrency, 1);
          wholeNumber('--max-rps', args.maxRps, 1);
          return true;
        }),
    handler: async (args) => {
      const { verifyCommand, progressAndLogger } = await import('./commands/index.js');
      const { progress, log } = progressAndLogger({ quiet: args.quiet, logLevel: args.logLevel, progressIntervalSeconds: args.progressInterval });
      context.exitCode = await verifyCommand(
        {
          jobs: (args.jobs ?? []).map(String),
          config: args.config,
          concurrency: args.concurrency,
          samplePercent: args.sample,
          method: args.byHead ? 'head' : args.byListing ? 'listing' : undefined,
          maxRps: args.maxRps,
          json: args.json,
          scope: scopeFromArgs(args as ScopeArgs),
          repair: args.repair,
          acl: args.acl,
          checksum: args.checksum,
          ...metricsFromArgs(args as MetricsArgs),
        },
        log,
        context.out,
        progress,
      );
    },
  };
}

function pruneCommandModule(context: CommandContext): Command {
  return {
    command: 'prune <jobs..>',
    describe: 'list the destination and report (with --delete: remove) the objects no row owns any more',
    builder: (command) =>
      withProgressOptions(command)
        .positional('jobs', { type: 'string', array: true, describe: `tables whose folders to list (${JOB_NAMES.join(', ')}), or all` })
        .option('delete', { type: 'boolean', default: false, describe: 'delete the objects no row owns (default: only list them)' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'only list them, delete nothing (the default; as for run)' })
        .option('max-delete', {
          type: 'string',
          requiresArg: true,
          // No yargs default: given without --delete it is refused, which a default would hide.
          describe: 'with --delete, delete nothing when more objects than this (N, or P% of those listed) are owned by no row (default 10%)',
        })
        .option('manifest', {
          type: 'string',
          requiresArg: true,
          describe: 'with --delete, the JSON lines file of the keys deleted (default ./mastosync-prune-<time>.jsonl)',
        })
        .option('max-rps', { type: 'number', requiresArg: true, describe: 'requests per second at most (default: [sync] max_rps, none)' })
        .check((args) => {
          if (args.dryRun && args.delete) throw new UsageError('--dry-run deletes nothing and --delete deletes the orphans: pass one of them');
          if (args.maxDelete !== undefined && !args.delete)
            throw new UsageError('--max-delete limits what --delete deletes: pass --delete too, or leave --max-delete out');
          parseLimit(String(args.maxDelete ?? DEFAULT_MAX_DELETE));
          wholeNumber('--max-rps', args.maxRps, 1);
          if (args.manifest !== undefined && !args.delete)
            throw new UsageError('--manifest lists what --delete deleted: pass --delete too, or leave --manifest out');
          return true;
        }),
    handler: async (args) => {
      const { pruneCommand, progressAndLogger } = await import('./commands/index.js');
      const { progress, log } = progressAndLogger({ quiet: args.quiet, logLevel: args.logLevel, progressIntervalSeconds: args.progressInterval }, 'listed');
      context.exitCode = await pruneCommand(
        {
          jobs: (args.jobs ?? []).map(String),
          config: args.config,
          delete: args.delete,
          limit: parseLimit(String(args.maxDelete ?? DEFAULT_MAX_DELETE)),
          limitText: String(args.maxDelete ?? DEFAULT_MAX_DELETE),
          manifest: args.manifest,
          maxRps: args.maxRps,
          json: args.json,
        },
        log,
        context.out,
        progress,
      );
    },
  };
}

const DEFAULT_MAX_DELETE = '10%';

/** `--max-delete N` (objects) or `P%` (of the objects listed). */
function parseLimit(text: string): DeleteLimit {
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(text);
  if (percent !== null && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  if (/^\d+$/.test(text)) return { count: Number(text) };
  throw new UsageError(`--max-delete takes a number of objects or a percentage of those listed (e.g. 500 or 10%), not "${text}"`);
}
