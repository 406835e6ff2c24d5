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
import { CheckpointWriter, loadCheckpoint, type ObjectLine } from '../../src/sync/checkpoint.js';
import { UsageError } from '../../src/errors.js';

const IDENTITY = { source: 's3://old', destination: 's3://new' };
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

function writeRun(mode: 'fresh' | 'resume' | 'retry-failed', lines: Array<ObjectLine | { watermark: string }>): void {
  const writer = CheckpointWriter.open(path, { run: new Date().toISOString(), mode, ...IDENTITY });
  for (const entry of lines) {
    if ('watermark' in entry) writer.watermark('accounts', entry.watermark);
    else writer.record(entry);
  }
  writer.close();
}

describe('loadCheckpoint', () => {
  test('a missing file resumes nothing', async () => {
    const state = await loadCheckpoint(path, IDENTITY);
    assert.equal(state.watermark('accounts'), undefined);
    assert.deepEqual(state.failed('accounts'), []);
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
    const state = await loadCheckpoint(path, IDENTITY);
    assert.equal(state.watermark('accounts'), '3');
    assert.equal(state.isDone('a/5'), true);
    assert.equal(state.isDone('a/6'), true, 'missing at the source is finished too');
    assert.equal(state.isDone('a/4'), false);
    assert.equal(state.hasFailed('a/4'), true);
    assert.deepEqual(state.failedBelowWatermark('accounts').map((entry) => entry.key), ['a/2']);
    assert.deepEqual(state.failed('accounts').map((entry) => entry.key).sort(), ['a/2', 'a/4'], '--retry-failed takes every failure');
    assert.deepEqual(state.failed('media_attachments'), []);
  });

  test('objects of rows above the watermark count as done even when their lines come before it', async () => {
    // Row 2 holds a long upload: rows 3 and 4 finish first, and the watermark can only say 1 until row 2 is done.
    // A hard stop then leaves row 2 unfinished; resuming must not copy rows 3 and 4 again.
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('3', 'a/3', 'copied'), line('4', 'a/4', 'relocated'), { watermark: '1' }, line('5', 'a/5', 'copied'), { watermark: '1' }]);
    const state = await loadCheckpoint(path, IDENTITY);
    assert.equal(state.watermark('accounts'), '1');
    assert.deepEqual(['a/1', 'a/2', 'a/3', 'a/4', 'a/5'].map((key) => state.isDone(key)), [false, false, true, true, true], 'a/1 is below the watermark: never read again, so not asked');
  });

  test('a later success (a retry line) clears a failure; a later failure keeps it', async () => {
    writeRun('fresh', [line('2', 'a/2', 'failed'), line('4', 'a/4', 'failed'), { watermark: '4' }]);
    writeRun('retry-failed', [line('2', 'a/2', 'copied', { retry: true }), line('4', 'a/4', 'failed', { retry: true, error: 'again' })]);
    const state = await loadCheckpoint(path, IDENTITY);
    assert.deepEqual(state.failed('accounts').map((entry) => entry.key), ['a/4']);
  });

  test('a fresh run forgets what earlier runs recorded', async () => {
    writeRun('fresh', [line('2', 'a/2', 'failed'), { watermark: '9' }]);
    writeRun('fresh', [line('1', 'a/1', 'copied')]);
    const state = await loadCheckpoint(path, IDENTITY);
    assert.equal(state.watermark('accounts'), undefined);
    assert.deepEqual(state.failed('accounts'), []);
    assert.equal(state.isDone('a/1'), true);
  });

  test('a torn last line (a kill mid-write) is skipped, and the next run starts on a line of its own', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied'), line('2', 'a/2', 'failed')]);
    appendFileSync(path, JSON.stringify(line('3', 'a/3', 'copied')).slice(0, 25));
    const state = await loadCheckpoint(path, IDENTITY);
    assert.equal(state.isDone('a/1'), true);
    assert.equal(state.isDone('a/3'), false, 'half a line records nothing');
    assert.equal(state.hasFailed('a/2'), true);

    writeRun('resume', [line('3', 'a/3', 'copied')]);
    const lines = readFileSync(path, 'utf8').split('\n');
    const torn = lines.findIndex((text) => text.startsWith('{"job":"accounts","id":"3') && !text.endsWith('}'));
    assert.ok(torn > 0);
    assert.match(lines[torn + 1]!, /^\{"run":/, 'the header of the next run follows the torn line on a line of its own');
    assert.equal((await loadCheckpoint(path, IDENTITY)).isDone('a/3'), true);
  });

  test('a checkpoint of another source or destination is refused, naming both', async () => {
    writeRun('fresh', [line('1', 'a/1', 'copied')]);
    await assert.rejects(loadCheckpoint(path, { source: 's3://old', destination: 's3://elsewhere' }), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /belongs to a run from s3:\/\/old to s3:\/\/new, not from s3:\/\/old to s3:\/\/elsewhere/);
      return true;
    });
  });
});
