/**
 * The progress tally and its two renderings, on a fake clock: what the admin reads (done / owned, rate, ETA,
 * per job and in total) must follow the current speed, say "counting…" until the totals are known, and never
 * wrap a terminal line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ProgressTally } from '../../src/sync/progress.js';
import { ProgressDisplay, progressJson, progressMode, renderLive } from '../../src/cli/progress.js';
import { createLogger, readableLogLine } from '../../src/cli/logger.js';

function clock(start = 1000) {
  let now = start;
  return { read: () => now, advance: (ms: number) => (now += ms) };
}

test('done, owned, rate and ETA per job and in total; a waiting job has no rate', () => {
  const time = clock();
  const tally = new ProgressTally(['media_attachments', 'accounts'], time.read);
  tally.owned('media_attachments', 100);
  time.advance(1000);
  for (let i = 0; i < 10; i++) tally.result('media_attachments', 1000);
  time.advance(1000);
  for (let i = 0; i < 10; i++) tally.result('media_attachments', 1000);
  time.advance(1000);
  const snapshot = tally.snapshot();
  const media = snapshot.jobs[0]!;
  assert.equal(media.done, 20);
  assert.equal(media.owned, 100);
  assert.equal(media.bytes, 20_000);
  assert.equal(media.state, 'running');
  // Measured from its first finished object (t=2000) to now (t=4000): 20 objects in 2 s.
  assert.equal(media.objectsPerSecond, 10);
  assert.equal(media.bytesPerSecond, 10_000);
  assert.equal(media.etaSeconds, 8);
  const accounts = snapshot.jobs[1]!;
  assert.equal(accounts.state, 'waiting');
  assert.equal(accounts.owned, undefined);
  assert.equal(snapshot.total.owned, undefined, 'no total until every job is counted');
  assert.equal(snapshot.total.etaSeconds, undefined);

  tally.owned('accounts', 30);
  const counted = tally.snapshot();
  assert.equal(counted.total.owned, 130);
  assert.equal(counted.total.etaSeconds, 11);
});

test('a large body counts while it streams, not only once done, and once: the bytes never stand still for minutes', () => {
  const time = clock();
  const tally = new ProgressTally(['media_attachments'], time.read);
  let through = 0;
  const ended = tally.streaming('media_attachments', () => through);
  for (let second = 1; second <= 10; second++) {
    through += 20_000_000;
    time.advance(1000);
    const line = tally.snapshot().jobs[0]!;
    assert.equal(line.bytes, second * 20_000_000);
    assert.equal(line.done, 0);
  }
  assert.equal(tally.snapshot().total.bytesPerSecond, 20_000_000);
  ended();
  tally.result('media_attachments', 200_000_000);
  assert.equal(tally.snapshot().total.bytes, 200_000_000);
  ended();
  assert.equal(tally.snapshot().total.bytes, 200_000_000, 'ended twice: still counted once');
});

test('the rate follows the last 20 s, not the average since the start', () => {
  const time = clock();
  const tally = new ProgressTally(['media_attachments'], time.read);
  tally.owned('media_attachments', 10_000);
  // A fast minute (100/s), then a slow half minute (10/s).
  for (let second = 0; second < 60; second++) {
    for (let i = 0; i < 100; i++) tally.result('media_attachments', 10);
    time.advance(1000);
    tally.snapshot();
  }
  for (let second = 0; second < 30; second++) {
    for (let i = 0; i < 10; i++) tally.result('media_attachments', 10);
    time.advance(1000);
    tally.snapshot();
  }
  const rate = tally.snapshot().total.objectsPerSecond;
  assert.ok(rate >= 10 && rate < 15, `rate ${rate} should be close to the recent 10/s`);
});

test('resumed objects count as done without inflating the rate; finish() marks every job done', () => {
  const time = clock();
  const tally = new ProgressTally(['accounts'], time.read);
  tally.owned('accounts', 50);
  tally.skipped('accounts', 40);
  time.advance(1000);
  tally.result('accounts', 5);
  time.advance(1000);
  let line = tally.snapshot().jobs[0]!;
  assert.equal(line.done, 41);
  assert.ok(line.objectsPerSecond <= 1, `rate ${line.objectsPerSecond}`);
  tally.finish();
  line = tally.snapshot().jobs[0]!;
  assert.equal(line.state, 'done');
  assert.equal(line.etaSeconds, 0);
});

test('live lines: one per job and a total, aligned, "counting…" until known', () => {
  const time = clock();
  const tally = new ProgressTally(['media_attachments', 'custom_emojis'], time.read);
  tally.owned('media_attachments', 2_000_000);
  time.advance(500);
  for (let i = 0; i < 1500; i++) tally.result('media_attachments', 300_000);
  time.advance(2500);
  const lines = renderLive(tally.snapshot(), 140);
  assert.equal(lines.length, 3);
  // 1,500 objects in the 2.5 s since the first one: 600/s, so 1,998,500 left take 55 min 31 s.
  assert.equal(lines[0], 'media_attachments  ░░░░░░░░░░░░░░░░░░░░    0%  1,500 / 2,000,000  450.0 MB   600 obj/s  180.0 MB/s  ETA 55 min 31 s');
  assert.match(lines[1]!, /^custom_emojis +░+ +0 \/ counting… +0 B +waiting$/);
  assert.match(lines[2]!, /^total +.* \/ counting…/);
  const narrow = renderLive(tally.snapshot(), 50);
  assert.ok(!narrow[0]!.includes('█') && !narrow[0]!.includes('░'), 'no bar when the terminal is narrow');
});

test('live lines on a narrow terminal: whole fields dropped, the least needed first; never a number cut from its unit', () => {
  const time = clock();
  const tally = new ProgressTally(['media_attachments', 'custom_emojis', 'preview_card_providers'], time.read);
  tally.owned('media_attachments', 2_000_000);
  tally.owned('custom_emojis', 12);
  time.advance(500);
  for (let i = 0; i < 1500; i++) tally.result('media_attachments', 8_200);
  for (let i = 0; i < 12; i++) tally.result('custom_emojis', 1_025_000);
  time.advance(2500);
  const snapshot = tally.snapshot();
  const fields = (line: string) => line.trim().split(/ {2,}/);
  const whole = new Set(renderLive(snapshot, 400).flatMap(fields));
  for (let columns = 10; columns <= 160; columns++) {
    const width = Math.max(20, columns - 1);
    for (const line of renderLive(snapshot, columns)) {
      assert.ok(line.length <= width, `${columns} columns: ${JSON.stringify(line)} wraps`);
      if (width < 'preview_card_providers'.length) continue; // the name alone is wider: cut, with an ellipsis
      for (const field of fields(line)) assert.ok(whole.has(field), `${columns} columns: ${JSON.stringify(line)} cuts ${JSON.stringify(field)}`);
    }
  }
  // 90 columns: the bar, then the bytes per second go first; 70: the bytes and objects per second too; the count and ETA stay.
  assert.deepEqual(renderLive(snapshot, 90), [
    'media_attachments         0%  1,500 / 2,000,000   12.3 MB  600 obj/s  ETA 55 min 31 s',
    'custom_emojis           100%            12 / 12   12.3 MB  done',
    'preview_card_providers            0 / counting…       0 B  waiting',
    'total                         1,512 / counting…   24.6 MB  605 obj/s',
  ]);
  assert.equal(renderLive(snapshot, 70)[0], 'media_attachments         0%  1,500 / 2,000,000  ETA 55 min 31 s');
});

test('live lines of verify (objects only) and prune (listed, never counted before): no bytes, no bar for prune', () => {
  const time = clock();
  const tally = new ProgressTally(['accounts', 'backups'], time.read);
  tally.owned('accounts', 1000);
  tally.owned('backups', 10);
  time.advance(100);
  for (let i = 0; i < 200; i++) tally.result('accounts', 0);
  time.advance(1000);
  const checked = renderLive(tally.snapshot(), 140);
  assert.match(checked[0]!, /^accounts +█{4}░{16} +20% +200 \/ 1,000 +200 obj\/s +ETA 4 s$/);
  assert.ok(
    checked.every((line) => !/ B\b|B\/s/.test(line)),
    'no bytes shown when none are counted',
  );

  const listed = new ProgressTally(['accounts', 'backups'], time.read);
  for (let i = 0; i < 2500; i++) listed.result('accounts', 1000);
  time.advance(1000);
  const lines = renderLive(listed.snapshot(), 140, 'listed');
  assert.match(lines[0]!, /^accounts +2,500 listed +2\.5 MB +2500 obj\/s +2\.5 MB\/s$/);
  assert.match(lines[1]!, /^backups +0 listed +0 B +waiting$/);
  assert.ok(
    lines.every((line) => !line.includes('░') && !line.includes('counting')),
    'no bar, no total to wait for',
  );
});

test('JSON line: shaped like a log line, with totals and each job', () => {
  const time = clock();
  const tally = new ProgressTally(['backups'], time.read);
  tally.owned('backups', 4);
  tally.result('backups', 100);
  time.advance(2000);
  const line = JSON.parse(progressJson(tally.snapshot(), 1_700_000_000_000)) as Record<string, unknown>;
  assert.deepEqual(line, {
    level: 30,
    time: 1_700_000_000_000,
    msg: 'progress',
    elapsed_s: 2,
    done: 1,
    owned: 4,
    bytes: 100,
    objects_per_s: 0.5,
    bytes_per_s: 50,
    eta_s: 6,
    jobs: [{ job: 'backups', done: 1, owned: 4, bytes: 100, state: 'running' }],
  });
});

test('mode: live on a terminal, JSON lines elsewhere, nothing with --quiet or a log level above info', () => {
  assert.equal(progressMode(false, 'info', { isTTY: true }), 'live');
  assert.equal(progressMode(false, 'info', { isTTY: false }), 'json');
  assert.equal(progressMode(false, 'debug', { isTTY: false }), 'json');
  assert.equal(progressMode(true, 'info', { isTTY: true }), 'off');
  for (const level of ['warn', 'error', 'fatal', 'silent']) {
    assert.equal(progressMode(false, level, { isTTY: false }), 'off', `--log-level ${level} without a terminal`);
    assert.equal(progressMode(false, level, { isTTY: true }), 'off', `--log-level ${level} on a terminal`);
  }
});

test('on a terminal, a log line erases the live block first and the block is redrawn below it; the final block stays', async () => {
  const written: string[] = [];
  const display = new ProgressDisplay('live', { write: (text: string) => written.push(text), columns: 120 });
  const tally = new ProgressTally(['accounts']);
  display.logDestination.write('before start\n');
  display.start(tally);
  await new Promise((resolve) => setTimeout(resolve, 400)); // the live block is drawn every 250 ms
  display.logDestination.write('{"level":30,"msg":"during"}\n');
  display.stop(true);
  display.logDestination.write('{"level":30,"msg":"after"}\n');
  assert.equal(written[0], 'before start\n', 'nothing to erase before the block is drawn');
  assert.match(written[1]!, /^accounts .*\ntotal /);
  assert.equal(written[2], '\x1b[2A\r\x1b[J', 'the two lines of the block are erased');
  assert.equal(written[3], 'info  during\n');
  assert.match(written[4]!, /^accounts .*done\ntotal .*done in/);
  // After stop, the final block stays: what follows (the summary on stdout, a log line) goes below it.
  assert.equal(written[5], 'info  after\n');
  assert.equal(written.length, 6);
});

test('on a terminal, a warning from the logger is a readable line above the live block, never JSON', () => {
  const screen: string[] = [];
  const terminal = { isTTY: true, columns: 120, write: (text: string) => screen.push(text) };
  const display = new ProgressDisplay(progressMode(false, 'info', terminal) as 'live', terminal);
  const log = createLogger('info', display.logDestination);
  const tally = new ProgressTally(['media_attachments']);
  tally.owned('media_attachments', 3);
  display.start(tally);
  display.stop(false);
  log.warn({ job: 'media_attachments', id: '123', key: 'media_attachments/files/000/000/123/original/a.png' }, 'missing at the source');
  log.warn({ job: 'media_attachments', id: '124', key: 'media_attachments/files/000/000/124/original/b.png', error: 'SlowDown', attempts: 6 }, 'copy failed');
  const [block, missing, failed] = screen;
  assert.match(block!, /^media_attachments .*0 \/ 3/);
  assert.equal(missing, 'warn  missing at the source: media_attachments 123 media_attachments/files/000/000/123/original/a.png\n');
  assert.equal(failed, 'warn  copy failed: media_attachments 124 media_attachments/files/000/000/124/original/b.png error=SlowDown attempts=6\n');
  assert.equal(screen.length, 3, 'the final block is not erased');
  assert.ok(
    screen.every((text) => !text.includes('{"')),
    'no JSON on the terminal',
  );
});

test('readable log lines: an error is its message; other fields as name=value; not JSON left as it is', () => {
  assert.equal(
    readableLogLine(
      '{"level":50,"time":1,"msg":"could not record a copy","job":"accounts","id":"7","err":{"type":"Error","message":"ENOSPC: no space left","stack":"Error: …"}}',
    ),
    'error could not record a copy: accounts 7 err=ENOSPC: no space left',
  );
  assert.equal(
    readableLogLine('{"level":30,"time":1,"msg":"run started","jobs":["accounts","backups"],"dryRun":false}\n'),
    'info  run started: jobs=accounts,backups dryRun=false',
  );
  assert.equal(readableLogLine('plain text\n'), 'plain text');
});

test('the per-object path allocates nothing measurable', () => {
  const tally = new ProgressTally(['media_attachments']);
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < 1_000_000; i++) tally.result('media_attachments', 1);
  const grown = process.memoryUsage().heapUsed - before;
  assert.ok(grown < 1_000_000, `a million results grew the heap by ${grown} bytes`);
});

test('docs/kubernetes-job.yaml: the args it gives show the progress line every 30 s its header promises', () => {
  const yaml = readFileSync(new URL('../../docs/kubernetes-job.yaml', import.meta.url), 'utf8');
  assert.match(yaml, /one JSON progress line per pod every 30 s/);
  const list = /^(\s*)args:\n((?:\1\s+- .*\n)+)/m.exec(yaml);
  assert.ok(list, 'the container has an args list');
  const args = list[2]!.split('\n').flatMap((line) => /^\s+- (.*)$/.exec(line)?.[1] ?? []);
  assert.ok(args.includes('--progress-interval=30'), args.join(' '));
  const logLevel = args.find((arg) => arg.startsWith('--log-level='))?.slice('--log-level='.length) ?? 'info';
  // A pod's log is no terminal: progress comes as JSON lines, unless the level (above info) or --quiet turns it off.
  assert.equal(progressMode(args.includes('--quiet'), logLevel, { isTTY: false }), 'json', args.join(' '));
});
