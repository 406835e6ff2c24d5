/**
 * A private OpenSSH server for tests: its own config, host keys and authorized_keys in a temp folder,
 * listening on loopback only. Nothing of the machine's own sshd setup is used or changed, except that password
 * auth needs a real local account: `mastosync-test` is created (as root) with a known password.
 */
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

const SSHD = '/usr/sbin/sshd';
export const TEST_USER = 'mastosync-test';
export const DEFAULT_PASSWORD = 'mastosync-test-password';

/**
 * Whether the SSH tests can run. On a developer's machine without OpenSSH they are skipped; under CI (the `CI`
 * environment variable set) a missing sshd throws instead, so the test file fails: CI must never pass by
 * silently skipping the tunnel tests.
 */
export function isSshdAvailable(): boolean {
  if (existsSync(SSHD)) return true;
  if (process.env.CI) {
    throw new Error(`CI is set and ${SSHD} is missing: the SSH tests cannot be skipped in CI; install openssh-server (apt-get install -y openssh-server)`);
  }
  return false;
}

export type KeyKind = 'ed25519' | 'ecdsa' | 'rsa';

export interface HostKeyInfo {
  kind: KeyKind;
  /** "SHA256:..." as `ssh-keygen -lf` prints it. */
  fingerprint: string;
  /** "<type> <base64>" (the .pub file without its comment). */
  publicKeyLine: string;
}

export interface Sshd {
  host: string;
  port: number;
  /** The ed25519 host key: the one clients prefer when the server offers several. */
  hostKeyFingerprint: string;
  hostPublicKeyLine: string;
  hostKeys: HostKeyInfo[];
  user: string;
  /** The account's password (password auth is enabled), or undefined when not running as root. */
  password: string | undefined;
  /** Unencrypted ed25519 key, authorized. */
  clientKeyPath: string;
  /** ed25519 key in OpenSSH's format, encrypted with `passphrase`, authorized. */
  encryptedClientKeyPath: string;
  /** RSA key in legacy PEM format (`ssh-keygen -m PEM`), encrypted with `passphrase`, authorized. */
  encryptedPemClientKeyPath: string;
  passphrase: string;
  /** Unencrypted, authorized keys of each type. */
  clientKeyPaths: Record<KeyKind, string>;
  /** A key that is not in authorized_keys. */
  unauthorizedKeyPath: string;
  dir: string;
  /**
   * A known_hosts line for this server's ed25519 key (or `kind`), named as ssh names it: `[host]:port`, or the
   * bare host on port 22. `hashed` hashes it with `ssh-keygen -H`, independently of the code under test.
   */
  knownHostsLine(hashed?: boolean, kind?: KeyKind): string;
  /** sshd's log (stderr) so far. */
  log(): string;
  /** Kills the per-connection sshd processes (not the listener): every client sees its connection drop. */
  killSessions(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartSshdOptions {
  /** Password for TEST_USER (password auth on). */
  password?: string;
  /** Default 127.0.0.1. Any 127.x address works on Linux loopback. */
  listenAddress?: string;
  /** Default: a free port. */
  port?: number;
  /** sshd's LogLevel, default VERBOSE; DEBUG1 also logs each forwarded channel opened and freed. */
  logLevel?: 'VERBOSE' | 'DEBUG1';
  /** Default true; false is a server that refuses port forwarding, as some hardened production servers do. */
  allowTcpForwarding?: boolean;
}

/** OpenSSH version as a number (9.2), or 0 when unknown. */
function sshdVersion(): number {
  const out = spawnSync(SSHD, ['-V'], { encoding: 'utf8' });
  const m = /OpenSSH_(\d+)\.(\d+)/.exec(`${out.stdout}${out.stderr}`);
  return m ? Number(m[1]) + Number(m[2]) / 10 : 0;
}

async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function keygen(file: string, kind: KeyKind, passphrase = '', extra: string[] = []): Promise<void> {
  const bits = kind === 'rsa' ? ['-b', '2048'] : [];
  await run('ssh-keygen', ['-q', '-t', kind, ...bits, '-N', passphrase, '-C', `mastosync-test-${kind}`, ...extra, '-f', file]);
}

async function fingerprint(pubFile: string): Promise<string> {
  const { stdout } = await run('ssh-keygen', ['-lf', pubFile]);
  const fp = stdout.split(/\s+/)[1];
  if (!fp?.startsWith('SHA256:')) throw new Error(`unexpected ssh-keygen -lf output: ${stdout}`);
  return fp;
}

/** Creates the test account if needed and sets its password; returns false when we cannot (not root). */
async function ensureTestUser(password: string): Promise<boolean> {
  if (process.getuid?.() !== 0) return false;
  try {
    await run('id', [TEST_USER]);
  } catch {
    try {
      // sshd refuses users whose shell does not exist, so give it /bin/sh; no home is needed for forwarding.
      await run('useradd', ['--system', '--shell', '/bin/sh', '--home-dir', '/nonexistent', '--no-create-home', TEST_USER]);
    } catch (err) {
      // Another test process may have created it meanwhile (exit code 9: user exists).
      if ((err as { code?: number }).code !== 9) throw err;
    }
  }
  // Also unlocks the account: with UsePAM no, sshd refuses even key logins for a locked ("!") password.
  await new Promise<void>((resolve, reject) => {
    const p = spawn('chpasswd', [], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`chpasswd failed: ${err}`))));
    p.stdin.end(`${TEST_USER}:${password}\n`);
  });
  return true;
}

/** All descendants of `pid`, read from /proc (sshd forks one monitor and one unprivileged child per connection). */
async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // Field 4 is the ppid; the command name (field 2) may contain spaces, so parse after its closing paren.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = parents.get(ppid) ?? [];
      list.push(Number(name));
      parents.set(ppid, list);
    } catch {
      // the process exited while we looked
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat); // a zombie is as good as gone
  } catch {
    return false;
  }
}

export async function startSshd(opts: StartSshdOptions = {}): Promise<Sshd> {
  if (!isSshdAvailable()) throw new Error(`${SSHD} not found: apt-get install -y openssh-server`);
  const host = opts.listenAddress ?? '127.0.0.1';
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mastosync-sshd-'));
  // sshd reads authorized_keys as the logged-in user, so the folder must be traversable by the test account.
  await chmod(dir, 0o755);
  await mkdir('/run/sshd', { recursive: true }).catch(() => undefined); // privilege separation directory

  const passphrase = 'correct horse battery staple';
  const kinds: KeyKind[] = ['ed25519', 'ecdsa', 'rsa'];
  const hostKeyPath = (k: KeyKind): string => path.join(dir, `ssh_host_${k}_key`);
  const clientKeyPaths = Object.fromEntries(kinds.map((k) => [k, path.join(dir, `client_${k}`)])) as Record<KeyKind, string>;
  const encryptedClientKeyPath = path.join(dir, 'client_ed25519_encrypted');
  const encryptedPemClientKeyPath = path.join(dir, 'client_rsa_pem_encrypted');
  const unauthorizedKeyPath = path.join(dir, 'client_unauthorized');
  await Promise.all([
    ...kinds.map((k) => keygen(hostKeyPath(k), k)),
    ...kinds.map((k) => keygen(clientKeyPaths[k], k)),
    keygen(encryptedClientKeyPath, 'ed25519', passphrase),
    keygen(encryptedPemClientKeyPath, 'rsa', passphrase, ['-m', 'PEM']),
    keygen(unauthorizedKeyPath, 'ed25519'),
  ]);

  const authorized = await Promise.all(
    [...kinds.map((k) => clientKeyPaths[k]), encryptedClientKeyPath, encryptedPemClientKeyPath].map((f) => readFile(`${f}.pub`, 'utf8')),
  );
  const authorizedKeys = path.join(dir, 'authorized_keys');
  await writeFile(authorizedKeys, authorized.join(''), { mode: 0o644 });

  const hostKeys: HostKeyInfo[] = await Promise.all(
    kinds.map(async (kind) => {
      const pub = await readFile(`${hostKeyPath(kind)}.pub`, 'utf8');
      const [type, b64] = pub.trim().split(/\s+/);
      return { kind, fingerprint: await fingerprint(`${hostKeyPath(kind)}.pub`), publicKeyLine: `${type} ${b64}` };
    }),
  );

  const password = opts.password ?? DEFAULT_PASSWORD;
  const haveTestUser = await ensureTestUser(password);
  const user = haveTestUser ? TEST_USER : os.userInfo().username;

  const port = opts.port ?? (await freePort(host));
  const config = path.join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      `ListenAddress ${host}`,
      ...kinds.map((k) => `HostKey ${hostKeyPath(k)}`),
      `AuthorizedKeysFile ${authorizedKeys}`,
      `PasswordAuthentication ${haveTestUser ? 'yes' : 'no'}`,
      'KbdInteractiveAuthentication no',
      // Without PAM, sshd checks the password against /etc/shadow itself.
      'UsePAM no',
      'StrictModes no',
      `AllowTcpForwarding ${opts.allowTcpForwarding === false ? 'no' : 'yes'}`,
      `AllowUsers ${user}`,
      `PidFile ${path.join(dir, 'sshd.pid')}`,
      `LogLevel ${opts.logLevel ?? 'VERBOSE'}`,
      // OpenSSH >= 9.8 penalises addresses with failed logins, which the negative tests produce on purpose.
      ...(sshdVersion() >= 9.8 ? ['PerSourcePenalties no'] : []),
      '',
    ].join('\n'),
  );

  const logLines: string[] = [];
  const child: ChildProcess = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  // Never leave a stray sshd behind if the test process dies without calling stop().
  const onExit = (): void => {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  };
  process.once('exit', onExit);

  const started = new Promise<void>((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error(`sshd did not start within 10 s:\n${logLines.join('\n')}`)), 10_000);
    child.stderr!.on('data', (d: Buffer) => {
      buffered += d.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        logLines.push(line);
        if (/Server listening on/.test(line)) {
          clearTimeout(timer);
          resolve();
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sshd exited (${code ?? signal}) before listening:\n${logLines.join('\n')}`));
    });
  });
  try {
    await started;
  } catch (err) {
    onExit();
    process.removeListener('exit', onExit);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const hostKey = hostKeys.find((k) => k.kind === 'ed25519')!;

  const killSessions = async (): Promise<void> => {
    if (child.pid === undefined) return;
    const pids = await descendants(child.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    // Wait until the kernel has closed their sockets, so the client-side drop is what the caller observes next.
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  };

  return {
    host,
    port,
    hostKeyFingerprint: hostKey.fingerprint,
    hostPublicKeyLine: hostKey.publicKeyLine,
    hostKeys,
    user,
    password: haveTestUser ? password : undefined,
    clientKeyPath: clientKeyPaths.ed25519,
    encryptedClientKeyPath,
    encryptedPemClientKeyPath,
    passphrase,
    clientKeyPaths,
    unauthorizedKeyPath,
    dir,
    knownHostsLine(hashed = false, kind: KeyKind = 'ed25519') {
      const name = port === 22 ? host : `[${host}]:${port}`;
      const line = `${name} ${hostKeys.find((k) => k.kind === kind)!.publicKeyLine}`;
      if (!hashed) return line;
      const file = path.join(dir, `known_hosts_to_hash_${Math.random().toString(36).slice(2)}`);
      writeFileSync(file, `${line}\n`);
      execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
      return readFileSync(file, 'utf8').trim();
    },
    log: () => logLines.join('\n'),
    killSessions,
    async stop() {
      // Sessions outlive the listener in OpenSSH, so end them first.
      await killSessions();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      process.removeListener('exit', onExit);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
