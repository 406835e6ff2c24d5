/** Exit codes (README "Exit codes") and where command output goes. */
export const EXIT = {
  ok: 0,
  /** Some objects failed (they are in the checkpoint; --resume retries them). */
  failures: 1,
  /** Usage, config or connection error: nothing was written. */
  usage: 2,
  interrupted: 130,
} as const;

export interface Output {
  stdout(line: string): void;
  stderr(line: string): void;
  /** The reading end of stdout went away (`mastosync run all --dry-run | head`): stop listing, do not crash. */
  readerGone?(): boolean;
}

let stdoutReaderGone = false;
let watchingStdout = false;

export const processOutput: Output = {
  stdout: (line) => {
    if (!watchingStdout) {
      watchingStdout = true;
      // Without a listener, EPIPE would be an unhandled 'error' event: a stack trace and exit code 1.
      process.stdout.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'EPIPE') throw error;
        stdoutReaderGone = true;
      });
    }
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
