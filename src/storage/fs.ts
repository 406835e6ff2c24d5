/**
 * The filesystem backend: Mastodon's public/system folder (PAPERCLIP_ROOT_PATH). Keys are paths below it;
 * S3 key prefixes do not apply (docs/storage-layout.md §1.1). Writes go to a temporary file in the target folder
 * and are renamed into place, so a reader never sees half an object.
 */
import { accessSync, constants, createWriteStream } from 'node:fs';
import { access, chmod, lstat, mkdir, open, readdir, realpath, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../errors.js';
import type { FailureKind, ListedObject, ObjectAccess, ObjectInfo, ObjectStore, ReadObject, WriteOptions } from './types.js';
import { FatalStoreError, classifyCommon, type StoreSide } from './errors.js';

/** A key that, resolved below the folder, lands outside it: no file of it is read, written or deleted. */
export class KeyOutsideFolderError extends Error {
  override readonly name = 'KeyOutsideFolderError';
  constructor(
    readonly key: string,
    readonly root: string,
  ) {
    super(`key ${JSON.stringify(key)} points outside ${root}: not read, written or deleted`);
  }
}

/** What the folder backend needs; src/cli maps [source] / [destination] type = "fs" onto it. */
export interface FsStoreConfig {
  readonly type: 'fs';
  /** Mastodon's public/system folder (PAPERCLIP_ROOT_PATH). */
  readonly path: string;
}

export class FsStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;

  constructor(
    root: string,
    private readonly role: StoreSide,
  ) {
    this.root = resolve(root);
    this.description = this.root;
  }

  /** Names the file, for messages and the checkpoint; never throws, since a run names every key it meets. */
  locate(key: string): string {
    return resolve(this.root, key);
  }

  /**
   * The file of `key`, for reading or writing it. A file name from the database must never reach outside the root
   * ("../" in a crafted name): that object fails alone (KeyOutsideFolderError is permanent), the run goes on.
   */
  private pathOf(key: string): string {
    const path = resolve(this.root, key);
    if (!path.startsWith(this.root + sep)) throw new KeyOutsideFolderError(key, this.root);
    return path;
  }

  async check(): Promise<void> {
    const where = `[${this.role}] path ${this.root}`;
    const info = await stat(this.root).catch(() => undefined);
    if (info === undefined) {
      const fix = this.role === 'destination' ? `create it (mkdir -p ${this.root}) or check path` : "check path (Mastodon's public/system)";
      throw new UsageError(`${where} does not exist: ${fix}`);
    }
    if (!info.isDirectory()) throw new UsageError(`${where} is not a folder: check path (Mastodon's public/system)`);
    const mode = this.role === 'destination' ? constants.W_OK : constants.R_OK;
    await access(this.root, mode).catch((error: unknown) => {
      // A read-only mount refuses root too: the fix is the mount, not the user.
      if ((error as NodeJS.ErrnoException).code === 'EROFS')
        throw new UsageError(`${where} is on a read-only file system (EROFS): remount it read-write (mount -o remount,rw), or set path to a writable folder`, {
          cause: error,
        });
      throw new UsageError(`${where} is not ${this.role === 'destination' ? 'writable' : 'readable'} by this user`, { cause: error });
    });
  }

  /**
   * The file mode, as Mastodon's UpdateMediaAttachmentsPermissionsService sets it on a folder (chmod of 0666 or 0600),
   * here without the umask (modeFor). A public file matches when others may read it (nginx, another user, serves it);
   * a private one when neither group nor others may.
   */
  readonly access: ObjectAccess = {
    // lstat: a link in the destination folder is no object of ours, and chmod would change what it points to.
    compare: async (key, requested, _signal, ownerAcl) => {
      const acl = aclOfFile(requested, ownerAcl);
      const info = await lstat(this.pathOf(key)).catch((error: unknown) => (isAbsent(error) ? undefined : Promise.reject(error)));
      if (info === undefined || !info.isFile()) return undefined;
      const readers = info.mode & (GROUP_READ | OTHERS_READ);
      const seen = readers & OTHERS_READ ? 'public-read' : readers & GROUP_READ ? 'group-read' : 'private';
      const found = `${seen} (mode ${(info.mode & 0o777).toString(8).padStart(4, '0')})`;
      const matches = acl === 'private' ? readers === 0 : (readers & OTHERS_READ) !== 0;
      return { matches, found, ...(acl !== requested && { expected: acl }) };
    },
    set: async (key, acl, _signal, ownerAcl) => {
      const path = this.pathOf(key);
      try {
        if (!(await lstat(path)).isFile()) return false;
        await chmod(path, modeFor(aclOfFile(acl, ownerAcl)));
        return true;
      } catch (error) {
        if (isAbsent(error)) return false;
        throw fatalFsError(error, this.role, this.root, path) ?? error;
      }
    },
    // Every folder keeps file modes, which is what Mastodon changes there.
    probe: () => Promise.resolve(),
  };

  async read(key: string): Promise<ReadObject | undefined> {
    const info = await this.head(key);
    if (info === undefined) return undefined;
    // Opened here, not by the stream, so that a refusal (EACCES) is this store's to classify, not a body error.
    const path = this.pathOf(key);
    const file = await open(path, 'r').catch((error: unknown) => {
      throw fatalFsError(error, this.role, this.root, path) ?? error;
    });
    return { ...info, body: file.createReadStream() };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const info = await stat(this.pathOf(key));
      return info.isFile() ? { contentLength: info.size, modifiedMs: info.mtimeMs } : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  /** A file system keeps whatever it is given: the copier hashes the bytes itself. */
  provesWrites(): boolean {
    return false;
  }

  write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    // Only the file system's own errors say something about this folder; a failing body passes through pipeline too.
    return this.writeAtomically(key, options, async (temporary, mode, fileFailed) => {
      const file = createWriteStream(temporary, { mode }).once('error', fileFailed);
      await pipeline(body, file, { signal: options.signal });
    });
  }

  /** A body held whole: one writeFile, no stream; every failure of it is the file system's. */
  writeBytes(key: string, bytes: Buffer, options: WriteOptions): Promise<void> {
    return this.writeAtomically(key, options, (temporary, mode, fileFailed) =>
      writeFile(temporary, bytes, { mode, signal: options.signal }).catch((error: unknown) => {
        fileFailed(error);
        throw error;
      }),
    );
  }

  /**
   * Writes a temporary file beside `key`'s path with `fill`, then renames it into place: the object appears whole or
   * not at all. `fill` reports the file's own errors (fileFailed), which alone may stop the run (fatalFsError).
   */
  private async writeAtomically(
    key: string,
    options: WriteOptions,
    fill: (temporary: string, mode: number, fileFailed: (error: unknown) => void) => Promise<void>,
  ): Promise<void> {
    const path = this.pathOf(key);
    const temporary = join(dirname(path), `${TEMPORARY_PREFIX}${randomBytes(6).toString('hex')}${TEMPORARY_SUFFIX}`);
    // Mastodon's modes (§6), exactly: a umask would narrow them (a cron job's 027 hides every file from nginx).
    const acl = aclOfFile(options.acl, options.ownerAcl);
    const mode = modeFor(acl);
    let fileFailed: unknown;
    try {
      await mkdir(dirname(path), { recursive: true }).catch((error: unknown) => {
        throw (fileFailed = error);
      });
      await fill(temporary, mode, (error) => (fileFailed = error));
      if (acl) await chmod(temporary, mode);
      await rename(temporary, path).catch((error: unknown) => {
        throw (fileFailed = error);
      });
    } catch (error) {
      await rm(temporary, { force: true }).catch(() => undefined);
      throw (error === fileFailed && fatalFsError(error, this.role, this.root, path)) || error;
    }
  }

  /**
   * A folder's own failures that no retry fixes are FatalStoreErrors already (fatalFsError); a file that is not
   * there is notFound; any other errno (one file unreadable, a name too long) fails that object alone.
   */
  classify(error: unknown): FailureKind {
    const common = classifyCommon(error);
    if (common !== undefined) return common;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'notFound' };
    return { kind: 'permanent' };
  }

  /**
   * Walks the folders under `prefix` lazily, depth first, each folder's entries sorted so that keys come in
   * ascending byte order (a folder `a` sorts as `a/`, after a file `a.png`, before `a0`): only the folders on the
   * current path are held. The temporary files of writes in progress are skipped, not those a killed run left (an hour
   * old: prune finds that no row owns them); symbolic links are followed
   * (a cache/ moved to another disk), except back into a folder above them.
   */
  async *list(prefix: string, options: { readonly startAfter?: string; readonly signal?: AbortSignal } = {}): AsyncIterable<ListedObject> {
    const slash = prefix.lastIndexOf('/');
    const startAfter = options.startAfter === undefined ? undefined : Buffer.from(options.startAfter);
    yield* this.walk(prefix.slice(0, slash + 1), prefix.slice(slash + 1), startAfter, options.signal);
  }

  private async *walk(folderKey: string, namePrefix: string, startAfter: Buffer | undefined, signal: AbortSignal | undefined): AsyncIterable<ListedObject> {
    const folder = folderKey === '' ? this.root : this.pathOf(folderKey);
    let names: string[];
    try {
      names = (await readdir(folder)).filter((name) => name.startsWith(namePrefix));
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fatalFsError(error, this.role, this.root, folder) ?? error;
    }
    const entries: { name: string; folder: boolean; size: number; order: Buffer }[] = [];
    for (let start = 0; start < names.length; start += STATS_AT_ONCE) {
      const infos = await Promise.all(names.slice(start, start + STATS_AT_ONCE).map((name) => stat(join(folder, name)).catch(() => undefined)));
      infos.forEach((info, index) => {
        // Gone since the folder was read, or neither file nor folder (a socket, a dangling link): not an object.
        if (info === undefined || !(info.isFile() || info.isDirectory())) return;
        const name = names[start + index]!;
        // A write in progress is not an object; one left by a killed run is, one no row owns, which prune removes.
        if (isTemporary(name) && info.isFile() && info.mtimeMs > Date.now() - STALE_TEMPORARY_MS) return;
        const isFolder = info.isDirectory();
        entries.push({ name, folder: isFolder, size: info.size, order: Buffer.from(isFolder ? `${name}/` : name) });
      });
    }
    entries.sort((a, b) => Buffer.compare(a.order, b.order));
    for (const entry of entries) {
      signal?.throwIfAborted();
      const key = folderKey + entry.name;
      if (!entry.folder) {
        if (startAfter === undefined || Buffer.compare(Buffer.from(key), startAfter) > 0) yield { key, size: entry.size };
        continue;
      }
      const below = Buffer.from(`${key}/`);
      // Everything below sorts before startAfter: skipped without reading it.
      if (startAfter !== undefined && Buffer.compare(below, startAfter) < 0 && !startAfter.subarray(0, below.length).equals(below)) continue;
      if (await this.loopsBack(join(folder, entry.name), folder)) continue;
      yield* this.walk(`${key}/`, '', startAfter, signal);
    }
  }

  /** Whether `path` is a link to `folder` or a folder above it (walking it would never end). */
  private async loopsBack(path: string, folder: string): Promise<boolean> {
    const [target, here] = await Promise.all([realpath(path).catch(() => path), realpath(folder).catch(() => folder)]);
    return here === target || here.startsWith(target + sep);
  }

  /**
   * Unlinks each file, then removes the folders that left empty up to (not including) the root, as Mastodon's own
   * deletes do (Paperclip's flush_deletes). A file already gone counts as deleted. A failure no retry fixes (a
   * read-only or unwritable folder) throws; others are returned with the key.
   */
  async delete(keys: readonly string[], signal?: AbortSignal): Promise<ReadonlyArray<{ readonly key: string; readonly error: string }>> {
    const failures: { key: string; error: string }[] = [];
    for (const key of keys) {
      signal?.throwIfAborted();
      let path: string;
      try {
        path = this.pathOf(key);
        await unlink(path);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        const fatal = fatalFsError(error, this.role, this.root, this.root);
        if (fatal !== undefined) throw fatal;
        failures.push({ key, error: error instanceof Error ? error.message : String(error) });
        continue;
      }
      await this.removeEmptyFolders(dirname(path));
    }
    return failures;
  }

  private async removeEmptyFolders(folder: string): Promise<void> {
    for (let current = folder; current.startsWith(this.root + sep); current = dirname(current)) {
      // Not empty (ENOTEMPTY, EEXIST), gone, or not ours to remove: the folders above are not empty either.
      if (
        !(await rmdir(current).then(
          () => true,
          () => false,
        ))
      )
        return;
    }
  }

  close(): void {}
}

/** Files stat'ed at once while a folder is listed. */
const STATS_AT_ONCE = 64;

/** The temporary files of writes in progress: `.mastosync-<hex>.tmp` next to the object they become. */
const TEMPORARY_PREFIX = '.mastosync-';
const TEMPORARY_SUFFIX = '.tmp';

/**
 * A temporary file untouched this long belongs to no write in progress (a write stalled for minutes has failed on its
 * socket timeout and removed its file): a run killed while writing left it (SIGKILL, the OOM killer, a reboot).
 */
const STALE_TEMPORARY_MS = 60 * 60_000;

function isTemporary(name: string): boolean {
  return name.startsWith(TEMPORARY_PREFIX) && name.endsWith(TEMPORARY_SUFFIX);
}

/**
 * What no retry fixes: a full disk or quota, a read-only file system, a folder this user may not write (or a file it
 * may not read). The run stops at the first one rather than failing every remaining object with it.
 */
export function fatalFsError(error: unknown, side: StoreSide, root: string, path: string): FatalStoreError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  const again = 'then run again with --resume';
  const fatal = (problem: string, fix: string) =>
    new FatalStoreError(side, path, `[${side}] folder ${root} ${problem} (${code} at ${path})`, fix, { cause: error });
  switch (code) {
    case 'ENOSPC':
      return fatal('is full', `free space on its file system, ${again}`);
    case 'EDQUOT':
      return fatal("is over this user's disk quota", `raise the quota or free space, ${again}`);
    case 'EROFS':
      return fatal('is on a read-only file system', `mount it read-write, ${again}`);
    case 'EACCES':
    case 'EPERM':
      if (side === 'destination') {
        return fatal(
          'is not writable by this user',
          `run as the user who owns it (mastodon), or fix its owner and modes (or an immutable flag: lsattr), ${again}`,
        );
      }
      // One file another user owns (a root-run tootctl's) fails alone; only a folder this user cannot read stops the run.
      return readable(root) && readable(dirname(path))
        ? undefined
        : fatal('is not readable by this user', `run as the user who owns it (mastodon), or fix its owner and modes, ${again}`);
    default:
      return undefined;
  }
}

/** Whether this user may list and read in `folder`. */
function readable(folder: string): boolean {
  try {
    accessSync(folder, constants.R_OK | constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The ACL a file's mode follows: a backup's private ACL is for stores that sign its links; here Mastodon's download
 * redirects to the plain URL the web server serves, and its file keeps the mode every file gets, so the configured
 * ACL (`ownerAcl`) decides, as for any file (0644 under "public-read", 0600 under "private").
 */
function aclOfFile(acl: string | undefined, ownerAcl: string | undefined): string | undefined {
  return ownerAcl ?? acl;
}

/**
 * The mode of a file written with `acl` ([destination] acl, or "private" for Mastodon's private objects): private
 * 0600, public 0644, as Mastodon's 0600 and 0666 give them under its usual umask of 022. Without an ACL ("" configured,
 * as S3_PERMISSION="" sends none), 0666: the umask alone decides, as for any file a program creates.
 */
function modeFor(acl: string | undefined): number {
  if (!acl) return 0o666;
  return acl === 'private' ? 0o600 : 0o644;
}

const GROUP_READ = 0o040;
const OTHERS_READ = 0o004;

function isAbsent(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}
