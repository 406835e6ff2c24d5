/**
 * One run per checkpoint. Two cron runs on one checkpoint would copy the same objects twice (egress paid twice)
 * and interleave their lines, so a run holds `<checkpoint>.lock` from before it reads the checkpoint until it has
 * compacted it. The file names its holder (pid, host, since). A holder that died without removing it (SIGKILL,
 * power loss) does not block the next run when it ran on this host: its pid is gone, or now belongs to a process
 * that started later. A holder on another host (a checkpoint on shared storage, a pod's volume) cannot be checked
 * from here: its pid means nothing on this host, and a stopped pod's host name never comes back; its line says to
 * delete the lock by hand once no run goes on there. A run removes its lock however it ends short of a kill
 * (src/cli/interrupt.ts, and the 'exit' listener below), so only a killed one leaves it.
 * A lock file that names no holder (empty or not JSON: a file system crash, a hand edit) was never written by a run
 * of this version, which links in a whole file (but see `publish` for file systems without hard links): once older
 * than UNREADABLE_STALE_MS it is taken over; younger, the run stops saying what it is.
 */
import { closeSync, linkSync, lstatSync, openSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
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

/** Another run holds the checkpoint (`holder`), or its lock file names no holder (undefined): nothing was written. */
export class CheckpointBusyError extends Error {
  override readonly name = 'CheckpointBusyError';
  constructor(
    readonly path: string,
    readonly holder: LockHolder | undefined,
  ) {
    super(
      holder === undefined
        ? `lock file ${lockPath(path)} is unreadable (empty, or not a mastosync lock) and younger than ${UNREADABLE_STALE_MS / 60_000} minutes: ` +
            `if no mastosync run is going on with checkpoint ${path}, remove it (a later run takes it over by itself)`
        : `checkpoint ${path} is in use by another run (pid ${holder.pid} on ${holder.host}, since ${holder.since}): ` +
            (holder.pid > 0 && holder.host !== hostname()
              ? // A pod or container that was stopped or replaced never comes back to its host name: nothing here can tell.
                `let it finish; a run on another host cannot be checked from ${hostname()}: if no mastosync run is going on ${holder.host} any more, delete ${lockPath(path)}`
              : `let it finish; if that process is gone for good, remove ${lockPath(path)}`),
    );
  }
}

/** How old a lock file that names no holder must be to be taken over (see above). */
const UNREADABLE_STALE_MS = 5 * 60_000;

export function lockPath(checkpoint: string): string {
  return `${checkpoint}.lock`;
}

export class CheckpointLock {
  private constructor(
    private readonly path: string,
    private readonly me: LockHolder,
  ) {
    // Whatever ends the process short of a kill (an uncaught error, a run left awaiting nothing): the lock goes with it.
    process.once('exit', this.release);
  }

  /** Takes the lock or throws CheckpointBusyError; a dead holder's lock on this host is taken over. */
  static acquire(checkpoint: string): CheckpointLock {
    const path = lockPath(checkpoint);
    const me: LockHolder = { pid: process.pid, host: hostname(), since: new Date().toISOString(), processStart: processStart(process.pid) };
    // The holder is written to a file of our own first, then linked in: the lock appears whole or not at all.
    const mine = `${path}.${process.pid}`;
    try {
      writeFileSync(mine, `${JSON.stringify(me)}\n`, { mode: 0o600 });
    } catch (error) {
      try {
        rmSync(mine, { force: true });
      } catch {
        // A folder this user may not even look into (EACCES on lstat): nothing was created there to remove.
      }
      throw cannotCreate(mine, error, false);
    }
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          publish(mine, path);
          return new CheckpointLock(path, me);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw cannotCreate(path, error, true);
        }
        const other = notAFile(path);
        if (other !== undefined)
          throw new UsageError(
            `${path} is ${other}, where checkpoint ${checkpoint}'s lock file goes: remove it or move it away (each run makes and removes that file itself)`,
          );
        const holder = readHolder(path);
        if (holder === 'gone') continue; // released between our link and our read: try once more
        if (holder === 'unreadable' ? !unreadableIsStale(path) : !holderIsGone(holder)) throw new CheckpointBusyError(checkpoint, named(holder));
        // Moved aside, not deleted: of several runs that found the holder dead, only one moves its lock, and
        // none can delete a lock another has just taken.
        const aside = `${path}.dead.${process.pid}`;
        try {
          renameSync(path, aside);
        } catch {
          continue; // another run moved it first: try to take the lock once more
        }
        const moved = readHolder(aside);
        const same =
          holder === 'unreadable' || moved === 'unreadable' || moved === 'gone' ? moved === holder : moved.pid === holder.pid && moved.since === holder.since;
        if (!same) {
          // Another run took over the dead lock between our read and our move: give its lock back, and leave.
          try {
            publish(aside, path);
          } catch {
            // A third run has taken the place meanwhile; it holds the lock now.
          }
          unlinkSync(aside);
          throw new CheckpointBusyError(checkpoint, named(moved === 'gone' ? holder : moved));
        }
        unlinkSync(aside);
      }
      const last = readHolder(path);
      throw new CheckpointBusyError(checkpoint, last === 'gone' ? UNKNOWN_HOLDER : named(last));
    } finally {
      unlinkSync(mine);
    }
  }

  /** Removes the lock if it is still this run's: one removed by hand and taken by another run meanwhile stays. */
  readonly release = (): void => {
    process.off('exit', this.release);
    const holder = readHolder(this.path);
    if (holder === 'gone' || holder === 'unreadable' || holder.pid !== this.me.pid || holder.since !== this.me.since) return;
    try {
      unlinkSync(this.path);
    } catch {
      // Already gone: nothing to release.
    }
  };
}

/** The line for a lock (`locking`), or the file it is made from, that cannot be created, saying what to do. */
function cannotCreate(file: string, error: unknown, locking: boolean): UsageError {
  const code = (error as NodeJS.ErrnoException).code;
  const fix =
    code === 'ENOSPC' || code === 'EDQUOT'
      ? 'the disk is full: free space where the checkpoint lives'
      : locking && code !== undefined && REFUSED.includes(code)
        ? 'its file system takes neither hard links nor exclusive creation: pass --checkpoint in a folder on a local file system'
        : 'pass --checkpoint in a folder this user may write to';
  return new UsageError(`cannot create ${file} (${code}): ${fix}`, { cause: error });
}

/** What a file system that does not do an operation at all answers (link(2): EPERM). */
const REFUSED = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'];

/**
 * Puts the file `from` at `to` whole, or throws EEXIST if `to` exists: a hard link, or where the file system refuses
 * hard links (EPERM on vfat, SMB shares such as Azure Files' volumes, some FUSE mounts) an exclusive create (O_EXCL)
 * with `from`'s bytes written into it. That keeps the lock's guarantees rather than refusing to run there: of runs
 * racing for it exactly one creates it, O_EXCL being as atomic there as link; and a run that finds it empty, in the
 * moment before the holder is written, takes it for a lock naming no holder, which is never taken over while young
 * (it exits 75, as for any lock held). A write that fails removes the file, which no other run can have taken.
 */
function publish(from: string, to: string): void {
  try {
    linkSync(from, to);
    return;
  } catch (error) {
    if (!REFUSED.includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
  }
  const descriptor = openSync(to, 'wx', 0o600);
  try {
    writeSync(descriptor, readFileSync(from));
  } catch (error) {
    closeSync(descriptor);
    unlinkSync(to);
    throw error;
  }
  closeSync(descriptor);
}

/** A lock that came and went twice while this run tried to take it: busy, to be safe. */
const UNKNOWN_HOLDER: LockHolder = { pid: 0, host: 'unknown', since: 'unknown' };

/**
 * What is at the lock's path when it is no file (a folder made by hand or by a tool that took the name for one),
 * which no run wrote nor can remove; undefined: a file, or nothing. Not read as a holder: it names none, and
 * reading a folder failed as a lock another user's run holds.
 */
function notAFile(path: string): string | undefined {
  try {
    const stats = lstatSync(path);
    if (stats.isFile()) return undefined;
    return stats.isDirectory() ? 'a directory' : stats.isSymbolicLink() ? 'a symbolic link' : 'not a regular file';
  } catch {
    return undefined;
  }
}

/** The lock's holder; `gone`: no lock file (any more); `unreadable`: a file that names no holder. */
function readHolder(path: string): LockHolder | 'gone' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Not ours to read (another user's run, mode 0600): it may well be live, so it is never taken over.
    return code === 'ENOENT' ? 'gone' : { pid: 0, host: `unknown (the lock cannot be read: ${code})`, since: 'unknown' };
  }
  try {
    const holder = JSON.parse(text) as Partial<LockHolder> | null;
    return typeof holder?.pid === 'number' && typeof holder.host === 'string' && typeof holder.since === 'string' ? (holder as LockHolder) : 'unreadable';
  } catch {
    return 'unreadable';
  }
}

function named(holder: LockHolder | 'unreadable'): LockHolder | undefined {
  return holder === 'unreadable' ? undefined : holder;
}

/** A lock file that names no holder and was last written long enough ago. */
function unreadableIsStale(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs >= UNREADABLE_STALE_MS;
  } catch {
    return false;
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
