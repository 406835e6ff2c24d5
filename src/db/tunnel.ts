/**
 * SSH tunnel to the production database.
 *
 * A local TCP listener on 127.0.0.1:<random port> whose every connection becomes one `direct-tcpip` channel
 * (ssh2 `forwardOut`) to the database as the SSH server sees it. pg connects to the local port and never
 * knows about SSH.
 *
 * Safety rules, because this talks to a live production server for hours:
 * - The host key is always verified, by a pinned SHA256 fingerprint or by known_hosts, before any credential is
 *   sent (ssh2 checks the host key during key exchange, ahead of user authentication).
 * - A dropped connection is reported once (`drop`) and the tunnel then refuses new local connections, so callers
 *   fail fast and reconnect with a fresh `openTunnel` instead of hanging on a dead channel.
 *
 * Pure library: no config parsing, no logging. Errors are typed and their messages say what to fix.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, AuthenticationType, Client as SshClient, ClientChannel, ConnectConfig, ParsedKey } from 'ssh2';

// ssh2 is CommonJS: take the classes from its default export (named ESM imports of it are not guaranteed).
const { Client, utils } = ssh2;

export interface SshOptions {
  host: string;
  port: number;
  user: string;
  /** Private key file path; a leading `~` is expanded. */
  privateKey?: string;
  passphrase?: string;
  password?: string;
  /** Use the ssh-agent at $SSH_AUTH_SOCK. */
  agent?: boolean;
  /** Pinned host key: "SHA256:..." as printed by `ssh-keygen -lf` (the whole printed line is accepted too). */
  hostKey?: string;
  /** known_hosts file; default ~/.ssh/known_hosts, consulted only when hostKey is absent. */
  knownHosts?: string;
  keepaliveIntervalMs?: number;
  readyTimeoutMs?: number;
}

export interface TunnelTarget {
  host: string;
  port: number;
}

/**
 * What went wrong, so callers can decide: `auth`, `key`, `config` need the admin; `unreachable`, `timeout`,
 * `protocol`, `dropped` may heal on their own and are worth a reconnect with backoff.
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

export interface Tunnel {
  readonly localHost: string;
  readonly localPort: number;
  /** Fingerprint of the verified host key. */
  readonly hostKeyFingerprint: string;
  /** True once the SSH connection was lost (not by close()). */
  readonly dropped: boolean;
  /** Closes the listener, every forwarded connection (those ending get a moment to finish) and the SSH session. Idempotent. */
  close(): Promise<void>;
  /** Calls `listener` once when the connection drops (at once, on the next tick, if it already has). */
  onDrop(listener: (err: TunnelError) => void): void;
  /** Emitted once when the SSH connection is lost after being ready; open a new tunnel to carry on. */
  on(event: 'drop', listener: (err: TunnelError) => void): this;
  /** Emitted when the SSH server could not open a channel to the target (wrong [database].url, database down). */
  on(event: 'forwardError', listener: (err: TunnelError) => void): this;
  once(event: 'drop' | 'forwardError', listener: (err: TunnelError) => void): this;
  off(event: 'drop' | 'forwardError', listener: (err: TunnelError) => void): this;
}

// ---------------------------------------------------------------------------------------------------------
// Fingerprints and known_hosts
// ---------------------------------------------------------------------------------------------------------

/** "SHA256:" + unpadded base64 of the SHA-256 of the key blob: the format `ssh-keygen -lf` and `ssh` print. */
export function fingerprintOf(keyBlob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '');
}

/** Key type name stored at the start of an SSH public key blob. */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return '';
  const len = keyBlob.readUInt32BE(0);
  if (len > keyBlob.length - 4) return '';
  return keyBlob.subarray(4, 4 + len).toString('latin1');
}

/** Accepts "SHA256:xyz", "SHA256:xyz=" or a whole `ssh-keygen -lf` line; returns the normalised fingerprint. */
export function parsePinnedFingerprint(value: string): string | undefined {
  const m = /SHA256:([A-Za-z0-9+/]{43})=?(?![A-Za-z0-9+/])/.exec(value.trim());
  return m ? `SHA256:${m[1]}` : undefined;
}

/** The name known_hosts stores for a host: bare for port 22, `[host]:port` otherwise (as OpenSSH does). */
export function knownHostsName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

export interface KnownHostsEntry {
  marker: '' | 'revoked' | 'cert-authority';
  hosts: string;
  keyType: string;
  key: Buffer;
  /** 1-based line number, for messages. */
  line: number;
}

export function parseKnownHosts(text: string): KnownHostsEntry[] {
  const entries: KnownHostsEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const fields = (lines[i] ?? '').trim().split(/\s+/);
    if (fields[0] === undefined || fields[0] === '' || fields[0].startsWith('#')) continue;
    let marker: KnownHostsEntry['marker'] = '';
    if (fields[0].startsWith('@')) {
      const m = fields.shift()!;
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue; // unknown marker: OpenSSH ignores such lines too
    }
    const [hosts, keyType, b64] = fields;
    if (!hosts || !keyType || !b64) continue;
    const key = Buffer.from(b64, 'base64');
    // A blob whose embedded type disagrees with the type field is corrupt; skip it rather than guess.
    if (keyTypeOf(key) !== keyType) continue;
    entries.push({ marker, hosts, keyType, key, line: i + 1 });
  }
  return entries;
}

function globToRegExp(pattern: string): RegExp {
  const body = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'i');
}

/** Does a known_hosts host field (hashed, or a comma list of patterns with * ? and !negation) name `name`? */
export function knownHostsEntryMatches(hosts: string, name: string): boolean {
  if (hosts.startsWith('|1|')) {
    // Hashed entry (HashKnownHosts yes): |1|base64(salt)|base64(HMAC-SHA1(salt, name)).
    const [, , salt, hash] = hosts.split('|');
    if (!salt || !hash) return false;
    const expected = Buffer.from(hash, 'base64');
    const actual = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest();
    return expected.length === actual.length && timingSafeEqual(expected, actual);
  }
  let matched = false;
  for (const pattern of hosts.split(',')) {
    if (pattern.startsWith('!')) {
      // A matching negation excludes the host from the whole entry, whatever else matches.
      if (globToRegExp(pattern.slice(1)).test(name)) return false;
    } else if (globToRegExp(pattern).test(name)) {
      matched = true;
    }
  }
  return matched;
}

export type KnownHostsVerdict =
  | { status: 'match'; entry: KnownHostsEntry }
  | { status: 'revoked'; entry: KnownHostsEntry }
  | { status: 'changed'; entry: KnownHostsEntry }
  | { status: 'unknown'; knownTypes: string[]; certAuthorityOnly: boolean };

/** Judges an offered host key against known_hosts entries, the way `ssh` does (minus host certificates). */
export function checkKnownHosts(entries: KnownHostsEntry[], host: string, port: number, keyBlob: Buffer): KnownHostsVerdict {
  const name = knownHostsName(host, port);
  const offeredType = keyTypeOf(keyBlob);
  const forHost = entries.filter((e) => knownHostsEntryMatches(e.hosts, name));
  const revoked = forHost.find((e) => e.marker === 'revoked' && e.key.equals(keyBlob));
  if (revoked) return { status: 'revoked', entry: revoked };
  // @cert-authority lines vouch for host certificates, which ssh2 does not negotiate: they never match a plain key.
  const plain = forHost.filter((e) => e.marker === '');
  const match = plain.find((e) => e.key.equals(keyBlob));
  if (match) return { status: 'match', entry: match };
  const sameType = plain.find((e) => e.keyType === offeredType);
  if (sameType) return { status: 'changed', entry: sameType };
  return {
    status: 'unknown',
    knownTypes: [...new Set(plain.map((e) => e.keyType))],
    certAuthorityOnly: plain.length === 0 && forHost.some((e) => e.marker === 'cert-authority'),
  };
}

/** Key types of the usable known_hosts entries for this host. */
function knownTypesFor(entries: KnownHostsEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  return [...new Set(entries.filter((e) => e.marker === '' && knownHostsEntryMatches(e.hosts, name)).map((e) => e.keyType))];
}

// Host key algorithms grouped by key type. ssh2's default preference is ed25519, ecdsa, rsa.
const ALGORITHMS_BY_KEY_TYPE: ReadonlyArray<readonly [keyType: string, algorithms: readonly string[]]> = [
  ['ssh-ed25519', ['ssh-ed25519']],
  ['ecdsa-sha2-nistp256', ['ecdsa-sha2-nistp256']],
  ['ecdsa-sha2-nistp384', ['ecdsa-sha2-nistp384']],
  ['ecdsa-sha2-nistp521', ['ecdsa-sha2-nistp521']],
  ['ssh-rsa', ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']],
];
const ALL_KEY_TYPES = ALGORITHMS_BY_KEY_TYPE.map(([t]) => t);

/** Host key algorithms for the given key types, in the given order (the client's order decides the negotiation). */
function algorithmsFor(keyTypes: readonly string[]): string[] {
  return keyTypes.flatMap((t) => ALGORITHMS_BY_KEY_TYPE.find(([k]) => k === t)?.[1] ?? []);
}

function prettyType(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType.startsWith('ecdsa-')) return 'ECDSA';
  if (keyType === 'ssh-rsa') return 'RSA';
  return keyType;
}

function serverKeyFileHint(keyType: string): string {
  const file = keyType === 'ssh-ed25519' ? 'ed25519' : keyType.startsWith('ecdsa-') ? 'ecdsa' : keyType === 'ssh-rsa' ? 'rsa' : '*';
  return `/etc/ssh/ssh_host_${file}_key.pub`;
}

// ---------------------------------------------------------------------------------------------------------
// Host key policy: what to accept, and which key types to ask the server for, in which order
// ---------------------------------------------------------------------------------------------------------

type Verdict =
  | { ok: true }
  // `final: false` means "another key type of the same server may still match", so the caller asks for it.
  | { ok: false; final: boolean; build: (offered: OfferedHostKey[]) => HostKeyError };

interface HostKeyPolicy {
  /** Key types to ask for, preferred first. */
  keyTypes: string[];
  check(keyBlob: Buffer): Verdict;
}

function pinInstructions(offered: OfferedHostKey, ssh: SshOptions): string {
  const target = ssh.port === 22 ? `${ssh.user}@${ssh.host}` : `-p ${ssh.port} ${ssh.user}@${ssh.host}`;
  return (
    `If ${offered.fingerprint} is the right key (compare with \`ssh-keygen -lf ${serverKeyFileHint(offered.type)}\` run on the server), pin it:\n` +
    `    [database.ssh]\n` +
    `    host_key = "${offered.fingerprint}"\n` +
    `or add the key to known_hosts (e.g. check it, then accept it once with \`ssh ${target}\`).`
  );
}

function describeOffered(offered: OfferedHostKey[]): string {
  return offered.map((k) => `${prettyType(k.type)} key ${k.fingerprint}`).join(', ');
}

function pinnedPolicy(ssh: SshOptions, pinned: string): HostKeyPolicy {
  const where = `${ssh.host}:${ssh.port}`;
  return {
    keyTypes: ALL_KEY_TYPES,
    check(keyBlob) {
      if (fingerprintOf(keyBlob) === pinned) return { ok: true };
      return {
        ok: false,
        // The pin may be of another of the server's keys (it usually has ed25519, ecdsa and rsa), so keep looking.
        final: false,
        build: (offered) =>
          new HostKeyError(
            'mismatch',
            ssh.host,
            ssh.port,
            offered,
            `ssh: host key verification failed for ${where}: the server offered ${describeOffered(offered)}, ` +
              `not the pinned host_key ${pinned}.\n` +
              `Someone may be impersonating the server (man-in-the-middle), or its host key was replaced. Nothing was sent to it.\n` +
              pinInstructions(offered[0]!, ssh),
          ),
      };
    },
  };
}

async function knownHostsPolicy(ssh: SshOptions): Promise<HostKeyPolicy> {
  const file = expandHome(ssh.knownHosts ?? '~/.ssh/known_hosts');
  let entries: KnownHostsEntry[] = [];
  let missing = false;
  try {
    entries = parseKnownHosts(await readFile(file, 'utf8'));
  } catch (err) {
    // A missing file is just "host unknown": we still connect to learn the offered key and print its fingerprint.
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new TunnelError('config', `ssh: cannot read known_hosts ${file}: ${(err as Error).message}: check [database.ssh] known_hosts`, { cause: err });
    }
    missing = true;
  }
  const name = knownHostsName(ssh.host, ssh.port);
  const known = knownTypesFor(entries, ssh.host, ssh.port);
  const where = `${ssh.host}:${ssh.port}`;
  return {
    // Like OpenSSH, ask first for key types known_hosts holds for this host; otherwise a server with several keys
    // would offer its ed25519 key while known_hosts only has its rsa key.
    keyTypes: [...known.filter((t) => ALL_KEY_TYPES.includes(t)), ...ALL_KEY_TYPES.filter((t) => !known.includes(t))],
    check(keyBlob) {
      const v = checkKnownHosts(entries, ssh.host, ssh.port, keyBlob);
      if (v.status === 'match') return { ok: true };
      const build = (offered: OfferedHostKey[]): HostKeyError => {
        const k = offered[0]!;
        if (v.status === 'revoked') {
          return new HostKeyError(
            'revoked',
            ssh.host,
            ssh.port,
            offered,
            `ssh: host key verification failed for ${where}: the offered ${prettyType(k.type)} key ${k.fingerprint} is marked @revoked in ${file} line ${v.entry.line}. Refusing to connect.`,
          );
        }
        if (v.status === 'changed') {
          return new HostKeyError(
            'changed',
            ssh.host,
            ssh.port,
            offered,
            `ssh: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for ${where}: the server offered ${prettyType(k.type)} key ${k.fingerprint}, ` +
              `but ${file} line ${v.entry.line} holds a different ${prettyType(v.entry.keyType)} key for ${name}.\n` +
              `Someone may be impersonating the server (man-in-the-middle), or its host key was replaced. Nothing was sent to it.\n` +
              `If the change is expected, remove the old key with \`ssh-keygen -R '${name}' -f ${file}\`, then:\n` +
              pinInstructions(k, ssh),
          );
        }
        const why = missing
          ? `${file} does not exist`
          : v.certAuthorityOnly
            ? `${file} only has @cert-authority entries for ${name}, and host certificates are not supported`
            : v.knownTypes.length > 0
              ? `${file} only has ${v.knownTypes.map(prettyType).join('/')} keys for ${name}, which the server did not offer`
              : `${name} is not in ${file}`;
        return new HostKeyError(
          'unknown',
          ssh.host,
          ssh.port,
          offered,
          `ssh: the authenticity of host ${where} can't be established: ${why}.\n` +
            `The server offered ${prettyType(k.type)} key ${k.fingerprint}. Nothing was sent to it.\n` +
            pinInstructions(k, ssh),
        );
      };
      return { ok: false, final: true, build };
    },
  };
}

async function hostKeyPolicy(ssh: SshOptions): Promise<HostKeyPolicy> {
  if (ssh.hostKey !== undefined && ssh.hostKey.trim() !== '') {
    const pinned = parsePinnedFingerprint(ssh.hostKey);
    if (!pinned) {
      throw new TunnelError(
        'config',
        `ssh: host_key "${ssh.hostKey}" is not a SHA256 fingerprint: use the "SHA256:..." value that \`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub\` prints on the server`,
      );
    }
    return pinnedPolicy(ssh, pinned);
  }
  return knownHostsPolicy(ssh);
}

// ---------------------------------------------------------------------------------------------------------
// Authentication
// ---------------------------------------------------------------------------------------------------------

function expandHome(p: string): string {
  if (p === '~') return os.homedir();
  if (p.startsWith('~/')) return path.join(os.homedir(), p.slice(2));
  return p;
}

async function loadPrivateKey(file: string, passphrase: string | undefined): Promise<ParsedKey> {
  const resolved = expandHome(file);
  let data: Buffer;
  try {
    data = await readFile(resolved);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new TunnelError('key', `ssh: cannot read private_key ${resolved} (${code}): check [database.ssh] private_key`, { cause: err });
  }
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) {
    const msg = parsed.message;
    if (/no passphrase given/i.test(msg)) {
      throw new TunnelError('key', `ssh: private_key ${resolved} is encrypted: set its passphrase under [database.ssh] (passphrase = "...")`, {
        cause: parsed,
      });
    }
    if (/passphrase|decrypt/i.test(msg)) {
      throw new TunnelError('key', `ssh: wrong passphrase for private_key ${resolved}: check [database.ssh] passphrase`, { cause: parsed });
    }
    throw new TunnelError('key', `ssh: cannot use private_key ${resolved}: ${msg} (ed25519, ecdsa and rsa keys in OpenSSH or PEM format are supported)`, {
      cause: parsed,
    });
  }
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  if (!key.isPrivateKey()) {
    throw new TunnelError('key', `ssh: private_key ${resolved} holds a public key: name the private key file (without .pub)`);
  }
  return key;
}

interface AuthPlan {
  methods: Array<{ label: string; serverName: AuthenticationType; method: AnyAuthMethod }>;
  /** Which [database.ssh] settings to check when authentication fails. */
  hint: string;
}

async function planAuth(ssh: SshOptions): Promise<AuthPlan> {
  const methods: AuthPlan['methods'] = [];
  const hints: string[] = ['user'];
  const username = ssh.user;
  // Same order as OpenSSH: keys before passwords.
  if (ssh.privateKey) {
    const key = await loadPrivateKey(ssh.privateKey, ssh.passphrase);
    methods.push({ label: 'publickey', serverName: 'publickey', method: { type: 'publickey', username, key } });
    hints.push("private_key (is its public key in the server's authorized_keys?)");
  }
  if (ssh.agent) {
    const sock = process.env.SSH_AUTH_SOCK;
    if (!sock) throw new TunnelError('config', 'ssh: agent = true but SSH_AUTH_SOCK is not set: start ssh-agent and ssh-add your key, or set private_key');
    methods.push({ label: 'publickey (agent)', serverName: 'publickey', method: { type: 'agent', username, agent: sock } });
    hints.push('the keys loaded in ssh-agent');
  }
  if (ssh.password !== undefined) {
    methods.push({ label: 'password', serverName: 'password', method: { type: 'password', username, password: ssh.password } });
    hints.push('password');
  }
  if (methods.length === 0) {
    throw new TunnelError('config', 'ssh: no authentication method: set private_key, password or agent = true under [database.ssh]');
  }
  return { methods, hint: hints.join(' / ') };
}

// ---------------------------------------------------------------------------------------------------------
// Connecting
// ---------------------------------------------------------------------------------------------------------

type Attempt =
  | { kind: 'ready'; client: SshClient; fingerprint: string }
  | { kind: 'rejected'; verdict: Extract<Verdict, { ok: false }>; offeredType: string }
  // The server has none of the requested host key types (only when searching for a pinned key).
  | { kind: 'noMatchingKeyType' };

type Ssh2Error = Error & { level?: string; code?: string };

function connectOnce(ssh: SshOptions, plan: AuthPlan, policy: HostKeyPolicy, keyTypes: string[], offered: OfferedHostKey[]): Promise<Attempt> {
  const where = `${ssh.user}@${ssh.host}:${ssh.port}`;
  return new Promise<Attempt>((resolve, reject) => {
    const client = new Client();
    let settled = false;
    let rejection: Extract<Attempt, { kind: 'rejected' }> | undefined;
    let fingerprint = '';
    const tried: string[] = [];
    let serverMethods: string[] | undefined;
    const notes: string[] = [];

    const settle = (outcome: Attempt | Error): void => {
      if (settled) return;
      settled = true;
      if (outcome instanceof Error || outcome.kind !== 'ready') client.destroy();
      if (outcome instanceof Error) reject(outcome);
      else resolve(outcome);
    };

    const verify = (keyBlob: Buffer): boolean => {
      const type = keyTypeOf(keyBlob);
      fingerprint = fingerprintOf(keyBlob);
      offered.push({ type, fingerprint });
      const verdict = policy.check(keyBlob);
      if (verdict.ok) return true;
      rejection = { kind: 'rejected', verdict, offeredType: type };
      return false;
    };

    let next = 0;
    const authHandler = (authsLeft: AuthenticationType[] | null, _partial: boolean | null, cb: (m: AnyAuthMethod | false) => void): void => {
      if (authsLeft === null) {
        // "none" first, like OpenSSH: it costs one round trip and tells us which methods the server accepts.
        cb({ type: 'none', username: ssh.user });
        return;
      }
      serverMethods = authsLeft;
      while (next < plan.methods.length) {
        const m = plan.methods[next++]!;
        if (!authsLeft.includes(m.serverName)) continue;
        tried.push(m.label);
        cb(m.method);
        return;
      }
      cb(false);
    };

    client.on('error', (err: Ssh2Error) => {
      if (settled) return;
      if (rejection) return settle(rejection);
      const level = err.level ?? '';
      if (level === 'agent' || (level === 'client-authentication' && !/All configured authentication methods failed/.test(err.message))) {
        // ssh2 reports these and moves on to the next method; keep them for the final message.
        notes.push(err.message);
        return;
      }
      if (level === 'handshake' && /no matching host key/i.test(err.message) && offered.length > 0) {
        return settle({ kind: 'noMatchingKeyType' });
      }
      if (level === 'client-authentication') {
        const ours = plan.methods.filter((m) => !tried.includes(m.label)).map((m) => m.label);
        const accepts = serverMethods ? `; the server accepts ${serverMethods.join(', ') || 'nothing'}` : '';
        const skipped = ours.length > 0 ? `; not tried because the server does not accept it: ${ours.join(', ')}` : '';
        const extra = notes.length > 0 ? ` (${notes.join('; ')})` : '';
        return settle(
          new TunnelError(
            'auth',
            `ssh: authentication failed for ${where} (tried ${tried.join(', ') || 'nothing'}${accepts}${skipped})${extra}: check [database.ssh] ${plan.hint}`,
            { cause: err },
          ),
        );
      }
      if (level === 'client-timeout') {
        return settle(
          new TunnelError(
            'timeout',
            `ssh: timed out connecting to ${ssh.host}:${ssh.port} (${err.message}): check [database.ssh] host and port, and firewalls`,
            {
              cause: err,
            },
          ),
        );
      }
      if (level === 'client-socket' || level === 'client-dns') {
        return settle(
          new TunnelError('unreachable', `ssh: cannot reach ${ssh.host}:${ssh.port} (${err.code ?? err.message}): check [database.ssh] host and port`, {
            cause: err,
          }),
        );
      }
      return settle(new TunnelError('protocol', `ssh: connection to ${ssh.host}:${ssh.port} failed: ${err.message}`, { cause: err }));
    });
    client.on('close', () => {
      if (rejection) return settle(rejection);
      settle(new TunnelError('protocol', `ssh: ${ssh.host}:${ssh.port} closed the connection before authentication finished`));
    });
    client.once('ready', () => settle({ kind: 'ready', client, fingerprint }));

    const config: ConnectConfig = {
      host: ssh.host,
      port: ssh.port,
      username: ssh.user,
      hostVerifier: verify,
      authHandler: authHandler as unknown as ConnectConfig['authHandler'],
      algorithms: { serverHostKey: algorithmsFor(keyTypes) as NonNullable<ConnectConfig['algorithms']>['serverHostKey'] },
      // Keepalives detect a silently dead path (NAT timeout, server gone) instead of hanging for hours.
      keepaliveInterval: ssh.keepaliveIntervalMs ?? 10_000,
      keepaliveCountMax: 3,
      readyTimeout: ssh.readyTimeoutMs ?? 20_000,
    };
    try {
      client.connect(config);
    } catch (err) {
      settle(new TunnelError('config', `ssh: invalid connection settings: ${(err as Error).message}`, { cause: err }));
    }
  });
}

/** Connects, verifying the host key; with a pinned key, asks for each of the server's key types in turn. */
async function connect(ssh: SshOptions): Promise<{ client: SshClient; fingerprint: string }> {
  const plan = await planAuth(ssh);
  const policy = await hostKeyPolicy(ssh);
  const offered: OfferedHostKey[] = [];
  let remaining = policy.keyTypes;
  let lastRejection: Extract<Attempt, { kind: 'rejected' }> | undefined;
  while (remaining.length > 0) {
    const attempt = await connectOnce(ssh, plan, policy, remaining, offered);
    if (attempt.kind === 'ready') return { client: attempt.client, fingerprint: attempt.fingerprint };
    if (attempt.kind === 'noMatchingKeyType') break;
    lastRejection = attempt;
    if (attempt.verdict.final) break;
    // Rejected keys never reach authentication, so asking again for another key type sends no credentials.
    remaining = remaining.filter((t) => t !== attempt.offeredType);
  }
  if (!lastRejection) throw new TunnelError('protocol', `ssh: ${ssh.host}:${ssh.port} offered no usable host key`);
  throw lastRejection.verdict.build(offered);
}

// ---------------------------------------------------------------------------------------------------------
// The tunnel
// ---------------------------------------------------------------------------------------------------------

class SshTunnel extends EventEmitter implements Tunnel {
  readonly localHost = '127.0.0.1';
  localPort = 0;
  dropped = false;
  private closing: Promise<void> | undefined;
  private clientClosed = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly channels = new Set<ClientChannel>();
  /** Set while close() waits for the forwarded connections to finish. */
  private whenNoForwards: (() => void) | undefined;
  private readonly server: net.Server;
  private dropError: TunnelError | undefined;

  constructor(
    private readonly client: SshClient,
    readonly hostKeyFingerprint: string,
    private readonly ssh: SshOptions,
    private readonly target: TunnelTarget,
  ) {
    super();
    this.server = net.createServer((sock) => this.forward(sock));
    // Nagle on either hop adds a delayed-ACK wait to every small pg round trip.
    client.setNoDelay(true);
    let lastError: Error | undefined;
    client.on('error', (err: Error) => {
      lastError = err;
    });
    client.on('close', () => {
      this.clientClosed = true;
      if (this.closing || this.dropped) return;
      this.dropped = true;
      // Stop accepting so new pg connections fail at once (ECONNREFUSED) rather than hang on a dead session.
      this.server.close();
      for (const s of this.sockets) s.destroy();
      const why = lastError ? `: ${lastError.message}` : '';
      this.dropError = new TunnelError(
        'dropped',
        `ssh: connection to ${ssh.user}@${ssh.host}:${ssh.port} dropped${why}`,
        lastError ? { cause: lastError } : undefined,
      );
      this.emit('drop', this.dropError);
    });
  }

  onDrop(listener: (err: TunnelError) => void): void {
    // Registering after the drop still fires, so callers cannot miss a drop that raced their setup.
    const err = this.dropError;
    if (err) process.nextTick(() => listener(err));
    else this.once('drop', listener);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.localHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.localPort = (this.server.address() as net.AddressInfo).port;
  }

  private forward(sock: net.Socket): void {
    if (this.dropped || this.closing) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    this.sockets.add(sock);
    let channel: ClientChannel | undefined;
    sock.on('error', () => sock.destroy()); // pg sees the close; nothing to add here
    sock.on('close', () => {
      this.sockets.delete(sock);
      channel?.close();
      // ssh2 reports a channel closed only once its end was read: drain what still comes, nobody reads it now.
      channel?.resume();
      this.forwardGone();
    });
    // Until the channel opens the socket stays paused, so pg's first bytes wait in its buffer and are not lost.
    this.client.forwardOut(sock.remoteAddress ?? '127.0.0.1', sock.remotePort ?? 0, this.target.host, this.target.port, (err, ch) => {
      if (err) {
        sock.destroy();
        const e = new TunnelError(
          'forward',
          `ssh: ${this.ssh.host} could not connect to ${this.target.host}:${this.target.port} (${err.message}): ` +
            `check that [database].url names the database as the SSH server sees it, and that it is running`,
          { cause: err },
        );
        this.emit('forwardError', e);
        return;
      }
      this.channels.add(ch);
      ch.on('close', () => {
        this.channels.delete(ch);
        sock.destroy();
        this.forwardGone();
      });
      if (sock.destroyed) {
        ch.close();
        ch.resume();
        return;
      }
      channel = ch;
      ch.on('error', () => sock.destroy());
      sock.pipe(ch).pipe(sock);
    });
  }

  private forwardGone(): void {
    if (this.sockets.size === 0 && this.channels.size === 0) this.whenNoForwards?.();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.clientClosed && (this.sockets.size > 0 || this.channels.size > 0)) {
        // pg has just written its goodbye (Terminate) on each connection it ends: let that reach the database and
        // the server close those channels, so the disconnect below cuts nothing; what does not finish soon is cut.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          this.whenNoForwards = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      if (this.clientClosed) return;
      await new Promise<void>((resolve) => {
        // A polite disconnect first; a dead peer would never answer, so cut the socket after a moment.
        const timer = setTimeout(() => {
          this.client.destroy();
          resolve();
        }, 2000);
        this.client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this.client.end();
      });
    })();
    return this.closing;
  }
}

/**
 * Opens an SSH connection (host key verified first) and a local listener forwarding to `target` as seen from
 * the SSH server. Rejects with HostKeyError (never retry) or TunnelError (see `reason` / `retryable`).
 */
export async function openTunnel(ssh: SshOptions, target: TunnelTarget): Promise<Tunnel> {
  const { client, fingerprint } = await connect(ssh);
  const tunnel = new SshTunnel(client, fingerprint, ssh, target);
  try {
    await tunnel.listen();
  } catch (err) {
    await tunnel.close();
    throw new TunnelError('config', `ssh: cannot listen on 127.0.0.1 for the tunnel: ${(err as Error).message}`, { cause: err });
  }
  return tunnel;
}
