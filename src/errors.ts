/**
 * Typed errors. UsageError is anything the admin must fix before a run can start (config, flags,
 * credentials, an unreachable database or bucket, a missing table): the CLI prints its message on one line and
 * exits 2 with nothing written. One object that could not be copied is no error but a CopyResult (src/sync/copy.ts),
 * recorded in the checkpoint rather than stopping the run.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The most useful one-line description of any thrown value, including an AWS or pg error code. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown; Code?: unknown }).code ?? (error as { Code?: unknown }).Code;
    const name = error.name && error.name !== 'Error' ? error.name : undefined;
    const label = typeof code === 'string' ? code : name;
    return label && !error.message.startsWith(label) ? `${label}: ${error.message}` : error.message;
  }
  return String(error);
}
