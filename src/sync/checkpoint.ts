/**
 * The resumable JSONL checkpoint. Each run appends a header line, then one line per finished object
 * (`job, id, key, status, bytes, ms`, plus `from` or `error`), now and then a watermark line per job (the id up to
 * which every row is finished), and a `synced` line per job once every change below the watermark up to the run's
 * start has been copied. Each line is written with one write() as soon as its object is done, so a SIGKILL leaves
 * only true lines (at worst a torn last one, which loading skips). A line damaged anywhere else (at rest, by the disk or
 * a hand) is said in one warning, and what it may have recorded is taken as not done (readCheckpoint).
 *
 * Resuming reads only what it needs: the watermark and sync time of each job (rows up to the watermark are read
 * again only when they changed since: src/sync/run.ts), the objects finished above the watermark or recently
 * (so neither is copied again), and the objects outstanding anywhere (failed or missing: to try again). Lines of
 * objects finished long ago below the watermark are skipped without parsing, so resuming a million-row job is
 * quick and its memory does not grow with what is done. `compactCheckpoint` rewrites the file to just those lines.
 */
import {
  closeSync,
  createReadStream,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  type Stats,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { UsageError, describeError } from '../errors.js';
import type { CopyStatus } from './copy.js';
import { collectIfGrown } from './garbage.js';

export interface ObjectLine {
  readonly job: string;
  readonly id: string;
  readonly key: string;
  /** `disowned`: an outstanding object that no row owns any more (its row deleted, its file replaced or removed). */
  readonly status: CopyStatus | 'disowned';
  readonly bytes: number;
  readonly ms: number;
  readonly from?: string;
  readonly error?: string;
  /** Set on the new result of an object that was outstanding before, so resuming sees it without a full parse. */
  readonly retry?: true;
  /**
   * The attachment's `*_updated_at` (database clock, ISO UTC), on lines of attachments that changed recently
   * enough for the next run's changed-rows pass to find them again: that pass then knows they are copied already,
   * as long as the row still says this time (a file rewritten under the same key since says a later one).
   */
  readonly updated?: string;
  /**
   * On compacted lines without `updated`: the start of the run that copied the object (database clock, ISO UTC). The
   * copy holds every change stamped before it less the change margin; a row stamped later may hold another file.
   */
  readonly asOf?: string;
}

export interface RunHeader {
  readonly run: string;
  readonly mode: 'fresh' | 'resume' | 'retry-failed';
  readonly source: string;
  readonly destination: string;
  /** The database's clock when the run started (ISO UTC); absent in checkpoints of older versions. */
  readonly started?: string;
  /** The part of the database the run covers (--shard, --min-id, --skip-remote-cache…); absent in older versions. */
  readonly scope?: string;
}

/** What a checkpoint belongs to: resuming it with anything else would skip or mix up rows. */
export interface CheckpointIdentity {
  readonly source: string;
  readonly destination: string;
  readonly scope: string;
}

/** An object whose last result was failed or missing: the next --resume tries it again. */
interface OutstandingObject {
  readonly job: string;
  readonly id: string;
  readonly key: string;
  readonly status: 'failed' | 'missing';
}

export interface ResumeState {
  watermark(job: string): string | undefined;
  /**
   * The database time from which rows at or below the watermark must be read again because they may have changed
   * since they were copied (the sync time less the change margin); undefined when nothing is below the watermark.
   */
  changesFrom(job: string): string | undefined;
  /**
   * From when the next run will read changes again if this one does not finish the job: lines of attachments
   * changed since then must say so (ObjectLine.updated). Undefined when the checkpoint holds no run yet.
   */
  recentFrom(job: string): string | undefined;
  /**
   * The object is finished (copied or relocated) above its job's watermark, or recently (see ObjectLine.updated), and
   * for the file its row names now: `updated` is the row's `*_updated_at` of the object's attachment (ISO UTC, the
   * database's clock), undefined when the row has none. Mastodon can write a new file under the same key (a name kept
   * on re-upload before v3.1, a style reprocessed in place) and then only that time tells the copy is of an older file.
   */
  isDone(key: string, updated: string | undefined): boolean;
  /** The object's last result was failed or missing. */
  wasOutstanding(key: string): boolean;
  /** The object's last result was failed (not missing). */
  wasFailed(key: string): boolean;
  /** Outstanding objects in rows at or below the job's watermark (rows not read again otherwise). */
  outstandingBelowWatermark(job: string): OutstandingObject[];
  /** Every outstanding object of the job (--retry-failed). */
  outstanding(job: string): OutstandingObject[];
  /** Up to `count` objects of the job finished above its watermark, the last recorded first: what the destination should hold. */
  lastDone(job: string, count: number): Array<{ readonly id: string; readonly key: string }>;
  /**
   * Why the destination could not be asked for what the checkpoint records as copied (src/sync/destinationCheck.ts),
   * when the last run that asked could not: said then, and not at every cron run while it lasts.
   */
  readonly destinationUnanswered: string | undefined;
}

export const EMPTY_RESUME_STATE: ResumeState = {
  watermark: () => undefined,
  changesFrom: () => undefined,
  recentFrom: () => undefined,
  isDone: () => false,
  wasOutstanding: () => false,
  wasFailed: () => false,
  outstandingBelowWatermark: () => [],
  outstanding: () => [],
  lastDone: () => [],
  destinationUnanswered: undefined,
};

export interface LoadOptions {
  /** How far before a sync time a change may carry a timestamp yet commit after it (docs/operations.md). */
  readonly changeMarginMs: number;
  /** Told, in one line naming the file and the lines, of damage other than a torn last line (docs/integrity.md). */
  readonly onDamage?: (message: string) => void;
}

const FINISHED: ReadonlySet<string> = new Set(['copied', 'relocated', 'present']);

/** From when changes are read again, for a sync time `time` (ISO UTC): the margin before it. */
export function lessMargin(time: string, marginMs: number): string {
  return new Date(Date.parse(time) - marginMs).toISOString();
}

/** 64 bits of a key's MD5, base64url: a compacted recent object in 11 characters, with no collision in practice. */
const KEY_HASH_LENGTH = 11;
function keyHash(key: string): string {
  return createHash('md5').update(key).digest('base64url').slice(0, KEY_HASH_LENGTH);
}

/** Everything resuming needs, with the lines that say it (kept for compaction). */
interface LoadedCheckpoint {
  readonly header?: RunHeader;
  /** The header of the run that started this checkpoint's state: the last fresh run, else the first run. */
  readonly startHeaderLine?: string;
  readonly watermarks: ReadonlyMap<string, bigint>;
  readonly synced: ReadonlyMap<string, string>;
  readonly outstanding: ReadonlyMap<string, OutstandingObject & { readonly line: string }>;
  /** Objects finished above the watermark, by key, with their lines and which file they copied. */
  readonly done: ReadonlyMap<string, DoneObject>;
  /** Objects finished below the watermark that the next changed-rows pass may read again, by key hash. */
  readonly recent: ReadonlyMap<string, RecentObject>;
  /** The last destinationCheck line's reason, when it says the destination could not be asked. */
  readonly destinationUnanswered: string | undefined;
  changesFrom(job: string): string | undefined;
  recentFrom(job: string): string | undefined;
  /** Numbers of the damaged lines (not torn last lines), from 1. */
  readonly damaged: readonly number[];
}

/**
 * A line loading could not read (damaged at rest, a file system's block of zeros, a hand edit), and what could still
 * be told from it: its job and row id, when its start is intact. What it recorded is taken as not done.
 */
interface Damage {
  /** Its line number, from 1. */
  readonly number: number;
  readonly offset: number;
  readonly job?: string;
  readonly id?: string;
  /** How many run headers come before it: a job's sync time written by a later run means its rows were all read since. */
  readonly runsBefore: number;
  /**
   * The line before a run header, or the file's last: a line a kill cut short, which is expected, and neither said
   * nor doubted (what it was writing was never recorded: the object was in flight, a watermark not yet moved).
   */
  torn: boolean;
  /** Takes back what its damage did to the objects outstanding, once it turns out torn. */
  undo?: () => void;
  /** A run header's: handled as a fresh run's (see readCheckpoint). */
  readonly header?: true;
  /**
   * Its object's key could be read (that object is outstanding), or it was a watermark, a sync time or compacted recent
   * objects (lost, they say less than was done): nothing else needs doubting.
   */
  settled?: true;
}

/** A recently changed attachment's object, known as copied: its job, and its attachment's `*_updated_at` in ms. */
interface RecentObject {
  readonly job: string;
  readonly updated: number;
}

/**
 * An object finished above the watermark: its line, and which file of its row it copied, told by the attachment's
 * `*_updated_at` when the line says it (`updated`, ms), else by the start of the run that copied it (`asOf`, ms; 0
 * when unknown: a run header from before 0.1.0 says no database time, and then any dated row may have changed).
 */
interface DoneObject {
  readonly line: string;
  readonly updated?: number;
  readonly asOf: number;
}

/**
 * Whether the row's attachment, stamped `updated` now (ISO UTC; undefined when it has no stamp), still names the file
 * `done` copied. An exact stamp must be the same: a later one is a file written since, an earlier one a row set back
 * (a restored database), and a copy again is only a request. Without one, the copy holds every change stamped before
 * its run's start less the margin (a change commits within the margin of its stamp: docs/operations.md); a row
 * without a stamp cannot be told apart, and counts as unchanged, as the changed-rows pass, which cannot find it, does.
 */
function copiedCurrent(done: { readonly updated?: number; readonly asOf: number }, updated: string | undefined, marginMs: number): boolean {
  if (done.updated !== undefined) return updated !== undefined && Date.parse(updated) === done.updated;
  return updated === undefined || Date.parse(updated) < done.asOf - marginMs;
}

export async function loadCheckpoint(path: string, identity: CheckpointIdentity, options: LoadOptions): Promise<ResumeState> {
  if (!existsSync(path)) return EMPTY_RESUME_STATE;
  const loaded = await readCheckpoint(path, options);
  const { header, watermarks, outstanding, done, recent, destinationUnanswered } = loaded;
  if (loaded.damaged.length > 0) options.onDamage?.(describeDamage(path, loaded.damaged));
  if (header !== undefined && (header.source !== identity.source || header.destination !== identity.destination)) {
    throw new UsageError(
      `checkpoint ${path} belongs to a run from ${header.source} to ${header.destination}, not from ${identity.source} to ${identity.destination}: ` +
        // Mostly two configs in one folder sharing the default file: --fresh here would wipe the other run's progress.
        "give this run a checkpoint of its own: [sync] checkpoint in its config file, or --checkpoint FILE (--fresh would replace the other run's checkpoint, and that run would copy everything again)",
    );
  }
  // Watermarks of another scope (another shard, rows a --skip-remote-cache left out) would pass rows off as done.
  if (header?.scope !== undefined && header.scope !== identity.scope) {
    throw new UsageError(
      `checkpoint ${path} was written by a run over ${header.scope}, not ${identity.scope}: resume it with the same scope flags, or pass another --checkpoint`,
    );
  }
  const outstandingOf = (job: string) => [...outstanding.values()].filter((entry) => entry.job === job).map(({ line: _line, ...entry }) => entry);
  return {
    watermark: (job) => watermarks.get(job)?.toString(),
    changesFrom: (job) => loaded.changesFrom(job),
    recentFrom: (job) => loaded.recentFrom(job),
    isDone: (key, updated) => {
      const finished = done.get(key);
      if (finished !== undefined && copiedCurrent(finished, updated, options.changeMarginMs)) return true;
      const copied = recent.size > 0 ? recent.get(keyHash(key)) : undefined;
      // A recent line always carries its stamp (ObjectLine.updated), so only the same stamp is the same file.
      return copied !== undefined && updated !== undefined && Date.parse(updated) === copied.updated;
    },
    wasOutstanding: (key) => outstanding.has(key),
    wasFailed: (key) => outstanding.get(key)?.status === 'failed',
    outstandingBelowWatermark: (job) => {
      const mark = watermarks.get(job);
      return mark === undefined ? [] : outstandingOf(job).filter((entry) => BigInt(entry.id) <= mark);
    },
    outstanding: outstandingOf,
    lastDone: (job, count) => {
      const found: Array<{ id: string; key: string }> = [];
      // The map keeps the order lines were recorded in: walk it from its end, parsing only the lines taken.
      for (const { line } of [...done.values()].reverse()) {
        if (found.length >= count) break;
        if (jobOf(line) !== job) continue;
        const parsed = parseLine<ObjectLine>(line);
        if (parsed !== undefined) found.push({ id: parsed.id, key: parsed.key });
      }
      return found;
    },
    destinationUnanswered,
  };
}

/** A damaged line turns out to be one a kill cut short: what it was writing was never recorded, and nothing is doubted. */
function tear(damage: Damage): void {
  damage.torn = true;
  damage.undo?.();
}

async function readCheckpoint(path: string, options: LoadOptions): Promise<LoadedCheckpoint> {
  // Pass 1: headers, watermarks, sync times and outstanding objects (few lines); everything else is skipped unparsed.
  let header: RunHeader | undefined;
  // A checkpoint begun by `--resume` (cron's first night) has no fresh header: its first run started it.
  let startHeader: RunHeader | undefined;
  let startHeaderLine: string | undefined;
  let runStart = 0;
  let runStartNumber = 1;
  const watermarks = new Map<string, bigint>();
  const synced = new Map<string, string>();
  // The run (counted in headers) that last wrote each job's sync time: it read every row of the job from its watermark.
  const syncedIn = new Map<string, number>();
  const outstanding = new Map<string, OutstandingObject & { line: string }>();
  const compactedRecent: Array<[string, RecentObject]> = [];
  let destinationUnanswered: string | undefined;
  const damages: Damage[] = [];
  let runs = 0;
  let last: { kind: string | undefined; damage?: Damage } = { kind: undefined };
  const damaged = (line: string, offset: number, number: number, kind: Pick<Damage, 'header' | 'settled'> = {}): Damage => {
    const job = /^\{"job":"([a-z_]+)"/.exec(line)?.[1];
    const damage: Damage = { number, offset, job, id: job === undefined ? undefined : idOf(line), runsBefore: runs, torn: false, ...kind };
    damages.push(damage);
    // An object line whose start is whole up to its status names its object: that object is tried again.
    const key = damage.id === undefined ? undefined : keyOf(line);
    if (key !== undefined) {
      damage.settled = true;
      const before = outstanding.get(key);
      damage.undo = () => (before === undefined ? outstanding.delete(key) : outstanding.set(key, before));
      const lost = { job: job!, id: damage.id!, key, status: 'failed' as const };
      outstanding.set(key, { ...lost, line: objectLine({ ...lost, bytes: 0, ms: 0, error: `line ${number} of the checkpoint was unreadable` }) });
    }
    return damage;
  };
  await forEachLine(path, 0, (line, offset, number) => {
    const kind = kindOf(line);
    // A damaged line followed by a run header is one a kill cut short: the writer starts the next run on a new line.
    if (last.damage !== undefined && kind === 'run') tear(last.damage);
    last = { kind };
    if (kind === 'object') {
      // Most lines: only failed, missing and retried ones matter here, and a status of none of the known kinds.
      const status = line.indexOf(STATUS, 8) + STATUS.length;
      const known = statusAt(line, status);
      if (known !== undefined && known !== 'failed' && known !== 'missing' && !line.includes('"retry":true', status)) return;
      const parsed = parseLine<ObjectLine>(line);
      if (parsed === undefined || known === undefined || !isId(parsed.id)) {
        last.damage = damaged(line, offset, number);
        return;
      }
      if (parsed.status === 'failed' || parsed.status === 'missing')
        outstanding.set(parsed.key, { job: parsed.job, id: parsed.id, key: parsed.key, status: parsed.status, line });
      else outstanding.delete(parsed.key);
    } else if (kind === 'run') {
      runs += 1;
      const parsed = parseLine<RunHeader>(line);
      if (parsed === undefined || !['fresh', 'resume', 'retry-failed'].includes(parsed.mode)) {
        // Perhaps a fresh run's, after which nothing before counted: the watermarks and what is done before it are
        // not trusted (rows read again, objects copied again), the objects outstanding before it are kept.
        last.damage = damaged(line, offset, number, { header: true });
        const before = { watermarks: new Map(watermarks), synced: new Map(synced), recent: [...compactedRecent], runStart, runStartNumber };
        last.damage.undo = () => {
          for (const [job, mark] of before.watermarks) watermarks.set(job, mark);
          for (const [job, time] of before.synced) synced.set(job, time);
          compactedRecent.push(...before.recent);
          [runStart, runStartNumber] = [before.runStart, before.runStartNumber];
        };
        [runStart, runStartNumber] = [offset, number];
        watermarks.clear();
        synced.clear();
        compactedRecent.length = 0;
        return;
      }
      header = parsed;
      if (startHeader === undefined) [startHeader, startHeaderLine] = [parsed, line];
      if (parsed.mode === 'fresh') {
        [startHeader, startHeaderLine, runStart, runStartNumber] = [parsed, line, offset, number];
        watermarks.clear();
        synced.clear();
        outstanding.clear();
        compactedRecent.length = 0;
        destinationUnanswered = undefined;
        damages.length = 0;
      }
    } else if (kind === 'watermark') {
      const parsed = parseLine<{ job: string; watermark: string }>(line);
      // A watermark lost says less than was done: the one before it holds, and rows are read again from there.
      if (parsed === undefined || !isId(parsed.watermark)) {
        last.damage = damaged(line, offset, number, { settled: true });
        return;
      }
      const id = BigInt(parsed.watermark);
      const previous = watermarks.get(parsed.job);
      if (previous === undefined || id >= previous) watermarks.set(parsed.job, id);
    } else if (kind === 'synced') {
      const parsed = parseLine<{ job: string; synced: string }>(line);
      if (parsed === undefined || Number.isNaN(Date.parse(parsed.synced))) {
        last.damage = damaged(line, offset, number, { settled: true });
        return;
      }
      if (parsed.synced > (synced.get(parsed.job) ?? '')) synced.set(parsed.job, parsed.synced);
      syncedIn.set(parsed.job, runs);
    } else if (kind === 'recent') {
      const parsed = parseLine<{ job: string; recent: string }>(line);
      if (parsed === undefined) {
        last.damage = damaged(line, offset, number, { settled: true });
        return;
      }
      for (const entry of parsed.recent.split(',')) {
        if (entry.length > KEY_HASH_LENGTH)
          compactedRecent.push([entry.slice(0, KEY_HASH_LENGTH), { job: parsed.job, updated: parseInt(entry.slice(KEY_HASH_LENGTH), 36) }]);
      }
    } else if (kind === 'destinationCheck') {
      const parsed = parseLine<{ destinationCheck: string; why?: string }>(line);
      if (parsed !== undefined) destinationUnanswered = parsed.destinationCheck === 'unanswered' ? (parsed.why ?? '') : undefined;
      else last.damage = damaged(line, offset, number, { settled: true });
    } else last.damage = damaged(line, offset, number);
  });
  // The file's last line, damaged, is one a kill cut short.
  if (last.damage !== undefined) tear(last.damage);

  // A damaged line that may have said an object of a row was failed or missing, and that no later run has read past
  // (a sync time written after it), holds its job's watermark below its row (below every row, when its row id or its
  // job cannot be read): those rows are read again. What is done in its row before it is not trusted either.
  const unread = damages.filter(
    (damage) => damage.job === undefined || syncedIn.get(damage.job) === undefined || syncedIn.get(damage.job)! <= damage.runsBefore,
  );
  const doubtedRows = new Map<string, number>();
  for (const damage of unread) {
    if (damage.header || damage.settled || damage.torn) continue;
    const jobs = damage.job === undefined ? [...watermarks.keys()].filter((job) => (syncedIn.get(job) ?? 0) <= damage.runsBefore) : [damage.job];
    for (const job of jobs) {
      const mark = watermarks.get(job);
      if (damage.id === undefined) watermarks.delete(job);
      else if (mark !== undefined && mark >= BigInt(damage.id)) watermarks.set(job, BigInt(damage.id) - 1n);
    }
    if (damage.job !== undefined && damage.id !== undefined) doubtedRows.set(`${damage.job} ${damage.id}`, damage.offset);
  }

  // Until a job says it synced, every row below its watermark was read at or after the starting run's start.
  const freshStart = startHeader?.started ?? startHeader?.run;
  const recentFrom = (job: string): string | undefined => {
    const since = synced.get(job) ?? freshStart;
    return since === undefined ? undefined : lessMargin(since, options.changeMarginMs);
  };
  const changesFrom = (job: string): string | undefined => (watermarks.has(job) ? recentFrom(job) : undefined);

  // Pass 2: objects finished in rows above each job's last watermark, or recently enough that the changed-rows pass
  // would read them again. Their lines may come before the watermark's own line (rows after an unfinished one
  // finish first), so the row id decides, not the line's place.
  const done = new Map<string, DoneObject>();
  const recent = new Map<string, RecentObject>();
  const stillRecent = (job: string, updated: number) => updated >= Date.parse(changesFrom(job) ?? '');
  for (const [hash, entry] of compactedRecent) if (stillRecent(entry.job, entry.updated)) recent.set(hash, entry);
  // The start of the run whose lines follow (its header's database time): what a line without `updated` copied.
  let runStarted = 0;
  const reported = new Set(damages.map((damage) => damage.number));
  let lastDamage: Damage | undefined;
  await forEachLine(
    path,
    runStart,
    (line, offset, number) => {
      const kind = kindOf(line);
      if (lastDamage !== undefined && kind === 'run') lastDamage.torn = true;
      lastDamage = undefined;
      if (kind === 'run') runStarted = startOf(parseLine<RunHeader>(line)?.started);
      if (kind !== 'object') return;
      const job = jobOf(line);
      const mark = watermarks.get(job);
      if (mark !== undefined && !line.includes('"updated":"')) {
        const id = idOf(line);
        if (id !== undefined && BigInt(id) <= mark) return;
      }
      const parsed = parseLine<ObjectLine>(line);
      // A finished object's line damaged: it is copied again.
      if (parsed === undefined || !isId(parsed.id)) {
        if (!reported.has(number)) damages.push((lastDamage = { number, offset, runsBefore: 0, torn: false }));
        return;
      }
      if (doubtedRows.size > 0 && (doubtedRows.get(`${job} ${parsed.id}`) ?? -1) > offset) return;
      if (mark === undefined || BigInt(parsed.id) > mark) {
        if (FINISHED.has(parsed.status)) {
          const updated = parsed.updated === undefined ? undefined : Date.parse(parsed.updated);
          done.set(parsed.key, { line, updated, asOf: parsed.asOf === undefined ? runStarted : startOf(parsed.asOf) });
        } else done.delete(parsed.key);
      } else if (parsed.updated !== undefined && stillRecent(job, Date.parse(parsed.updated))) {
        if (FINISHED.has(parsed.status)) recent.set(keyHash(parsed.key), { job, updated: Date.parse(parsed.updated) });
        else recent.delete(keyHash(parsed.key));
      }
    },
    runStartNumber,
  );
  if (lastDamage !== undefined) lastDamage.torn = true;
  for (const key of outstanding.keys()) {
    done.delete(key);
    if (recent.size > 0) recent.delete(keyHash(key));
  }
  const damagedLines = damages
    .filter((damage) => !damage.torn)
    .map((damage) => damage.number)
    .sort((a, b) => a - b);
  return { header, startHeaderLine, watermarks, synced, outstanding, done, recent, destinationUnanswered, changesFrom, recentFrom, damaged: damagedLines };
}

/** The one line that says which lines of the checkpoint at `path` are damaged, and what resuming does about them. */
function describeDamage(path: string, lines: readonly number[]): string {
  const shown = lines.slice(0, 10).join(', ') + (lines.length > 10 ? ` and ${lines.length - 10} more` : '');
  const [which, what] = lines.length === 1 ? [`line ${shown}`, 'it'] : [`lines ${shown}`, 'they'];
  return (
    `checkpoint ${path}: damaged ${which} (unreadable, and not a torn last line): what ${what} may have recorded is taken as not done ` +
    '(objects tried again, rows read again, from the start of the job where no row id can be read); `verify all` checks the whole destination'
  );
}

/** A run's start in ms, 0 (before any dated row) when unknown or unreadable. */
function startOf(time: string | undefined): number {
  const ms = time === undefined ? Number.NaN : Date.parse(time);
  return Number.isNaN(ms) ? 0 : ms;
}

/** What a checkpoint records as finished: rows up to each job's watermark, and objects done above them. */
export interface CheckpointProgress {
  /** The earliest run header the checkpoint keeps: compaction keeps only the first run's. */
  readonly header?: RunHeader;
  /** When the last run that finished a job started (database clock, ISO UTC): the latest of the jobs' sync times. */
  readonly lastSynced?: string;
  readonly watermarks: ReadonlyMap<string, bigint>;
  readonly done: number;
}

/** What the checkpoint at `path` records as finished; undefined when nothing (no file, or a run that finished nothing). */
export async function checkpointProgress(path: string): Promise<CheckpointProgress | undefined> {
  if (!existsSync(path)) return undefined;
  const { header, watermarks, done, synced } = await readCheckpoint(path, { changeMarginMs: 0 });
  // ISO UTC times of one format: the latest sorts last.
  const lastSynced = [...synced.values()].sort().at(-1);
  return watermarks.size === 0 && done.size === 0 ? undefined : { header, lastSynced, watermarks, done: done.size };
}

/**
 * Rewrites the checkpoint to the lines resuming reads (its starting header, each job's watermark and sync time, the
 * outstanding objects, and what is done above the watermark or recently), so a checkpoint that cron appends to
 * every night stays small. Atomic: the new file is written beside the old one, synced, then renamed over it, so a
 * kill at any moment leaves either the old checkpoint or the new one.
 */
export async function compactCheckpoint(path: string, options: LoadOptions): Promise<void> {
  if (!existsSync(path)) return;
  const loaded = await readCheckpoint(path, options);
  if (loaded.startHeaderLine === undefined) return;
  // Its identity is every later run's: a resume refuses a checkpoint of another source or destination.
  const lines = [loaded.startHeaderLine];
  for (const [job, mark] of loaded.watermarks) lines.push(watermarkLine(job, mark.toString()));
  for (const [job, time] of loaded.synced) lines.push(syncedLine(job, time));
  for (const entry of loaded.outstanding.values()) lines.push(entry.line);
  // A line without its row's stamp says when it was copied, as its run's header did: compaction keeps only the first.
  for (const entry of loaded.done.values()) lines.push(entry.updated !== undefined ? entry.line : withAsOf(entry.line, entry.asOf));
  // Recently changed objects below the watermark, as key hashes: a fixture or an instance whose rows all changed
  // within the margin must not keep a line per object for the margin's length.
  const recentByJob = new Map<string, string[]>();
  for (const [hash, entry] of loaded.recent) {
    const entries = recentByJob.get(entry.job) ?? [];
    entries.push(`${hash}${entry.updated.toString(36)}`);
    recentByJob.set(entry.job, entries);
  }
  for (const [job, entries] of recentByJob) lines.push(recentLine(job, entries));
  if (loaded.destinationUnanswered !== undefined) lines.push(destinationCheckLine(loaded.destinationUnanswered));

  const temporary = `${path}.compacting`;
  try {
    const content = Buffer.from(`${lines.join('\n')}\n`);
    const fd = openSync(temporary, 'w', 0o600);
    try {
      // writeFileSync loops over short writes (a nearly full disk); the size proves the whole state is there.
      writeFileSync(fd, content);
      fsyncSync(fd);
      if (fstatSync(fd).size !== content.length) throw new Error(`${temporary} holds ${fstatSync(fd).size} of ${content.length} bytes`);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, path);
  } catch (error) {
    // A full disk, say: the checkpoint stays as it was, and no half-written copy lies beside it.
    rmSync(temporary, { force: true });
    throw error;
  }
  // The rename itself must reach the disk too, or a crash could bring back the old name's content.
  const folder = openSync(dirname(path), 'r');
  try {
    fsyncSync(folder);
  } finally {
    closeSync(folder);
  }
}

/**
 * Refuses a file that exists and is not a checkpoint (`--checkpoint mastosync.toml`), before anything is
 * written to it: its first line must be a run header.
 */
export function assertIsCheckpoint(path: string): void {
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Read as "no checkpoint there" before: --resume and --retry-failed then started from nothing or said there was none.
    if (code === 'EACCES' || code === 'EPERM') {
      throw new UsageError(
        `cannot reach checkpoint ${path} (${code}: this user may not enter its folder): pass --checkpoint in a folder this user may write to`,
      );
    }
    return; // none there (ENOENT, ENOTDIR): taking the lock beside it names what is wrong with the folder
  }
  if (stats.isDirectory()) throw new UsageError(`${path} is a folder, not a checkpoint: pass --checkpoint with a file name`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new UsageError(`cannot read checkpoint ${path} (${(error as Error).message}): pass --checkpoint with a readable file`);
  }
  try {
    const start = Buffer.alloc(4096);
    const length = readSync(fd, start, 0, start.length, 0);
    if (length === 0) return;
    const firstLine = start.toString('utf8', 0, length).split('\n')[0]!;
    if (/^\{"run":"[^"]*","mode":"(fresh|resume|retry-failed)","source":"/.test(firstLine)) return;
  } finally {
    closeSync(fd);
  }
  throw new UsageError(
    `${path} exists and is not a mastosync checkpoint (its first line is no run header): pass --checkpoint with a new file or an existing checkpoint; the file was left untouched`,
  );
}

/**
 * The source and destination the first run header of the checkpoint at `path` names; undefined for a file that holds
 * none (empty, not a checkpoint, unreadable). Tells whose an earlier version's default checkpoint is.
 */
export function checkpointRoute(path: string): { readonly source: string; readonly destination: string } | undefined {
  try {
    const fd = openSync(path, 'r');
    const start = Buffer.alloc(65_536);
    let length: number;
    try {
      length = readSync(fd, start, 0, start.length, 0);
    } finally {
      closeSync(fd);
    }
    const header = JSON.parse(start.toString('utf8', 0, length).split('\n')[0]!) as Partial<RunHeader>;
    const { run, source, destination } = header;
    return typeof run === 'string' && typeof source === 'string' && typeof destination === 'string' ? { source, destination } : undefined;
  } catch {
    return undefined;
  }
}

const STATUS = '","status":"';

/**
 * A line's kind, read from where its first keys end (see the line builders below), without scanning the rest of
 * it: most lines are object lines, and a 10-million-line checkpoint is read twice.
 */
function kindOf(line: string): 'run' | 'object' | 'watermark' | 'synced' | 'recent' | 'destinationCheck' | undefined {
  if (line.startsWith('{"run"')) return 'run';
  if (line.startsWith('{"destinationCheck"')) return 'destinationCheck';
  if (!line.startsWith('{"job":"')) return undefined;
  const afterJob = line.indexOf('"', 8);
  if (line.startsWith('","id":"', afterJob)) return line.includes(STATUS, afterJob) ? 'object' : undefined;
  if (line.startsWith('","watermark":"', afterJob)) return 'watermark';
  if (line.startsWith('","synced":"', afterJob)) return 'synced';
  if (line.startsWith('","recent":"', afterJob)) return 'recent';
  return undefined;
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

function isId(id: unknown): id is string {
  return typeof id === 'string' && /^-?\d+$/.test(id);
}

/** The statuses an object line may say, most frequent first, each with the quote that ends it. */
const STATUSES = ['copied', 'relocated', 'present', 'missing', 'failed', 'disowned'].map((status) => `${status}"`);

/** The status an object line says at `at`, read without parsing the line; undefined when it is none of them. */
function statusAt(line: string, at: number): string | undefined {
  for (const status of STATUSES) if (line.startsWith(status, at)) return status.slice(0, -1);
  return undefined;
}

/** An object line's key, when the line is whole from its start up to its status's key (JSON.parse refuses a control character in it). */
function keyOf(line: string): string | undefined {
  const key = /^\{"job":"[a-z_]+","id":"-?\d+","key":("(?:[^"\\]|\\.)*"),"status":"/.exec(line)?.[1];
  return key === undefined ? undefined : parseLine<string>(key);
}

function parseLine<T>(line: string): T | undefined {
  try {
    return JSON.parse(line) as T;
  } catch {
    return undefined; // a torn line from a killed run
  }
}

/** Calls `visit` with each line, its byte offset and its number (`firstNumber` for the line at `start`), reading the file from `start` in large chunks. */
async function forEachLine(path: string, start: number, visit: (line: string, offset: number, number: number) => void, firstNumber = 1): Promise<void> {
  // The end of a line cut by a chunk's end; only it is copied, never the whole next chunk.
  let carry: Buffer = Buffer.alloc(0);
  let offset = start;
  // Line numbers count empty lines too, as an editor does: the damage warning names lines by them.
  let number = firstNumber;
  for await (const chunk of createReadStream(path, { start, highWaterMark: 1 << 20 })) {
    const buffer = chunk as Buffer;
    let lineStart = 0;
    if (carry.length > 0) {
      const newline = buffer.indexOf(10);
      if (newline === -1) {
        carry = Buffer.concat([carry, buffer]);
        continue;
      }
      const line = Buffer.concat([carry, buffer.subarray(0, newline)]);
      if (line.length > 0) visit(line.toString('utf8'), offset, number);
      number += 1;
      offset += line.length + 1;
      lineStart = newline + 1;
    }
    const chunkStart = lineStart;
    for (let newline = buffer.indexOf(10, lineStart); newline !== -1; newline = buffer.indexOf(10, lineStart)) {
      if (newline > lineStart) visit(buffer.toString('utf8', lineStart, newline), offset + lineStart - chunkStart, number);
      number += 1;
      lineStart = newline + 1;
    }
    offset += lineStart - chunkStart;
    carry = Buffer.from(buffer.subarray(lineStart));
    // A chunk outlives V8's young generation while its lines are read, and its 1 MB outside the heap waited for a
    // full collection: compacting a 1 M-line checkpoint peaked 35-40 MB above the listing before it.
    collectIfGrown();
  }
  if (carry.length > 0) visit(carry.toString('utf8'), offset, number);
}

/** Appends checkpoint lines, one write() each, so what is on disk is always a prefix of whole lines. */
export class CheckpointWriter {
  private constructor(private fd: number | undefined) {}

  static open(path: string, header: RunHeader): CheckpointWriter {
    let fd: number;
    try {
      fd = openSync(path, 'a+', 0o600);
    } catch (error) {
      throw new UsageError(`cannot write checkpoint ${path} (${(error as Error).message}): pass --checkpoint with a writable path`);
    }
    const writer = new CheckpointWriter(fd);
    try {
      const size = fstatSync(fd).size;
      if (size > 0) {
        // A torn last line from a killed run must not swallow the next line written after it.
        const last = Buffer.alloc(1);
        readSync(fd, last, 0, 1, size - 1);
        if (last[0] !== 10) writer.append('');
      }
      writer.append(headerLine(header));
    } catch (error) {
      // Before any object is copied (a full disk where the checkpoint lives): a line that names the fix.
      throw new UsageError(`cannot write checkpoint ${path} (${describeError(error)}): free space where it lives, or pass --checkpoint elsewhere`, {
        cause: error,
      });
    }
    return writer;
  }

  record(line: ObjectLine): void {
    this.append(objectLine(line));
  }

  watermark(job: string, id: string): void {
    this.append(watermarkLine(job, id));
  }

  /** Every change to rows at or below the job's watermark, up to `time` (the run's start), is copied. */
  synced(job: string, time: string): void {
    this.append(syncedLine(job, time));
  }

  /**
   * What the look at the destination found (src/sync/destinationCheck.ts): `unanswered`, why it could not be asked, or
   * undefined, it answered. Written when it changes, so that a refusal is said once, not at every cron run.
   */
  destinationCheck(unanswered: string | undefined): void {
    this.append(destinationCheckLine(unanswered));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private append(line: string): void {
    if (this.fd === undefined) return;
    // The string as it is: Node encodes it for the write without a Buffer on the heap per line.
    const text = `${line}\n`;
    try {
      const written = writeSync(this.fd, text);
      const length = Buffer.byteLength(text);
      // A short write is what a nearly full disk does, without an error of its own.
      if (written !== length)
        throw Object.assign(new Error(`no space left: only ${written} of ${length} bytes of a line could be written`), { code: 'ENOSPC' });
    } catch (error) {
      // Once a line is lost or torn, no later line may be trusted, a watermark past it least of all: write nothing more.
      this.close();
      throw error;
    }
  }
}

/*
 * Every line is built here, by hand, in a fixed key order, never by stringifying an object whose key order could
 * change: loading finds a line's kind, job and row id without parsing it. An object line starts
 * `{"job":"…","id":"…"` (jobOf, idOf), its status follows its key (`","status":"`), a header starts `{"run"`, the
 * destination check's line `{"destinationCheck"`, and the other kinds name themselves in their second key (`","watermark":"`, `","synced":"`, `","recent":"`). String
 * values go through JSON.stringify, which escapes every quote in them, so no value can fake a key.
 */
const text = JSON.stringify;

function headerLine(header: RunHeader): string {
  const started = header.started === undefined ? '' : `,"started":${text(header.started)}`;
  const scope = header.scope === undefined ? '' : `,"scope":${text(header.scope)}`;
  return `{"run":${text(header.run)},"mode":${text(header.mode)},"source":${text(header.source)},"destination":${text(header.destination)}${started}${scope}}`;
}

function objectLine(line: ObjectLine): string {
  let result = `{"job":${text(line.job)},"id":${text(line.id)},"key":${text(line.key)},"status":${text(line.status)},"bytes":${line.bytes},"ms":${line.ms}`;
  if (line.from !== undefined) result += `,"from":${text(line.from)}`;
  if (line.error !== undefined) result += `,"error":${text(line.error)}`;
  if (line.retry) result += ',"retry":true';
  if (line.updated !== undefined) result += `,"updated":${text(line.updated)}`;
  if (line.asOf !== undefined) result += `,"asOf":${text(line.asOf)}`;
  return `${result}}`;
}

/** A done object's line, saying the start of the run that copied it (asOf). */
function withAsOf(line: string, asOf: number): string {
  const parsed = JSON.parse(line) as ObjectLine;
  return objectLine({ ...parsed, asOf: new Date(asOf).toISOString() });
}

function watermarkLine(job: string, id: string): string {
  return `{"job":${text(job)},"watermark":${text(id)}}`;
}

function syncedLine(job: string, time: string): string {
  return `{"job":${text(job)},"synced":${text(time)}}`;
}

/** The destination's answer to the look at it (CheckpointWriter.destinationCheck); versions before it skip the line. */
function destinationCheckLine(unanswered: string | undefined): string {
  return unanswered === undefined ? '{"destinationCheck":"answered"}' : `{"destinationCheck":"unanswered","why":${text(unanswered)}}`;
}

/** Objects of `job` finished recently below its watermark: key hashes, each followed by its update time in base 36. */
function recentLine(job: string, entries: readonly string[]): string {
  return `{"job":${text(job)},"recent":${text(entries.join(','))}}`;
}
