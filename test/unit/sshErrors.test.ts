/**
 * What the admin reads when the SSH tunnel fails: classifySshError against the error shapes ssh2 1.17 really
 * produces. Each shape below was recorded by provoking it against the real OpenSSH server of test/support/sshd.ts
 * (or, where noted, read from ssh2's source in node_modules/ssh2/lib), so a change in ssh2's errors shows here.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import { HostKeyError, TunnelError, classifySshError, sshTunnelError, type SshErrorContext } from '../../src/ssh/errors.js';

/** An error as ssh2 builds one: a plain Error with extra fields. */
function ssh2Error(message: string, fields: Record<string, unknown>): Error {
  return Object.assign(new Error(message), fields);
}

const connecting = (over: Partial<Extract<SshErrorContext, { phase: 'connect' }>> = {}): SshErrorContext => ({
  phase: 'connect',
  host: 'db.example.org',
  port: 2222,
  user: 'mastosync',
  tried: [],
  notTried: [],
  notes: [],
  hint: "user / private_key (is its public key in the server's authorized_keys?)",
  ...over,
});

describe('classifySshError: connecting', () => {
  test('refused: nothing listens on the port (ssh2 client-socket, ECONNREFUSED)', () => {
    const error = ssh2Error('connect ECONNREFUSED 127.0.0.1:1', {
      level: 'client-socket',
      code: 'ECONNREFUSED',
      errno: -111,
      syscall: 'connect',
      address: '127.0.0.1',
      port: 1,
    });
    assert.deepEqual(classifySshError(error, connecting()), {
      failure: 'refused',
      reason: 'unreachable',
      message: 'ssh: cannot reach db.example.org:2222 (ECONNREFUSED): check [database.ssh] host and port',
    });
  });

  test('unreachable: the name does not resolve (client-socket, ENOTFOUND from getaddrinfo)', () => {
    const error = ssh2Error('getaddrinfo ENOTFOUND no-such-host.invalid', {
      level: 'client-socket',
      code: 'ENOTFOUND',
      errno: -3008,
      syscall: 'getaddrinfo',
      hostname: 'no-such-host.invalid',
    });
    const verdict = classifySshError(error, connecting());
    assert.equal(verdict.failure, 'unreachable');
    assert.equal(verdict.reason, 'unreachable');
    assert.equal(verdict.message, 'ssh: cannot reach db.example.org:2222 (ENOTFOUND): check [database.ssh] host and port');
  });

  test('unreachable: no route to the host (client-socket, EHOSTUNREACH: Node socket shape)', () => {
    const error = ssh2Error('connect EHOSTUNREACH 192.0.2.1:22', { level: 'client-socket', code: 'EHOSTUNREACH', errno: -113, syscall: 'connect' });
    assert.equal(classifySshError(error, connecting()).failure, 'unreachable');
  });

  test("unreachable: ssh2's own DNS lookup failed (client-dns, no code: from ssh2's source)", () => {
    const error = ssh2Error("Error while looking up IPv4 address for 'db.example.org': Error: getaddrinfo ENOTFOUND db.example.org", { level: 'client-dns' });
    const verdict = classifySshError(error, connecting());
    assert.equal(verdict.failure, 'unreachable');
    assert.match(verdict.message, /^ssh: cannot reach db\.example\.org:2222 \(Error while looking up IPv4 address/);
  });

  test('timeout: the port answers but never speaks SSH (client-timeout)', () => {
    const error = ssh2Error('Timed out while waiting for handshake', { level: 'client-timeout' });
    assert.deepEqual(classifySshError(error, connecting()), {
      failure: 'timeout',
      reason: 'timeout',
      message: 'ssh: timed out connecting to db.example.org:2222 (Timed out while waiting for handshake): check [database.ssh] host and port, and firewalls',
    });
  });

  test('auth rejected: the message lists the methods tried, what the server accepts and what was not tried', () => {
    const error = ssh2Error('All configured authentication methods failed', { level: 'client-authentication' });
    const verdict = classifySshError(
      error,
      connecting({ tried: ['publickey'], serverAccepts: ['publickey'], notTried: ['password'], hint: 'user / private_key / password' }),
    );
    assert.equal(verdict.failure, 'auth-rejected');
    assert.equal(verdict.reason, 'auth');
    assert.equal(
      verdict.message,
      'ssh: authentication failed for mastosync@db.example.org:2222 (tried publickey; the server accepts publickey; ' +
        'not tried because the server does not accept it: password): check [database.ssh] user / private_key / password',
    );
  });

  test('auth rejected: notes of methods that failed on the way are kept (an agent without keys)', () => {
    const error = ssh2Error('All configured authentication methods failed', { level: 'client-authentication' });
    const verdict = classifySshError(
      error,
      connecting({ tried: ['publickey (agent)'], serverAccepts: [], notes: ['No keys in agent'], hint: 'user / the keys loaded in ssh-agent' }),
    );
    assert.equal(
      verdict.message,
      'ssh: authentication failed for mastosync@db.example.org:2222 (tried publickey (agent); the server accepts nothing) (No keys in agent): ' +
        'check [database.ssh] user / the keys loaded in ssh-agent',
    );
  });

  test('host key: the policy’s HostKeyError keeps its own message', () => {
    const error = new HostKeyError(
      'mismatch',
      'db.example.org',
      2222,
      [{ type: 'ssh-ed25519', fingerprint: 'SHA256:x' }],
      'ssh: host key verification failed ...',
    );
    assert.deepEqual(classifySshError(error, connecting()), { failure: 'host-key', reason: 'config', message: 'ssh: host key verification failed ...' });
  });

  test('host key: ssh2 refusing a key (handshake, "Host denied") is a host key failure, not a protocol one', () => {
    const error = ssh2Error('Host denied (verification failed)', { level: 'handshake', fatal: true });
    const verdict = classifySshError(error, connecting());
    assert.equal(verdict.failure, 'host-key');
    assert.equal(new TunnelError(verdict.reason, verdict.message).retryable, false, 'a spoofed server is never retried');
  });

  test('protocol: not an SSH server, or it hung up at once ("Connection lost before handshake", level protocol)', () => {
    const error = ssh2Error('Connection lost before handshake', { level: 'protocol', fatal: true });
    assert.deepEqual(classifySshError(error, connecting()), {
      failure: 'protocol',
      reason: 'protocol',
      message: 'ssh: connection to db.example.org:2222 failed: Connection lost before handshake',
    });
  });

  test('protocol: no common algorithm (handshake)', () => {
    const error = ssh2Error('Handshake failed: no matching host key format', { level: 'handshake', fatal: true });
    assert.equal(classifySshError(error, connecting()).failure, 'protocol');
  });

  test('protocol: the server disconnects with a reason (DISCONNECT: numeric code, no level: from ssh2 source)', () => {
    const error = ssh2Error('Too many authentication failures', { code: 2 });
    const verdict = classifySshError(error, connecting());
    assert.equal(verdict.failure, 'protocol');
    assert.equal(verdict.message, 'ssh: connection to db.example.org:2222 failed: Too many authentication failures');
  });

  test('the server closed before authentication finished, with no error reported', () => {
    assert.deepEqual(classifySshError(undefined, connecting()), {
      failure: 'protocol',
      reason: 'protocol',
      message: 'ssh: db.example.org:2222 closed the connection before authentication finished',
    });
  });
});

describe('classifySshError: the private key', () => {
  const key = (error: unknown) => classifySshError(error, { phase: 'key', file: '/etc/mastosync/id_ed25519' });

  test('unreadable: Node’s fs error', () => {
    const error = Object.assign(new Error("ENOENT: no such file or directory, open '/etc/mastosync/id_ed25519'"), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'open',
    });
    assert.deepEqual(key(error), {
      failure: 'key-unreadable',
      reason: 'key',
      message: 'ssh: cannot read private_key /etc/mastosync/id_ed25519 (ENOENT): check [database.ssh] private_key',
    });
  });

  test('encrypted and no passphrase: OpenSSH format and PEM format', () => {
    for (const message of [
      'Encrypted private OpenSSH key detected, but no passphrase given',
      'Encrypted OpenSSH private key detected, but no passphrase given',
    ]) {
      assert.deepEqual(key(new Error(message)), {
        failure: 'key-encrypted',
        reason: 'key',
        message: 'ssh: private_key /etc/mastosync/id_ed25519 is encrypted: set its passphrase under [database.ssh] (passphrase = "...")',
      });
    }
  });

  test('wrong passphrase: OpenSSH format and PEM format', () => {
    for (const message of ['OpenSSH key integrity check failed -- bad passphrase?', 'Malformed OpenSSH private key. Bad passphrase?']) {
      assert.deepEqual(key(new Error(message)), {
        failure: 'key-passphrase',
        reason: 'key',
        message: 'ssh: wrong passphrase for private_key /etc/mastosync/id_ed25519: check [database.ssh] passphrase',
      });
    }
  });

  test('unsupported: what ssh2’s parser really answers for a file that is no key', () => {
    const parsed = ssh2.utils.parseKey(Buffer.from('db.example.org\n'));
    assert.ok(parsed instanceof Error);
    assert.deepEqual(key(parsed), {
      failure: 'key-unsupported',
      reason: 'key',
      message:
        'ssh: cannot use private_key /etc/mastosync/id_ed25519: Unsupported key format (ed25519, ecdsa and rsa keys in OpenSSH or PEM format are supported)',
    });
  });
});

describe('classifySshError: forwarding and a session under way', () => {
  const forward = (error: unknown) => classifySshError(error, { phase: 'forward', host: 'db.example.org', target: { host: '10.0.0.5', port: 5432 } });

  test('forwarding refused by the server: AllowTcpForwarding no answers "administratively prohibited" (reason 1)', () => {
    const verdict = forward(ssh2Error('(SSH) Channel open failure: open failed', { reason: 1 }));
    assert.equal(verdict.failure, 'forward-refused');
    assert.equal(verdict.reason, 'forward');
    assert.equal(
      verdict.message,
      'ssh: db.example.org refuses to forward connections to 10.0.0.5:5432 ((SSH) Channel open failure: open failed): ' +
        'its sshd_config must allow TCP forwarding for this user (AllowTcpForwarding yes, and PermitOpen, if set, must list 10.0.0.5:5432)',
    );
    assert.equal(new TunnelError(verdict.reason, verdict.message).retryable, false, 'waiting does not change sshd_config');
  });

  test('the SSH server cannot reach the database (connect failed, reason 2): waited for, as a database restarting', () => {
    const verdict = forward(ssh2Error('(SSH) Channel open failure: Connection refused', { reason: 2 }));
    assert.equal(new TunnelError(verdict.reason, verdict.message).retryable, true, 'direct, the same refusal is waited for (exit 75)');
    assert.deepEqual(verdict, {
      failure: 'forward-failed',
      reason: 'unreachable',
      message:
        'ssh: db.example.org could not connect to 10.0.0.5:5432 ((SSH) Channel open failure: Connection refused): ' +
        'check that [database].url names the database as the SSH server sees it, and that it is running',
    });
  });

  test('a database host name the SSH server cannot resolve is not waited for: it needs [database] url changed', () => {
    const verdict = forward(ssh2Error('(SSH) Channel open failure: Name or service not known', { reason: 2 }));
    assert.equal(verdict.reason, 'forward');
    assert.equal(new TunnelError(verdict.reason, verdict.message).retryable, false);
  });

  test("the SSH server's resolver failing for a moment (EAI_AGAIN) is waited for, as a database restarting", () => {
    const verdict = forward(ssh2Error('(SSH) Channel open failure: Temporary failure in name resolution', { reason: 2 }));
    assert.equal(verdict.reason, 'unreachable');
    assert.equal(new TunnelError(verdict.reason, verdict.message).retryable, true);
  });

  test('the connection closed while a channel was opening (ssh2 source: "No response from server", no reason)', () => {
    assert.equal(forward(new Error('No response from server')).failure, 'forward-failed');
  });

  const session: SshErrorContext = { phase: 'session', host: 'db.example.org', port: 2222, user: 'mastosync' };

  test('connection lost mid-run: keepalives unanswered (client-timeout "Keepalive timeout": from ssh2 source)', () => {
    const error = ssh2Error('Keepalive timeout', { level: 'client-timeout' });
    const dropped = sshTunnelError(error, session);
    assert.equal(dropped.reason, 'dropped');
    assert.equal(dropped.retryable, true);
    assert.equal(dropped.message, 'ssh: connection to mastosync@db.example.org:2222 dropped: Keepalive timeout');
    assert.equal(dropped.cause, error);
  });

  test('connection lost mid-run: reset (client-socket, read ECONNRESET)', () => {
    const error = ssh2Error('read ECONNRESET', { level: 'client-socket', code: 'ECONNRESET', errno: -104, syscall: 'read' });
    assert.equal(classifySshError(error, session).message, 'ssh: connection to mastosync@db.example.org:2222 dropped: read ECONNRESET');
  });

  test('connection lost mid-run without an error (sshd killed: ssh2 only emits close)', () => {
    const dropped = sshTunnelError(undefined, session);
    assert.equal(dropped.message, 'ssh: connection to mastosync@db.example.org:2222 dropped');
    assert.equal(dropped.cause, undefined);
  });
});
