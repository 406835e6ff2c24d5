/**
 * `run` as cron types it is parsed without yargs (src/cli/commandLine.ts, fastRunArgs): each command line here is
 * parsed by yargs, with every command and option main.ts gives it, and by fastRunArgs, and the handler must get the
 * same arguments; the others must be left to yargs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandModules, fastRunArgs } from '../../src/cli/commandLine.js';
import { EXIT, type CommandContext } from '../../src/cli/exit.js';
import { yargsParser } from '../../src/cli/main.js';

async function throughYargs(argv: string[]): Promise<Record<string, unknown>> {
  const context: CommandContext = { out: { stdout: () => undefined, stderr: () => undefined }, exitCode: EXIT.ok };
  let captured: Record<string, unknown> | undefined;
  const modules = commandModules(context).map((module) =>
    String(module.command).startsWith('run ')
      ? {
          ...module,
          handler: (args: Record<string, unknown>) => {
            captured = args;
          },
        }
      : module,
  );
  const names = modules.map((module) => String(module.command).split(' ')[0]!);
  await (await yargsParser(argv, modules, names, 'test')).parseAsync();
  assert.ok(captured, `yargs ran the run handler for ${argv.join(' ')}`);
  return captured;
}

/**
 * Every argument yargs gives the handler, each under its camelCase name (the one the handler reads): the
 * kebab-case copies, the positional words (`_`) and the program's name (`$0`) left out. No list of the run's
 * flags here, so a flag added to the command is compared too.
 */
const asHandlerReads = (args: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(args).filter(([key]) => key !== '_' && key !== '$0' && !key.includes('-')));

const FAST = [
  'run all',
  'run all --limit 0',
  'run all --limit 0 --config /etc/mastosync.toml',
  'run all --resume --quiet --log-level warn --config /etc/mastosync.toml',
  'run media_attachments accounts --json --concurrency 16 --checkpoint cp.jsonl',
  'run --resume all backups',
  'run all --limit=5 --config=a=b.toml --log-level=debug',
  'run all --dry-run --max-rps 100 --progress-interval 30',
  'run all --dev',
  'run all --retry-failed --limit 10',
  'run all --fresh --quiet',
  'run all --skip-existing --concurrency 64',
  'run all --config 123',
  'run all --log-level silent',
  'run all --limit 999999999',
  'run all all',
];

for (const line of FAST) {
  test(`as yargs parses it: mastosync ${line}`, async () => {
    const argv = line.split(' ');
    const fast = fastRunArgs(argv);
    assert.ok(fast, 'parsed without yargs');
    assert.deepEqual({ ...fast }, asHandlerReads(await throughYargs(argv)));
  });
}

const LEFT_TO_YARGS = [
  'run',
  'run --resume',
  'plan all',
  '--config x.toml run all',
  'run all --help',
  'run all -h',
  'run all --version',
  'run all --resume --resume',
  'run all --resume true',
  'run all false',
  'run all --no-resume',
  'run all --dryRun',
  'run all --resume=true',
  'run all --limit -1',
  'run all --limit 1e3',
  'run all --limit 0x10',
  'run all --limit 07',
  'run all --limit 1.5',
  'run all --limit 9999999999',
  'run all --concurrency 0',
  'run all --max-rps 0',
  'run all --progress-interval 0',
  'run all --progress-interval 3000000',
  'run all --resume --retry-failed',
  'run all --skip-existing --retry-failed',
  'run all --fresh --resume',
  'run all --fresh --retry-failed',
  'run all --skip-existing --limit 5',
  'run all --since 2024-01-01',
  'run all --metrics 9464',
  'run all --shard 0/2',
  'run all --skip-remote-cache',
  'run 123',
  'run help',
  'run all help',
  'run all --config x.toml help',
  'run nonsense',
  'run Accounts',
  'run all --',
  'run all -',
  'run all --log-level INFO',
  'run all --config',
  'run all --config --resume',
  'run all --config=',
];

for (const line of LEFT_TO_YARGS) {
  test(`left to yargs: mastosync ${line}`, () => {
    assert.equal(fastRunArgs(line.split(' ')), undefined);
  });
}

test('an unknown flag is named once, as typed (yargs lists it twice: log-format, logFormat)', async () => {
  const context: CommandContext = { out: { stdout: () => undefined, stderr: () => undefined }, exitCode: EXIT.ok };
  const modules = commandModules(context);
  const names = modules.map((module) => String(module.command).split(' ')[0]!);
  const parser = await yargsParser(['check', '--log-format', 'json'], modules, names, 'test');
  await assert.rejects(async () => parser.parseAsync(), { name: 'UsageError', message: 'unknown option --log-format' });
});
