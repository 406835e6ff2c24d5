/**
 * `mastosync verify <job..> [--sample PERCENT] [--json]`: checks, without writing anything, that the destination
 * holds every object the database owns with the source's size, Content-Type and (where both are MD5s) ETag.
 * One line per problem (a JSON line each with --json), then a summary. Exit 1 when anything is off.
 */
import type { Logger } from 'pino';
import type { CommandModule } from 'yargs';
import { UsageError } from '../../errors.js';
import { JOB_NAMES } from '../../mastodon/tables.js';
import type { Scope } from '../../db/scope.js';
import type { ObjectStore } from '../../storage/types.js';
import { limitStoreRates } from '../../sync/rateLimit.js';
import { verifyJobs, type Problem, type VerifyJobSummary } from '../../sync/verify.js';
import { EXIT, type CommandContext, type Output } from '../exit.js';
import { createLogger } from '../logger.js';
import { describeScope, scopeFromArgs, withScopeOptions, type ScopeArgs } from '../scope.js';
import { openSession, parseJobs, readConfig } from '../setup.js';
import { createStore } from '../stores.js';
import { asGiven, wholeNumber } from './run.js';

export interface VerifyFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly concurrency?: number;
  readonly samplePercent: number;
  readonly maxRps?: number;
  readonly json: boolean;
  readonly scope: Scope;
}

export async function verifyCommand(flags: VerifyFlags, log: Logger, out: Output): Promise<number> {
  parseJobs(flags.jobs);
  const config = readConfig(flags);
  const concurrency = flags.concurrency ?? config.sync.concurrency;
  const session = await openSession(config, flags.jobs, log);
  const stores: ObjectStore[] = [];
  try {
    const source = createStore(config.source, 'source', concurrency);
    stores.push(source);
    const destination = createStore(config.destination, 'destination', concurrency);
    stores.push(destination);
    // Every request counts against --max-rps, the bucket checks too.
    limitStoreRates(stores, flags.maxRps ?? config.sync.maxRps);
    await Promise.all([source.check(), destination.check()]);

    const stop = new AbortController();
    const onSignal = () => stop.abort();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      log.info({ jobs: session.jobs, source: source.description, destination: destination.description, sample: flags.samplePercent, scope: describeScope(flags.scope) }, 'verify started');
      const jobs = await verifyJobs({
        jobs: session.jobs,
        db: session.db,
        schema: session.schema,
        source,
        destination,
        batchSize: config.database.batchSize,
        concurrency,
        retries: config.sync.retries,
        samplePercent: flags.samplePercent,
        scope: flags.scope,
        onProblem: (problem) => out.stdout(flags.json ? JSON.stringify(problem) : describeProblem(problem)),
        stop: stop.signal,
      });
      const total = totals(jobs);
      if (flags.json) out.stdout(JSON.stringify({ jobs, total, sample: flags.samplePercent, interrupted: stop.signal.aborted }));
      else out.stdout(summaryText(jobs, total, flags.samplePercent));
      if (stop.signal.aborted) return EXIT.interrupted;
      return total.missing + total.mismatched + total.errors > 0 ? EXIT.failures : EXIT.ok;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } finally {
    for (const store of stores) store.close();
    await session.db.close();
  }
}

export function describeProblem(problem: Problem): string {
  const where = `${problem.key} (${problem.job} ${problem.id})`;
  switch (problem.problem) {
    case 'missing':
      return `${'missing'.padEnd(20)} ${where}: not at the destination (the source has ${problem.source})`;
    case 'error':
      return `${'unchecked'.padEnd(20)} ${where}: ${problem.error}`;
    default:
      return `${`${problem.problem} differs`.padEnd(20)} ${where}: ${problem.expected} at the source, ${problem.actual} at the destination`;
  }
}

function totals(jobs: readonly VerifyJobSummary[]): Omit<VerifyJobSummary, 'job'> {
  const total = { rows: 0, objects: 0, checked: 0, ok: 0, missing: 0, mismatched: 0, missingAtSource: 0, errors: 0 };
  for (const job of jobs) for (const field of Object.keys(total) as (keyof typeof total)[]) total[field] += job[field];
  return total;
}

function summaryText(jobs: readonly VerifyJobSummary[], total: Omit<VerifyJobSummary, 'job'>, samplePercent: number): string {
  const columns = ['objects', 'checked', 'ok', 'missing', 'mismatched', 'missingAtSource', 'errors'] as const;
  const header = ['job', ...columns.map((column) => (column === 'missingAtSource' ? 'missing at source' : column))];
  const rows = [header, ...jobs.map((job) => [job.job, ...columns.map((column) => String(job[column]))]), ['total', ...columns.map((column) => String(total[column]))]];
  const widths = header.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  const table = rows.map((row) => row.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join('  '));
  const problems = total.missing + total.mismatched + total.errors;
  const sampled = samplePercent < 100 ? ` (a ${samplePercent}% sample)` : '';
  const verdict =
    problems === 0
      ? `verify: all ${total.checked} checked objects match the source${sampled}`
      : `verify: ${problems} of ${total.checked} checked objects are off${sampled}: copy them again with mastosync run (a run without --resume: the checkpoint calls them done), then verify again`;
  return [...table, verdict].join('\n');
}

/** `verify <jobs..>` for the CLI (src/cli/main.ts). */
export function verifyCommandModule(context: CommandContext): CommandModule<object, any> {
  return {
    command: 'verify <jobs..>',
    describe: 'check that the destination holds every owned object with the source size and Content-Type (writes nothing)',
    builder: (command) =>
      withScopeOptions(command)
        .positional('jobs', { type: 'string', array: true, describe: `tables to check (${JOB_NAMES.join(', ')}), or all` })
        .option('sample', { type: 'number', requiresArg: true, default: 100, describe: 'check only this percentage of the objects, chosen at random' })
        .option('concurrency', { type: 'number', requiresArg: true, describe: 'objects checked at once (default: [sync] concurrency, 8)' })
        .option('max-rps', { type: 'number', requiresArg: true, describe: 'requests per second at most (default: [sync] max_rps, none)' })
        .check((args) => {
          if (!(Number.isFinite(args.sample) && args.sample > 0 && args.sample <= 100)) {
            throw new UsageError(`--sample must be a percentage above 0 and at most 100, not ${asGiven(args.sample)}`);
          }
          wholeNumber('--concurrency', args.concurrency, 1);
          wholeNumber('--max-rps', args.maxRps, 1);
          return true;
        }),
    handler: async (args) => {
      context.exitCode = await verifyCommand(
        {
          jobs: (args.jobs ?? []).map(String),
          config: args.config,
          concurrency: args.concurrency,
          samplePercent: args.sample,
          maxRps: args.maxRps,
          json: args.json,
          scope: scopeFromArgs(args as ScopeArgs),
        },
        createLogger(args.logLevel),
        context.out,
      );
    },
  };
}
