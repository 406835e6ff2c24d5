/**
 * One run per checkpoint. Two cron runs on one checkpoint would copy the same objects twice (egress paid twice)
 * and interleave their lines, so a run holds `<checkpoint>.lock` from before it reads the checkpoint until it has
 * compacted it. The file names its holder (pid, host, since). A holder that died without removing it (SIGKILL,
 * power loss) does not block the next run when it ran on this host: its pid is gone, or now belongs to a process
 * that started later. A holder on another host (a checkpoint on shared storage) cannot be checked from here.
 */
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';

export interface LockHolder {
  readonly pid: number;
  readonly host: string;
  /** When it took the lock (ISO). */
  readonly since: string;
  /** The holder's start time in clock ticks since boot (Linux), to tell it from a later process given its pid. */
  readonly processStart?: number;
}

/** Another run holds the checkpoint: nothing was written. */
export class CheckpointBusyError extends Error {
  override readonly name = 'CheckpointBusyError';
  constructor(
    readonly path: string,
    readonly holder: LockHolder,
  ) {
    super(
      `checkpoint ${path} is in use by another run (pid ${holder.pid} on ${holder.host}, since ${holder.since}): ` +
        `let it finish; if that process is gone for good, remove ${lockPath(path)}`,
    );
  }
}

export function lockPath(checkpoint: string): string {
  return `${checkpoint}.lock`;
}

export class CheckpointLock {
  private constructor(private readonly path: string) {}

  /** Takes the lock or throws CheckpointBusyError; a dead holder's lock on this host is taken over. */
  static acquire(checkpoint: string): CheckpointLock {
    const path = lockPath(checkpoint);
    const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), processStart: processStart(process.pid) };
    for (let attempt = 0; ; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        try {
          writeSync(fd, `${JSON.stringify(me)}\n`);
        } finally {
          closeSync(fd);
        }
        return new CheckpointLock(path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST') throw new UsageError(`cannot create ${path} (${code}): pass --checkpoint in a folder this user may write to`);
        if (attempt > 0) throw error;
      }
      const holder = readHolder(path);
      if (holder !== undefined && !holderIsGone(holder)) throw new CheckpointBusyError(checkpoint, holder);
      // Gone, or a file torn by a crash while it was written: take it over (once).
      unlinkSync(path);
    }
  }

  release(): void {
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  }
}

function readHolder(path: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' && typeof holder.host === 'string' && typeof holder.since === 'string' ? (holder as LockHolder) : undefined;
  } catch {
    return undefined;
  }
}

function holderIsGone(holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the pid lives, under another user.
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
  const start = processStart(holder.pid);
  return holder.processStart !== undefined && start !== undefined && start !== holder.processStart;
}

/** Field 22 of /proc/PID/stat (after the parenthesised command name, which may hold spaces); undefined off Linux. */
function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[19]);
    return Number.isFinite(ticks) ? ticks : undefined;
  } catch {
    return undefined;
  }
}
