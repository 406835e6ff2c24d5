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
}

export const processOutput: Output = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
};

/** Shared by every command module: where to print, and the exit code its handler sets. */
export interface CommandContext {
  readonly out: Output;
  exitCode: number;
}
