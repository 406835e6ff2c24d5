/**
 * What the database layer needs to open its session: the `[database]` settings, already validated and mapped by
 * src/cli/config.ts. The db layer owns this type; the CLI only fills it in.
 */
import type { SshConfig } from '../ssh/config.js';

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
  /** Reach the database through this SSH server; host and port above are then as the SSH server sees them. */
  readonly ssh?: SshConfig;
}
