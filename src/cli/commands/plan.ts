/**
 * `mastosync plan <job..>`: what the database owns, counted in PostgreSQL without reading rows one by one and
 * without contacting any object store: rows, objects (every style), the bytes the database knows, what sits
 * under cache/, and the requests and time a copy would take.
 */
import type { Logger } from '../../log.js';
import type { Scope } from '../../db/scope.js';
import { planJob, type JobPlan } from '../../sync/plan.js';
import { EXIT, type Output } from '../exit.js';
import { REMOTE_CACHE_WARNING, describeScope } from '../scope.js';
import { openSession, parseJobs, readConfig } from '../setup.js';
import { PART_SIZE } from '../../storage/index.js';
import { formatBytes, formatCount as count, formatDuration } from '../summary.js';

interface PlanFlags {
  readonly jobs: string[];
  readonly config?: string;
  readonly json: boolean;
  readonly scope: Scope;
  /** Objects per second, for a time estimate. */
  readonly rate?: number;
}

export async function planCommand(flags: PlanFlags, log: Logger, out: Output): Promise<number> {
  parseJobs(flags.jobs);
  const config = readConfig(flags, log);
  const session = await openSession(config, flags.jobs, log);
  try {
    // The text report carries the warning itself; JSON output leaves it to the log.
    if (flags.json && flags.scope.skipRemoteCache !== undefined) log.warn(REMOTE_CACHE_WARNING);
    const plans: JobPlan[] = [];
    for (const job of session.jobs)
      plans.push(await planJob(session.db, session.schema, job, flags.scope, { partSize: PART_SIZE, multipartAbove: config.sync.uploadCutoff }));
    out.stdout(
      flags.json ? planJson(plans) : planText(plans, { database: session.db.description, scope: flags.scope, rate: flags.rate, notes: session.notes }),
    );
    return EXIT.ok;
  } finally {
    await session.db.close();
  }
}

function planJson(plans: readonly JobPlan[]): string {
  const total = sum(plans);
  return JSON.stringify({
    jobs: plans.map((plan) => ({
      job: plan.job,
      rows: plan.rows,
      objects: plan.objects,
      bytes: plan.bytes,
      cached_objects: plan.cachedObjects,
      local_objects: plan.localObjects,
    })),
    total: { rows: total.rows, objects: total.objects, bytes: total.bytes },
  });
}

function planText(plans: readonly JobPlan[], context: { database: string; scope: Scope; rate?: number; notes: readonly string[] }): string {
  const total = sum(plans);
  const header = ['job', 'rows', 'objects', 'under cache/', 'local', 'original bytes'];
  const cells = (name: string, plan: Omit<JobPlan, 'job'>) => [
    name,
    count(plan.rows),
    count(plan.objects),
    count(plan.cachedObjects),
    count(plan.localObjects),
    formatBytes(plan.bytes),
  ];
  const table = [header, ...plans.map((plan) => cells(plan.job, plan)), cells('total', total)];
  const widths = header.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const lines = [
    `What ${context.database} owns${describeScope(context.scope) ? ` (${describeScope(context.scope)})` : ''}; no object store was contacted.`,
    '',
    ...table.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ')),
    '',
    `Bytes are the *_file_size columns, so originals only: Mastodon records no size for the ${count(total.styleObjects)} style objects (small, static, @1x, …), usually far smaller.`,
    `Requests: about ${count(total.requests)} to copy (a GET and a PUT per object${total.requests > 2 * total.objects ? ', and the parts of originals above [sync] upload_cutoff' : ''}); a server-side copy needs about half.`,
    context.rate === undefined
      ? 'Time: pass --rate N (objects per second, as the progress display of a short run shows) for an estimate.'
      : `Time: about ${formatDuration(Math.round((total.objects / context.rate) * 1000))} at ${context.rate} objects/s.`,
    ...(context.scope.skipRemoteCache !== undefined ? [`warning: ${REMOTE_CACHE_WARNING}`] : []),
    ...context.notes.map((note) => `note: ${note}`),
  ];
  return lines.join('\n');
}

function sum(plans: readonly JobPlan[]): Omit<JobPlan, 'job'> {
  const total = { rows: 0, objects: 0, bytes: 0, cachedObjects: 0, localObjects: 0, styleObjects: 0, requests: 0 };
  for (const plan of plans) for (const field of Object.keys(total) as (keyof typeof total)[]) total[field] += plan[field];
  return total;
}
