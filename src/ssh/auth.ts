/**
 * Authentication: which credentials to offer, in OpenSSH's order (the private key, then the agent's keys, then
 * the password), each only if the server accepts that method. A key file that cannot be read or decrypted is
 * reported before connecting, so a typo never costs a round trip to production.
 */
import { readFile } from 'node:fs/promises';
import ssh2 from 'ssh2';
import type { AnyAuthMethod, AuthenticationType, ParsedKey } from 'ssh2';
import { expandHome, type SshConfig } from './config.js';
import { TunnelError, sshTunnelError } from './errors.js';

// ssh2 is CommonJS: take its utils from the default export (named ESM imports of it are not guaranteed).
const { utils } = ssh2;

async function loadPrivateKey(file: string, passphrase: string | undefined): Promise<ParsedKey> {
  const resolved = expandHome(file);
  let data: Buffer;
  try {
    data = await readFile(resolved);
  } catch (err) {
    throw sshTunnelError(err, { phase: 'key', file: resolved });
  }
  const parsed = utils.parseKey(data, passphrase);
  if (parsed instanceof Error) throw sshTunnelError(parsed, { phase: 'key', file: resolved });
  const key = Array.isArray(parsed) ? (parsed[0] as ParsedKey) : parsed;
  if (!key.isPrivateKey()) {
    throw new TunnelError('key', `ssh: private_key ${resolved} holds a public key: name the private key file (without .pub)`);
  }
  return key;
}

export interface AuthPlan {
  /** `label` names the method in messages; `serverName` is how the server lists it among the methods it accepts. */
  methods: Array<{ label: string; serverName: AuthenticationType; method: AnyAuthMethod }>;
  /** Which [database.ssh] settings to check when authentication fails. */
  hint: string;
}

export async function planAuth(ssh: SshConfig): Promise<AuthPlan> {
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
