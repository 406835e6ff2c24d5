/**
 * Connecting: one SSH session, host key verified by the policy (src/ssh/hostKey.ts) before the credentials
 * (src/ssh/auth.ts) are offered. With a pinned key the server is asked for each of its key types in turn, since
 * the pin may be of its rsa key while it prefers to offer ed25519.
 */
import ssh2 from 'ssh2';
import type { AnyAuthMethod, AuthenticationType, Client as SshClient, ConnectConfig } from 'ssh2';
import { planAuth, type AuthPlan } from './auth.js';
import type { SshOptions } from './config.js';
import { TunnelError, sshTunnelError, type OfferedHostKey } from './errors.js';
import { algorithmsFor, hostKeyPolicy, type HostKeyPolicy, type Verdict } from './hostKey.js';
import { fingerprintOf, keyTypeOf } from './knownHosts.js';

// ssh2 is CommonJS: take the class from its default export (named ESM imports of it are not guaranteed).
const { Client } = ssh2;

type Attempt =
  | { kind: 'ready'; client: SshClient; fingerprint: string }
  | { kind: 'rejected'; verdict: Extract<Verdict, { ok: false }>; offeredType: string }
  // The server has none of the requested host key types (only when searching for a pinned key).
  | { kind: 'noMatchingKeyType' };

type Ssh2Error = Error & { level?: string; code?: string };

function connectOnce(ssh: SshOptions, plan: AuthPlan, policy: HostKeyPolicy, keyTypes: string[], offered: OfferedHostKey[]): Promise<Attempt> {
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

    const fail = (err: Error | undefined): void => {
      settle(
        sshTunnelError(err, {
          phase: 'connect',
          host: ssh.host,
          port: ssh.port,
          user: ssh.user,
          tried,
          serverAccepts: serverMethods,
          notTried: plan.methods.filter((m) => !tried.includes(m.label)).map((m) => m.label),
          notes,
          hint: plan.hint,
        }),
      );
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
      fail(err);
    });
    client.on('close', () => {
      if (rejection) return settle(rejection);
      fail(undefined);
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

/**
 * Connects, verifying the host key; with a pinned key, asks for each of the server's key types in turn.
 * Rejects with HostKeyError (never retry) or TunnelError.
 */
export async function connect(ssh: SshOptions): Promise<{ client: SshClient; fingerprint: string }> {
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
