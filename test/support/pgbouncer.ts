/**
 * A private PgBouncer (Debian's `pgbouncer` package) in transaction mode in front of the test PostgreSQL, on
 * 127.0.0.1 and a free port: Mastodon's documented setup. One server connection per database and user, so that every
 * client's transactions run on the same server connection, and what one client leaves on it the next one meets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PGBOUNCER = '/usr/sbin/pgbouncer';

/**
 * Whether PgBouncer can run here. On a developer's machine without it its tests are skipped; under CI (the `CI`
 * environment variable set) a missing PgBouncer throws instead, so that CI never passes by skipping them.
 */
export function isPgBouncerAvailable(): boolean {
  if (existsSync(PGBOUNCER)) return true;
  if (process.env.CI)
    throw new Error(`CI is set and ${PGBOUNCER} is missing: the PgBouncer tests cannot be skipped in CI; install it (apt-get install -y pgbouncer)`);
  return false;
}

export interface PgBouncer {
  /** `url` (a connection URL to the target PostgreSQL) through PgBouncer. */
  through(url: string): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface PgBouncerOptions {
  /** Take settings in the startup packet and drop them (`ignore_startup_parameters = options`), as admins set for JDBC. */
  readonly ignoreStartupOptions?: boolean;
}

export async function startPgBouncer(target: { host: string; port: number }, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-pgbouncer-'));
  // PgBouncer refuses to run as root: as root it is started as postgres, who must read its files (it writes none:
  // its log goes to stderr).
  chmodSync(folder, 0o755);
  const port = await freePort();
  writeFileSync(join(folder, 'userlist.txt'), '"postgres" ""\n', { mode: 0o644 });
  writeFileSync(
    join(folder, 'pgbouncer.ini'),
    [
      '[databases]',
      `* = host=${target.host} port=${target.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      "unix_socket_dir = ''",
      'auth_type = trust',
      `auth_file = ${join(folder, 'userlist.txt')}`,
      'pool_mode = transaction',
      'default_pool_size = 1',
      'max_client_conn = 50',
      ...(options.ignoreStartupOptions ? ['ignore_startup_parameters = options'] : []),
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const args = [...(process.getuid?.() === 0 ? ['-u', 'postgres'] : []), join(folder, 'pgbouncer.ini')];
  const child: ChildProcess = spawn(PGBOUNCER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Ready once it accepts connections.
  for (let attempt = 0; ; attempt++) {
    const listening = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (listening) break;
    if (attempt > 100 || child.exitCode !== null) {
      child.kill('SIGKILL');
      rmSync(folder, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    through(url) {
      const relayed = new URL(url);
      relayed.hostname = '127.0.0.1';
      relayed.port = String(port);
      return relayed.toString();
    },
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
