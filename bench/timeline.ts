/**
 * `npm run bench -- --trace`: where a streamed run's time went, from the latency proxies' records of it. Each
 * request's time is as the proxy saw it (arrival to answer sent, the added latency included); the gaps between an
 * object's requests are what the copier and the proxies' own event loops added; "slots busy" is the mean number of
 * objects between their GET's arrival and their PUT's answer, against the concurrency.
 */
import type { RecordedRequest } from '../test/support/httpProxy.js';

function percentile(values: readonly number[], fraction: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(fraction * (sorted.length - 1))] ?? Number.NaN;
}

const mean = (values: readonly number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;
const spread = (values: readonly number[]) =>
  `median ${percentile(values, 0.5).toFixed(0)} ms, 90th ${percentile(values, 0.9).toFixed(0)} ms, mean ${mean(values).toFixed(1)} ms`;

/** One line about a streamed run: `reads` at the source proxy, `writes` at the destination's, keys shared. */
export function describeTimeline(reads: readonly RecordedRequest[], writes: readonly RecordedRequest[], startedAt: number, endedAt: number): string {
  const gets = reads.filter((request) => request.operation === 'GetObject' && request.status === 200 && request.finishedAt !== undefined);
  const puts = writes.filter((request) => request.operation === 'PutObject' && request.status === 200 && request.finishedAt !== undefined);
  // Each successful read with the first successful write of its key after it (a retried copy has several of each).
  const pairs = gets.flatMap((get) => {
    const put = puts.find((candidate) => candidate.key === get.key && candidate.startedAt >= get.startedAt);
    return put ? [{ get, put }] : [];
  });
  if (pairs.length === 0) return 'no streamed objects';
  const arrivals = gets.map((get) => get.startedAt).sort((a, b) => a - b);
  const nextArrival = (after: number) => arrivals.find((time) => time >= after);
  const spans = pairs.map(({ get, put }) => [get.startedAt, put.finishedAt!] as const);
  const first = Math.min(...spans.map(([from]) => from));
  const last = Math.max(...spans.map(([, to]) => to));
  const busy = spans.reduce((sum, [from, to]) => sum + (to - from), 0) / (last - first);
  return [
    `first GET ${(first - startedAt).toFixed(0)} ms after start`,
    `GET ${spread(pairs.map(({ get }) => get.finishedAt! - get.startedAt))}`,
    `PUT ${spread(pairs.map(({ put }) => put.finishedAt! - put.startedAt))}`,
    `GET answered → its PUT arrives ${spread(pairs.map(({ get, put }) => put.startedAt - get.finishedAt!))}`,
    `PUT answered → next GET arrives ${spread(
      pairs.flatMap(({ put }) => {
        const next = nextArrival(put.finishedAt!);
        return next === undefined ? [] : [next - put.finishedAt!];
      }),
    )}`,
    `slots busy ${busy.toFixed(1)} on average`,
    `last PUT answered ${(endedAt - last).toFixed(0)} ms before exit`,
  ].join('; ');
}
