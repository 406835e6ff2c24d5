/**
 * src/cli/logger.ts writes the lines pino 10 wrote with mastosync's options (they were pino's until the logger was
 * replaced to save its load at every start): each case here is logged through both, and the lines must be equal
 * byte for byte, the time aside.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { JsonLogger, createLogger } from '../../src/cli/logger.js';

/** The options src/cli/logger.ts gave pino, as they were. */
function pinoLogger(level: string, write: (line: string) => void): pino.Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          'password',
          'secret_access_key',
          'secretAccessKey',
          'passphrase',
          'url',
          '*.password',
          '*.secret_access_key',
          '*.secretAccessKey',
          '*.passphrase',
          '*.url',
          'credentials',
        ],
        censor: '[redacted]',
      },
    },
    { write },
  );
}

class TypedError extends Error {
  constructor(
    message: string,
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TypedError';
  }
}

/**
 * The level methods both have. Ours take what pino's take (a lone null, a number, an Error as the fields), though the
 * code calls them only as src/log.ts's Logger says: the lines must be pino's whatever they are given.
 */
type LevelMethods = Pick<pino.Logger, 'debug' | 'info' | 'warn' | 'error'>;

function cases(): [string, (log: LevelMethods) => void][] {
  const circular: Record<string, unknown> = { name: 'loop' };
  circular.self = circular;
  const socketError = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { errno: -111, code: 'ECONNREFUSED', syscall: 'connect', port: 1 });
  const withUrl = Object.assign(new Error('bad request'), { url: 'https://user:secret@example.com/', $metadata: { httpStatusCode: 400 } });
  const caused = new TypedError('could not copy', 'a/b.png', { cause: new Error('socket hang up') });
  const aggregate = new AggregateError([new Error('one'), new RangeError('two')], 'both failed');
  const withCircular = Object.assign(new Error('circular inside'), { response: circular });
  // Made once: both loggers must see the same stacks.
  const [plain, fromError, aborted, said] = [new Error('ENOSPC: no space left'), new Error('from the error'), new Error('aborted'), new Error('e')];
  const typed = new TypedError('typed', 'k');
  return [
    ['message only', (log) => log.info('imports: skipped, this Mastodon version has no imports table')],
    ['fields and message', (log) => log.info({ jobs: ['accounts', 'backups'], dryRun: false, owned: null, bytes: 0 }, 'run started')],
    ['undefined fields (a store warning without fields)', (log) => log.warn(undefined, 'provider is throttling')],
    ['undefined and function values left out', (log) => log.info({ a: undefined, b: () => 1, c: 1 }, 'm')],
    ['non-finite numbers', (log) => log.info({ rate: Infinity, eta: NaN, n: -0 }, 'progress')],
    ['nested objects and arrays', (log) => log.info({ jobs: [{ job: 'accounts', done: 1, owned: null, state: 'done' }] }, 'progress')],
    ['strings needing escapes', (log) => log.info({ key: 'a"b\\c\n\u0001é😀\ud800' }, 'quote " and \\ and \n and \ud800')],
    ['long field names and values', (log) => log.info({ ['k'.repeat(120)]: 'v'.repeat(300), 'a"b': 1 }, 'x'.repeat(200))],
    [
      'top-level secrets censored',
      (log) => log.warn({ password: 'p', url: 'postgres://u:p@h/db', credentials: { a: 1 }, secretAccessKey: 2, passphrase: true }, 'm'),
    ],
    [
      'secrets one level down censored, deeper left',
      (log) => log.warn({ database: { url: 'x', password: undefined, deeper: { password: 'kept' } }, list: [{ url: 'kept' }] }, 'm'),
    ],
    ['err: an Error', (log) => log.error({ job: 'accounts', id: '7', key: 'k', err: plain }, 'could not record a copy')],
    ['err: a socket error', (log) => log.warn({ err: socketError, attempt: 2, retryInMs: 500 }, 'database still unreachable')],
    ['err: its url censored', (log) => log.warn({ err: withUrl }, 'request failed')],
    ['err: with a cause', (log) => log.warn({ err: caused }, 'copy failed')],
    ['err: aggregate', (log) => log.warn({ err: aggregate }, 'm')],
    ['err: not an error', (log) => log.warn({ err: 'just a string' }, 'm')],
    ['err: message taken from it', (log) => log.warn({ err: fromError })],
    ['an Error as the fields', (log) => log.warn(typed)],
    ['an Error as the fields, with a message', (log) => log.warn(said, 'said')],
    ['error under another key', (log) => log.debug({ error: aborted }, 'copy aborted by the stop')],
    ['a circular value', (log) => log.info({ loop: circular }, 'm')],
    ['a circular value inside an error', (log) => log.warn({ err: withCircular }, 'm')],
    ['a BigInt', (log) => log.info({ id: 123n }, 'm')],
    ['a Date and a Map', (log) => log.info({ at: new Date(0), map: new Map([[1, 2]]) }, 'm')],
    ['null fields', (log) => log.info(null, 'm')],
    ['null alone', (log) => log.info(null)],
    ['fields alone', (log) => log.info({ a: 1 })],
    ['a number as the message', (log) => log.info(42)],
    ['a non-string message after fields', (log) => log.info({ a: 1 }, { b: 2 } as unknown as string)],
    ['every level', (log) => (['debug', 'info', 'warn', 'error'] as const).forEach((level) => log[level]({ level }, level))],
  ];
}

const withoutTime = (line: string) => line.replace(/^(\{"level":\d+,"time":)\d+/, '$1T');

for (const [name, write] of cases()) {
  test(`as pino wrote it: ${name}`, () => {
    for (const level of ['trace', 'info', 'warn', 'silent']) {
      const expected: string[] = [];
      const actual: string[] = [];
      write(pinoLogger(level, (line) => expected.push(withoutTime(line))));
      write(new JsonLogger(level, { write: (line) => actual.push(withoutTime(line)) }));
      assert.deepEqual(actual, expected, `at ${level}`);
    }
  });
}

test('isLevelEnabled as pino', () => {
  for (const level of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']) {
    const ours = new JsonLogger(level, { write: () => undefined });
    const theirs = pinoLogger(level, () => undefined);
    for (const asked of ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent', 'nonsense'])
      assert.equal(ours.isLevelEnabled(asked), theirs.isLevelEnabled(asked), `${asked} at ${level}`);
  }
  assert.throws(() => createLogger('loud', { write: () => undefined }), /default level:loud must be included/);
  assert.throws(() => pinoLogger('loud', () => undefined), /default level:loud must be included/);
});
