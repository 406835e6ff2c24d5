/**
 * The filesystem backend: Mastodon's public/system folder (PAPERCLIP_ROOT_PATH). Keys are paths below it;
 * S3 key prefixes do not apply (docs/storage-layout.md §1.1). Writes go to a temporary file in the target folder
 * and are renamed into place, so a reader never sees half an object.
 */
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { UsageError } from '../errors.js';
import type { ObjectInfo, ObjectStore, ReadObject, WriteOptions } from './types.js';

export class FsStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;

  constructor(
    root: string,
    private readonly role: string,
  ) {
    this.root = resolve(root);
    this.description = this.root;
  }

  locate(key: string): string {
    const path = resolve(this.root, key);
    // A file name from the database must never reach outside the root ("../" in a crafted name).
    if (!path.startsWith(this.root + sep)) throw new Error(`key ${JSON.stringify(key)} points outside ${this.root}`);
    return path;
  }

  async check(): Promise<void> {
    const where = `[${this.role}] path ${this.root}`;
    const info = await stat(this.root).catch(() => undefined);
    if (!info?.isDirectory()) throw new UsageError(`${where} is not a folder: check path (Mastodon's public/system)`);
    const mode = this.role === 'destination' ? constants.W_OK : constants.R_OK;
    await access(this.root, mode).catch((error: unknown) => {
      throw new UsageError(`${where} is not ${this.role === 'destination' ? 'writable' : 'readable'} by this user`, { cause: error });
    });
  }

  async read(key: string): Promise<ReadObject | undefined> {
    const info = await this.head(key);
    if (info === undefined) return undefined;
    return { ...info, body: createReadStream(this.locate(key)) };
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    try {
      const info = await stat(this.locate(key));
      return info.isFile() ? { contentLength: info.size } : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') return undefined;
      throw error;
    }
  }

  /** A file system keeps whatever it is given: the copier hashes the bytes itself. */
  provesWrites(): boolean {
    return false;
  }

  async write(key: string, body: Readable, options: WriteOptions): Promise<void> {
    const path = this.locate(key);
    await mkdir(dirname(path), { recursive: true });
    const temporary = join(dirname(path), `.mastosync-${randomBytes(6).toString('hex')}.tmp`);
    // Mastodon's modes (§6): 0666 for public objects, 0600 for private ones, both under the umask.
    const mode = options.acl === 'private' ? 0o600 : 0o666;
    try {
      await pipeline(body, createWriteStream(temporary, { mode }), { signal: options.signal });
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }

  close(): void {}
}
