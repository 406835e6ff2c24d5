/**
 * `mastosync manifest <job..> --format keys|rclone|s3-batch-csv`: the keys the database owns, for handing the
 * copy to another tool. Rows are read page by page and each page is written as it comes, so memory stays flat
 * however many keys there are. The manifest holds the exact keys only: mastosync's own copy also finds objects
 * an older Mastodon left under a legacy key, and sets each object's ACL, which the other tools do not.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import type { Logger } from '../../log.js';
import { readRowPages } from '../../db/rows.js';
import { ownedInScope, type Scope } from '../../db/scope.js';
import { applyKeyPrefix } from '../../mastodon/keys.js';
import { UsageError } from '../../errors.js';
import type { StoreConfig } from '../../storage/index.js';
import type { ManifestFormat } from '../commandLine.js';
import { EXIT, type Output } from '../exit.js';
import { REMOTE_CACHE_WARNING } from '../scope.js';
import { openSession, parseJobs, readConfig } from '../setup.js';

interface ManifestFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly format: ManifestFormat;
  /** A file to write; default stdout. */
  readonly output?: string;
  readonly scope: Scope;
}

export async function manifestCommand(flags: ManifestFlags, log: Logger, out: Output): Promise<number> {
  parseJobs(flags.jobs);
  const config = readConfig(flags, log);
  const line = manifestLine(flags.format, config.source);
  const session = await openSession(config, flags.jobs, log);
  let sink: LineSink | undefined;
  try {
    if (flags.scope.skipRemoteCache !== undefined) log.warn(REMOTE_CACHE_WARNING);
    sink = openSink(flags.output, out);
    let written = 0;
    let unlisted = 0;
    listing: for (const job of session.jobs) {
      for await (const rows of readRowPages(session.db, session.schema, job, { batchSize: config.database.batchSize, scope: flags.scope })) {
        if (sink.readerGone()) break listing;
        const lines: string[] = [];
        for (const row of rows) {
          for (const object of ownedInScope(job, row, flags.scope)) {
            const text = line(object.key);
            if (text !== undefined) lines.push(text);
            else {
              unlisted += 1;
              log.warn(
                { job, id: object.id, key: object.key },
                `key has a line break, which the ${flags.format} format cannot hold: copy it with mastosync run`,
              );
            }
          }
        }
        sink.write(lines);
        written += lines.length;
      }
    }
    log.info({ format: flags.format, keys: written, unlisted, jobs: session.jobs, output: flags.output ?? 'stdout' }, 'manifest written');
    for (const note of session.notes) log.info(note);
    return unlisted > 0 ? EXIT.failures : EXIT.ok;
  } finally {
    sink?.close();
    await session.db.close();
  }
}

interface LineSink {
  /** The reading end of stdout went away (`mastosync manifest all | head`): stop rather than crash. */
  readerGone(): boolean;
  write(lines: readonly string[]): void;
  close(): void;
}

function openSink(output: string | undefined, out: Output): LineSink {
  // `-o -` is stdout, as for most tools that take an output file.
  if (output === undefined || output === '-') {
    return {
      readerGone: () => out.readerGone?.() ?? false,
      write: (lines) => {
        if (lines.length > 0) out.stdout(lines.join('\n'));
      },
      close: () => undefined,
    };
  }
  let fd: number;
  try {
    fd = openSync(output, 'w');
  } catch (error) {
    throw new UsageError(`cannot write ${output} (${(error as Error).message}): pass --output with a writable path`);
  }
  return {
    readerGone: () => false,
    write: (lines) => {
      if (lines.length > 0) writeSync(fd, `${lines.join('\n')}\n`);
    },
    close: () => closeSync(fd),
  };
}

/**
 * The line for one key, or undefined when the format cannot hold it:
 * - keys: the object's key as the source stores it (with [source] key_prefix);
 * - rclone: the key relative to the source root (`rclone copy SRC:bucket/prefix DST:bucket/prefix --files-from-raw`),
 *   so it also serves when the two sides' prefixes differ;
 * - s3-batch-csv: `bucket,key` with the key URL-encoded, as S3 Batch Operations reads its CSV manifest.
 */
export function manifestLine(format: ManifestFormat, source: StoreConfig): (key: string) => string | undefined {
  const prefix = source.type === 'fs' ? undefined : source.keyPrefix;
  if (format === 's3-batch-csv') {
    if (source.type !== 's3') {
      throw new UsageError(
        `--format s3-batch-csv lists objects of an S3 bucket, but [source] is ${source.type === 'fs' ? 'a folder' : 'not S3'} (type = "${source.type}"): use --format keys or rclone`,
      );
    }
    return (key) => `${source.bucket},${encodeKey(applyKeyPrefix(prefix, key))}`;
  }
  const lineSafe = (key: string) => (/[\r\n]/.test(key) ? undefined : key);
  return format === 'keys' ? (key) => lineSafe(applyKeyPrefix(prefix, key)) : lineSafe;
}

/** Percent-encodes all but unreserved characters and "/" (so "+" and "," cannot be misread). */
export function encodeKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, '/');
}
