/**
 * One run per checkpoint. Two cron runs on one checkpoint would copy the same objects twice (egress paid twice)
 * and interleave their lines, so a run holds `<checkpoint>.lock` from before it reads the checkpoint until it has
 * compacted it. The file names its holder (pid, host, since). A holder that died without removing it (SIGKILL,
 * power loss) does not block the next run when it ran on this host: its pid is gone, or now belongs to a process
 * that started later. A holder on another host (a checkpoint on shared storage) cannot be checked from here.
 */
import { linkSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
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
    // The holder is written to a file of our own first, then linked in: the lock appears whole or not at all.
    const mine = `${path}.${process.pid}`;
    try {
      writeFileSync(mine, `${JSON.stringify(me)}\n`, { mode: 0o600 });
    } catch (error) {
      rmSync(mine, { force: true });
      const code = (error as NodeJS.ErrnoException).code;
      const fix =
        code === 'ENOSPC' || code === 'EDQUOT'
          ? 'the disk is full: free space where the checkpoint lives'
          : 'pass --checkpoint in a folder this user may write to';
      throw new UsageError(`cannot create ${mine} (${code}): ${fix}`);
    }
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          linkSync(mine, path);
          return new CheckpointLock(path);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        }
        const holder = readHolder(path);
        if (holder === undefined || !holderIsGone(holder)) throw new CheckpointBusyError(checkpoint, holder ?? UNKNOWN_HOLDER);
        // Moved aside, not deleted: of several runs that found the holder dead, only one moves its lock, and
        // none can delete a lock another has just taken.
        const aside = `${path}.dead.${process.pid}`;
        try {
          renameSync(path, aside);
        } catch {
          continue; // another run moved it first: try to take the lock once more
        }
        const moved = readHolder(aside);
        if (moved === undefined || moved.pid !== holder.pid || moved.since !== holder.since) {
          // Another run took over the dead lock between our read and our move: give its lock back, and leave.
          try {
            linkSync(aside, path);
          } catch {
            // A third run has taken the place meanwhile; it holds the lock now.
          }
          unlinkSync(aside);
          throw new CheckpointBusyError(checkpoint, moved ?? holder);
        }
        unlinkSync(aside);
      }
      throw new CheckpointBusyError(checkpoint, readHolder(path) ?? UNKNOWN_HOLDER);
    } finally {
      unlinkSync(mine);
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

/** A lock file that cannot be read (being replaced at this instant): busy, to be safe. */
const UNKNOWN_HOLDER: LockHolder = { pid: 0, host: 'unknown', since: 'unknown' };

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
