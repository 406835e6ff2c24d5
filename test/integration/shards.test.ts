/**
 * One copy split over three processes run at once, as on three machines or in a Kubernetes Indexed Job: every
 * destination key is written exactly once (counted at a recording proxy), the destination ends exact, each row
 * went to the shard its id names, and each shard kept its own checkpoint.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { startProxy, type HttpProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, writeConfig } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let proxy: HttpProxy;
let db: TestDatabase;
let configDir: string | undefined;

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  proxy = await startProxy({ upstreamPort: s3.port });
  db = await createDatabase('current');
});

after(async () => {
  if (configDir) rmSync(configDir, { recursive: true, force: true });
  await db?.drop();
  await proxy?.stop();
  await s3?.stop();
  await postgres?.stop();
});

const positiveModulo = (id: string, count: number) => Number(((BigInt(id) % BigInt(count)) + BigInt(count)) % BigInt(count));

test('three shards at once: each key written exactly once, destination exact, one checkpoint per shard', async () => {
  const fixture = buildFixture('current');
  await s3.createBucket('shard-source');
  await s3.createBucket('shard-destination');
  await loadFixture(fixture, db.client, s3, 'shard-source');
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'shard-source' },
    destination: { endpoint: proxy.endpoint, bucket: 'shard-destination' },
    concurrency: 4,
  });
  configDir = config.dir;

  // Two take their shard from --shard, the third from $JOB_COMPLETION_INDEX as in a Kubernetes Indexed Job.
  const results = await Promise.all([
    runCli(['run', 'all', '--shard', '0/3', '--json', '--quiet', '--log-level', 'debug'], { cwd: config.dir }),
    runCli(['run', 'all', '--shard', '1/3', '--json', '--quiet', '--log-level', 'debug'], { cwd: config.dir }),
    runCli(['run', 'all', '--shards', '3', '--json', '--quiet', '--log-level', 'debug'], { cwd: config.dir, env: { JOB_COMPLETION_INDEX: '2' } }),
  ]);
  for (const result of results) assert.equal(result.code, 0, result.stderr);

  const totals = results.map((result) => (JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { total: { objects: number } }).total.objects);
  assert.ok(
    totals.every((objects) => objects > 0),
    `every shard had work: ${totals.join(', ')}`,
  );
  assert.equal(
    totals.reduce((sum, objects) => sum + objects, 0),
    fixture.expected.length,
    'the shards together cover every owned object once',
  );

  const writes = new Map<string, number>();
  for (const request of proxy.requests) {
    const upload = request.operation === 'PutObject' || request.operation === 'CompleteMultipartUpload';
    if (request.bucket !== 'shard-destination' || !upload || request.status === undefined || request.status >= 300) continue;
    writes.set(request.key!, (writes.get(request.key!) ?? 0) + 1);
  }
  assert.deepEqual(
    [...writes.entries()].filter(([, count]) => count !== 1),
    [],
    'no key written twice',
  );
  assert.deepEqual([...writes.keys()].sort(), fixture.present.map((object) => object.key).sort(), 'every present key written');

  assert.deepEqual((await s3.listKeys('shard-destination')).sort(), fixture.present.map((object) => object.key).sort());
  for (const expected of fixture.present) {
    const stored = (await s3.getObject('shard-destination', expected.key))!;
    assert.equal(createHash('sha256').update(stored.body).digest('hex'), expected.sha256, `${expected.key}: bytes`);
  }

  // Each object's result, as each shard logged it (a finished run keeps in its checkpoint only what --resume reads).
  const seen = new Set<string>();
  for (let index = 0; index < 3; index++) {
    const checkpoint = join(config.dir, `mastosync.checkpoint.shard-${index}-of-3.jsonl`);
    assert.ok(existsSync(checkpoint), `shard ${index} keeps its own checkpoint`);
    const lines = readJsonLines<{ id?: string; key?: string }>(results[index]!.stderr).filter((line) => line.key && line.id);
    for (const line of lines) {
      assert.equal(positiveModulo(line.id!, 3), index, `row ${line.id} belongs to shard ${positiveModulo(line.id!, 3)}, not ${index}`);
      assert.ok(!seen.has(line.key!), `${line.key} in two shards' checkpoints`);
      seen.add(line.key!);
    }
  }
  assert.equal(seen.size, fixture.expected.length);
  assert.equal(existsSync(config.checkpoint), false, 'no shard wrote the unsharded checkpoint');
  assert.ok(seen.has('accounts/avatars/000/000/original/f00dfacecafebeef.png'), 'the instance actor (id -99) was copied by shard 0');
});

test('a shard index out of range, or --shards without $JOB_COMPLETION_INDEX, is a usage error', async () => {
  const config = writeConfig({
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'shard-source' },
    destination: { endpoint: s3.endpoint, bucket: 'shard-destination' },
  });
  try {
    const outOfRange = await runCli(['run', 'all', '--shard', '3/3'], { cwd: config.dir });
    assert.equal(outOfRange.code, 2);
    assert.match(outOfRange.stderr, /from 0 to 2/);
    const noIndex = await runCli(['run', 'all', '--shards', '3'], { cwd: config.dir, env: { JOB_COMPLETION_INDEX: undefined } });
    assert.equal(noIndex.code, 2);
    assert.match(noIndex.stderr, /JOB_COMPLETION_INDEX/);
    assert.equal(existsSync(config.checkpoint), false);
  } finally {
    rmSync(config.dir, { recursive: true, force: true });
  }
});
