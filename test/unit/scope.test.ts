/**
 * The pure parts of scoping: flag parsing (times are UTC, ids stay exact), shards and their checkpoint names,
 * the per-object rules, and the key encoding of S3 Batch Operations manifests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import yargs from 'yargs';
import { describeScope, parseInstant, scopeFlags, scopeFromArgs, withScopeOptions } from '../../src/cli/scope.js';
import { checkpointForShard, parseShard, shardFromEnvironment } from '../../src/sync/shard.js';
import { inTimeWindow, objectInScope, ownedInScope, scopeSql } from '../../src/db/scope.js';
import { encodeKey, manifestLine } from '../../src/cli/commands/manifest.js';
import { ownedObjects } from '../../src/mastodon/keys.js';
import { UsageError } from '../../src/errors.js';

test('times: a date or a date-time without zone is UTC; a zone is honoured; anything else is refused', () => {
  assert.equal(parseInstant('--since', '2024-05-01'), '2024-05-01T00:00:00.000Z');
  assert.equal(parseInstant('--since', '2024-05-01 12:30'), '2024-05-01T12:30:00.000Z');
  assert.equal(parseInstant('--since', '2024-05-01T12:30:15+02:00'), '2024-05-01T10:30:15.000Z');
  for (const bad of ['yesterday', '2024-13-01', '1714560000', '']) assert.throws(() => parseInstant('--since', bad), UsageError, bad);
});

test('ids stay exact beyond 2^53, and an empty window is refused', () => {
  assert.equal(scopeFromArgs({ minId: '109349205816583424' }).minId, '109349205816583424');
  assert.throws(() => scopeFromArgs({ since: '2024-06-01', until: '2024-05-01' }), /not before --until/);
  assert.throws(() => scopeFromArgs({ maxId: '12abc' }), /must be a row id/);
});

test('scope flags told to the admin give the same scope again, a shard from $JOB_COMPLETION_INDEX as I/N', () => {
  const scopes = [
    {},
    { since: '2024-05-01T00:00:00.000Z', until: '2024-06-01T12:30:00.000Z', minId: '-99', maxId: '109349205816583424' },
    { shard: { index: 2, count: 3 }, skipRemoteCache: 'media' as const },
    { shard: { index: 0, count: 8 }, skipRemoteCache: 'all' as const, since: '2024-05-01T00:00:00.000Z' },
  ];
  for (const scope of scopes) {
    const args = withScopeOptions(yargs().strict()).parseSync(scopeFlags(scope));
    assert.deepEqual(scopeFromArgs(args, {}), scope);
    assert.equal(describeScope(scopeFromArgs(args, {})), describeScope(scope), 'the checkpoint names its scope so');
  }
  assert.deepEqual(scopeFlags(scopeFromArgs({ shards: 4 }, { JOB_COMPLETION_INDEX: '3' })), ['--shard', '3/4']);
});

test('shards: I/N from 0, or the index from $JOB_COMPLETION_INDEX; each names its own checkpoint', () => {
  assert.deepEqual(parseShard('2/3'), { index: 2, count: 3 });
  assert.throws(() => parseShard('3/3'), /from 0 to 2/);
  assert.throws(() => parseShard('1-3'), /I\/N/);
  assert.deepEqual(shardFromEnvironment(4, { JOB_COMPLETION_INDEX: '3' }), { index: 3, count: 4 });
  assert.throws(() => shardFromEnvironment(4, {}), /JOB_COMPLETION_INDEX/);
  assert.equal(checkpointForShard('mastosync-checkpoint.jsonl', { index: 1, count: 3 }), 'mastosync-checkpoint.shard-1-of-3.jsonl');
  assert.equal(checkpointForShard('/data/run.jsonl', { index: 0, count: 8 }), '/data/run.shard-0-of-8.jsonl');
  assert.equal(checkpointForShard('/data/run.jsonl', undefined), '/data/run.jsonl');
});

test('the shard condition is a positive modulo, so negative ids (the instance actor) land in a shard', () => {
  const schema = {
    columns: new Map([['accounts', new Set(['id', 'avatar_updated_at', 'header_updated_at'])]]),
    unreadable: new Set<string>(),
    role: 'mastodon',
    unknownAttachments: [],
  };
  const sql = scopeSql(schema, 'accounts', { shard: { index: 1, count: 3 }, since: '2024-05-01T00:00:00.000Z' }, 3);
  assert.deepEqual(sql.conditions[0], '((t."id" % $3::bigint) + $3::bigint) % $3::bigint = $4::bigint');
  assert.deepEqual(sql.values.slice(0, 2), [3, 1]);
  assert.equal(sql.values[2], '2024-05-01 00:00:00.000', 'compared as UTC wall time, as Mastodon stores it');
  assert.deepEqual(
    sql.windows.map((window) => window.column),
    ['avatar_in_scope', 'header_in_scope'],
  );
});

test('--skip-remote-cache drops cache/ media and cards but keeps remote avatars and emoji; =all drops them too', () => {
  const remoteMedia = { id: '9', remote_url: 'https://x/y', file_file_name: 'a.png', file_content_type: 'image/png', file_storage_schema_version: 1 };
  const remoteAccount = { id: '9', domain: 'x', avatar_file_name: 'a.png', avatar_content_type: 'image/png', avatar_storage_schema_version: 1 };
  assert.equal(ownedInScope('media_attachments', remoteMedia, { skipRemoteCache: 'media' }).length, 0);
  assert.equal(ownedInScope('accounts', remoteAccount, { skipRemoteCache: 'media' }).length, 1);
  assert.equal(ownedInScope('accounts', remoteAccount, { skipRemoteCache: 'all' }).length, 0);
  const card = { id: '5', image_file_name: 'c.jpg', image_storage_schema_version: 1 };
  assert.equal(ownedInScope('preview_cards', card, { skipRemoteCache: 'media' }).length, 0);
});

test('a time window keeps only the attachments the database marked as inside it', () => {
  const row = { id: '1', domain: null, avatar_file_name: 'a.png', header_file_name: 'h.png', avatar_in_scope: false, header_in_scope: true };
  const kept = ownedObjects('accounts', row).filter((object) => objectInScope(object, row, { since: '2024-01-01T00:00:00.000Z' }));
  assert.deepEqual(
    kept.map((object) => object.attachment),
    ['header'],
  );
});

test('a time stamp read without the window is judged as the SQL window would: since inclusive, until exclusive, NULL long ago', () => {
  const window = { since: '2024-05-01T00:00:00.000Z', until: '2024-06-01T00:00:00.000Z' };
  assert.equal(inTimeWindow(window, '2024-05-01T00:00:00.000Z'), true);
  assert.equal(inTimeWindow(window, '2024-04-30T23:59:59.999Z'), false);
  assert.equal(inTimeWindow(window, '2024-06-01T00:00:00.000Z'), false);
  assert.equal(inTimeWindow(window, undefined), false);
  assert.equal(inTimeWindow({ until: window.until }, undefined), true);
  assert.equal(inTimeWindow({}, undefined), true);
});

test('manifest lines: S3 Batch keys are percent-encoded but keep "/"; line formats refuse line breaks', () => {
  assert.equal(
    encodeKey("media_attachments/files/000/000/012/original/My Photo + café 100% #1 (a),b's*.jpg"),
    'media_attachments/files/000/000/012/original/My%20Photo%20%2B%20caf%C3%A9%20100%25%20%231%20%28a%29%2Cb%27s%2A.jpg',
  );
  const s3 = { type: 's3' as const, bucket: 'old', region: 'us-east-1', forcePathStyle: false, keyPrefix: 'pfx' };
  assert.equal(manifestLine('s3-batch-csv', s3)('a/b c'), 'old,pfx/a/b%20c');
  assert.equal(manifestLine('keys', s3)('a/b c'), 'pfx/a/b c');
  assert.equal(manifestLine('rclone', s3)('a/b c'), 'a/b c', 'relative to SRC:bucket/prefix');
  assert.equal(manifestLine('rclone', s3)('a/b\nc'), undefined);
  assert.throws(() => manifestLine('s3-batch-csv', { type: 'fs', path: '/x' }), /type = "fs"/);
});
