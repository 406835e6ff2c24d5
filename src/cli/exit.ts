import { brokenBundle } from '../errors.js';

/** Exit codes (README "Exit codes") and where command output goes. */
export const EXIT = {
  ok: 0,
  /** Some objects failed (they are in the checkpoint; --resume retries them). */
  failures: 1,
  /** Usage, config or connection error: nothing was written. */
  usage: 2,
  /** Another run holds the checkpoint (sysexits' EX_TEMPFAIL: try again later); nothing was written. */
  busy: 75,
  /**
   * The database or a store did not answer at the start, or answered that it fails for now, for the start's patience
   * (5 min): EX_TEMPFAIL too, as a lock held, since running again later may succeed unchanged; nothing was written.
   */
  unavailable: 75,
  /** SIGINT, SIGTERM or SIGHUP (src/cli/interrupt.ts): while copying, or during the start, with nothing written. */
  interrupted: 130,
} as const;

/**
 * The exit code of a command that stopped for what no retry can fix (its one `stopped:` line): 1, as for failed
 * objects, but 2 for a chunk of dist/bundle/ missing or damaged (mid-run: the S3 SDK loaded for the first large object),
 * as when the chunk is missing at the start: the installation is to fix, not the stores.
 */
export function stoppedExit(cause: unknown): number {
  return brokenBundle(cause) === undefined ? EXIT.failures : EXIT.usage;
}

export interface Output {
  stdout(line: string): void;
  stderr(line: string): void;
  /** The reading end of stdout went away (`mastosync run all --dry-run | head`): stop listing, do not crash. */
  readerGone?(): boolean;
}

let stdoutReaderGone = false;
let guarding = false;

/**
 * Takes EPIPE on stdout or stderr (`mastosync … | head`, `2>&1 | head`) as "the reader is gone" rather than an
 * unhandled 'error' event, which would be a stack trace and exit code 1. Called once, before anything is printed.
 */
export function guardPipes(): void {
  if (guarding) return;
  guarding = true;
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stdoutReaderGone = true;
  });
  process.stderr.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}

export const processOutput: Output = {
  stdout: (line) => {
    if (!stdoutReaderGone) process.stdout.write(`${line}\n`);
  },
  stderr: (line) => process.stderr.write(`${line}\n`),
  readerGone: () => stdoutReaderGone,
};

/** Shared by every command module: where to print, and the exit code its handler sets. */
export interface CommandContext {
  readonly out: Output;
  exitCode: number;
}
