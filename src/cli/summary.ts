/** The end-of-run report: a table for people, or one JSON document with --json. */
import { noCounts, type JobSummary } from '../sync/run.js';

export interface Report {
  readonly jobs: JobSummary[];
  readonly interrupted: boolean;
  readonly dryRun: boolean;
  /** Run with --skip-existing: an interrupted one continues with it too, or it copies again what it found present. */
  readonly skipExisting: boolean;
  readonly notes: string[];
  /** What stopped the run that no retry could fix, and the fix. */
  readonly stopped?: string;
  /** When the run started and ended: ISO 8601 UTC, to the second. */
  readonly started: string;
  readonly finished: string;
}

/** `2026-05-01T03:00:07Z`: the summary's times, UTC so that cron mails from any server compare. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function totals(jobs: readonly JobSummary[]): Omit<JobSummary, 'job' | 'ms'> {
  const total = noCounts();
  for (const job of jobs) for (const field of Object.keys(total) as (keyof typeof total)[]) total[field] += job[field];
  return total;
}

export function reportJson(report: Report): string {
  return JSON.stringify({ ...report, total: totals(report.jobs) });
}

export function reportText(report: Report): string {
  // Rows are counted as they are read: after an interruption or a stop some of them still have copies to do.
  const total = totals(report.jobs);
  // `present` only when --skip-existing found some: other runs keep the columns cron mails have always had.
  const columns = report.dryRun
    ? total.present > 0
      ? (['rows', 'objects', 'present', 'missing', 'skipped'] as const)
      : (['rows', 'objects', 'skipped'] as const)
    : total.present > 0
      ? (['rows', 'changed', 'objects', 'copied', 'relocated', 'present', 'missing', 'failed', 'skipped'] as const)
      : (['rows', 'changed', 'objects', 'copied', 'relocated', 'missing', 'failed', 'skipped'] as const);
  const cutShort = report.interrupted || report.stopped !== undefined;
  const header = ['job', ...columns.map((column) => (column === 'rows' && cutShort ? 'rows read' : column)), ...(report.dryRun ? [] : ['bytes', 'time'])];
  const line = (name: string, job: Omit<JobSummary, 'job' | 'ms'> & { ms?: number }) => [
    name,
    ...columns.map((column) => String(job[column])),
    ...(report.dryRun ? [] : [formatBytes(job.bytes), job.ms === undefined ? '' : formatDuration(job.ms)]),
  ];
  const rows = [header, ...report.jobs.map((job) => line(job.job, job)), line('total', total)];
  const widths = header.map((_, index) => Math.max(...rows.map((row) => row[index]!.length)));
  const text = rows.map((row) => row.map((cell, index) => (index === 0 ? cell.padEnd(widths[index]!) : cell.padStart(widths[index]!))).join('  '));
  // A row is finished when each of its objects is recorded: a failed one too, which --resume tries again.
  const failedAmong = total.failed > 0 ? `, with ${total.failed} failed objects that --resume tries again` : '';
  const unfinished = total.unfinishedRows === 0 ? 'none stays to do' : `the objects of the other ${total.unfinishedRows} stay to do`;
  const rowsFinished = `of the ${total.rows} rows read, ${total.rows - total.unfinishedRows} are finished${failedAmong}; ${unfinished}`;
  const status = report.dryRun
    ? 'dry run: nothing was written'
    : report.stopped !== undefined
      ? `stopped: ${report.stopped} (${rowsFinished})`
      : report.interrupted
        ? `interrupted: run again with --resume${report.skipExisting ? ' --skip-existing' : ''} to continue (${rowsFinished})`
        : undefined;
  const times = `started ${report.started}, finished ${report.finished}`;
  // Not a column: most runs have none, and cron mails keep the columns they always had.
  const acls =
    total.aclsReapplied > 0 ? [`${total.aclsReapplied} ACLs re-applied (accounts suspended or unsuspended, statuses discarded since the last run)`] : [];
  const recopied =
    total.recopied > 0
      ? [`${total.recopied} objects the checkpoint recorded as copied were not at the destination (or not as at the source): copied again`]
      : [];
  return [...text, ...acls, ...recopied, ...report.notes.map((note) => `note: ${note}`), times, ...(status ? [status] : [])].join('\n');
}

/** `12,345`: a count as the progress lines and tables print it. */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** Objects missing at the source at least this often, and in the majority, are not what a real instance lacks. */
const DOUBTFUL_MISSING = 10;

/**
 * Why the source may be the wrong one (run, verify): most of the objects looked for are not there. A real instance
 * lacks a few (files lost, a removal under way), not most; an unmounted folder or another bucket lacks them all.
 */
export function sourceDoubt(found: number, missing: number, source: string, next: string): string | undefined {
  if (missing < DOUBTFUL_MISSING || missing <= found) return undefined;
  return `${missing} of the ${found + missing} objects looked for are missing at the source ${source}: is it Mastodon's bucket or folder (mounted, right bucket, right key_prefix)? Once it is, ${next}`;
}
