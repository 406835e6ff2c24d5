/**
 * The command line. Each command lives in src/cli/commands/ as a yargs command module whose handler sets
 * the exit code; a UsageError (or a yargs parse error) becomes one line on stderr and exit 2, an UnavailableError (a
 * database or store that did not answer at the start) one line and exit 75, an InterruptedError (a signal during
 * a run's start) one line and exit 130, any other error
 * one line and exit 1. The commands' flags and help are in ./commandLine.ts; what each does is loaded when it runs.
 */
import type { Argv } from 'yargs';
import { InterruptedError, UnavailableError, UsageError, brokenBundle, describeError } from '../errors.js';
import { commandModules, fastCommand } from './commandLine.js';
import { EXIT, guardPipes, processOutput, type CommandContext, type Output } from './exit.js';
import { versionText } from './build.js';
import { LOG_LEVELS } from './flags.js';
import { guardUnsettled } from './unsettled.js';
import { JOB_NAMES } from '../mastodon/tables.js';

export async function main(argv: string[], out: Output = processOutput): Promise<number> {
  if (out === processOutput) guardPipes();
  const context: CommandContext = { out, exitCode: EXIT.ok };
  // yargs reads `--limit=` or `--limit ""` as 0: an empty $N in a cron line would quietly change the run. (Not when the
  // shell asks for completions: the word being completed, after `--log-level `, is empty until typed.)
  const emptied = argv[0] === COMPLETIONS_KEY ? undefined : emptyValue(argv);
  if (emptied !== undefined) {
    out.stderr(`mastosync: ${emptied} is given an empty value: give it one, or leave it out`);
    return EXIT.usage;
  }
  // `completion bash|zsh`: yargs chooses the script by $SHELL (and $ZSH_NAME) when the parser is made; the shell
  // named on the command line wins over the one the admin happens to run.
  if (argv[0] === 'completion') {
    const shell = argv[1];
    if (argv.length > 2 || (shell !== undefined && !COMPLETION_SHELLS.includes(shell))) {
      out.stderr(`mastosync: completion takes ${COMPLETION_SHELLS.join(' or ')} (or nothing: the shell in $SHELL)`);
      return EXIT.usage;
    }
    if (shell !== undefined) return withShell(shell, () => main(['completion'], out));
  }
  const modules = commandModules(context);
  const commandNames = modules.map((module) => String(module.command).split(' ')[0]!);
  // Named as typed (`mastosync run`), whatever options come before the command.
  const command = `mastosync ${argv.find((argument) => commandNames.includes(argument)) ?? ''}`.trim();
  const settled = out === processOutput ? guardUnsettled(out, command) : undefined;
  try {
    // `run` as cron types it skips yargs, which loads only for the rest (commandLine.ts, fastRunArgs).
    const fast = fastCommand(argv, context);
    if (fast !== undefined) await fast();
    else await (await yargsParser(argv, modules, commandNames, versionText())).parseAsync();
    return context.exitCode;
  } catch (error) {
    if (error instanceof UsageError) {
      out.stderr(`mastosync: ${error.message}`);
      return EXIT.usage;
    }
    if (error instanceof UnavailableError) {
      out.stderr(`mastosync: ${error.message}`);
      return EXIT.unavailable;
    }
    if (error instanceof InterruptedError) {
      out.stderr(`mastosync: ${error.message}`);
      return EXIT.interrupted;
    }
    // Nothing below can do without the chunk: the one line is the chunk's, not whatever failed for want of it.
    const broken = brokenBundle(error);
    if (broken !== undefined) {
      out.stderr(`mastosync: ${broken.message}`);
      return EXIT.usage;
    }
    // The classes below come from the modules of the command that threw them, loaded by then; importing them here
    // up front would load storage and sync code for --help.
    const [{ CheckpointBusyError }, { FatalStoreError }, { ListingFailedError, ListingOrderError }, { DatabaseLostError }] = await Promise.all([
      import('../sync/lock.js'),
      import('../storage/errors.js'),
      import('../sync/listingJoin.js'),
      import('../db/connection.js'),
    ]);
    if (error instanceof CheckpointBusyError) {
      out.stderr(`mastosync: ${error.message}`);
      return EXIT.busy;
    }
    if (error instanceof FatalStoreError || error instanceof ListingOrderError || error instanceof ListingFailedError || error instanceof DatabaseLostError) {
      // What no retry can fix, met where no run records it (prune's deletes, say): the line run prints, not a class name.
      out.stderr(`mastosync: stopped: ${error.message}`);
      return EXIT.failures;
    }
    // Not a usage problem: the run may have written part of its work (all of it recorded in the checkpoint).
    out.stderr(`mastosync: error: ${describeError(error)}`);
    if (process.env.MASTOSYNC_DEBUG) out.stderr(String((error as Error).stack));
    return EXIT.failures;
  } finally {
    settled?.();
  }
}

/**
 * The whole command line through yargs: every command, --help, --version (`version`: main gives the build's,
 * src/cli/build.ts), completion, and its errors.
 */
export async function yargsParser(argv: string[], modules: ReturnType<typeof commandModules>, commandNames: readonly string[], version: string): Promise<Argv> {
  const { default: yargs } = await import('yargs');
  let parser: Argv = yargs(argv)
    .scriptName('mastosync')
    .usage("$0 <command> [options]\n\nCopies a Mastodon server's media between object stores, exactly as its database owns it.")
    .option('config', { type: 'string', requiresArg: true, describe: 'config file (default: $MASTOSYNC_CONFIG, else ./mastosync.toml)', global: true })
    .option('log-level', { type: 'string', requiresArg: true, choices: LOG_LEVELS, default: 'info', describe: 'JSON log level on stderr', global: true })
    .option('json', { type: 'boolean', default: false, describe: 'print the result as JSON on stdout', global: true });
  for (const module of modules) parser = parser.command(module);
  const jobCommands = modules.filter((module) => String(module.command).includes('<jobs..>')).map((module) => String(module.command).split(' ')[0]!);
  parser = parser
    .completion(
      'completion',
      'print the completion script: mastosync completion bash (or zsh; by default the one of $SHELL)',
      (current: string, _parsed: unknown, defaultCompletion: () => void, done: (completions: string[]) => void) => {
        const words = argv.slice(argv.indexOf(COMPLETIONS_KEY) + 2);
        const own = completions(words, (parser as unknown as { getOptions(): YargsOptions }).getOptions(), commandNames, jobCommands);
        if (own === undefined) defaultCompletion();
        else done(own.filter((word) => word.startsWith(current)));
      },
    )
    .demandCommand(1, 'name a command (mastosync --help lists them)')
    .strict()
    .help()
    .version(version)
    .exitProcess(false)
    .fail((message, error) => {
      // yargs' own parse errors (YError: a flag given without its value…) are usage errors too: exit 2.
      if (error === undefined || error.name === 'YError') throw new UsageError(plainer(message ?? error.message, argv, commandNames));
      throw error;
    });
  skipHelpCaching(parser);
  return parser;
}

const COMPLETION_SHELLS = ['bash', 'zsh'];

/** The flag the completion scripts run the CLI with: `mastosync --get-yargs-completions mastosync WORD…`. */
const COMPLETIONS_KEY = '--get-yargs-completions';

/** What yargs knows of the options of the command being completed (its getOptions(), which its types leave out). */
interface YargsOptions {
  readonly key: Record<string, unknown>;
  readonly boolean: readonly string[];
  readonly choices: Record<string, readonly string[] | undefined>;
}

/**
 * The words that may come where the shell's cursor is, the last of `words` (those after the program's name, the last
 * maybe empty), where yargs' own completion gets them wrong: after a flag that takes a value, its choices (the log
 * levels, the manifest formats), or nothing, so that the shell offers file names; the shells after `completion`;
 * the jobs' names after a command that takes them (those not named yet; `all` only first). Undefined: yargs' own
 * (commands, flags).
 */
function completions(words: readonly string[], options: YargsOptions, commandNames: readonly string[], jobCommands: readonly string[]): string[] | undefined {
  const current = words.at(-1) ?? '';
  const previous = words.at(-2);
  if (previous !== undefined && /^--?[^-=][^=]*$/.test(previous)) {
    const key = previous.replace(/^-+/, '');
    const choices = options.choices[key];
    if (choices !== undefined) return [...choices];
    if (key in options.key && !options.boolean.includes(key)) return [];
  }
  if (current.startsWith('-')) return undefined;
  const command = words.slice(0, -1).find((word) => word === 'completion' || commandNames.includes(word));
  if (command === 'completion') return words.indexOf(command) === words.length - 2 ? [...COMPLETION_SHELLS] : [];
  if (command === undefined || !jobCommands.includes(command)) return undefined;
  const named = words.slice(words.indexOf(command) + 1, -1).filter((word) => word === 'all' || (JOB_NAMES as readonly string[]).includes(word));
  if (named.includes('all')) return [];
  return [...(named.length === 0 ? ['all'] : []), ...JOB_NAMES.filter((job) => !named.includes(job))];
}

/**
 * Right after it starts a command's handler, yargs renders the whole help text and keeps it, only to print it if
 * the handler later fails; our .fail() never prints help, and the rendering cost every run up to 100 ms of CPU at
 * its start (docs/performance.md). --help still renders it, when asked.
 */
function skipHelpCaching(parser: Argv): void {
  const internal = parser as unknown as { getInternalMethods?: () => { getUsageInstance(): { cacheHelpMessage(): void } } };
  const usage = internal.getInternalMethods?.().getUsageInstance();
  if (usage !== undefined) usage.cacheHelpMessage = () => undefined;
}

async function withShell<T>(shell: string, run: () => Promise<T>): Promise<T> {
  const saved = { SHELL: process.env.SHELL, ZSH_NAME: process.env.ZSH_NAME };
  process.env.SHELL = `/bin/${shell}`;
  delete process.env.ZSH_NAME;
  try {
    return await run();
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

/** yargs' wording for common slips, said as what to fix. */
function plainer(message: string, argv: readonly string[], commandNames: readonly string[]): string {
  // With no command named at all, yargs lists the mistyped command first among its unknown arguments.
  const unknown = /^Unknown arguments?: ([^,]+)/.exec(message)?.[1];
  if (unknown !== undefined && !argv.some((argument) => commandNames.includes(argument))) {
    return `unknown command "${unknown}": choose from ${commandNames.join(', ')}`;
  }
  const unknownList = /^Unknown arguments?: (.+)$/.exec(message)?.[1];
  if (unknownList !== undefined) {
    // yargs names each unknown dashed flag twice, as typed and camelCased (log-format, logFormat): name it once.
    const names = unknownList.split(', ');
    const typed = names.filter((name) => !names.some((other) => other !== name && camelCase(other) === name));
    return `unknown ${typed.length === 1 ? 'option' : 'options'} ${typed.map((name) => (name.length === 1 ? '-' : '--') + name).join(', ')}`;
  }
  const flag = /^Not enough arguments following: (\S+)$/.exec(message)?.[1];
  if (flag !== undefined) return `${flag.length === 1 ? '-' : '--'}${flag} needs a value`;
  if (message.startsWith('Not enough non-option arguments')) return `name the jobs (${JOB_NAMES.join(', ')}), or all`;
  return message;
}

const camelCase = (name: string): string => name.replace(/-([a-z0-9])/g, (_dash, letter: string) => letter.toUpperCase());

/** The first option given an empty value (`--name=`, or `--name ""`), as typed. */
function emptyValue(argv: readonly string[]): string | undefined {
  for (const [index, argument] of argv.entries()) {
    if (/^--?[^=\s]+=$/.test(argument)) return argument.slice(0, -1);
    if (argument === '' && index > 0 && argv[index - 1]!.startsWith('-')) return argv[index - 1]!;
  }
  return undefined;
}
