/**
 * A private OpenStack Swift for tests (Debian's swift-* packages): proxy, account, container and object servers
 * plus the memcached tempauth keeps its tokens in, on 127.0.0.1 and free ports, with one-replica rings built in a
 * temp folder and object data on tmpfs (/dev/shm: Swift keeps metadata in xattrs, and ext4 caps a value at about
 * 4 KB, which long names with metadata exceed). Nothing of the machine's /etc/swift is used. Ready in 4-10 s.
 *
 * tempauth's account `test`, user `tester`, key `testing`: v1 auth at `authUrl`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SERVERS = ['account', 'container', 'object', 'proxy'] as const;
const BIN = (server: string) => `/usr/bin/swift-${server}-server`;
/** Debian's python3 with the swift package: the first python3 on PATH may be another install without it. */
const PYTHON = '/usr/bin/python3';
const MEMCACHED = '/usr/bin/memcached';

export const SWIFT_USER = 'test:tester';
export const SWIFT_KEY = 'testing';

/**
 * Whether the Swift tests can run. On a developer's machine without Debian's swift packages they are skipped;
 * under CI (the `CI` environment variable set) a missing Swift throws instead, so the test file fails: CI must
 * never pass by silently skipping them (.ci/run installs the packages).
 */
export function isSwiftAvailable(): boolean {
  const missing = [...SERVERS.map(BIN), MEMCACHED].filter((file) => !existsSync(file));
  if (missing.length === 0) return true;
  if (process.env.CI) {
    throw new Error(
      `CI is set and ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} missing: the Swift tests cannot be skipped in CI; install them (apt-get install -y swift swift-proxy swift-account swift-container swift-object memcached)`,
    );
  }
  return false;
}

export interface SwiftObject {
  readonly body: Buffer;
  readonly contentType?: string;
  readonly cacheControl?: string;
  readonly etag?: string;
  readonly headers: Headers;
}

export interface SwiftServer {
  /** tempauth's v1 endpoint: `http://127.0.0.1:PORT/auth/v1.0`. */
  readonly authUrl: string;
  readonly port: number;
  /** The account's URL, `http://127.0.0.1:PORT/v1/AUTH_test`. */
  readonly storageUrl: string;
  /** A valid token (fetched once). */
  token(): Promise<string>;
  createContainer(name: string): Promise<void>;
  putObject(container: string, key: string, body: Buffer, headers?: Record<string, string>): Promise<void>;
  /** The object, or undefined when it is not there. */
  getObject(container: string, key: string): Promise<SwiftObject | undefined>;
  /** Every key of the container, in the server's (ascending) order. */
  listKeys(container: string, prefix?: string): Promise<string[]>;
  /** The servers' logs so far, for a failing test's message. */
  log(): string;
  stop(): Promise<void>;
}

/** Free loopback ports, all distinct (held open together while chosen). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<net.Server>((resolve, reject) => {
          const server = net.createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

/** Resolves when something listens on the loopback port, rejects otherwise. */
function connects(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

const RING_SCRIPT = `
import sys
from swift.common.ring import RingBuilder
for name, port in zip(('account', 'container', 'object'), sys.argv[2:5]):
    b = RingBuilder(0, 1, 1)  # one partition, one replica
    b.add_dev({'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': int(port), 'device': 'd1', 'weight': 1})
    b.rebalance()
    b.get_ring().save(sys.argv[1] + '/' + name + '.ring.gz')
`;

const PIPELINE = 'catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempauth copy slo dlo proxy-logging proxy-server';

function writeConfigs(etc: string, data: string, ports: { proxy: number; account: number; container: number; object: number; memcached: number }): void {
  const user = os.userInfo().username;
  const ini = (sections: Record<string, Record<string, string | number>>) =>
    Object.entries(sections)
      .map(([name, values]) => [`[${name}]`, ...Object.entries(values).map(([key, value]) => `${key} = ${value}`)].join('\n'))
      .join('\n\n') + '\n';
  writeFileSync(
    path.join(etc, 'swift.conf'),
    ini({
      'swift-hash': { swift_hash_path_prefix: 'mastosync', swift_hash_path_suffix: 'test' },
      'storage-policy:0': { name: 'Policy-0', default: 'yes' },
    }),
  );
  for (const server of ['account', 'container', 'object'] as const) {
    writeFileSync(
      path.join(etc, `${server}-server.conf`),
      ini({
        // As root the servers would switch to the user "swift", who cannot write the data folder.
        DEFAULT: { bind_ip: '127.0.0.1', bind_port: ports[server], swift_dir: etc, devices: data, mount_check: 'false', workers: 0, user },
        'pipeline:main': { pipeline: `${server}-server` },
        [`app:${server}-server`]: { use: `egg:swift#${server}` },
      }),
    );
  }
  const filters: Record<string, Record<string, string | number>> = {};
  for (const name of ['catch_errors', 'gatekeeper', 'healthcheck', 'listing_formats', 'bulk', 'copy', 'slo', 'dlo']) {
    filters[`filter:${name}`] = { use: `egg:swift#${name}` };
  }
  writeFileSync(
    path.join(etc, 'proxy-server.conf'),
    ini({
      DEFAULT: { bind_ip: '127.0.0.1', bind_port: ports.proxy, swift_dir: etc, workers: 0, user },
      'pipeline:main': { pipeline: PIPELINE },
      'app:proxy-server': { use: 'egg:swift#proxy', account_autocreate: 'true' },
      'filter:tempauth': { use: 'egg:swift#tempauth', user_test_tester: `${SWIFT_KEY} .admin` },
      // tempauth keeps its tokens in memcached: without it /auth/v1.0 answers 503.
      'filter:cache': { use: 'egg:swift#memcache', memcache_servers: `127.0.0.1:${ports.memcached}` },
      'filter:proxy-logging': { use: 'egg:swift#proxy_logging' },
      ...filters,
    }),
  );
}

export async function startSwift(): Promise<SwiftServer> {
  isSwiftAvailable();
  const root = mkdtempSync(path.join(os.tmpdir(), 'mastosync-swift-'));
  const data = mkdtempSync(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'mastosync-swift-data-'));
  const etc = path.join(root, 'etc');
  const logs = path.join(root, 'log');
  mkdirSync(etc);
  mkdirSync(logs);
  mkdirSync(path.join(data, 'd1'));
  const [proxy, account, container, object, memcached] = await freePorts(5);
  const ports = { proxy: proxy!, account: account!, container: container!, object: object!, memcached: memcached! };
  writeConfigs(etc, data, ports);
  const rings = spawnSync(PYTHON, ['-c', RING_SCRIPT, etc, String(ports.account), String(ports.container), String(ports.object)], { encoding: 'utf8' });
  if (rings.status !== 0) throw new Error(`building Swift's rings failed: ${rings.stderr}`);

  const children: ChildProcess[] = [];
  const launch = (name: string, command: string, args: string[]) => {
    const out = openSync(path.join(logs, `${name}.log`), 'a');
    // Without eventlet's green DNS (dnspython, which imports httpx) each server starts seconds sooner; all is on 127.0.0.1.
    const child = spawn(command, args, { stdio: ['ignore', out, out], env: { ...process.env, EVENTLET_NO_GREENDNS: 'yes' } });
    children.push(child);
  };
  const log = () =>
    ['memcached', ...SERVERS]
      .map((name) => {
        const file = path.join(logs, `${name}.log`);
        return existsSync(file) ? `--- ${name}\n${readFileSync(file, 'utf8').slice(-4000)}` : '';
      })
      .join('\n');
  const stop = async () => {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    rmSync(root, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  };

  launch('memcached', MEMCACHED, ['-l', '127.0.0.1', '-p', String(ports.memcached), '-U', '0', '-m', '16', '-u', os.userInfo().username]);
  // -v: log to the console (here, the log files) rather than to syslog.
  for (const server of SERVERS) launch(server, BIN(server), [path.join(etc, `${server}-server.conf`), '-v']);

  const authUrl = `http://127.0.0.1:${ports.proxy}/auth/v1.0`;
  let auth: { token: string; storageUrl: string } | undefined;
  // A cold start takes 4-8 s, longer on a loaded machine.
  for (const started = Date.now(); auth === undefined && Date.now() - started < 90_000;) {
    const exited = children.find((child) => child.exitCode !== null);
    if (exited !== undefined) {
      const text = log();
      await stop();
      throw new Error(`a Swift server exited while starting (${String(exited.spawnargs.join(' '))}):\n${text}`);
    }
    try {
      // The proxy may answer before the servers behind it listen: a container PUT would then get 503.
      await Promise.all([ports.account, ports.container, ports.object].map(connects));
      const response = await fetch(authUrl, { headers: { 'x-auth-user': SWIFT_USER, 'x-auth-key': SWIFT_KEY } });
      if (response.ok) auth = { token: response.headers.get('x-auth-token')!, storageUrl: response.headers.get('x-storage-url')! };
      await response.body?.cancel();
    } catch {
      /* not listening yet */
    }
    if (auth === undefined) await sleep(100);
  }
  if (auth === undefined) {
    const text = log();
    await stop();
    throw new Error(`Swift did not answer auth within 90 s:\n${text}`);
  }
  const { token, storageUrl } = auth;
  const objectUrl = (container: string, key: string) => `${storageUrl}/${encodeURIComponent(container)}/${key.split('/').map(encodeURIComponent).join('/')}`;
  const request = async (url: string, init: RequestInit = {}) =>
    fetch(url, { ...init, headers: { 'x-auth-token': token, ...(init.headers as Record<string, string> | undefined) } });

  return {
    authUrl,
    port: ports.proxy,
    storageUrl,
    token: () => Promise.resolve(token),
    async createContainer(name) {
      const response = await request(`${storageUrl}/${encodeURIComponent(name)}`, { method: 'PUT' });
      if (!response.ok) throw new Error(`creating container ${name}: ${response.status} ${await response.text()}`);
    },
    async putObject(container, key, body, headers = {}) {
      const response = await request(objectUrl(container, key), { method: 'PUT', body: new Uint8Array(body), headers });
      if (!response.ok) throw new Error(`PUT ${container}/${key}: ${response.status} ${await response.text()}`);
    },
    async getObject(container, key) {
      const response = await request(objectUrl(container, key));
      if (response.status === 404) return undefined;
      if (!response.ok) throw new Error(`GET ${container}/${key}: ${response.status} ${await response.text()}`);
      return {
        body: Buffer.from(await response.arrayBuffer()),
        contentType: response.headers.get('content-type') ?? undefined,
        cacheControl: response.headers.get('cache-control') ?? undefined,
        etag: response.headers.get('etag')?.replace(/^"|"$/g, ''),
        headers: response.headers,
      };
    },
    async listKeys(container, prefix = '') {
      const keys: string[] = [];
      for (;;) {
        const query = new URLSearchParams({ format: 'json', prefix, ...(keys.length > 0 ? { marker: keys.at(-1)! } : {}) });
        const response = await request(`${storageUrl}/${encodeURIComponent(container)}?${query}`);
        if (response.status === 404) return keys;
        const page = (await response.json()) as Array<{ name: string }>;
        if (page.length === 0) return keys;
        keys.push(...page.map((entry) => entry.name));
      }
    },
    log,
    stop,
  };
}

/** The lines of a [source] / [destination] type = "swift" section for `writeConfig` (test/support/cli.ts). */
export function swiftSection(authUrl: string, container: string, options: { readonly keyPrefix?: string; readonly segmentSizeMib?: number } = {}): string[] {
  return [
    'type = "swift"',
    `auth_url = ${JSON.stringify(authUrl)}`,
    `username = ${JSON.stringify(SWIFT_USER)}`,
    `password = ${JSON.stringify(SWIFT_KEY)}`,
    `container = ${JSON.stringify(container)}`,
    ...(options.keyPrefix === undefined ? [] : [`key_prefix = ${JSON.stringify(options.keyPrefix)}`]),
    ...(options.segmentSizeMib === undefined ? [] : [`segment_size = ${options.segmentSizeMib}`]),
  ];
}
