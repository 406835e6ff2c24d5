/**
 * The command line. Every command returns its exit code; a UsageError (or a yargs parse error) becomes one
 * line on stderr and exit 2.
 */
import yargs from 'yargs';
import { UsageError, describeError } from '../errors.js';
import { JOB_NAMES } from '../mastodon/tables.js';
import { runCommand } from './commands/run.js';
import { EXIT, processOutput, type Output } from './exit.js';
import { LOG_LEVELS, createLogger } from './logger.js';

const JOBS_HELP = `jobs: ${JOB_NAMES.join(', ')}, or all`;

export async function main(argv: string[], out: Output = processOutput): Promise<number> {
  let exitCode: number = EXIT.ok;
  const parser = yargs(argv)
    .scriptName('mastosync')
    .usage('$0 <command> [options]\n\nCopies a Mastodon server\'s media between object stores, exactly as its database owns it.')
    .option('config', { type: 'string', describe: 'config file (default: $MASTOSYNC_CONFIG, else ./mastosync.toml)', global: true })
    .option('log-level', { type: 'string', choices: LOG_LEVELS, default: 'info', describe: 'JSON log level on stderr', global: true })
    .option('json', { type: 'boolean', default: false, describe: 'print the summary as JSON on stdout', global: true })
    .command(
      'run <jobs..>',
      `copy what the database owns (${JOBS_HELP})`,
      (command) =>
        command
          .positional('jobs', { type: 'string', array: true, describe: JOBS_HELP })
          .option('concurrency', { type: 'number', describe: 'copies in flight (default: [sync] concurrency, 8)' })
          .option('resume', { type: 'boolean', default: false, describe: 'skip what the checkpoint says is done; retry what failed' })
          .option('dry-run', { type: 'boolean', default: false, describe: 'list source -> destination keys and counts; write nothing' })
          .option('dev', { type: 'boolean', default: false, describe: 'alias of --dry-run' })
          .option('limit', { type: 'number', describe: 'at most N rows per job' })
          .option('checkpoint', { type: 'string', describe: 'checkpoint file (default: [sync] checkpoint)' })
          .check((args) => {
            if (args.concurrency !== undefined && !(Number.isInteger(args.concurrency) && args.concurrency >= 1)) {
              throw new UsageError(`--concurrency must be a whole number of at least 1, not ${args.concurrency}`);
            }
            if (args.limit !== undefined && !(Number.isInteger(args.limit) && args.limit >= 0)) {
              throw new UsageError(`--limit must be a whole number, not ${args.limit}`);
            }
            return true;
          }),
      async (args) => {
        const log = createLogger(args.logLevel as string);
        exitCode = await runCommand(
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
          log,
          out,
        );
      },
    )
    .demandCommand(1, 'name a command: run')
    .strict()
    .help()
    .version()
    .exitProcess(false)
    .fail((message, error) => {
      throw error ?? new UsageError(message);
    });

  try {
    await parser.parseAsync();
    return exitCode;
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr(`mastosync: ${error.message}`);
      return EXIT.usage;
    }
    out.stderr(`mastosync: unexpected error: ${describeError(error)}`);
    if (process.env.MASTOSYNC_DEBUG) out.stderr(String((error as Error).stack));
    return EXIT.usage;
  }
}
