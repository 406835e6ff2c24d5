/**
 * What the SSH layer needs to reach the database's host: the `[database.ssh]` settings, already validated and
 * mapped by src/cli/config.ts. The SSH layer owns this type; the CLI only fills it in.
 */
import os from 'node:os';
import path from 'node:path';

export interface SshConfig {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Private key file path; a leading `~` is expanded. */
  readonly privateKey?: string;
  readonly passphrase?: string;
  readonly password?: string;
  /** Use the ssh-agent at $SSH_AUTH_SOCK. */
  readonly agent?: boolean;
  /** Pinned host key: "SHA256:..." as printed by `ssh-keygen -lf` (the whole printed line is accepted too). */
  readonly hostKey?: string;
  /** known_hosts file; default ~/.ssh/known_hosts, consulted only when hostKey is absent. */
  readonly knownHosts?: string;
}

/** SshConfig plus the timings, which no config key sets: tests and benchmarks shorten them. */
export interface SshOptions extends SshConfig {
  readonly keepaliveIntervalMs?: number;
  readonly readyTimeoutMs?: number;
}

/** Where the tunnel forwards to, as the SSH server sees it. */
export interface TunnelTarget {
  host: string;
  port: number;
}

/** A leading `~` stands for the home folder, as in OpenSSH's own settings. */
export function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}
