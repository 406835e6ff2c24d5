/** `mastosync run <job..>`: copy what the database owns, or list it with --dry-run. */
import type { Logger } from 'pino';
import { JOB_NAMES } from '../../mastodon/tables.js';
import { UsageError } from '../../errors.js';
import { CheckpointWriter, EMPTY_RESUME_STATE, loadCheckpoint } from '../../sync/checkpoint.js';
import { runJobs } from '../../sync/run.js';
import type { ObjectStore } from '../../storage/types.js';
import { openSession, parseJobs, readConfig } from '../setup.js';
import { createStore, samePlace } from '../stores.js';
import { reportJson, reportText } from '../summary.js';
import { EXIT, type CommandContext, type Output } from '../exit.js';
import { createLogger } from '../logger.js';
import type { CommandModule } from 'yargs';

export interface RunFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly concurrency?: number;
  readonly resume: boolean;
  readonly dryRun: boolean;
  readonly limit?: number;
  readonly checkpoint?: string;
  readonly json: boolean;
}

export async function runCommand(flags: RunFlags, log: Logger, out: Output): Promise<number> {
  parseJobs(flags.jobs);
  const config = readConfig(flags);
  const concurrency = flags.concurrency ?? config.sync.concurrency;
  const checkpointPath = flags.checkpoint ?? config.sync.checkpoint;
  if (samePlace(config.source, config.destination)) {
    throw new UsageError(`[source] and [destination] are the same place (${config.origin}): point [destination] at the new bucket or folder`);
  }
  const stores: ObjectStore[] = [];
  const session = await openSession(config, flags.jobs, log);
  try {
    const source = createStore(config.source, 'source', concurrency);
    stores.push(source);
    const destination = createStore(config.destination, 'destination', concurrency);
    stores.push(destination);
    await Promise.all([source.check(), destination.check()]);

    const identity = { source: source.description, destination: destination.description };
    const resume = flags.resume ? await loadCheckpoint(checkpointPath, identity) : EMPTY_RESUME_STATE;
    const checkpoint = flags.dryRun
      ? undefined
      : CheckpointWriter.open(checkpointPath, { run: new Date().toISOString(), mode: flags.resume ? 'resume' : 'fresh', ...identity });

    const stop = new AbortController();
    const abort = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      if (stop.signal.aborted) {
        log.warn({ signal }, 'second signal: aborting the copies in flight');
        abort.abort();
        return;
      }
      log.warn({ signal }, 'stopping: no new copies; finishing those in flight (signal again to abort them)');
      stop.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      log.info({ jobs: session.jobs, source: source.description, destination: destination.description, database: session.db.description, dryRun: flags.dryRun }, 'run started');
      for (const note of session.notes) log.info(note);
      const summary = await runJobs({
        jobs: session.jobs,
        db: session.db,
        schema: session.schema,
        source,
        destination,
        batchSize: config.database.batchSize,
        concurrency,
        limit: flags.limit,
        acl: config.destination.type === 's3' ? config.destination.acl : 'public-read',
        storageClass: config.destination.storageClass,
        retries: config.sync.retries,
        resume,
        checkpoint,
        dryRun: flags.dryRun,
        onPlan: (object, from, to) =>
          out.stdout(flags.json ? JSON.stringify({ job: object.job, id: object.id, source: from, destination: to }) : `${from} -> ${to}`),
        stop: stop.signal,
        abort: abort.signal,
        log,
      });
      const report = { jobs: summary.jobs, interrupted: summary.interrupted, dryRun: flags.dryRun, notes: session.notes };
      out.stdout(flags.json ? reportJson(report) : reportText(report));
      if (summary.interrupted) return EXIT.interrupted;
      return summary.jobs.some((job) => job.failed > 0) ? EXIT.failures : EXIT.ok;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      checkpoint?.close();
    }
  } finally {
    for (const store of stores) store.close();
    await session.db.close();
  }
}

/** `run <jobs..>` for the CLI (src/cli/main.ts). */
export function runCommandModule(context: CommandContext): CommandModule<object, any> {
  return {
    command: 'run <jobs..>',
    describe: `copy what the database owns (jobs: ${JOB_NAMES.join(', ')}, or all)`,
    builder: (command) =>
      command
        .positional('jobs', { type: 'string', array: true, describe: 'tables to copy, or all' })
        .option('concurrency', { type: 'number', describe: 'copies in flight (default: [sync] concurrency, 8)' })
        .option('resume', { type: 'boolean', default: false, describe: 'skip what the checkpoint says is done; retry what failed' })
        .option('dry-run', { type: 'boolean', default: false, describe: 'list source -> destination keys and counts; write nothing' })
        .option('dev', { type: 'boolean', default: false, describe: 'alias of --dry-run' })
        .option('limit', { type: 'number', describe: 'at most N rows per job' })
        .option('checkpoint', { type: 'string', describe: 'checkpoint file (default: [sync] checkpoint)' })
        .check((args) => {
          wholeNumber('--concurrency', args.concurrency, 1);
          wholeNumber('--limit', args.limit, 0);
          return true;
        }),
    handler: async (args) => {
      context.exitCode = await runCommand(
        {
          jobs: (args.jobs ?? []).map(String),
          config: args.config,
          concurrency: args.concurrency,
          resume: args.resume,
          dryRun: args.dryRun || args.dev,
          limit: args.limit,
          checkpoint: args.checkpoint,
          json: args.json,
        },
        createLogger(args.logLevel),
        context.out,
      );
    },
  };
}

/** Flag values that must be whole numbers of at least `minimum` (yargs only checks they are numbers). */
export function wholeNumber(flag: string, value: unknown, minimum: number): void {
  if (value !== undefined && !(Number.isInteger(value) && (value as number) >= minimum)) {
    throw new UsageError(`${flag} must be a whole number of at least ${minimum}, not ${String(value)}`);
  }
}
