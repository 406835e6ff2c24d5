/** The end-of-run report: a table for people, or one JSON document with --json. */
import { noCounts, type JobSummary } from '../sync/run.js';

export interface Report {
  readonly jobs: JobSummary[];
  readonly interrupted: boolean;
  readonly dryRun: boolean;
  /** Run with --skip-existing: an interrupted one continues with it too, or it copies again what it found present. */
  readonly skipExisting: boolean;
  readonly notes: string[];
  /** What the destination's provider calls its own copy (CopyObject…), when the run may copy there. */
  readonly providerCopy?: string;
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

/** The table's count columns. */
type Column = Exclude<keyof ReturnType<typeof noCounts>, 'unfinishedRows' | 'presentMadePrivate' | 'recopied' | 'copiedOnProvider' | 'bytes'>;

/** Columns whose header is not their field's name. */
const HEADERS: Partial<Record<Column, string>> = { aclsReapplied: 'ACLs re-applied' };

export function reportJson(report: Report): string {
  return JSON.stringify({ ...report, total: totals(report.jobs) });
}

export function reportText(report: Report): string {
  // Rows are counted as they are read: after an interruption or a stop some of them still have copies to do.
  const total = totals(report.jobs);
  // `present` only when --skip-existing found some: other runs keep the columns cron mails have always had.
  // `ACLs re-applied` likewise, beside `skipped`: an object copied before counts as skipped when its row is read
  // again, and its ACL re-applied is what this run did with it.
  const columns: readonly Column[] = report.dryRun
    ? total.present > 0
      ? ['rows', 'objects', 'present', 'missing', 'skipped']
      : ['rows', 'objects', 'skipped']
    : [
        ...(['rows', 'changed', 'objects', 'copied', 'relocated'] as const),
        ...(total.present > 0 ? (['present'] as const) : []),
        ...(['missing', 'failed', 'skipped'] as const),
        ...(total.aclsReapplied > 0 ? (['aclsReapplied'] as const) : []),
      ];
  const cutShort = report.interrupted || report.stopped !== undefined;
  // A copy on the provider passes no byte through the run: the column says what it counts, and a line the rest.
  const bytes = total.copiedOnProvider > 0 ? 'bytes streamed' : 'bytes';
  const header = [
    'job',
    ...columns.map((column) => (column === 'rows' && cutShort ? 'rows read' : (HEADERS[column] ?? column))),
    ...(report.dryRun ? [] : [bytes, 'time']),
  ];
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
  const unfinished = total.unfinishedRows === 0 ? 'none of them stays to do' : `the objects of the other ${total.unfinishedRows} stay to do`;
  // Said of the rows read: a run cut short may not have reached the rest (a stop in the ACL pass reads no new row).
  const rowsFinished = `of the ${total.rows} rows read, ${total.rows - total.unfinishedRows} are finished${failedAmong}; ${unfinished}; rows not reached are read by --resume`;
  const status = report.dryRun
    ? 'dry run: nothing was written'
    : report.stopped !== undefined
      ? `stopped: ${report.stopped} (${rowsFinished})`
      : report.interrupted
        ? `interrupted: run again with --resume${report.skipExisting ? ' --skip-existing' : ''} to continue (${rowsFinished})`
        : undefined;
  const times = `started ${report.started}, finished ${report.finished}`;
  const acls =
    total.aclsReapplied > 0
      ? [
          `${total.aclsReapplied} ACLs re-applied: objects copied before whose account was suspended or unsuspended, or whose status was ` +
            'discarded, since the last run, given the access Mastodon now gives them (not copied again)',
        ]
      : [];
  const madePrivate =
    total.presentMadePrivate > 0
      ? [
          `${total.presentMadePrivate} private objects found present: ACL set to private (backups, media of suspended accounts and ` +
            'discarded statuses, as Mastodon writes them; whatever filled the destination may have left them public)',
        ]
      : [];
  const onProvider =
    total.copiedOnProvider > 0
      ? [
          `${total.copiedOnProvider} objects copied on the provider (${report.providerCopy ?? 'a server-side copy'}): ` +
            `their bytes did not pass through mastosync and are not in "${bytes}"`,
        ]
      : [];
  const recopied =
    total.recopied > 0
      ? [`${total.recopied} objects the checkpoint recorded as copied were not at the destination (or not as at the source): copied again`]
      : [];
  return [
    ...text,
    ...acls,
    ...madePrivate,
    ...recopied,
    ...onProvider,
    ...report.notes.map((note) => `note: ${note}`),
    times,
    ...(status ? [status] : []),
  ].join('\n');
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
