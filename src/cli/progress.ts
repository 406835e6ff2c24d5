/**
 * Shows a run's progress on stderr. On a terminal: a live block, one line per job and a total, redrawn in
 * place a few times a second, with log lines printed above it. Elsewhere (cron, CI, a log collector): one JSON
 * line every few seconds, shaped like the log lines, and one at the end.
 */
import type { Logger } from '../log.js';
import type { JobName } from '../mastodon/tables.js';
import type { ProgressLine, ProgressSnapshot, ProgressTally } from '../sync/progress.js';
import type { Output } from './exit.js';
import { createLogger, logsInfo, readableLogLine } from './logger.js';
import { formatBytes, formatCount as number, formatDuration } from './summary.js';

export type ProgressMode = 'live' | 'json' | 'off';

/**
 * Progress is info: a log level above it (warn, error, fatal, silent) asks for quiet as --quiet does, so that a
 * clean cron run mails nothing.
 */
export function progressMode(quiet: boolean, logLevel: string, stream: { isTTY?: boolean }): ProgressMode {
  if (quiet || !logsInfo(logLevel)) return 'off';
  return stream.isTTY ? 'live' : 'json';
}

/**
 * A command's display as its flags ask for it (none when `quiet`, or at a log level above info) and its logger, which
 * on a terminal writes through the display, above its live block. `counts` as for ProgressDisplay.
 */
export function progressAndLogger(
  flags: { readonly quiet: boolean; readonly logLevel: string; readonly progressIntervalSeconds: number },
  counts: 'owned' | 'listed' = 'owned',
): { progress?: ProgressDisplay; log: Logger } {
  const mode = progressMode(flags.quiet, flags.logLevel, process.stderr);
  const progress = mode === 'off' ? undefined : new ProgressDisplay(mode, process.stderr, flags.progressIntervalSeconds * 1000, counts);
  return { progress, log: createLogger(flags.logLevel, mode === 'live' ? progress?.logDestination : undefined) };
}

/**
 * Counts each job's objects in scope (`count`) beside the work, one job after the other, for the display's totals and
 * ETA: the work never waits for them, and a count that fails leaves the totals unknown.
 */
export function countBeside(tally: ProgressTally, jobs: readonly JobName[], count: (job: JobName) => Promise<number>, log: Logger): void {
  void (async () => {
    for (const job of jobs) tally.owned(job, await count(job));
  })().catch((error: unknown) => log.debug({ err: error }, 'could not count the objects in scope; progress shows no totals'));
}

/** Writes a line to stdout; on a terminal the live block (on stderr) steps aside for it first. */
export function stdoutBeside(progress: ProgressDisplay | undefined, out: Output): (text: string) => void {
  return (text) => {
    progress?.clear();
    out.stdout(text);
  };
}

export interface ProgressStream {
  write(text: string): unknown;
  readonly columns?: number;
}

const LIVE_INTERVAL_MS = 250;
const DEFAULT_JSON_INTERVAL_MS = 5000;

/**
 * Made before the run (so the logger can write through it from the first line) and started once the jobs are
 * known.
 */
export class ProgressDisplay {
  private timer: NodeJS.Timeout | undefined;
  private tally: ProgressTally | undefined;
  /** Lines of the live block now on screen (to erase before anything else is written). */
  private drawn = 0;

  /**
   * `counts`: `owned` when the objects in scope are counted (done of owned, a bar, an ETA); `listed` for a command
   * that only learns how many there are by listing them all (prune): the count alone.
   */
  constructor(
    private readonly mode: Exclude<ProgressMode, 'off'>,
    private readonly stream: ProgressStream,
    private readonly jsonIntervalMs = DEFAULT_JSON_INTERVAL_MS,
    private readonly counts: 'owned' | 'listed' = 'owned',
  ) {}

  start(tally: ProgressTally): void {
    this.tally = tally;
    const interval = this.mode === 'live' ? LIVE_INTERVAL_MS : this.jsonIntervalMs;
    this.timer = setInterval(() => this.show(), interval);
    this.timer.unref();
  }

  /**
   * For the logger: on a terminal, each log line goes above the live block, which is redrawn on the next tick,
   * as a line for people (pino's JSON would be noise among the live lines).
   */
  readonly logDestination = {
    write: (line: string): void => {
      this.erase();
      this.stream.write(`${readableLogLine(line)}\n`);
    },
  };

  /** Takes the live block off the screen until the next tick, so that a line written to stdout lands clean. */
  clear(): void {
    this.erase();
  }

  /** The final state, left on screen (or as the last JSON line); `completed` marks every job done. */
  stop(completed: boolean): void {
    if (this.timer === undefined || this.tally === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    if (completed) this.tally.finish();
    this.show();
    // The last block stays on screen as it is: what follows (the summary, a log line) goes below it, not over it.
    this.drawn = 0;
  }

  private show(): void {
    if (this.tally === undefined) return;
    const snapshot = this.tally.snapshot();
    if (this.mode === 'json') {
      this.stream.write(`${progressJson(snapshot, Date.now())}\n`);
      return;
    }
    this.erase();
    const lines = renderLive(snapshot, this.stream.columns || 100, this.counts);
    this.stream.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }

  private erase(): void {
    if (this.drawn === 0) return;
    // Up to the first line of the block, then clear to the end of the screen.
    this.stream.write(`\x1b[${this.drawn}A\r\x1b[J`);
    this.drawn = 0;
  }
}

/** One progress line for logs: `{"level":30,"time":…,"msg":"progress",…}` with totals and each job. */
export function progressJson(snapshot: ProgressSnapshot, now: number): string {
  const { total } = snapshot;
  return JSON.stringify({
    level: 30,
    time: now,
    msg: 'progress',
    elapsed_s: round(snapshot.elapsedMs / 1000),
    done: total.done,
    owned: total.owned ?? null,
    bytes: total.bytes,
    objects_per_s: round(total.objectsPerSecond),
    bytes_per_s: Math.round(total.bytesPerSecond),
    eta_s: total.etaSeconds === undefined ? null : Math.round(total.etaSeconds),
    jobs: snapshot.jobs.map((job) => ({ job: job.job, done: job.done, owned: job.owned ?? null, bytes: job.bytes, state: job.state })),
  });
}

const BAR_WIDTH = 20;

/**
 * The fields a line can do without, the first dropped first when the lines are wider than the terminal: each whole,
 * so that a number never loses its unit ("12.3 MB", not "12.3 "). A job's name and its count always stay.
 */
const DROPPED_FIRST = ['bar', 'bytes/s', 'bytes', 'objects/s', 'percent', 'eta'] as const;
type Optional = (typeof DROPPED_FIRST)[number];

/** The live block: a line per job and a total, each fitted to the terminal's width by dropping fields, so none wraps. */
export function renderLive(snapshot: ProgressSnapshot, columns: number, of: 'owned' | 'listed' = 'owned'): string[] {
  const width = Math.max(20, columns - 1);
  const nameWidth = Math.max(...[...snapshot.jobs, snapshot.total].map((line) => line.job.length));
  // verify counts objects only: no bytes to show.
  const withBytes = snapshot.total.bytes > 0;
  const shown = new Set<Optional>(['objects/s', 'eta']);
  if (of === 'owned') shown.add('percent');
  if (withBytes) (['bytes', 'bytes/s'] as const).forEach((field) => shown.add(field));
  // The bar only where it leaves room to spare.
  if (of === 'owned' && width >= nameWidth + BAR_WIDTH + 60) shown.add('bar');
  for (const field of DROPPED_FIRST) {
    const lines = liveCells(snapshot, of, shown).map((cells) => cells.join('  ').trimEnd());
    if (lines.every((line) => line.length <= width)) return lines;
    shown.delete(field);
  }
  // Narrower still than a name and its count: each line keeps the whole fields that fit (a name cut at least shows its start).
  // Aligned where the padding fits, else closer.
  return liveCells(snapshot, of, shown).map((cells) => {
    let text = cells[0]!;
    for (const cell of cells.slice(1)) {
      const longer = [`${text}  ${cell}`, `${text.trimEnd()}  ${cell.trimStart()}`].find((candidate) => candidate.length <= width);
      if (longer === undefined) break;
      text = longer;
    }
    text = text.trimEnd();
    return text.length > width ? `${text.slice(0, width - 1)}…` : text;
  });
}

/** Each line's fields, those in `shown` (and the name and the count), padded to align in columns. */
function liveCells(snapshot: ProgressSnapshot, of: 'owned' | 'listed', shown: ReadonlySet<Optional>): string[][] {
  const all = [...snapshot.jobs, snapshot.total];
  const nameWidth = Math.max(...all.map((line) => line.job.length));
  const counts = all.map((line) =>
    of === 'listed' ? `${number(line.done)} listed` : `${number(line.done)} / ${line.owned === undefined ? 'counting…' : number(line.owned)}`,
  );
  const countWidth = Math.max(...counts.map((text) => text.length));
  const rates = all.map((line) => rate(line, shown));
  const rateWidth = shown.has('objects/s') && shown.has('bytes/s') ? 22 : Math.max(0, ...rates.map((text) => text?.length ?? 0));
  return all.map((line, index) => {
    const state = stateText(line, snapshot.elapsedMs);
    const eta = shown.has('eta') && line.etaSeconds !== undefined ? [`ETA ${clock(line.etaSeconds)}`] : [];
    return [
      line.job.padEnd(nameWidth),
      ...(shown.has('bar') ? [bar(line)] : []),
      ...(shown.has('percent') ? [percent(line).padStart(4)] : []),
      counts[index]!.padStart(countWidth),
      ...(shown.has('bytes') ? [formatBytes(line.bytes).padStart(8)] : []),
      ...(state !== undefined ? [state] : [...(rates[index] === undefined ? [] : [rates[index]!.padStart(rateWidth)]), ...eta]),
    ];
  });
}

/** A line's state in words, in place of its rates: done, waiting. */
function stateText(line: ProgressLine, elapsedMs: number): string | undefined {
  if (line.job === 'total' && line.state === 'done') return `done in ${formatDuration(elapsedMs)}`;
  if (line.state === 'done') return 'done';
  if (line.state === 'waiting') return 'waiting';
  return undefined;
}

/** The rates shown, objects and bytes per second, as one field (undefined: neither is shown). */
function rate(line: ProgressLine, shown: ReadonlySet<Optional>): string | undefined {
  const rates = [
    ...(shown.has('objects/s') ? [`${line.objectsPerSecond < 10 ? line.objectsPerSecond.toFixed(1) : Math.round(line.objectsPerSecond)} obj/s`] : []),
    ...(shown.has('bytes/s') ? [`${formatBytes(line.bytesPerSecond)}/s`] : []),
  ];
  return rates.length === 0 ? undefined : rates.join('  ');
}

/** A whole-second duration: 45 s, 3 min 05 s, 2 h 07 min. */
function clock(seconds: number): string {
  const whole = Math.max(1, Math.round(seconds));
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${String(whole % 60).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

function bar(line: ProgressLine): string {
  const fraction = line.state === 'done' ? 1 : line.owned ? Math.min(1, line.done / line.owned) : 0;
  const filled = Math.round(fraction * BAR_WIDTH);
  return '█'.repeat(filled) + '░'.repeat(BAR_WIDTH - filled);
}

function percent(line: ProgressLine): string {
  if (line.state === 'done') return '100%';
  if (!line.owned) return line.owned === 0 ? '100%' : '';
  return `${Math.min(100, Math.floor((line.done / line.owned) * 100))}%`;
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
