/**
 * The scope flags every command that reads rows shares (run, plan, manifest, verify): add them to a command
 * with `withScopeOptions`, and turn the parsed arguments into a Scope with `scopeFromArgs`.
 */
import type { Argv } from 'yargs';
import type { RemoteCacheSkip, Scope, Shard } from '../db/scope.js';
import { UsageError } from '../errors.js';
import { describeShard, parseShard, shardFromEnvironment } from '../sync/shard.js';

export interface ScopeArgs {
  readonly since?: string;
  readonly until?: string;
  readonly minId?: string;
  readonly maxId?: string;
  readonly shard?: string;
  readonly shards?: number;
  readonly skipRemoteCache?: string;
}

export function withScopeOptions<T>(command: Argv<T>): Argv<T & ScopeArgs> {
  return command
    .option('since', {
      type: 'string',
      requiresArg: true,
      describe: 'only attachments whose own *_updated_at is at or after this UTC time (2024-05-01T12:00:00Z; no zone = UTC)',
    })
    .option('until', { type: 'string', requiresArg: true, describe: 'only attachments whose *_updated_at is before this UTC time' })
    .option('min-id', { type: 'string', requiresArg: true, describe: 'only rows with id >= this' })
    .option('max-id', { type: 'string', requiresArg: true, describe: 'only rows with id <= this' })
    .option('shard', { type: 'string', requiresArg: true, describe: 'I/N: only rows with id ≡ I mod N (I from 0), for N processes at once' })
    .option('shards', { type: 'number', requiresArg: true, describe: "N shards, this process's index from $JOB_COMPLETION_INDEX (Kubernetes Indexed Job)" })
    .option('skip-remote-cache', {
      type: 'string',
      describe: 'leave out remote media under cache/ (avatars, headers and emoji stay; =all leaves them out too)',
    }) as Argv<T & ScopeArgs>;
}

export function scopeFromArgs(args: ScopeArgs, env: NodeJS.ProcessEnv = process.env): Scope {
  const since = args.since === undefined ? undefined : parseInstant('--since', args.since);
  const until = args.until === undefined ? undefined : parseInstant('--until', args.until);
  if (since !== undefined && until !== undefined && since >= until) {
    throw new UsageError(`--since ${since} is not before --until ${until}: nothing would be in scope`);
  }
  const minId = args.minId === undefined ? undefined : parseId('--min-id', args.minId);
  const maxId = args.maxId === undefined ? undefined : parseId('--max-id', args.maxId);
  if (minId !== undefined && maxId !== undefined && BigInt(minId) > BigInt(maxId)) {
    throw new UsageError(`--min-id ${minId} is above --max-id ${maxId}: nothing would be in scope`);
  }
  return {
    ...(since !== undefined && { since }),
    ...(until !== undefined && { until }),
    ...(minId !== undefined && { minId }),
    ...(maxId !== undefined && { maxId }),
    ...shardOf(args, env),
    ...(args.skipRemoteCache !== undefined && { skipRemoteCache: parseRemoteCacheSkip(args.skipRemoteCache) }),
  };
}

/** One line for logs and reports; undefined for the whole database. */
export function describeScope(scope: Scope): string | undefined {
  const parts: string[] = [];
  if (scope.minId !== undefined || scope.maxId !== undefined) parts.push(`ids ${scope.minId ?? '…'} to ${scope.maxId ?? '…'}`);
  if (scope.since !== undefined) parts.push(`attachments updated since ${scope.since}`);
  if (scope.until !== undefined) parts.push(`attachments updated before ${scope.until}`);
  if (scope.shard !== undefined) parts.push(describeShard(scope.shard));
  if (scope.skipRemoteCache === 'media') parts.push('without remote media and preview cards under cache/');
  if (scope.skipRemoteCache === 'all') parts.push('without anything under cache/');
  return parts.length > 0 ? parts.join(', ') : undefined;
}

/**
 * The flags that give `scope` again (scopeFromArgs of them is `scope`), for a command the admin is told to run: the
 * shard as --shard I/N, which needs no $JOB_COMPLETION_INDEX where the command is pasted.
 */
export function scopeFlags(scope: Scope): string[] {
  return [
    ...(scope.since !== undefined ? ['--since', scope.since] : []),
    ...(scope.until !== undefined ? ['--until', scope.until] : []),
    ...(scope.minId !== undefined ? ['--min-id', scope.minId] : []),
    ...(scope.maxId !== undefined ? ['--max-id', scope.maxId] : []),
    ...(scope.shard !== undefined ? ['--shard', `${scope.shard.index}/${scope.shard.count}`] : []),
    ...(scope.skipRemoteCache === 'media' ? ['--skip-remote-cache'] : scope.skipRemoteCache === 'all' ? ['--skip-remote-cache=all'] : []),
  ];
}

/** The warning --skip-remote-cache must come with: Mastodon will not fill the gap by itself. */
export const REMOTE_CACHE_WARNING =
  '--skip-remote-cache: Mastodon does not fetch skipped remote media again while their rows still name a file, ' +
  'so they will show as broken on the new storage unless `tootctl media remove` (and `tootctl preview_cards remove`) cleared those rows first';

function shardOf(args: ScopeArgs, env: NodeJS.ProcessEnv): { shard?: Shard } {
  if (args.shard !== undefined && args.shards !== undefined) throw new UsageError('pass --shard I/N or --shards N, not both');
  if (args.shard !== undefined) return { shard: parseShard(args.shard) };
  if (args.shards !== undefined) return { shard: shardFromEnvironment(args.shards, env) };
  return {};
}

function parseRemoteCacheSkip(value: string): RemoteCacheSkip {
  if (value === '' || value === 'true' || value === 'media') return 'media';
  if (value === 'all') return 'all';
  throw new UsageError(`--skip-remote-cache takes no value (remote media) or =all (also avatars, headers and emoji), not "${value}"`);
}

function parseId(flag: string, value: string): string {
  if (!/^-?\d{1,19}$/.test(value.trim())) throw new UsageError(`${flag} must be a row id (a whole number), not "${value}"`);
  return BigInt(value.trim()).toString();
}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const DATE_TIME = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+-]\d{2}:?\d{2})?$/i;

/** An ISO date or date-time; without a zone it is UTC, as Mastodon's timestamps are. */
export function parseInstant(flag: string, text: string): string {
  const trimmed = text.trim();
  const match = DATE_TIME.exec(trimmed);
  const normalised = DATE.test(trimmed) ? `${trimmed}T00:00:00Z` : match ? `${match[1]}T${match[2]}${match[3] ?? 'Z'}` : undefined;
  const time = normalised === undefined ? Number.NaN : Date.parse(normalised);
  if (Number.isNaN(time)) {
    throw new UsageError(`${flag} must be a UTC date or time like 2024-05-01 or 2024-05-01T12:00:00Z, not "${text}"`);
  }
  return new Date(time).toISOString();
}
