/** pino, JSON to stderr. Synchronous so the last lines are not lost when the process exits. */
import pino, { type Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: ['password', 'secret_access_key', 'secretAccessKey', 'passphrase', 'url', '*.password', '*.secret_access_key', '*.secretAccessKey', '*.passphrase', '*.url', 'credentials'],
        censor: '[redacted]',
      },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
