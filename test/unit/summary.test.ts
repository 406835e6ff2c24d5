/** The run's summary as an admin reads it: after an interruption the rows column says it counts rows read. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isoSeconds, reportJson, reportText, type Report } from '../../src/cli/summary.js';

const job = {
  job: 'accounts' as const,
  rows: 10,
  changed: 2,
  unfinishedRows: 3,
  objects: 14,
  copied: 9,
  relocated: 0,
  present: 0,
  missing: 1,
  failed: 0,
  skipped: 0,
  presentMadePrivate: 0,
  aclsReapplied: 0,
  recopied: 0,
  copiedOnProvider: 0,
  bytes: 2048,
  ms: 1500,
};
const report = (interrupted: boolean, skipExisting = false): Report => ({
  jobs: [job],
  interrupted,
  dryRun: false,
  skipExisting,
  notes: [],
  started: '2026-05-01T03:00:00Z',
  finished: '2026-05-01T03:00:02Z',
});

test('a finished run: a rows column, the start and end times in UTC, no status line', () => {
  const lines = reportText(report(false)).split('\n');
  assert.match(lines[0]!, /^job +rows +changed +objects +copied/);
  assert.equal(lines.at(-1), 'started 2026-05-01T03:00:00Z, finished 2026-05-01T03:00:02Z');
});

test('an interrupted run: the column is "rows read", and the status line says they are not all finished', () => {
  const text = reportText(report(true));
  assert.match(text, /^job +rows read +changed +objects +copied/m);
  assert.match(
    text,
    /^interrupted: run again with --resume to continue \(of the 10 rows read, 7 are finished; the objects of the other 3 stay to do; rows not reached are read by --resume\)$/m,
  );
});

test('a stopped run whose finished rows hold failed objects says so: they were tried, not copied', () => {
  const stopped = { ...report(false), jobs: [{ ...job, copied: 0, missing: 0, failed: 8, unfinishedRows: 2 }], stopped: 'the cause: the fix' };
  assert.match(
    reportText(stopped),
    /^stopped: the cause: the fix \(of the 10 rows read, 8 are finished, with 8 failed objects that --resume tries again; the objects of the other 2 stay to do; rows not reached are read by --resume\)$/m,
  );
});

test('a stopped run whose rows read are all finished says none of them stays to do, not "the other 0", nor that nothing is left', () => {
  const stopped = { ...report(false), jobs: [{ ...job, unfinishedRows: 0 }], stopped: 'the cause: the fix' };
  assert.match(
    reportText(stopped),
    /^stopped: the cause: the fix \(of the 10 rows read, 10 are finished; none of them stays to do; rows not reached are read by --resume\)$/m,
  );
});

test('an interrupted run --skip-existing is told to go on with --skip-existing, or a --resume copies again what it found present', () => {
  assert.match(reportText(report(true, true)), /^interrupted: run again with --resume --skip-existing to continue/m);
});

test('ACLs re-applied (an account suspended since the last run): a column of their own beside skipped, each job its count, and a line that says what they are', () => {
  assert.doesNotMatch(reportText(report(false)), /ACLs/);
  // A --resume after an interrupted run: the objects it finished are skipped (not copied again), and their ACLs re-applied.
  const text = reportText({
    ...report(false),
    jobs: [
      { ...job, copied: 0, skipped: 6, aclsReapplied: 6 },
      { ...job, job: 'backups', aclsReapplied: 0 },
    ],
  });
  const [header, accounts, backups, total] = text.split('\n');
  assert.match(header!, /^job +rows +changed +objects +copied +relocated +missing +failed +skipped +ACLs re-applied +bytes +time$/);
  assert.match(accounts!, /^accounts +10 +2 +14 +0 +0 +1 +0 +6 +6 +2\.0 KB +1\.5 s$/);
  assert.match(backups!, /^backups +10 +2 +14 +9 +0 +1 +0 +0 +0 +2\.0 KB +1\.5 s$/);
  assert.match(total!, /^total +20 +4 +28 +9 +0 +2 +0 +6 +6 +4\.1 KB +$/);
  assert.match(
    text,
    /^6 ACLs re-applied: objects copied before whose account was suspended or unsuspended, or whose status was discarded, since the last run, given the access Mastodon now gives them \(not copied again\)$/m,
  );
});

test('copies on the provider: the bytes column says it counts the bytes streamed, and a line counts the copies that passed none', () => {
  assert.doesNotMatch(reportText(report(false)), /streamed|on the provider/);
  const text = reportText({ ...report(false), providerCopy: 'CopyObject', jobs: [{ ...job, copiedOnProvider: 7 }] });
  assert.match(text.split('\n')[0]!, /^job +rows +changed +objects +copied +relocated +missing +failed +skipped +bytes streamed +time$/);
  assert.match(text, /^7 objects copied on the provider \(CopyObject\): their bytes did not pass through mastosync and are not in "bytes streamed"$/m);
  const parsed = JSON.parse(reportJson({ ...report(false), jobs: [{ ...job, copiedOnProvider: 7 }] })) as { total: { copiedOnProvider: number } };
  assert.equal(parsed.total.copiedOnProvider, 7);
});

test('--json carries started and finished', () => {
  const parsed = JSON.parse(reportJson(report(false))) as Record<string, unknown>;
  assert.equal(parsed.started, '2026-05-01T03:00:00Z');
  assert.equal(parsed.finished, '2026-05-01T03:00:02Z');
});

test('times are ISO 8601 UTC to the second', () => {
  assert.equal(isoSeconds(new Date(Date.UTC(2026, 0, 2, 3, 4, 5, 678))), '2026-01-02T03:04:05Z');
});

test('objects the checkpoint called copied but the destination lacked are said in one line (--resume --skip-existing)', () => {
  const text = reportText({ ...report(false, true), jobs: [{ ...job, recopied: 4 }] });
  assert.match(text, /^4 objects the checkpoint recorded as copied were not at the destination \(or not as at the source\): copied again$/m);
  assert.doesNotMatch(reportText(report(false, true)), /recorded as copied/);
});
