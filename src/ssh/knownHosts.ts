/**
 * Host key fingerprints and known_hosts, read the way OpenSSH reads them: plain and hashed (`|1|salt|hmac`)
 * host fields, `*`/`?` patterns and `!` negations, `[host]:port` names, @revoked and @cert-authority markers.
 * Pure: parsing and matching only; reading the file and deciding what to do is src/ssh/hostKey.ts.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

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
export function knownTypesFor(entries: KnownHostsEntry[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  return [...new Set(entries.filter((e) => e.marker === '' && knownHostsEntryMatches(e.hosts, name)).map((e) => e.keyType))];
}
