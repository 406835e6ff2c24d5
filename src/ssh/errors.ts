/**
 * The SSH layer's errors, and the one place that turns what ssh2 (or its key parser) reports into the line an
 * admin reads. `classifySshError` is pure: it looks only at the error's shape (message, `level`, `code`,
 * `reason`) and at what the caller knew when it happened, so every case is unit-tested with the shapes ssh2
 * really produces (test/unit/sshErrors.test.ts).
 */
import type { TunnelTarget } from './config.js';

/**
 * What went wrong, so callers can decide: `auth`, `key`, `config`, `forward` need the admin; `unreachable`,
 * `timeout`, `protocol`, `dropped` may heal on their own and are worth a reconnect with backoff.
 */
export type TunnelErrorReason = 'config' | 'key' | 'auth' | 'unreachable' | 'timeout' | 'protocol' | 'dropped' | 'forward';

export class TunnelError extends Error {
  override readonly name = 'TunnelError';
  readonly reason: TunnelErrorReason;

  constructor(reason: TunnelErrorReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }

  /** True when retrying later can succeed without the admin changing anything. */
  get retryable(): boolean {
    return this.reason === 'unreachable' || this.reason === 'timeout' || this.reason === 'protocol' || this.reason === 'dropped';
  }
}

export interface OfferedHostKey {
  /** Key type from the key blob: ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, ... */
  type: string;
  /** "SHA256:..." exactly as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

/**
 * - mismatch: none of the offered keys is the pinned host_key
 * - unknown: the host has no usable entry in known_hosts
 * - changed: known_hosts holds a different key of the same type for this host
 * - revoked: the offered key is marked @revoked in known_hosts
 */
export type HostKeyProblem = 'mismatch' | 'unknown' | 'changed' | 'revoked';

/** The server could not be authenticated. Never retry automatically: it may be a spoofed server. */
export class HostKeyError extends Error {
  override readonly name = 'HostKeyError';
  /** Fingerprint of the key the server offered first (the one a plain `ssh` would show). */
  readonly offered: string;
  readonly offeredType: string;
  /** Every key seen; more than one when a pinned fingerprint was searched for among the server's key types. */
  readonly offeredKeys: OfferedHostKey[];
  readonly problem: HostKeyProblem;
  readonly host: string;
  readonly port: number;

  constructor(problem: HostKeyProblem, host: string, port: number, offeredKeys: OfferedHostKey[], message: string) {
    super(message);
    const first = offeredKeys[0] ?? { type: 'unknown', fingerprint: 'unknown' };
    this.problem = problem;
    this.host = host;
    this.port = port;
    this.offeredKeys = offeredKeys;
    this.offered = first.fingerprint;
    this.offeredType = first.type;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Classifying what ssh2 reports
// ---------------------------------------------------------------------------------------------------------

/** What the admin is told happened; `reason` (below) is what the code does about it. */
type SshFailure =
  /** Nothing listens at host:port (or a firewall rejects): ECONNREFUSED. */
  | 'refused'
  /** The name does not resolve, no route, the network is down, or the connection was reset before SSH began. */
  | 'unreachable'
  /** No SSH handshake within the ready timeout. */
  | 'timeout'
  /** The server accepted none of the credentials offered. */
  | 'auth-rejected'
  /** The server's host key was not accepted (pinned key, known_hosts): possibly a spoofed server. */
  | 'host-key'
  | 'key-unreadable'
  /** An encrypted private key and no passphrase. */
  | 'key-encrypted'
  | 'key-passphrase'
  /** The file is not a private key ssh2 can read. */
  | 'key-unsupported'
  /** The server forbids port forwarding (AllowTcpForwarding no, PermitOpen): the admin of the SSH server must allow it. */
  | 'forward-refused'
  /** The SSH server could not connect to the database (wrong [database].url, database down). */
  | 'forward-failed'
  /** The connection was lost after it was ready: mid-run. */
  | 'dropped'
  /** Anything else before the session was ready: not an SSH server, no common algorithm, a disconnect. */
  | 'protocol';

/** What the caller knew when the error happened. */
export type SshErrorContext =
  | {
      /** Connecting: socket, handshake, host key, authentication. */
      phase: 'connect';
      host: string;
      port: number;
      user: string;
      /** The methods in the order offered, e.g. ['publickey', 'password']. */
      tried: readonly string[];
      /** What the server said it accepts (after the "none" probe); undefined when it never said. */
      serverAccepts?: readonly string[];
      /** Configured methods not tried because the server does not accept them. */
      notTried: readonly string[];
      /** Messages of methods that failed on the way (an agent without keys, a key the server refused to sign with). */
      notes: readonly string[];
      /** The [database.ssh] settings to check when authentication fails: "user / private_key (...) / password". */
      hint: string;
    }
  | {
      /** Loading the private key file (read, then ssh2's `utils.parseKey`). */
      phase: 'key';
      file: string;
    }
  | {
      /** Opening a forwarded channel (`forwardOut`) to the database. */
      phase: 'forward';
      host: string;
      target: TunnelTarget;
    }
  | {
      /** The session was ready and is now lost; `error` is the last error ssh2 reported, if any. */
      phase: 'session';
      host: string;
      port: number;
      user: string;
    };

export interface SshErrorClassification {
  failure: SshFailure;
  reason: TunnelErrorReason;
  /** One line (host key problems: a few) that says what happened and what to check. */
  message: string;
}

/** The fields ssh2 and Node set on the errors they report. */
interface Ssh2ErrorShape {
  message?: string;
  /** ssh2: client-socket, client-dns, client-timeout, client-authentication, agent, handshake, protocol. */
  level?: string;
  /** Node's errno code (ECONNREFUSED, ...) or, for a server's DISCONNECT, its numeric reason. */
  code?: string | number;
  /** SSH_MSG_CHANNEL_OPEN_FAILURE reason: 1 administratively prohibited, 2 connect failed, 3 unknown type, 4 resource shortage. */
  reason?: number | string;
}

const CHANNEL_OPEN_ADMINISTRATIVELY_PROHIBITED = 1;

function shapeOf(error: unknown): Ssh2ErrorShape {
  return typeof error === 'object' && error !== null ? (error as Ssh2ErrorShape) : { message: String(error) };
}

/**
 * Turns an error from ssh2 (or Node's socket, or ssh2's key parser) into what the admin sees. `error` may be
 * undefined in the `connect` phase (the server closed before authentication finished) and the `session` phase
 * (the connection closed without ssh2 reporting why).
 */
export function classifySshError(error: unknown, context: SshErrorContext): SshErrorClassification {
  const e = shapeOf(error);
  const message = e.message ?? '';
  switch (context.phase) {
    case 'key':
      return classifyKeyError(e, context.file);
    case 'forward': {
      const { host, target } = context;
      if (e.reason === CHANNEL_OPEN_ADMINISTRATIVELY_PROHIBITED) {
        return {
          failure: 'forward-refused',
          reason: 'forward',
          message:
            `ssh: ${host} refuses to forward connections to ${target.host}:${target.port} (${message}): ` +
            `its sshd_config must allow TCP forwarding for this user (AllowTcpForwarding yes, and PermitOpen, if set, must list ${target.host}:${target.port})`,
        };
      }
      return {
        failure: 'forward-failed',
        // Refused or unanswered at the SSH server's end, the database may be restarting: waited for, as when it is
        // reached directly (exit 75 once the patience is out), and so is its resolver failing for a moment (EAI_AGAIN's
        // "Temporary failure in name resolution"). A name the SSH server cannot resolve will not heal.
        reason: /refused|timed out|no route|unreachable|temporary failure/i.test(message) ? 'unreachable' : 'forward',
        message:
          `ssh: ${host} could not connect to ${target.host}:${target.port} (${message}): ` +
          `check that [database].url names the database as the SSH server sees it, and that it is running`,
      };
    }
    case 'session': {
      const why = error === undefined ? '' : `: ${message}`;
      return { failure: 'dropped', reason: 'dropped', message: `ssh: connection to ${context.user}@${context.host}:${context.port} dropped${why}` };
    }
    case 'connect':
      return classifyConnectError(error, e, context);
  }
}

function classifyConnectError(error: unknown, e: Ssh2ErrorShape, context: Extract<SshErrorContext, { phase: 'connect' }>): SshErrorClassification {
  const { host, port, user } = context;
  const message = e.message ?? '';
  if (error instanceof HostKeyError) return { failure: 'host-key', reason: 'config', message: error.message };
  if (error === undefined) {
    return { failure: 'protocol', reason: 'protocol', message: `ssh: ${host}:${port} closed the connection before authentication finished` };
  }
  switch (e.level) {
    case 'client-authentication': {
      const accepts = context.serverAccepts ? `; the server accepts ${context.serverAccepts.join(', ') || 'nothing'}` : '';
      const skipped = context.notTried.length > 0 ? `; not tried because the server does not accept it: ${context.notTried.join(', ')}` : '';
      const extra = context.notes.length > 0 ? ` (${context.notes.join('; ')})` : '';
      return {
        failure: 'auth-rejected',
        reason: 'auth',
        message: `ssh: authentication failed for ${user}@${host}:${port} (tried ${context.tried.join(', ') || 'nothing'}${accepts}${skipped})${extra}: check [database.ssh] ${context.hint}`,
      };
    }
    case 'client-timeout':
      return {
        failure: 'timeout',
        reason: 'timeout',
        message: `ssh: timed out connecting to ${host}:${port} (${message}): check [database.ssh] host and port, and firewalls`,
      };
    case 'client-socket':
    case 'client-dns': {
      const code = typeof e.code === 'string' ? e.code : undefined;
      return {
        failure: code === 'ECONNREFUSED' ? 'refused' : 'unreachable',
        reason: 'unreachable',
        message: `ssh: cannot reach ${host}:${port} (${code ?? message}): check [database.ssh] host and port`,
      };
    }
    case 'handshake':
      if (/^Host denied/i.test(message)) {
        // Only reached when ssh2 refuses a key without our policy's verdict; the policy builds the detailed message.
        return { failure: 'host-key', reason: 'config', message: `ssh: host key verification failed for ${host}:${port}: ${message}` };
      }
      break;
  }
  return { failure: 'protocol', reason: 'protocol', message: `ssh: connection to ${host}:${port} failed: ${message}` };
}

function classifyKeyError(e: Ssh2ErrorShape, file: string): SshErrorClassification {
  const message = e.message ?? '';
  // Node's fs errors carry a string code (ENOENT, EACCES); ssh2's parser errors carry none.
  if (typeof e.code === 'string') {
    return { failure: 'key-unreadable', reason: 'key', message: `ssh: cannot read private_key ${file} (${e.code}): check [database.ssh] private_key` };
  }
  if (/no passphrase given/i.test(message)) {
    return {
      failure: 'key-encrypted',
      reason: 'key',
      message: `ssh: private_key ${file} is encrypted: set its passphrase under [database.ssh] (passphrase = "...")`,
    };
  }
  // OpenSSH format: "integrity check failed -- bad passphrase?"; PEM: "Malformed OpenSSH private key. Bad passphrase?"
  if (/passphrase|decrypt/i.test(message)) {
    return { failure: 'key-passphrase', reason: 'key', message: `ssh: wrong passphrase for private_key ${file}: check [database.ssh] passphrase` };
  }
  return {
    failure: 'key-unsupported',
    reason: 'key',
    message: `ssh: cannot use private_key ${file}: ${message} (ed25519, ecdsa and rsa keys in OpenSSH or PEM format are supported)`,
  };
}

/** classifySshError's verdict as the TunnelError callers throw, with the original error as its cause. */
export function sshTunnelError(error: unknown, context: SshErrorContext): TunnelError {
  const { reason, message } = classifySshError(error, context);
  return new TunnelError(reason, message, error === undefined ? undefined : { cause: error });
}
