/**
 * Checks and groups of flags that several commands share. Kept apart from the commands (and from prom-client,
 * which src/cli/metrics.ts loads) so that a command imports only what it parses.
 */
import type { Argv } from 'yargs';
import type { Logger } from '../log.js';
import { UsageError } from '../errors.js';
import type { Metrics } from './metrics.js';

/** The config file `mastosync init` writes and every command reads when neither --config nor $MASTOSYNC_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = 'mastosync.toml';

/** --log-level's choices: pino's levels (src/cli/logger.ts), named here so that parsing the flag loads no logger. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Flag values that must be whole numbers of at least `minimum` (yargs only checks they are numbers). */
export function wholeNumber(flag: string, value: unknown, minimum: number, maximum = Number.MAX_SAFE_INTEGER): void {
  if (value !== undefined && !(Number.isInteger(value) && (value as number) >= minimum && (value as number) <= maximum)) {
    const range = maximum === Number.MAX_SAFE_INTEGER ? `of at least ${minimum}` : `from ${minimum} to ${maximum}`;
    throw new UsageError(`${flag} must be a whole number ${range}, not ${asGiven(value, flag)}`);
  }
}

/**
 * The most seconds a wait may be: Node's timers hold at most 2^31 - 1 ms (24.8 days) and fire at once for more, so a
 * longer --progress-interval printed a line every millisecond and a longer stop_grace stopped copies at once.
 */
export const MAX_WAIT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/**
 * A number flag's value for a message. yargs has turned a word into NaN, so the word is read from the command line
 * as typed (`--concurrency abc` or `--concurrency=abc`, the last one given).
 */
export function asGiven(value: unknown, flag: string, argv: readonly string[] = process.argv.slice(2)): string {
  if (!Number.isNaN(value)) return String(value);
  for (let index = argv.length - 1; index >= 0; index--) {
    const argument = argv[index]!;
    if (argument.startsWith(`${flag}=`)) return JSON.stringify(argument.slice(flag.length + 1));
    if (argument === flag && index + 1 < argv.length) return JSON.stringify(argv[index + 1]);
  }
  return 'a word';
}

export interface MetricsAddress {
  readonly host: string;
  readonly port: number;
}

/** `HOST:PORT`, `[v6]:PORT` or `PORT` alone (then loopback: metrics say what a server holds, nobody else's business). */
export function parseMetricsAddress(text: string): MetricsAddress {
  const match = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(text.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) throw new UsageError(`--metrics takes HOST:PORT or PORT (e.g. 127.0.0.1:9464 or 9464), not "${text}"`);
  const host = match[1] ?? match[2];
  return { host: host === undefined || host === '' ? '127.0.0.1' : host, port };
}

export interface MetricsArgs {
  readonly metrics?: string;
  readonly metricsHold?: number;
}

/** What the command needs of --metrics and --metrics-hold once parsed. */
export interface MetricsFlags {
  /** Serve Prometheus metrics and /status there (--metrics). */
  readonly metrics?: MetricsAddress;
  /** How long the metrics stay served after the command (--metrics-hold), so a last scrape sees the final counts. */
  readonly metricsHoldMs?: number;
}

/** --metrics and --metrics-hold, for a command that serves its counters while it works (`run`, `verify`). */
export function withMetricsOptions<T>(command: Argv<T>, name: 'run' | 'verify'): Argv<T & MetricsArgs> {
  return command
    .option('metrics', {
      type: 'string',
      requiresArg: true,
      describe: 'serve Prometheus /metrics and JSON /status at HOST:PORT (PORT alone: 127.0.0.1)',
    })
    .option('metrics-hold', {
      type: 'number',
      requiresArg: true,
      default: 0,
      describe: `seconds to keep serving metrics after the ${name}, for a last scrape (a signal ends the wait)`,
    })
    .check((args) => {
      wholeNumber('--metrics-hold', args.metricsHold, 0, MAX_WAIT_SECONDS);
      if ((args.metricsHold as number) > 0 && args.metrics === undefined) {
        throw new UsageError('--metrics-hold keeps --metrics served: pass --metrics HOST:PORT too');
      }
      return true;
    }) as Argv<T & MetricsArgs>;
}

export interface ProgressArgs {
  readonly quiet?: boolean;
  readonly progressInterval?: number;
}

/** --quiet and --progress-interval, for the commands that show their progress on stderr. */
export function withProgressOptions<T>(command: Argv<T>): Argv<T & ProgressArgs> {
  return command
    .option('quiet', {
      type: 'boolean',
      default: false,
      describe: 'no progress display (on a terminal) or progress lines (elsewhere); so does a --log-level above info',
    })
    .option('progress-interval', {
      type: 'number',
      requiresArg: true,
      default: 5,
      describe: 'seconds between JSON progress lines when stderr is not a terminal',
    })
    .check((args) => {
      wholeNumber('--progress-interval', args.progressInterval, 1, MAX_WAIT_SECONDS);
      return true;
    }) as Argv<T & ProgressArgs>;
}

export function metricsFromArgs(args: MetricsArgs): MetricsFlags {
  return {
    metrics: args.metrics === undefined ? undefined : parseMetricsAddress(args.metrics),
    metricsHoldMs: (args.metricsHold ?? 0) * 1000,
  };
}

/**
 * The metrics server when --metrics is given, else nothing. prom-client (src/cli/metrics.ts) is loaded only then:
 * every other run would pay for loading it at its start.
 */
export async function startMetrics(command: 'run' | 'verify', address: MetricsAddress | undefined, log: Logger): Promise<Metrics | undefined> {
  if (address === undefined) return undefined;
  const { serveMetrics } = await import('./metrics.js');
  return serveMetrics(command, address, log);
}
