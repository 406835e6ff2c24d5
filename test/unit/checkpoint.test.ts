/**
 * The checkpoint as resuming reads it: watermarks, objects finished above them, failures to retry (below the
 * watermark, above it, or all of them for --retry-failed), a torn last line from a killed run, and a checkpoint
 * that belongs to another pair of stores.
 */
import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { CheckpointWriter, assertIsCheckpoint, compactCheckpoint, loadCheckpoint, type ObjectLine, type ResumeState } from '../../src/sync/checkpoint.js';
import { CheckpointBusyError, CheckpointLock, lockPath } from '../../src/sync/lock.js';
import { UsageError } from '../../src/errors.js';

const IDENTITY = { source: 's3://old', destination: 's3://new', scope: 'the whole database' };
const MARGIN = { changeMarginMs: 60 * 60_000 };
/** The `*_updated_at` the rows of the tests' objects say now, where the tests' lines recorded one. */
const STAMPS: Readonly<Record<string, string>> = {
  'a/1': '2026-01-03T09:30:00.000Z',
  'a/2': '2026-01-03T08:00:00.000Z',
  'a/4': '2026-01-03T10:30:00.000Z',
};
let dir: string;
let path: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'mastosync-checkpoint-'));
  path = join(dir, 'checkpoint.jsonl');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const line = (id: string, key: string, status: ObjectLine['status'], extra: Partial<ObjectLine> = {}): ObjectLine => ({
  job: 'accounts',
  id,
  key,
  status,
  bytes: status === 'copied' ? 10 : 0,
  ms: 1,
  ...extra,
});

function writeRun(mode: 'fresh' | 'resume' | 'retry-failed', lines: Array<ObjectLine | { watermark: string } | { synced: string }>, started?: string): void {
  const writer = CheckpointWriter.open(path, { run: new Date().toISOString(), mode, ...IDENTITY, ...(started !== undefined && { started }) });
  for (const entry of lines) {
    if ('watermark' in entry) writer.watermark('accounts', entry.watermark);
    else if ('synced' in entry) writer.synced('accounts', entry.synced);
    else writer.record(entry);
  }
  writer.close();
}

describe('loadCheckpoint', () => {
  test('a missing file resumes nothing', async () => {
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.watermark('accounts'), undefined);
    assert.deepEqual(state.outstanding('accounts'), []);
  });

  test('rows up to the watermark are done; above it, each object by its last line', async () => {
    writeRun('fresh', [
      line('1', 'a/1', 'copied'),
      line('2', 'a/2', 'failed', { error: 'SlowDown' }),
      line('3', 'a/3', 'copied'),
      { watermark: '3' },
      line('5', 'a/5', 'copied'),
      line('4', 'a/4', 'failed', { error: 'reset' }),
      line('6', 'a/6', 'missing'),
    ]);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.watermark('accounts'), '3');
    assert.equal(state.isDone('a/5', undefined), true);
    assert.equal(state.isDone('a/6', undefined), false, 'missing at the source is probed again');
    assert.equal(state.isDone('a/4', undefined), false);
    assert.equal(state.wasOutstanding('a/4'), true);
    assert.equal(state.wasOutstanding('a/6'), true);
    assert.deepEqual(
      state.outstandingBelowWatermark('accounts').map((entry) => entry.key),
      ['a/2'],
    );
    assert.deepEqual(
      state
        .outstanding('accounts')
        .map((entry) => entry.key)
        .sort(),
      ['a/2', 'a/4', 'a/6'],
      '--retry-failed takes every failure and every missing object',
    );
    assert.deepEqual(state.outstanding('media_attachments'), []);
  });

  test('objects of rows above the watermark count as done even when their lines come before it', async () => {
    // Row 2 holds a long upload: rows 3 and 4 finish first, and the watermark can only say 1 until row 2 is done.
    // A hard stop then leaves row 2 unfinished; resuming must not copy rows 3 and 4 again.
    writeRun('fresh', [
      line('1', 'a/1', 'copied'),
      line('3', 'a/3', 'copied'),
      line('4', 'a/4', 'relocated'),
      { watermark: '1' },
      line('5', 'a/5', 'copied'),
      { watermark: '1' },
    ]);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.watermark('accounts'), '1');
    assert.deepEqual(
      ['a/1', 'a/2', 'a/3', 'a/4', 'a/5'].map((key) => state.isDone(key, undefined)),
      [false, false, true, true, true],
      'a/1 is below the watermark: never read again, so not asked',
    );
  });

  test('a later success (a retry line) clears a failure; a later failure keeps it', async () => {
    writeRun('fresh', [line('2', 'a/2', 'failed'), line('4', 'a/4', 'failed'), { watermark: '4' }]);
    writeRun('retry-failed', [line('2', 'a/2', 'copied', { retry: true }), line('4', 'a/4', 'failed', { retry: true, error: 'again' })]);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.deepEqual(
      state.outstanding('accounts').map((entry) => entry.key),
      ['a/4'],
    );
  });

  test('a fresh run forgets what earlier runs recorded', async () => {
    writeRun('fresh', [line('2', 'a/2', 'failed'), { watermark: '9' }]);
    writeRun('fresh', [line('1', 'a/1', 'copied')]);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.watermark('accounts'), undefined);
    assert.deepEqual(state.outstanding('accounts'), []);
    assert.equal(state.isDone('a/1', undefined), true);
  });

  test('lines across the 1 MiB read chunks: every one is read whole, and a fresh run starts at its own header', async () => {
    // Keys of varying length, so the lines fall across chunk ends at every kind of place.
    const key = (run: string, index: number) => `${run}/${index}/${'x'.repeat(index % 97)}`;
    writeRun(
      'fresh',
      Array.from({ length: 20_000 }, (_, index) => line(String(index + 1), key('a', index), 'copied')),
    );
    writeRun('fresh', [
      line('1', 'b/first', 'copied'),
      ...Array.from({ length: 20_000 }, (_, index) => line(String(index + 2), key('b', index), index % 2 === 0 ? 'failed' : 'copied')),
      { watermark: '3' },
    ]);
    assert.ok(statSync(path).size > 3 * (1 << 20), 'the file spans several chunks');
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.isDone('b/first', undefined), false, 'below the watermark, and not outstanding');
    assert.equal(state.isDone(key('b', 3), undefined), true, 'the first run after the header is read from its first line');
    assert.equal(state.isDone(key('a', 19_999), undefined), false, 'nothing of the run before the fresh one');
    assert.equal(state.isDone(key('a', 5), undefined), false);
    assert.equal(state.outstanding('accounts').length, 10_000, 'every failed line, whichever chunks it spans');
    for (let index = 1; index < 20_000; index += 2) assert.equal(state.isDone(key('b', index), undefined), index + 2 > 3, key('b', index));
  });

  test('a torn last line (a kill mid-write) is skipped, and the next run starts on a line of its own', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'failed')]);
    appendFileSync(path, JSON.stringify(line('3', 'a/3', 'copied')).slice(0, 25));
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.isDone('a/1', undefined), true);
    assert.equal(state.isDone('a/3', undefined), false, 'half a line records nothing');
    assert.equal(state.wasOutstanding('a/2'), true);

    writeRun('resume', [line('3', 'a/3', 'copied')]);
    const lines = readFileSync(path, 'utf8').split('\n');
    const torn = lines.findIndex((text) => text.startsWith('{"job":"accounts","id":"3') && !text.endsWith('}'));
    assert.ok(torn > 0);
    assert.match(lines[torn + 1]!, /^\{"run":/, 'the header of the next run follows the torn line on a line of its own');
    assert.equal((await loadCheckpoint(path, IDENTITY, MARGIN)).isDone('a/3', undefined), true);
  });

  test('a checkpoint of another source or destination is refused, naming both', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied')]);
    await assert.rejects(loadCheckpoint(path, { ...IDENTITY, destination: 's3://elsewhere' }, MARGIN), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /belongs to a run from s3:\/\/old to s3:\/\/new, not from s3:\/\/old to s3:\/\/elsewhere/);
      // Two configs in one folder share the default checkpoint: the way out is a file of this run's own, not --fresh,
      // which would replace the other run's progress (its next run would copy everything again).
      assert.match(error.message, /a checkpoint of its own: \[sync\] checkpoint in its config file, or --checkpoint FILE/);
      assert.match(error.message, /--fresh would replace the other run's checkpoint/);
      assert.doesNotMatch(error.message, /run with --fresh/);
      return true;
    });
  });

  test('a checkpoint of another scope (another shard, a --skip-remote-cache run) is refused; one from before scopes were recorded is not', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), { watermark: '1' }]);
    await assert.rejects(loadCheckpoint(path, { ...IDENTITY, scope: 'shard 1 of 2 (ids ≡ 1 mod 2)' }, MARGIN), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(
        error.message,
        /was written by a run over the whole database, not shard 1 of 2 .*: resume it with the same scope flags, or pass another --checkpoint/,
      );
      return true;
    });
    writeFileSync(path, readFileSync(path, 'utf8').replace(/,"scope":"[^"]*"/, ''));
    assert.equal((await loadCheckpoint(path, { ...IDENTITY, scope: 'shard 1 of 2 (ids ≡ 1 mod 2)' }, MARGIN)).watermark('accounts'), '1');
  });

  test('rows at or below the watermark are read again from the sync time less the margin; until a job synced, from the fresh run start', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied')], '2026-01-01T10:00:00.000Z');
    assert.equal((await loadCheckpoint(path, IDENTITY, MARGIN)).changesFrom('accounts'), undefined, 'nothing below a watermark yet');
    // A run cut short before this job synced leaves the next run reading from the start: its lines must say so.
    assert.equal((await loadCheckpoint(path, IDENTITY, MARGIN)).recentFrom('media_attachments'), '2026-01-01T09:00:00.000Z');
    writeRun('resume', [{ watermark: '1' }], '2026-01-02T10:00:00.000Z');
    assert.equal(
      (await loadCheckpoint(path, IDENTITY, MARGIN)).changesFrom('accounts'),
      '2026-01-01T09:00:00.000Z',
      'no job synced yet: the fresh run read every row after its start',
    );
    writeRun('resume', [{ synced: '2026-01-03T10:00:00.000Z' }], '2026-01-03T10:00:00.000Z');
    writeRun('resume', [{ synced: '2026-01-02T10:00:00.000Z' }], '2026-01-02T10:00:00.000Z');
    assert.equal((await loadCheckpoint(path, IDENTITY, MARGIN)).changesFrom('accounts'), '2026-01-03T09:00:00.000Z', 'the latest sync time counts');
  });

  test('a checkpoint begun by --resume (the first night of a cron, interrupted) reads changes from the start of its first run, and compacts', async () => {
    writeRun('resume', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'copied'), { watermark: '2' }], '2026-01-01T10:00:00.000Z');
    writeRun('resume', [line('3', 'a/3', 'missing'), { watermark: '3' }], '2026-01-01T11:00:00.000Z');
    const before = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(before.changesFrom('accounts'), '2026-01-01T09:00:00.000Z');
    await compactCheckpoint(path, MARGIN);
    const kept = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(kept.length, 3, 'the first header, the watermark and the missing object');
    assert.deepEqual(answers(await loadCheckpoint(path, IDENTITY, MARGIN)), answers(before));
  });

  test('an object copied below the watermark is done while its change is recent enough to be read again', async () => {
    writeRun('fresh', [
      line('1', 'a/1', 'copied', { updated: '2026-01-03T09:30:00.000Z' }),
      line('2', 'a/2', 'copied', { updated: '2026-01-03T08:00:00.000Z' }),
      line('3', 'a/3', 'copied'),
      { watermark: '3' },
      { synced: '2026-01-03T10:00:00.000Z' },
    ]);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.deepEqual(
      ['a/1', 'a/2', 'a/3'].map((key) => state.isDone(key, STAMPS[key])),
      [true, false, false],
      'only a/1 changed after 09:00, the time the next changed-rows pass starts from',
    );
  });

  test('an object copied recently is done only while its row says the stamp it was copied for (a file rewritten under the same key)', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied', { updated: '2026-01-03T09:30:00.000Z' }), { watermark: '1' }, { synced: '2026-01-03T10:00:00.000Z' }]);
    for (const compacted of [false, true]) {
      if (compacted) await compactCheckpoint(path, MARGIN);
      const state = await loadCheckpoint(path, IDENTITY, MARGIN);
      const said = compacted ? 'compacted to a key hash' : 'as the run wrote it';
      assert.equal(state.isDone('a/1', '2026-01-03T09:30:00.000Z'), true, `the same stamp, ${said}`);
      assert.equal(state.isDone('a/1', '2026-01-03T09:50:00.000Z'), false, `a new file stamped since, ${said}`);
      assert.equal(state.isDone('a/1', '2026-01-03T09:00:00.000Z'), false, `a row set back (a restored database), ${said}`);
      assert.equal(state.isDone('a/1', undefined), false, `a row that lost its stamp, ${said}`);
    }
    assert.match(readFileSync(path, 'utf8'), /"recent":/, 'the second pass read the compacted form');
  });

  test('above the watermark, a line without the row stamp holds what its run started after, less the margin; compaction keeps each run start', async () => {
    writeRun('fresh', [line('5', 'a/5', 'copied'), line('6', 'a/6', 'copied', { updated: '2026-01-03T09:30:00.000Z' })], '2026-01-03T10:00:00.000Z');
    writeRun('resume', [line('7', 'a/7', 'copied'), { watermark: '1' }], '2026-01-03T12:00:00.000Z');
    const expect = (state: ResumeState, said: string) => {
      assert.equal(state.watermark('accounts'), '1');
      assert.equal(state.isDone('a/5', '2026-01-03T08:59:59.999Z'), true, `stamped before the run's start less the margin, ${said}`);
      assert.equal(state.isDone('a/5', '2026-01-03T09:00:00.000Z'), false, `stamped within the margin: maybe a later file, ${said}`);
      assert.equal(state.isDone('a/5', undefined), true, `a row without a stamp cannot be told apart, ${said}`);
      assert.equal(state.isDone('a/6', '2026-01-03T09:30:00.000Z'), true, `its stamp, ${said}`);
      assert.equal(state.isDone('a/6', '2026-01-03T09:40:00.000Z'), false, `another stamp, ${said}`);
      assert.equal(state.isDone('a/7', '2026-01-03T10:30:00.000Z'), true, `a/7's own run started at 12:00, ${said}`);
      assert.equal(state.isDone('a/7', '2026-01-03T11:30:00.000Z'), false, `but not after 11:00, ${said}`);
    };
    expect(await loadCheckpoint(path, IDENTITY, MARGIN), 'as written');
    await compactCheckpoint(path, MARGIN);
    const kept = readFileSync(path, 'utf8');
    assert.equal(kept.match(/^\{"run"/gm)?.length, 1, 'only the first header is kept');
    assert.match(kept, /"key":"a\/7",.*"asOf":"2026-01-03T12:00:00.000Z"\}$/m);
    expect(await loadCheckpoint(path, IDENTITY, MARGIN), 'compacted');
    await compactCheckpoint(path, MARGIN);
    expect(await loadCheckpoint(path, IDENTITY, MARGIN), 'compacted twice');
  });

  test('a checkpoint from 0.1.0 keeps working: lines compacted under the first header count from its start; a header without a database time trusts no dated row', async () => {
    // 0.1.0's compaction: the first header, then the lines of later runs, none saying when it copied.
    writeRun('resume', [line('5', 'a/5', 'copied'), { watermark: '1' }], '2026-01-03T10:00:00.000Z');
    const compacted = readFileSync(path, 'utf8').split('\n')[0]!;
    writeFileSync(path, [compacted, '{"job":"accounts","watermark":"1"}', JSON.stringify(line('6', 'a/6', 'copied'))].join('\n') + '\n');
    let state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.isDone('a/6', '2025-12-01T00:00:00.000Z'), true, 'unchanged since long before: not copied again');
    assert.equal(state.isDone('a/6', '2026-01-03T09:30:00.000Z'), false, 'stamped after the first run started, less the margin: copied again');

    // Before 0.1.0 a header said no database time: only rows without a stamp are known unchanged.
    writeFileSync(path, readFileSync(path, 'utf8').replace(/,"started":"[^"]*"/, ''));
    state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.isDone('a/6', '2000-01-01T00:00:00.000Z'), false);
    assert.equal(state.isDone('a/6', undefined), true);
    await compactCheckpoint(path, MARGIN);
    assert.match(readFileSync(path, 'utf8'), /"asOf":"1970-01-01T00:00:00.000Z"/, 'compaction says the time is unknown');
    assert.equal((await loadCheckpoint(path, IDENTITY, MARGIN)).isDone('a/6', '2000-01-01T00:00:00.000Z'), false);
  });

  test('compaction keeps what resuming reads, and nothing else', async () => {
    writeRun(
      'fresh',
      [
        line('1', 'a/1', 'copied'),
        line('2', 'a/2', 'failed', { error: 'reset' }),
        line('3', 'a/3', 'missing'),
        line('4', 'a/4', 'copied', { updated: '2026-01-03T10:30:00.000Z' }),
        { watermark: '4' },
        line('6', 'a/6', 'copied'),
        line('7', 'a/7', 'failed'),
      ],
      '2026-01-03T10:00:00.000Z',
    );
    writeRun('resume', [line('2', 'a/2', 'copied', { retry: true }), { synced: '2026-01-03T11:00:00.000Z' }], '2026-01-03T11:00:00.000Z');
    const before = await loadCheckpoint(path, IDENTITY, MARGIN);
    await compactCheckpoint(path, MARGIN);
    const after = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.deepEqual(answers(after), answers(before));
    assert.deepEqual(answers(after), {
      watermark: '4',
      changesFrom: '2026-01-03T10:00:00.000Z',
      done: ['a/4', 'a/6'],
      outstanding: ['a/3', 'a/7'],
      below: ['a/3'],
    });
    const kept = readFileSync(path, 'utf8').trim().split('\n');
    assert.equal(kept.length, 1 + 2 + 2 + 2, 'the header, watermark and sync time, two outstanding objects, two done');
    assert.match(
      kept[0]!,
      /^\{"run":"[^"]+","mode":"fresh","source":"s3:\/\/old","destination":"s3:\/\/new","started":"2026-01-03T10:00:00.000Z","scope":"the whole database"\}$/,
    );
  });

  test('a hundred cron runs with nothing changed leave the checkpoint under 64 KB', async () => {
    writeRun(
      'fresh',
      Array.from({ length: 2000 }, (_, index) => line(String(index + 1), `a/${index + 1}`, 'copied')).concat([line('2001', 'a/2001', 'missing')]),
      '2026-01-01T00:00:00.000Z',
    );
    await compactCheckpoint(path, MARGIN);
    for (let run = 1; run <= 100; run++) {
      const time = new Date(Date.parse('2026-01-01T00:00:00.000Z') + run * 3_600_000).toISOString();
      writeRun('resume', [line('2001', 'a/2001', 'missing', { retry: true }), { watermark: '2001' }, { synced: time }], time);
      await compactCheckpoint(path, MARGIN);
    }
    assert.ok(statSync(path).size < 64 * 1024, `${statSync(path).size} bytes`);
    assert.deepEqual(answers(await loadCheckpoint(path, IDENTITY, MARGIN)).outstanding, ['a/2001']);
  });

  test('rows that all changed within the margin (a fixture stamped now()) still compact to a small file, and stay known as copied', async () => {
    const objects = Array.from({ length: 2000 }, (_, index) =>
      line(String(index + 1), `media_attachments/files/000/00${index}/original/${'e'.repeat(16)}.png`, 'copied', { updated: '2026-01-03T09:59:00.000Z' }),
    );
    writeRun('fresh', [...objects, { watermark: '2000' }, { synced: '2026-01-03T10:00:00.000Z' }], '2026-01-03T10:00:00.000Z');
    for (let run = 0; run < 100; run++) {
      writeRun('resume', [{ watermark: '2000' }, { synced: '2026-01-03T10:01:00.000Z' }], '2026-01-03T10:01:00.000Z');
      await compactCheckpoint(path, MARGIN);
    }
    assert.ok(statSync(path).size < 64 * 1024, `${statSync(path).size} bytes`);
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.ok(
      objects.every((object) => state.isDone(object.key, object.updated)),
      'every object is still known as copied',
    );
    assert.equal(state.isDone('media_attachments/files/000/009/original/other.png', '2026-01-03T09:59:00.000Z'), false);
  });

  test('a kill at any moment of compaction leaves a checkpoint that resumes the same', async () => {
    const lines: ObjectLine[] = Array.from({ length: 150_000 }, (_, index) =>
      line(String(index + 1), `media_attachments/files/${index + 1}/original/${'f'.repeat(40)}.png`, index % 1000 === 0 ? 'failed' : 'copied', {
        error: index % 1000 === 0 ? 'reset' : undefined,
      }),
    );
    writeRun('fresh', [...lines.slice(0, 100_000), { watermark: '100000' }, ...lines.slice(100_000)], '2026-01-01T00:00:00.000Z');
    const expected = answers(await loadCheckpoint(path, IDENTITY, MARGIN));
    const module = join(import.meta.dirname, '../../src/sync/checkpoint.ts');
    const compact = () =>
      spawn(
        process.execPath,
        ['--import', 'tsx', '-e', `import(${JSON.stringify(module)}).then((m) => m.compactCheckpoint(${JSON.stringify(path)}, ${JSON.stringify(MARGIN)}))`],
        {
          stdio: 'ignore',
        },
      );
    // Killed at set moments (loading, writing, before or after the rename), and then as soon as the new file appears,
    // until one kill has landed while it was being written (the new file is left behind, the checkpoint untouched).
    let killedWhileWriting = 0;
    for (let attempt = 0; attempt < 12 && killedWhileWriting === 0; attempt++) {
      const child = compact();
      const closed = new Promise((done) => child.once('close', done));
      const killAfterMs = [30, 120, 300, 600][attempt];
      if (killAfterMs !== undefined) await new Promise((done) => setTimeout(done, killAfterMs));
      else {
        const seen = await new Promise<boolean>((done) => {
          const timer = setInterval(() => existsSync(`${path}.compacting`) && (clearInterval(timer), done(true)), 1);
          void closed.then(() => (clearInterval(timer), done(false)));
        });
        if (!seen) continue;
      }
      child.kill('SIGKILL');
      await closed;
      if (killAfterMs === undefined && existsSync(`${path}.compacting`)) killedWhileWriting += 1;
      assert.deepEqual(
        answers(await loadCheckpoint(path, IDENTITY, MARGIN)),
        expected,
        killAfterMs === undefined ? 'killed while writing' : `killed after ${killAfterMs} ms`,
      );
    }
    assert.equal(killedWhileWriting, 1, 'one kill landed while the new file was being written');
    await compactCheckpoint(path, MARGIN);
    assert.deepEqual(answers(await loadCheckpoint(path, IDENTITY, MARGIN)), expected, 'and the next compaction completes');
    assert.equal(existsSync(`${path}.compacting`), false);
  });
});

/** What a resumed run would ask of a state, for the keys these tests use. */
function answers(state: ResumeState) {
  const keys = (list: Array<{ key: string }>) => list.map((entry) => entry.key).sort();
  const candidates = [
    'a/1',
    'a/2',
    'a/3',
    'a/4',
    'a/5',
    'a/6',
    'a/7',
    ...Array.from({ length: 400 }, (_, index) => `media_attachments/files/${100_000 + index}/original/${'f'.repeat(40)}.png`),
  ];
  return {
    watermark: state.watermark('accounts'),
    changesFrom: state.changesFrom('accounts'),
    done: candidates.filter((key) => state.isDone(key, STAMPS[key])),
    outstanding: keys(state.outstanding('accounts')).slice(0, 200),
    below: keys(state.outstandingBelowWatermark('accounts')).slice(0, 200),
  };
}

describe('a damaged line before the last (not a torn last line)', () => {
  /** Rewrites line `number` (from 1) of the checkpoint with `change`. */
  function damage(number: number, change: (text: string) => string): void {
    const lines = readFileSync(path, 'utf8').split('\n');
    lines[number - 1] = change(lines[number - 1]!);
    writeFileSync(path, lines.join('\n'));
  }
  async function load(): Promise<{ state: ResumeState; warnings: string[] }> {
    const warnings: string[] = [];
    const state = await loadCheckpoint(path, IDENTITY, { ...MARGIN, onDamage: (message) => warnings.push(message) });
    return { state, warnings };
  }

  test("a missing object's line: one warning naming the file and the line; the object is tried again, and compaction keeps it so", async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'missing'), line('3', 'a/3', 'copied'), { watermark: '3' }]);
    damage(3, (text) => text.replace('"status":"missing"', '"status":"missing"\u0000\u0000'));
    const { state, warnings } = await load();
    assert.deepEqual(warnings, [
      `checkpoint ${path}: damaged line 3 (unreadable, and not a torn last line): what it may have recorded is taken as not done (objects tried again, rows read again, from the start of the job where no row id can be read); \`verify all\` checks the whole destination`,
    ]);
    assert.deepEqual(state.outstandingBelowWatermark('accounts'), [{ job: 'accounts', id: '2', key: 'a/2', status: 'failed' }]);
    assert.equal(state.watermark('accounts'), '3', 'its key is known: no row needs reading again');

    await compactCheckpoint(path, MARGIN);
    const after = await load();
    assert.deepEqual(after.warnings, [], 'compaction wrote what the line said as a line of its own');
    assert.deepEqual(after.state.outstandingBelowWatermark('accounts'), [{ job: 'accounts', id: '2', key: 'a/2', status: 'failed' }]);
    assert.match(readFileSync(path, 'utf8'), /"key":"a\/2","status":"failed".*"error":"line 3 of the checkpoint was unreadable"/);

    // Tried again and copied: the damage is history.
    writeRun('resume', [line('2', 'a/2', 'copied', { retry: true }), { watermark: '3' }]);
    assert.equal((await load()).state.wasOutstanding('a/2'), false);
  });

  test('a line whose key cannot be read: its row is read again (the watermark held below it), and what its row had done before is not trusted', async () => {
    writeRun('fresh', [line('2', 'a/2', 'copied'), line('2', 'a/2s', 'failed'), line('3', 'a/3', 'copied'), line('5', 'a/5', 'copied'), { watermark: '5' }]);
    damage(3, (text) => text.replace('"key":"a/2s"', '"k\u0001y":"a/2s'));
    const { state, warnings } = await load();
    assert.match(warnings.join('\n'), /damaged line 3 /);
    assert.equal(state.watermark('accounts'), '1', 'rows from 2 on are read again');
    assert.equal(state.isDone('a/2', undefined), false, "its row's other objects are copied again: the damaged line may have been a later word on one");
    assert.equal(state.isDone('a/3', undefined), true);
    assert.equal(state.isDone('a/5', undefined), true);

    // An interrupted run (no sync time) leaves it as it was; compaction keeps the watermark held.
    writeRun('resume', [line('2', 'a/2', 'copied'), { watermark: '6' }]);
    assert.equal((await load()).state.watermark('accounts'), '1');
    await compactCheckpoint(path, MARGIN);
    assert.equal((await load()).state.watermark('accounts'), '1', 'compaction drops the line, not what it may have said');

    // A run that read every row since (its sync time written after the line) settles it.
    damage(1, (text) => text);
    writeRun('fresh', [line('2', 'a/2', 'copied'), line('2', 'a/2s', 'failed'), { watermark: '5' }]);
    damage(3, (text) => text.replace('"key":"a/2s"', '"k\u0001y":"a/2s'));
    writeRun('resume', [line('2', 'a/2s', 'copied'), { watermark: '7' }, { synced: '2026-01-04T00:00:00.000Z' }]);
    const settled = await load();
    assert.equal(settled.state.watermark('accounts'), '7');
  });

  test('a garbled watermark: said; the one before it holds', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), { watermark: '1' }, line('4', 'a/4', 'copied'), { watermark: '4' }, line('5', 'a/5', 'copied')]);
    damage(5, (text) => text.replace('"4"', '"4\u0000'));
    const { state, warnings } = await load();
    assert.match(warnings.join('\n'), /damaged line 5 /);
    assert.equal(state.watermark('accounts'), '1');
    assert.equal(state.isDone('a/4', undefined), true, 'what is done above the watermark still counts');
  });

  test("a line with nothing readable: every job's rows are read again from the start, nothing done is forgotten", async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'missing'), { watermark: '2' }, line('3', 'a/3', 'copied')]);
    damage(3, (text) => '\u0000'.repeat(text.length));
    const { state, warnings } = await load();
    assert.match(warnings.join('\n'), /damaged line 3 /);
    assert.equal(state.watermark('accounts'), undefined);
    assert.equal(state.isDone('a/1', undefined), true);
    assert.equal(state.isDone('a/3', undefined), true);
  });

  test('several damaged lines are named in one warning', async () => {
    writeRun('fresh', [line('1', 'a/1', 'missing'), line('2', 'a/2', 'missing'), line('3', 'a/3', 'copied'), { watermark: '3' }]);
    damage(2, (text) => `${text}x`);
    damage(3, (text) => `${text}x`);
    const { warnings } = await load();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /: damaged lines 2, 3 \(/);
  });

  test("a torn line a kill left before the next run's header is not damage: nothing is said", async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'failed')]);
    // Cut inside the status, and after it: both torn, both kinds of line.
    appendFileSync(path, JSON.stringify(line('3', 'a/3', 'missing')).slice(0, 45));
    writeRun('resume', [line('3', 'a/3', 'copied')]);
    appendFileSync(path, JSON.stringify(line('4', 'a/4', 'copied')).slice(0, 70));
    writeRun('resume', [line('4', 'a/4', 'copied'), { watermark: '4' }]);
    // A watermark cut before its kind can be told, and a run header cut short (a power loss as a run started).
    appendFileSync(path, '{"job":"accounts","wat');
    writeRun('resume', []);
    appendFileSync(path, '{"run":"2026-01-');
    writeRun('resume', []);
    appendFileSync(path, '{"job":"accounts","water');
    const { state, warnings } = await load();
    assert.deepEqual(warnings, []);
    assert.equal(state.watermark('accounts'), '4', 'nothing is doubted for a line a kill cut short');
    assert.equal(state.wasOutstanding('a/3'), false, 'the object whose line was cut short is not taken as failed');
    assert.equal(state.wasOutstanding('a/2'), true);
  });
});

describe('the lines the writer builds', () => {
  test('keep the key order the loader reads without parsing, and values that look like keys fool it nowhere', async () => {
    // Each value imitates a key the loader looks for; only the escaping of quotes keeps them values.
    const tricky = 'a/"x","id":"1","status":"failed","retry":true,"watermark":"99","updated":"2024';
    const every = line('7', tricky, 'relocated', {
      from: 'old/","synced":"2030',
      error: 'was "status":"missing"',
      retry: true,
      updated: '2024-05-01T00:00:00.000Z',
    });
    const below = line('2', 'a/2', 'copied', { error: '","id":"9' });
    writeRun('fresh', [every, below, { watermark: '5' }, { synced: '2024-05-02T00:00:00.000Z' }]);
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 5);
    assert.deepEqual(Object.keys(JSON.parse(lines[0]!)), ['run', 'mode', 'source', 'destination', 'scope']);
    // Round trip: the object parses back as written, its keys in the order the fast path relies on.
    assert.deepEqual(JSON.parse(lines[1]!), every);
    assert.deepEqual(Object.keys(JSON.parse(lines[1]!)), ['job', 'id', 'key', 'status', 'bytes', 'ms', 'from', 'error', 'retry', 'updated']);
    assert.ok(lines[1]!.startsWith('{"job":"accounts","id":"7","key":'), lines[1]);
    assert.ok(lines[2]!.startsWith('{"job":"accounts","id":"2","key":"a/2","status":"copied"'), lines[2]);
    assert.equal(lines[3], '{"job":"accounts","watermark":"5"}');
    assert.equal(lines[4], '{"job":"accounts","synced":"2024-05-02T00:00:00.000Z"}');
    // And through the loader's fast path: the watermark and the sync time are the written ones, the object above the
    // watermark is done, the one below it skipped unparsed by its id, and nothing is outstanding.
    const state = await loadCheckpoint(path, IDENTITY, MARGIN);
    assert.equal(state.watermark('accounts'), '5');
    assert.equal(state.isDone(tricky, '2024-05-01T00:00:00.000Z'), true);
    assert.equal(state.isDone('a/2', undefined), false);
    assert.equal(state.wasOutstanding(tricky), false);
    assert.deepEqual(state.outstanding('accounts'), []);
    assert.equal(state.recentFrom('accounts'), '2024-05-01T23:00:00.000Z', 'the written sync time, less the margin');
  });
});

describe('the checkpoint guard', () => {
  test('a file that is not a checkpoint is refused and left untouched', () => {
    writeFileSync(path, '[database]\nurl = "postgres://x"\n');
    assert.throws(
      () => assertIsCheckpoint(path),
      (error: unknown) => error instanceof UsageError && /is not a mastosync checkpoint/.test(error.message),
    );
    assert.equal(readFileSync(path, 'utf8'), '[database]\nurl = "postgres://x"\n');
  });

  test('a checkpoint, an empty file and no file at all pass', () => {
    assertIsCheckpoint(path);
    writeFileSync(path, '');
    assertIsCheckpoint(path);
    writeRun('fresh', [line('1', 'a/1', 'copied')]);
    assertIsCheckpoint(path);
  });
});

/**
 * Runs `call` (an expression over `checkpoint` and `lock`, these modules) as uid 65534, which may not enter `dir`
 * (0700, root's); what it threw, as `name: message`.
 */
function thrownAsNobody(call: string): string {
  const modules = `import * as checkpoint from ${JSON.stringify(import.meta.resolve('../../src/sync/checkpoint.ts'))};
    import * as lock from ${JSON.stringify(import.meta.resolve('../../src/sync/lock.ts'))};`;
  const script = `${modules} try { ${call}; console.log('no error'); } catch (error) { console.log(error.name + ': ' + error.message); }`;
  const child = spawnSync(
    'setpriv',
    ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
      cwd: join(import.meta.dirname, '..', '..'),
    },
  );
  assert.equal(child.stderr, '');
  return child.stdout.trim();
}

describe('a checkpoint in a folder this user may not enter', { skip: process.getuid?.() !== 0 && 'needs root to run as another user' }, () => {
  // Read as "no checkpoint there" before: --resume and a dry run started from nothing, --retry-failed said there was none.
  test('the guard refuses it, naming the fix, rather than taking it for none', () => {
    assert.equal(
      thrownAsNobody(`checkpoint.assertIsCheckpoint(${JSON.stringify(path)})`),
      `UsageError: cannot reach checkpoint ${path} (EACCES: this user may not enter its folder): pass --checkpoint in a folder this user may write to`,
    );
  });

  // The failed lstat of cleaning up the lock's own file escaped as a raw EACCES (exit 1).
  test('the lock says what a read-only folder gets', () => {
    const pattern = `^UsageError: cannot create ${lockPath(path)}\\.\\d+ \\(EACCES\\): pass --checkpoint in a folder this user may write to$`;
    assert.match(thrownAsNobody(`lock.CheckpointLock.acquire(${JSON.stringify(path)})`), new RegExp(pattern));
  });
});

describe('the checkpoint lock', () => {
  test('a second run is refused, naming the holder; once released the next run takes it', () => {
    const lock = CheckpointLock.acquire(path);
    assert.throws(
      () => CheckpointLock.acquire(path),
      (error: unknown) => {
        assert.ok(error instanceof CheckpointBusyError);
        assert.equal(error.holder?.pid, process.pid);
        assert.match(error.message, new RegExp(`in use by another run \\(pid ${process.pid} on ${hostname()}, since \\d{4}-`));
        return true;
      },
    );
    lock.release();
    CheckpointLock.acquire(path).release();
  });

  test('a dead holder on this host does not block; a holder on another host does', () => {
    writeFileSync(lockPath(path), JSON.stringify({ pid: 2 ** 22 + 17, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
    CheckpointLock.acquire(path).release();
    writeFileSync(lockPath(path), JSON.stringify({ pid: process.pid, host: 'elsewhere.example', since: '2026-01-01T00:00:00.000Z' }));
    // Its pid means nothing here: the line says how to tell, and what to delete (a stopped pod never comes back).
    assert.throws(
      () => CheckpointLock.acquire(path),
      (error: unknown) =>
        error instanceof CheckpointBusyError &&
        error.message.endsWith(
          `let it finish; a run on another host cannot be checked from ${hostname()}: if no mastosync run is going on elsewhere.example any more, delete ${lockPath(path)}`,
        ),
    );
  });

  test('release removes only its own lock: one removed by hand and taken by another run meanwhile stays', () => {
    const lock = CheckpointLock.acquire(path);
    const other = `${JSON.stringify({ pid: process.pid, host: 'elsewhere.example', since: '2026-01-01T00:00:00.000Z' })}\n`;
    writeFileSync(lockPath(path), other);
    lock.release();
    assert.equal(readFileSync(lockPath(path), 'utf8'), other);
  });

  test('a process that ends on an uncaught error, or with work left pending, leaves no lock', async () => {
    const module = join(import.meta.dirname, '../../src/sync/lock.ts');
    // (The CLI turns the second into exit 1: src/cli/unsettled.ts.)
    for (const ending of ['throw new Error("boom")', 'new Promise(() => undefined)']) {
      const script = `import(${JSON.stringify(module)}).then(async (m) => { m.CheckpointLock.acquire(${JSON.stringify(path)}); console.log('held'); await null; ${ending}; })`;
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
      let stdout = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
      await new Promise((done) => child.once('close', done));
      assert.equal(stdout, 'held\n', ending);
      assert.equal(existsSync(lockPath(path)), false, ending);
    }
  });

  test('ten runs started at the same instant: exactly one holds the lock, also when a dead holder left one', async () => {
    const module = join(import.meta.dirname, '../../src/sync/lock.ts');
    // Each child loads, says "ready", and tries the lock only when every child is ready (a line "go" on its stdin): a
    // loaded machine may start them seconds apart, and a holder that released early would let a late one in. The
    // holder keeps the lock until every outcome is in ("release"). The same ten children race twice, from nothing and
    // over a dead holder's lock: starting ten more cost most of this test's time.
    const script = `import(${JSON.stringify(module)}).then((m) => {
      let lock;
      let pending = '';
      process.stdin.setEncoding('utf8').on('data', (chunk) => {
        pending += chunk;
        for (let end = pending.indexOf('\\n'); end !== -1; end = pending.indexOf('\\n')) {
          const command = pending.slice(0, end);
          pending = pending.slice(end + 1);
          if (command === 'go') {
            try { lock = m.CheckpointLock.acquire(${JSON.stringify(path)}); console.log('held'); } catch (error) { console.log(error.name); }
          } else if (command === 'release') { lock?.release(); lock = undefined; console.log('released'); }
          else process.exit(0);
        }
      });
      console.log('ready');
    })`;
    const children = Array.from({ length: 10 }, () => {
      const child = spawn(process.execPath, ['--import', 'tsx', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines: string[] = [];
      const waiters: Array<() => void> = [];
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        lines.push(...chunk.split('\n').filter((line) => line !== ''));
        for (const wake of waiters.splice(0)) wake();
      });
      const line = async (index: number) => {
        while (lines.length <= index) await new Promise<void>((wake) => waiters.push(wake));
        return lines[index]!;
      };
      return { child, line, closed: new Promise((done) => child.once('close', done)) };
    });
    try {
      for (const { line } of children) assert.equal(await line(0), 'ready');
      for (const [round, stale] of [false, true].entries()) {
        if (stale) writeFileSync(lockPath(path), JSON.stringify({ pid: 2 ** 22 + 17, host: hostname(), since: '2026-01-01T00:00:00.000Z' }));
        for (const { child } of children) child.stdin.write('go\n');
        const outcomes = await Promise.all(children.map(({ line }) => line(1 + 2 * round)));
        for (const { child } of children) child.stdin.write('release\n');
        for (const { line } of children) assert.equal(await line(2 + 2 * round), 'released');
        assert.deepEqual(outcomes.sort(), [...Array(9).fill('CheckpointBusyError'), 'held'].sort(), stale ? 'with a dead holder first' : 'from nothing');
        assert.deepEqual(
          readdirSync(dir).filter((name) => name.includes('.lock')),
          [],
          'no lock file left behind',
        );
      }
    } finally {
      for (const { child } of children) child.stdin.end('exit\n');
      await Promise.all(children.map(({ closed }) => closed));
    }
  });

  test('a lock file that names no holder (empty, not JSON): refused saying so while young, taken over once older than 5 minutes', () => {
    for (const content of ['', 'garbage\n', '{"pid":"x"}', 'null']) {
      writeFileSync(lockPath(path), content);
      assert.throws(
        () => CheckpointLock.acquire(path),
        (error: unknown) => {
          assert.ok(error instanceof CheckpointBusyError);
          assert.equal(error.holder, undefined);
          assert.equal(
            error.message,
            `lock file ${lockPath(path)} is unreadable (empty, or not a mastosync lock) and younger than 5 minutes: if no mastosync run is going on with checkpoint ${path}, remove it (a later run takes it over by itself)`,
          );
          return true;
        },
        JSON.stringify(content),
      );
      assert.equal(readFileSync(lockPath(path), 'utf8'), content, 'left as it was');
      const old = new Date(Date.now() - 6 * 60_000);
      utimesSync(lockPath(path), old, old);
      const lock = CheckpointLock.acquire(path);
      assert.equal((JSON.parse(readFileSync(lockPath(path), 'utf8')) as { pid: number }).pid, process.pid);
      lock.release();
      assert.deepEqual(
        readdirSync(dir).filter((name) => name.includes('.lock')),
        [],
      );
    }
  });

  test('a lock file this user cannot read is never taken over, however old', { skip: process.getuid?.() === 0 && 'root reads every file' }, () => {
    writeFileSync(lockPath(path), JSON.stringify({ pid: process.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z' }), { mode: 0o000 });
    const old = new Date(Date.now() - 60 * 60_000);
    utimesSync(lockPath(path), old, old);
    assert.throws(() => CheckpointLock.acquire(path), /the lock cannot be read: EACCES/);
    rmSync(lockPath(path));
  });

  test('a live pid that is not the holder (the holder died and its pid was reused) does not block', () => {
    writeFileSync(lockPath(path), JSON.stringify({ pid: process.pid, host: hostname(), since: '2026-01-01T00:00:00.000Z', processStart: 1 }));
    CheckpointLock.acquire(path).release();
  });
});
