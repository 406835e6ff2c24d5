/**
 * What every command that touches the database needs: the config, a database session and its schema, and
 * the jobs to run. Each step fails with a UsageError that names what to fix, before anything is written.
 */
import type { Logger } from '../log.js';
import { connectDatabase, type Database } from '../db/connection.js';
import { grantFor, hasTable, newerSchemaWarning, probeSchema, unreadableTables, type Schema } from '../db/schema.js';
import { UsageError } from '../errors.js';
import { JOB_NAMES, isJobName, type JobName } from '../mastodon/tables.js';
import { loadConfig, locateConfig, type Config } from './config.js';
import { unlessStopped } from './interrupt.js';

export interface CommonFlags {
  readonly config?: string;
}

/** The config; which variables overrode the file (or were empty against it) is a line each at start. */
export function readConfig(flags: CommonFlags, log: Logger): Config {
  const config = loadConfig(locateConfig(flags.config, process.env), process.env);
  for (const notice of config.notices) log.info(notice);
  for (const warning of config.warnings) log.warn(warning);
  return config;
}

/** Parses job names (`all` or table names); unknown names are a usage error. */
export function parseJobs(names: readonly string[]): { jobs: JobName[]; all: boolean } {
  if (names.length === 0) throw new UsageError(`name at least one job: ${JOB_NAMES.join(', ')}, or all`);
  if (names.includes('all')) return { jobs: [...JOB_NAMES], all: true };
  const jobs: JobName[] = [];
  for (const name of names) {
    if (!isJobName(name)) throw new UsageError(`unknown job "${name}": choose from ${JOB_NAMES.join(', ')}, or all`);
    if (!jobs.includes(name)) jobs.push(name);
  }
  return { jobs, all: false };
}

export interface Session {
  readonly db: Database;
  readonly schema: Schema;
  /** The jobs whose tables this Mastodon version has. */
  readonly jobs: JobName[];
  /** Jobs skipped under `all` because their table does not exist, with why. */
  readonly notes: string[];
}

/**
 * How long the start waits for a database or store that does not answer yet (as long as a run waits for them to come
 * back); then exit 75. The integration tests shorten it through the environment, as they run the real CLI.
 */
export function startPatienceMs(): number {
  return patienceForTests('MASTOSYNC_TEST_START_PATIENCE_MS') ?? 5 * 60_000;
}

/**
 * How long a run waits for a store that answers nothing, or fails every object, before it stops (src/sync/storeWatch.ts,
 * src/sync/failureStreak.ts): undefined for the 5 minutes. The integration tests shorten it as the start's.
 */
export function runPatienceMs(): number | undefined {
  return patienceForTests('MASTOSYNC_TEST_STORE_PATIENCE_MS');
}

/**
 * How long a resumed run's look at the destination waits before asking again for objects it did not find
 * (src/sync/destinationCheck.ts): undefined for the 2 s. The integration tests shorten it as the start's patience.
 */
export function secondLookMs(): number | undefined {
  return patienceForTests('MASTOSYNC_TEST_SECOND_LOOK_MS');
}

function patienceForTests(variable: string): number | undefined {
  const value = process.env[variable];
  const ms = Number(value);
  return value !== undefined && value !== '' && Number.isFinite(ms) && ms >= 0 ? ms : undefined;
}

/** openSession until `stop` aborts (a signal), then the stop's reason at once; a session that opens late is closed. */
export function openSessionUnlessStopped(config: Config, jobNames: readonly string[], log: Logger, stop: AbortSignal, refusing?: Refusing): Promise<Session> {
  return unlessStopped(openSession(config, jobNames, log, stop, refusing), stop, (late) => late.db.close());
}

/**
 * A command that must not go on where the database has attachments mastosync does not know (`prune --delete`: their
 * files look like orphans), named in the one line that refuses it.
 */
interface Refusing {
  readonly unknownAttachments: string;
}

/**
 * `signal` stops the wait for a database that does not answer yet, when the start has failed for good elsewhere or a
 * signal came; aborted while the schema is probed, it closes the session, whose query may never be answered (a
 * database that hangs): open, its connection would keep the process alive long after its last line.
 */
export async function openSession(config: Config, jobNames: readonly string[], log: Logger, signal?: AbortSignal, refusing?: Refusing): Promise<Session> {
  const { jobs, all } = parseJobs(jobNames);
  const db = await connectDatabase(config.database, log, { startPatienceMs: startPatienceMs(), startSignal: signal });
  const closeOnAbort = () => void db.close();
  signal?.addEventListener('abort', closeOnAbort, { once: true });
  try {
    const schema = await probeSchema(db);
    // Every Mastodon version has these two: without both, the database is not Mastodon's, whatever job was named.
    if (!hasTable(schema, 'accounts') && !hasTable(schema, 'media_attachments')) {
      throw new UsageError(`${db.description} has no accounts or media_attachments table: is [database] the Mastodon database?`);
    }
    const notes: string[] = [];
    const present = jobs.filter((job) => {
      if (hasTable(schema, job)) return true;
      if (!all) {
        throw new UsageError(`table ${job} does not exist in ${db.description}: this Mastodon version has no ${job}; leave the job out`);
      }
      notes.push(`${job}: skipped, this Mastodon version has no ${job} table`);
      return false;
    });
    const refused = unreadableTables(schema, present);
    if (refused.length > 0) {
      throw new UsageError(
        `role ${schema.role} may not read ${refused.join(', ')} in ${db.description}: ${grantFor(schema, refused)} (docs/ssh.md lists what mastosync reads)`,
      );
    }
    if (refusing !== undefined && schema.unknownAttachments.length > 0) {
      throw new UsageError(
        `${refusing.unknownAttachments}: ${db.description} has attachment columns this version of mastosync does not know (${schema.unknownAttachments.join(', ')}), whose files it cannot tell from orphans; nothing deleted. Use a mastosync that knows them`,
      );
    }
    // A newer Mastodon's database: one line each run (cron mails it), never a stop, as what mastosync knows still copies.
    const newer = newerSchemaWarning(schema);
    if (newer !== undefined) log.warn(newer);
    return { db, schema, jobs: present, notes };
  } catch (error) {
    await db.close();
    throw error;
  } finally {
    signal?.removeEventListener('abort', closeOnAbort);
  }
}
