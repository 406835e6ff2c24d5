/**
 * The host key policy: which server is the real one, decided before any credential is sent (ssh2 checks the
 * host key during key exchange, ahead of user authentication). Either a pinned SHA256 fingerprint
 * (`host_key`), or known_hosts; anything else is refused with a HostKeyError that says how to check and pin
 * the offered key. The policy also picks which host key types to ask the server for, in which order.
 */
import { readFile } from 'node:fs/promises';
import { expandHome, type SshConfig } from './config.js';
import { HostKeyError, TunnelError, type OfferedHostKey } from './errors.js';
import { checkKnownHosts, fingerprintOf, knownHostsName, knownTypesFor, parseKnownHosts, parsePinnedFingerprint, type KnownHostsEntry } from './knownHosts.js';

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
export function algorithmsFor(keyTypes: readonly string[]): string[] {
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

export type Verdict =
  | { ok: true }
  // `final: false` means "another key type of the same server may still match", so the caller asks for it.
  | { ok: false; final: boolean; build: (offered: OfferedHostKey[]) => HostKeyError };

export interface HostKeyPolicy {
  /** Key types to ask for, preferred first. */
  keyTypes: string[];
  check(keyBlob: Buffer): Verdict;
}

/**
 * The end of every host key refusal, on its one line: how to check the offered key, and the config line that pins
 * it; `alternative` adds another way (known_hosts).
 */
function checkAndPin(offered: OfferedHostKey, alternative = ''): string {
  return (
    `check ${offered.fingerprint} with \`ssh-keygen -lf ${serverKeyFileHint(offered.type)}\` on the server, ` +
    `then set [database.ssh] host_key = "${offered.fingerprint}"${alternative}`
  );
}

/** Why a key refused may not be the server's fault, and what it did not get. */
const NOTHING_SENT = 'its key was replaced, or another server answers; nothing was sent to it';

function sshTarget(ssh: SshConfig): string {
  return ssh.port === 22 ? `${ssh.user}@${ssh.host}` : `-p ${ssh.port} ${ssh.user}@${ssh.host}`;
}

function describeOffered(offered: OfferedHostKey[]): string {
  return offered.map((k) => `${prettyType(k.type)} key ${k.fingerprint}`).join(', ');
}

function pinnedPolicy(ssh: SshConfig, pinned: string): HostKeyPolicy {
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
              `not the pinned host_key ${pinned} (${NOTHING_SENT}): ${checkAndPin(offered[0]!)}`,
          ),
      };
    },
  };
}

async function knownHostsPolicy(ssh: SshConfig): Promise<HostKeyPolicy> {
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
            `ssh: host key verification failed for ${where}: the offered ${prettyType(k.type)} key ${k.fingerprint} is marked @revoked in ${file} line ${v.entry.line} ` +
              `(nothing was sent to it): give the server a new host key and set it as [database.ssh] host_key, or remove that line if the key was revoked by mistake`,
          );
        }
        if (v.status === 'changed') {
          return new HostKeyError(
            'changed',
            ssh.host,
            ssh.port,
            offered,
            `ssh: REMOTE HOST IDENTIFICATION HAS CHANGED for ${where}: the server offered ${prettyType(k.type)} key ${k.fingerprint}, ` +
              `but ${file} line ${v.entry.line} holds another ${prettyType(v.entry.keyType)} key for ${name} (${NOTHING_SENT}): ` +
              `${checkAndPin(k)}, or remove the old entry with \`ssh-keygen -R '${name}' -f ${file}\` and add the new key`,
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
          `ssh: the authenticity of host ${where} can't be established (${why}; it offered ${prettyType(k.type)} key ${k.fingerprint}, ` +
            `nothing was sent to it): ${checkAndPin(k, `, or add the key to ${file} (\`ssh ${sshTarget(ssh)}\` once)`)}`,
        );
      };
      return { ok: false, final: true, build };
    },
  };
}

/** The pinned key when host_key is set, else known_hosts. A host_key that is no fingerprint is a config error. */
export async function hostKeyPolicy(ssh: SshConfig): Promise<HostKeyPolicy> {
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
