/**
 * pino, JSON to stderr. Synchronous so the last lines are not lost when the process exits. No transports: they
 * start worker files by path, which the bundle (dist/bundle) does not carry.
 */
import pino, { type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** `destination` replaces stderr, e.g. to print log lines above a live progress display. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['password', 'secret_access_key', 'secretAccessKey', 'passphrase', 'url', '*.password', '*.secret_access_key', '*.secretAccessKey', '*.passphrase', '*.url', 'credentials'],
        censor: '[redacted]',
      },
    },
    destination ?? pino.destination({ fd: 2, sync: true }),
  );
}
