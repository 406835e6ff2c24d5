/**
 * The resumable JSONL checkpoint. Each run appends a header line, then one line per finished object
 * (`job, id, key, status, bytes, ms`, plus `from` or `error`), and now and then a watermark line per job: the
 * id up to which every row is finished. Each line is written with one write() as soon as its object is done,
 * so a SIGKILL leaves only true lines (at worst a torn last one, which loading skips).
 *
 * Resuming reads only what it needs: the watermark of each job (rows up to it are not read again), the objects
 * finished above it, and the objects that failed anywhere (to retry). Lines of finished objects below the
 * watermark are skipped without parsing, so resuming a million-row job is quick and its memory does not grow
 * with what is done.
 */
import { closeSync, createReadStream, existsSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { CopyStatus } from './copy.js';

export interface ObjectLine {
  readonly job: string;
  readonly id: string;
  readonly key: string;
  readonly status: CopyStatus;
  readonly bytes: number;
  readonly ms: number;
  readonly from?: string;
  readonly error?: string;
  /** Set on the new result of an object that had failed before, so resuming sees it without a full parse. */
  readonly retry?: true;
}

export interface RunHeader {
  readonly run: string;
  readonly mode: 'fresh' | 'resume' | 'retry-failed';
  readonly source: string;
  readonly destination: string;
}

export interface FailedObject {
  readonly job: string;
  readonly id: string;
  readonly key: string;
}

export interface ResumeState {
  watermark(job: string): string | undefined;
  /** The object finished (copied, relocated or missing) above its job's watermark. */
  isDone(key: string): boolean;
  /** The object's last result was `failed`. */
  hasFailed(key: string): boolean;
  /** Objects whose last result was `failed`, in rows at or below the job's watermark (rows not read again). */
  failedBelowWatermark(job: string): FailedObject[];
  /** Every object of the job whose last result was `failed` (--retry-failed). */
  failed(job: string): FailedObject[];
}

export const EMPTY_RESUME_STATE: ResumeState = {
  watermark: () => undefined,
  isDone: () => false,
  hasFailed: () => false,
  failedBelowWatermark: () => [],
  failed: () => [],
};

const FINISHED: ReadonlySet<string> = new Set(['copied', 'relocated', 'missing']);

export async function loadCheckpoint(path: string, identity: { source: string; destination: string }): Promise<ResumeState> {
  if (!existsSync(path)) return EMPTY_RESUME_STATE;

  // Pass 1: headers, watermarks and failures (few lines); everything else is skipped unparsed.
  let header: RunHeader | undefined;
  let runStart = 0;
  const watermarks = new Map<string, { id: bigint }>();
  const failed = new Map<string, FailedObject>();
  await forEachLine(path, 0, (line, offset) => {
    if (line.startsWith('{"run"')) {
      const parsed = parseLine<RunHeader>(line);
      if (parsed === undefined) return;
      header = parsed;
      if (parsed.mode === 'fresh') {
        runStart = offset;
        watermarks.clear();
        failed.clear();
      }
    } else if (line.includes('"watermark"')) {
      const parsed = parseLine<{ job: string; watermark: string }>(line);
      if (parsed === undefined) return;
      const id = BigInt(parsed.watermark);
      const previous = watermarks.get(parsed.job);
      if (previous === undefined || id >= previous.id) watermarks.set(parsed.job, { id });
    } else if (line.includes('"status":"failed"') || line.includes('"retry":true')) {
      const parsed = parseLine<ObjectLine>(line);
      if (parsed === undefined) return;
      if (parsed.status === 'failed') failed.set(parsed.key, { job: parsed.job, id: parsed.id, key: parsed.key });
      else failed.delete(parsed.key);
    }
  });

  if (header !== undefined && (header.source !== identity.source || header.destination !== identity.destination)) {
    throw new UsageError(
      `checkpoint ${path} belongs to a run from ${header.source} to ${header.destination}, not from ${identity.source} to ${identity.destination}: ` +
        'pass another --checkpoint, or run without --resume to start over',
    );
  }

  // Pass 2: objects finished in rows above each job's last watermark. Their lines may come before the watermark's
  // own line (rows after an unfinished one finish first), so the row id decides, not the line's place.
  const done = new Set<string>();
  await forEachLine(path, runStart, (line) => {
    if (!line.startsWith('{"job"') || line.includes('"watermark"')) return;
    const mark = watermarks.get(jobOf(line));
    if (mark !== undefined) {
      const id = idOf(line);
      if (id !== undefined && BigInt(id) <= mark.id) return;
    }
    const parsed = parseLine<ObjectLine>(line);
    if (parsed === undefined) return;
    if (FINISHED.has(parsed.status)) done.add(parsed.key);
    else done.delete(parsed.key);
  });

  return {
    watermark: (job) => watermarks.get(job)?.id.toString(),
    isDone: (key) => done.has(key),
    hasFailed: (key) => failed.has(key),
    failedBelowWatermark: (job) => {
      const mark = watermarks.get(job);
      if (mark === undefined) return [];
      return [...failed.values()].filter((entry) => entry.job === job && BigInt(entry.id) <= mark.id);
    },
    failed: (job) => [...failed.values()].filter((entry) => entry.job === job),
  };
}

/** An object line's job and row id, read without parsing it (lines start `{"job":"…","id":"…"`). */
function jobOf(line: string): string {
  return line.slice(8, line.indexOf('"', 8));
}

function idOf(line: string): string | undefined {
  const start = line.indexOf('","id":"');
  if (start < 0) return undefined;
  const end = line.indexOf('"', start + 8);
  const id = line.slice(start + 8, end);
  return /^-?\d+$/.test(id) ? id : undefined;
}

function parseLine<T>(line: string): T | undefined {
  try {
    return JSON.parse(line) as T;
  } catch {
    return undefined; // a torn line from a killed run
  }
}

/** Calls `visit` with each line and its byte offset, reading the file from `start` in large chunks. */
async function forEachLine(path: string, start: number, visit: (line: string, offset: number) => void): Promise<void> {
  let carry: Buffer = Buffer.alloc(0);
  let offset = start;
  for await (const chunk of createReadStream(path, { start, highWaterMark: 1 << 20 })) {
    const buffer = carry.length > 0 ? Buffer.concat([carry, chunk as Buffer]) : (chunk as Buffer);
    let lineStart = 0;
    for (let newline = buffer.indexOf(10); newline !== -1; newline = buffer.indexOf(10, lineStart)) {
      if (newline > lineStart) visit(buffer.toString('utf8', lineStart, newline), offset + lineStart);
      lineStart = newline + 1;
    }
    offset += lineStart;
    carry = buffer.subarray(lineStart);
  }
  if (carry.length > 0) visit(carry.toString('utf8'), offset);
}

/** Appends checkpoint lines, one write() each, so what is on disk is always a prefix of whole lines. */
export class CheckpointWriter {
  private constructor(private fd: number | undefined) {}

  static open(path: string, header: RunHeader): CheckpointWriter {
    let fd: number;
    try {
      fd = openSync(path, 'a+');
    } catch (error) {
      throw new UsageError(`cannot write checkpoint ${path} (${(error as Error).message}): pass --checkpoint with a writable path`);
    }
    const size = fstatSync(fd).size;
    if (size > 0) {
      // A torn last line from a killed run must not swallow the next line written after it.
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 10) writeSync(fd, '\n');
    }
    const writer = new CheckpointWriter(fd);
    writer.append(header);
    return writer;
  }

  record(line: ObjectLine): void {
    this.append(line);
  }

  watermark(job: string, id: string): void {
    this.append({ job, watermark: id });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private append(value: object): void {
    if (this.fd === undefined) return;
    writeSync(this.fd, `${JSON.stringify(value)}\n`);
  }
}
