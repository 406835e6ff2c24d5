/**
 * What the layers ask of a logger: a line at debug, info, warn or error, and whether debug lines are written at all
 * (to skip building them). src/cli/logger.ts writes them as JSON lines; tests pass pino's logger, which has these too.
 */
export interface Logger {
  readonly debug: LogMethod;
  readonly info: LogMethod;
  readonly warn: LogMethod;
  readonly error: LogMethod;
  isLevelEnabled(level: 'debug'): boolean;
}

/** A message alone, or fields (written as the line's own JSON fields, `err` as an error) and a message. */
interface LogMethod {
  (message: string): void;
  (fields: Readonly<Record<string, unknown>> | undefined, message: string): void;
}
