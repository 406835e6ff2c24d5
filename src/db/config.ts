/**
 * What the database layer needs to open its session: the `[database]` settings, already validated and mapped by
 * src/cli/config.ts. The db layer owns this type; the CLI only fills it in.
 */
import type { SshConfig } from '../ssh/config.js';

/**
 * `[database] answer_timeout`'s default: how long a query waits in silence before the admin is told where, and the
 * path is checked with a new connection (src/db/connection.ts, watchAnswers). A keyset page takes milliseconds.
 */
export const ANSWER_TIMEOUT_MS = 60_000;

export interface DatabaseConfig {
  /** A postgres:// URL; the fields below override its parts. */
  readonly connectionString?: string;
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  readonly password?: string;
  readonly database?: string;
  readonly ssl: boolean;
  /** Rows per keyset page. */
  readonly batchSize: number;
  /**
   * How long a read may hear nothing from the database before it is told (a warning naming where it waits) and the
   * path is checked with a new connection: none answering cuts the read, which is read again over a new connection.
   * Default ANSWER_TIMEOUT_MS (src/db/connection.ts).
   */
  readonly answerTimeoutMs?: number;
  /** Reach the database through this SSH server; host and port above are then as the SSH server sees them. */
  readonly ssh?: SshConfig;
}

/**
 * pg reads a URL's `sslmode` prefer, require and verify-ca as verify-full (the server's certificate and host name
 * checked, stricter than libpq, which Mastodon uses), warns so in ten lines at every command, and will give them
 * libpq's weaker meaning in its next major version. Spelled verify-full here: the same check, said once in the
 * README instead of at every cron run, and kept when pg changes. `uselibpqcompat=true` in the URL asks for libpq's.
 */
export function strictSslMode(url: string): string {
  if (/[?&]uselibpqcompat=true(?=&|#|$)/i.test(url)) return url;
  return url.replace(/([?&]sslmode=)(?:prefer|require|verify-ca)(?=&|#|$)/g, '$1verify-full');
}
