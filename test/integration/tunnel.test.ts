/**
 * The SSH tunnel against a real OpenSSH server (test/support/sshd.ts) and the real PostgreSQL on 127.0.0.1:5432,
 * reached through the tunnel exactly as production reaches its database.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import QueryStream from 'pg-query-stream';
import type { SshOptions } from '../../src/ssh/config.js';
import { HostKeyError, TunnelError } from '../../src/ssh/errors.js';
import { checkKnownHosts, knownHostsEntryMatches, parseKnownHosts, parsePinnedFingerprint } from '../../src/ssh/knownHosts.js';
import { openTunnel, type Tunnel } from '../../src/ssh/tunnel.js';
import { isSshdAvailable, startSshd, type Sshd } from '../support/sshd.js';

const DB_TARGET = { host: '127.0.0.1', port: 5432 };

function pgClient(tunnel: Tunnel): pg.Client {
  const client = new pg.Client({ host: tunnel.localHost, port: tunnel.localPort, user: 'postgres', database: 'postgres' });
  client.on('error', () => undefined); // a dropped tunnel surfaces through the failing query instead
  return client;
}

async function selectOne(tunnel: Tunnel): Promise<void> {
  const client = pgClient(tunnel);
  await client.connect();
  try {
    const { rows } = await client.query<{ one: number }>('SELECT 1 AS one');
    assert.deepEqual(rows, [{ one: 1 }]);
  } finally {
    await client.end();
  }
}

async function withTunnel(ssh: SshOptions, fn: (t: Tunnel) => Promise<void>): Promise<void> {
  const tunnel = await openTunnel(ssh, DB_TARGET);
  try {
    await fn(tunnel);
  } finally {
    await tunnel.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref())]);
}

describe('known_hosts matching (no server needed)', () => {
  test('patterns: comma lists, wildcards, negation, case', () => {
    assert.ok(knownHostsEntryMatches('db.example.org', 'db.example.org'));
    assert.ok(knownHostsEntryMatches('other.example.org,DB.example.org,10.0.0.5', 'db.example.org'));
    assert.ok(knownHostsEntryMatches('*.example.org', 'db.example.org'));
    assert.ok(knownHostsEntryMatches('db?.example.org', 'db1.example.org'));
    assert.ok(!knownHostsEntryMatches('*.example.org,!db.example.org', 'db.example.org'));
    assert.ok(!knownHostsEntryMatches('db.example.org', '[db.example.org]:2222'), 'a bare name is for port 22 only');
    assert.ok(knownHostsEntryMatches('[db.example.org]:2222', '[db.example.org]:2222'));
    assert.ok(!knownHostsEntryMatches('db.example.org.evil', 'db.example.org'));
  });

  test('pinned fingerprints: bare, padded, or the whole ssh-keygen -lf line', () => {
    const fp = 'SHA256:jVfwZNYgi2DWcjyB2yCRy3aUVETJpH1Tn/5Xoe+rkG4';
    assert.equal(parsePinnedFingerprint(fp), fp);
    assert.equal(parsePinnedFingerprint(`${fp}=`), fp);
    assert.equal(parsePinnedFingerprint(`256 ${fp} root@db (ED25519)`), fp);
    assert.equal(parsePinnedFingerprint('MD5:12:34'), undefined);
    assert.equal(parsePinnedFingerprint('SHA256:tooshort'), undefined);
  });

  test('@revoked wins over a matching entry; @cert-authority never matches a plain key', () => {
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from('ssh-ed25519'), Buffer.from([0, 0, 0, 32]), Buffer.alloc(32, 7)]);
    const b64 = blob.toString('base64');
    const revoked = parseKnownHosts(`db.example.org ssh-ed25519 ${b64}\n@revoked * ssh-ed25519 ${b64}\n`);
    assert.equal(checkKnownHosts(revoked, 'db.example.org', 22, blob).status, 'revoked');
    const ca = parseKnownHosts(`@cert-authority *.example.org ssh-ed25519 ${b64}\n`);
    const v = checkKnownHosts(ca, 'db.example.org', 22, blob);
    assert.equal(v.status, 'unknown');
    assert.ok(v.status === 'unknown' && v.certAuthorityOnly);
    const junk = parseKnownHosts(`# comment\n\n@bogus db.example.org ssh-ed25519 ${b64}\ndb.example.org ssh-rsa ${b64}\n`);
    assert.equal(junk.length, 0, 'unknown markers and blobs whose type disagrees with the type field are skipped');
  });
});

const skip = isSshdAvailable() ? false : 'OpenSSH server not installed (/usr/sbin/sshd missing): apt-get install -y openssh-server';

describe('SSH tunnel through a real OpenSSH server', { skip }, () => {
  let sshd: Sshd;
  let tmp: string;

  before(async () => {
    sshd = await startSshd();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'mastosync-tunnel-test-'));
  });
  after(async () => {
    await sshd?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  const base = (over: Partial<SshOptions> = {}): SshOptions => ({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    privateKey: sshd.clientKeyPath,
    hostKey: sshd.hostKeyFingerprint,
    readyTimeoutMs: 10_000,
    ...over,
  });

  let knownHostsCounter = 0;
  async function knownHostsFile(...lines: string[]): Promise<string> {
    const file = path.join(tmp, `known_hosts_${knownHostsCounter++}`);
    await writeFile(file, lines.map((l) => `${l}\n`).join(''));
    return file;
  }

  test('pinned fingerprint: SELECT 1 and 200k streamed rows through the tunnel', async (t) => {
    await withTunnel(base(), async (tunnel) => {
      assert.equal(tunnel.hostKeyFingerprint, sshd.hostKeyFingerprint);
      await selectOne(tunnel);

      const client = pgClient(tunnel);
      await client.connect();
      try {
        const started = performance.now();
        const stream = client.query(new QueryStream('SELECT n FROM generate_series(1, 200000) AS n', [], { batchSize: 10_000 }));
        let count = 0;
        let last = 0;
        for await (const row of stream as AsyncIterable<{ n: number }>) {
          count++;
          last = row.n;
        }
        const ms = performance.now() - started;
        assert.equal(count, 200_000);
        assert.equal(last, 200_000);
        const msg = `200000 rows through the SSH tunnel (batchSize 10000): ${ms.toFixed(0)} ms`;
        t.diagnostic(msg);
        console.log(msg);
        // The issue asks for < 2 s on this machine; allow slack for a loaded CI box, the figure is logged above.
        assert.ok(ms < 6000, msg);
      } finally {
        await client.end();
      }
    });
  });

  test("pinned fingerprint of the server's RSA or ECDSA key works although it prefers to offer ED25519", async () => {
    for (const kind of ['rsa', 'ecdsa'] as const) {
      const fp = sshd.hostKeys.find((k) => k.kind === kind)!.fingerprint;
      await withTunnel(base({ hostKey: fp }), async (tunnel) => {
        assert.equal(tunnel.hostKeyFingerprint, fp);
        await selectOne(tunnel);
      });
    }
  });

  test('the whole `ssh-keygen -lf` line is accepted as host_key', async () => {
    await withTunnel(base({ hostKey: `256 ${sshd.hostKeyFingerprint} root@db (ED25519)` }), selectOne);
  });

  test('known_hosts: [host]:port form, hashed form, comma list, RSA-only entry', async () => {
    const plain = sshd.knownHostsLine();
    assert.match(plain, /^\[127\.0\.0\.1\]:\d+ ssh-ed25519 /);
    await withTunnel(base({ hostKey: undefined, knownHosts: await knownHostsFile('# mine', plain) }), selectOne);

    const hashed = sshd.knownHostsLine(true);
    assert.match(hashed, /^\|1\|[^|]+\|[^ ]+ ssh-ed25519 /);
    await withTunnel(base({ hostKey: undefined, knownHosts: await knownHostsFile(hashed) }), selectOne);

    const list = plain.replace(/^(\S+)/, 'other.example.org,$1,10.1.2.3');
    await withTunnel(
      base({
        hostKey: undefined,
        knownHosts: await knownHostsFile('other.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', list),
      }),
      selectOne,
    );

    // Only the RSA key is known: the client must ask the server for its RSA key rather than fail on ED25519.
    const rsaOnly = await knownHostsFile(sshd.knownHostsLine(false, 'rsa'));
    await withTunnel(base({ hostKey: undefined, knownHosts: rsaOnly }), async (tunnel) => {
      assert.equal(tunnel.hostKeyFingerprint, sshd.hostKeys.find((k) => k.kind === 'rsa')!.fingerprint);
      await selectOne(tunnel);
    });
  });

  test('known_hosts: a bare host name applies on port 22', async (t) => {
    // Needs a second sshd on port 22 of another loopback address; skip where that port is taken or not ours.
    let sshd22: Sshd;
    try {
      sshd22 = await startSshd({ listenAddress: '127.0.0.2', port: 22 });
    } catch (err) {
      t.skip(`cannot run sshd on 127.0.0.2:22 here: ${(err as Error).message.split('\n')[0]}`);
      return;
    }
    try {
      const line = sshd22.knownHostsLine();
      assert.match(line, /^127\.0\.0\.2 ssh-ed25519 /);
      const ssh = { ...base(), host: '127.0.0.2', port: 22, user: sshd22.user, privateKey: sshd22.clientKeyPath, hostKey: undefined };
      await withTunnel({ ...ssh, knownHosts: await knownHostsFile(line) }, selectOne);
      await withTunnel({ ...ssh, knownHosts: await knownHostsFile(sshd22.knownHostsLine(true)) }, selectOne);
      // The same key under the [host]:22 form is not what ssh looks up for port 22.
      await assert.rejects(openTunnel({ ...ssh, knownHosts: await knownHostsFile(`[127.0.0.2]:22 ${sshd22.hostPublicKeyLine}`) }, DB_TARGET), HostKeyError);
    } finally {
      await sshd22.stop();
    }
  });

  test('wrong pinned key: HostKeyError naming the offered key, before any authentication', async () => {
    const logBefore = sshd.log().length;
    const wrong = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
    const err = await openTunnel(base({ hostKey: wrong }), DB_TARGET).then(
      () => assert.fail('connected despite a wrong pinned host key'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof HostKeyError, String(err));
    assert.equal(err.problem, 'mismatch');
    assert.equal(err.offered, sshd.hostKeyFingerprint);
    assert.ok(err.message.includes(sshd.hostKeyFingerprint), err.message);
    assert.ok(err.message.includes(`host_key = "${sshd.hostKeyFingerprint}"`), err.message);
    assert.ok(err.message.includes(wrong), err.message);
    // Every key type the server has was looked at, none accepted.
    assert.deepEqual(new Set(err.offeredKeys.map((k) => k.fingerprint)), new Set(sshd.hostKeys.map((k) => k.fingerprint)));
    // No credentials were sent, so certainly no query was run.
    const log = sshd.log().slice(logBefore);
    assert.doesNotMatch(log, /Accepted|Failed (publickey|password)|Postponed/, log);
  });

  test('unknown host, changed key, revoked key and missing file in known_hosts: HostKeyError', async () => {
    const other = await knownHostsFile(`db.example.org ${sshd.hostPublicKeyLine}`);
    const unknown = await openTunnel(base({ hostKey: undefined, knownHosts: other }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(unknown instanceof HostKeyError, String(unknown));
    assert.equal(unknown.problem, 'unknown');
    assert.equal(unknown.offered, sshd.hostKeyFingerprint);
    assert.ok(unknown.message.includes(sshd.hostKeyFingerprint), unknown.message);
    assert.ok(unknown.message.includes(`[127.0.0.1]:${sshd.port} is not in ${other}`), unknown.message);
    assert.ok(unknown.message.includes('host_key = "SHA256:'), unknown.message);

    // Same host, same key type, different key: the "REMOTE HOST IDENTIFICATION HAS CHANGED" case.
    const stranger = readFileSync(`${sshd.unauthorizedKeyPath}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const changedFile = await knownHostsFile(`[127.0.0.1]:${sshd.port} ${stranger}`);
    const changed = await openTunnel(base({ hostKey: undefined, knownHosts: changedFile }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(changed instanceof HostKeyError, String(changed));
    assert.equal(changed.problem, 'changed');
    assert.match(changed.message, /HAS CHANGED/);
    assert.ok(changed.message.includes(sshd.hostKeyFingerprint), changed.message);

    const revokedFile = await knownHostsFile(sshd.knownHostsLine(), `@revoked * ${sshd.hostPublicKeyLine}`);
    const revoked = await openTunnel(base({ hostKey: undefined, knownHosts: revokedFile }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(revoked instanceof HostKeyError, String(revoked));
    assert.equal(revoked.problem, 'revoked');

    const missing = await openTunnel(base({ hostKey: undefined, knownHosts: path.join(tmp, 'nope') }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(missing instanceof HostKeyError, String(missing));
    assert.match(missing.message, /does not exist/);
    assert.ok(missing.message.includes(sshd.hostKeyFingerprint), missing.message);

    // Each is one line that names what to fix: the fingerprint to check and pin, or the known_hosts entry.
    for (const error of [unknown, changed, revoked, missing] as Error[]) assert.doesNotMatch(error.message, /\n/, error.message);
    assert.ok(changed.message.includes(`ssh-keygen -R '[127.0.0.1]:${sshd.port}' -f ${changedFile}`), changed.message);
    assert.ok(changed.message.includes(`[database.ssh] host_key = "${sshd.hostKeyFingerprint}"`), changed.message);
    assert.match(revoked.message, new RegExp(`@revoked in ${revokedFile} line 2 .*\\[database\\.ssh\\] host_key`));

    const log = sshd.log();
    assert.doesNotMatch(log, /Failed (publickey|password)/, 'no credentials were ever offered to an unverified server');
  });

  test('password authentication', async () => {
    assert.ok(sshd.password, 'the test account has a password (tests run as root)');
    await withTunnel(base({ privateKey: undefined, password: sshd.password }), selectOne);

    const err = await openTunnel(base({ privateKey: undefined, password: 'wrong' }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(err instanceof TunnelError, String(err));
    assert.equal(err.reason, 'auth');
    assert.equal(err.retryable, false);
    assert.ok(err.message.includes(`${sshd.user}@127.0.0.1:${sshd.port}`), err.message);
    assert.match(err.message, /tried password/);
    assert.match(err.message, /check \[database\.ssh\] user .*password/);
  });

  test('client key types: ed25519 (above), ecdsa, rsa, encrypted ed25519, encrypted PEM rsa', async () => {
    await withTunnel(base({ privateKey: sshd.clientKeyPaths.ecdsa }), selectOne);
    await withTunnel(base({ privateKey: sshd.clientKeyPaths.rsa }), selectOne);
    await withTunnel(base({ privateKey: sshd.encryptedClientKeyPath, passphrase: sshd.passphrase }), selectOne);
    await withTunnel(base({ privateKey: sshd.encryptedPemClientKeyPath, passphrase: sshd.passphrase }), selectOne);
  });

  test('encrypted key: wrong or missing passphrase gives a TunnelError saying so', async () => {
    for (const keyPath of [sshd.encryptedClientKeyPath, sshd.encryptedPemClientKeyPath]) {
      const wrong = await openTunnel(base({ privateKey: keyPath, passphrase: 'not it' }), DB_TARGET).catch((e: unknown) => e);
      assert.ok(wrong instanceof TunnelError, String(wrong));
      assert.equal(wrong.reason, 'key');
      assert.equal(wrong.message, `ssh: wrong passphrase for private_key ${keyPath}: check [database.ssh] passphrase`);

      const none = await openTunnel(base({ privateKey: keyPath }), DB_TARGET).catch((e: unknown) => e);
      assert.ok(none instanceof TunnelError, String(none));
      assert.equal(none.reason, 'key');
      assert.match(none.message, /is encrypted: set its passphrase/);
    }
    const missing = await openTunnel(base({ privateKey: path.join(tmp, 'no_such_key') }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(missing instanceof TunnelError && missing.reason === 'key', String(missing));
    assert.match(missing.message, /cannot read private_key .*ENOENT/);
  });

  test('unauthorized key, unreachable port, bad host_key value: clear TunnelErrors', async () => {
    const denied = await openTunnel(base({ privateKey: sshd.unauthorizedKeyPath }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(denied instanceof TunnelError, String(denied));
    assert.equal(denied.reason, 'auth');
    assert.match(
      denied.message,
      new RegExp(`^ssh: authentication failed for ${sshd.user}@127\\.0\\.0\\.1:${sshd.port} \\(tried publickey; the server accepts publickey,?`),
    );
    assert.match(denied.message, /check \[database\.ssh\] user \/ private_key/);

    const closed = await openTunnel(base({ port: 1 }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(closed instanceof TunnelError, String(closed));
    assert.equal(closed.reason, 'unreachable');
    assert.equal(closed.retryable, true);
    assert.match(closed.message, /cannot reach 127\.0\.0\.1:1 \(ECONNREFUSED\): check \[database\.ssh\] host and port/);

    const badPin = await openTunnel(base({ hostKey: 'MD5:aa:bb' }), DB_TARGET).catch((e: unknown) => e);
    assert.ok(badPin instanceof TunnelError && badPin.reason === 'config', String(badPin));
  });

  test('ssh-agent authentication', { skip: existsSync('/usr/bin/ssh-agent') ? false : 'ssh-agent not installed' }, async () => {
    const sock = path.join(tmp, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    const saved = process.env.SSH_AUTH_SOCK;
    try {
      const deadline = Date.now() + 5000;
      while (!existsSync(sock) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise<void>((resolve, reject) => {
        const add = spawn('ssh-add', [sshd.clientKeyPaths.ecdsa], { env: { ...process.env, SSH_AUTH_SOCK: sock }, stdio: 'ignore' });
        add.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ssh-add exited ${code}`))));
      });
      process.env.SSH_AUTH_SOCK = sock;
      await withTunnel(base({ privateKey: undefined, agent: true }), selectOne);
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      agent.kill();
    }
  });

  test('target refused on the server side: forwardError event, pg fails, and it is waited for (a database restarting)', async () => {
    const tunnel = await openTunnel(base(), { host: '127.0.0.1', port: 1 });
    try {
      const forwardError = new Promise<TunnelError>((resolve) => tunnel.once('forwardError', resolve));
      await assert.rejects(pgClient(tunnel).connect());
      const err = await withTimeout(forwardError, 5000, 'forwardError');
      // Refused behind the SSH server as it is reached directly: retried, then exit 75 (unit: sshErrors.test.ts).
      assert.equal(err.reason, 'unreachable');
      assert.equal(err.retryable, true);
      assert.match(err.message, /could not connect to 127\.0\.0\.1:1 .*\[database\]\.url/);
    } finally {
      await tunnel.close();
    }
  });

  test('killing the sshd session: drop event, fast failure, and a fresh tunnel works', async () => {
    const tunnel = await openTunnel(base({ keepaliveIntervalMs: 1000 }), DB_TARGET);
    const drops: TunnelError[] = [];
    tunnel.on('drop', (e) => drops.push(e));
    const client = pgClient(tunnel);
    await client.connect();
    await client.query('SELECT 1');

    const dropped = new Promise<TunnelError>((resolve) => tunnel.onDrop(resolve));
    await sshd.killSessions();
    const err = await withTimeout(dropped, 10_000, 'the drop event');
    assert.ok(err instanceof TunnelError);
    assert.equal(err.reason, 'dropped');
    assert.equal(err.retryable, true);
    assert.ok(tunnel.dropped);

    // The open pg connection fails instead of hanging...
    await withTimeout(assert.rejects(client.query('SELECT 1')), 5000, 'the query on the dead tunnel to fail');
    // ...and so does a new one, at once.
    const started = Date.now();
    await assert.rejects(pgClient(tunnel).connect());
    assert.ok(Date.now() - started < 1000, `a new connection took ${Date.now() - started} ms to fail`);
    // A late onDrop still hears about it; the drop event fired exactly once.
    await withTimeout(new Promise<TunnelError>((resolve) => tunnel.onDrop(resolve)), 1000, 'a late onDrop');
    assert.equal(drops.length, 1);
    await tunnel.close();
    await client.end().catch(() => undefined);

    await withTunnel(base(), selectOne);
  });

  test('close(): the local port stops accepting, close is idempotent, no drop event', async () => {
    const tunnel = await openTunnel(base(), DB_TARGET);
    let dropped = false;
    tunnel.on('drop', () => (dropped = true));
    await selectOne(tunnel);
    await Promise.all([tunnel.close(), tunnel.close()]);
    await tunnel.close();
    await assert.rejects(pgClient(tunnel).connect());
    assert.equal(dropped, false);
    assert.equal(tunnel.dropped, false);
  });
});
