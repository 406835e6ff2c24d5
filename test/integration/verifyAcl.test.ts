/**
 * `verify --acl`: after a copy, who may read each object at the destination is compared with what Mastodon sets (the
 * media of a suspended account and backups private, the rest public-read): a private object made public (a privacy
 * incident) and a public one made private are each named, by HEAD and by listing; `--repair` sets their ACL without
 * copying their bytes again. Without `--acl` no ACL is asked. A folder destination compares file modes. The proxy keeps
 * ACLs as S3 does (s3rver answers PutObjectAcl 501).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectAclCommand } from '@aws-sdk/client-s3';
import { publicFolderMode, type ExpectedObject } from '../support/fixture.js';
import { makeS3Client } from '../support/s3.js';
import { startAclWorld, type AclWorld } from '../support/aclWorld.js';
import { startProxy } from '../support/httpProxy.js';
import { readJsonLines, runCli, type writeConfig } from '../support/cli.js';
import type { VerifyJobSummary } from '../../src/sync/verify.js';

const SOURCE = 'verify-acl-source';
const DESTINATION = 'verify-acl-destination';

let world: AclWorld;
let config: ReturnType<typeof writeConfig>;
let folder: string;
let folderConfig: ReturnType<typeof writeConfig>;

interface Line {
  key?: string;
  problem?: string;
  expected?: string;
  actual?: string;
  repair?: string;
  total?: Omit<VerifyJobSummary, 'job'>;
}

before(async () => {
  world = await startAclWorld(SOURCE, DESTINATION);
  config = world.writeConfig({ concurrency: 4 });
  folder = mkdtempSync(join(tmpdir(), 'mastosync-verify-acl-'));
  folderConfig = world.writeConfig({ destination: { type: 'fs', path: folder } });
  for (const dir of [config.dir, folderConfig.dir]) {
    const copy = await runCli(['run', 'all', '--quiet'], { cwd: dir });
    assert.equal(copy.code, 0, copy.stderr + copy.stdout);
  }
});

after(async () => {
  for (const dir of [config?.dir, folderConfig?.dir, folder]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  await world?.stop();
});

async function verify(dir: string, ...args: string[]) {
  world.proxy.reset();
  const result = await runCli(['verify', 'all', '--json', '--quiet', ...args], { cwd: dir });
  const lines = readJsonLines<Line>(result.stdout);
  return {
    ...result,
    problems: lines.filter((line) => line.problem !== undefined),
    repairs: lines.filter((line) => line.repair !== undefined),
    total: lines.at(-1)!.total!,
  };
}

const privateObject = (): ExpectedObject => world.fixture.present.find((object) => object.acl === 'private' && object.table === 'media_attachments')!;
const publicObject = (): ExpectedObject => world.fixture.present.find((object) => object.acl === 'public-read' && object.table === 'media_attachments')!;
const destinationRequests = (operation: string) => world.proxy.requests.filter((request) => request.bucket === DESTINATION && request.operation === operation);

test('verify --acl on S3: a private object made public and a public one made private are named; --repair sets their ACL alone', async () => {
  // Private at the destination is what Mastodon set (fixture: account 7 is suspended).
  const exposed = privateObject();
  const hidden = publicObject();
  assert.ok(exposed !== undefined && hidden !== undefined, 'fixture: a private and a public media object');
  for (const method of ['--by-head', '--by-listing']) {
    const clean = await verify(config.dir, '--acl', method);
    assert.equal(clean.code, 0, clean.stderr + clean.stdout);
    assert.equal(clean.total.aclDiffers, 0);
    // One GetObjectAcl per object the destination holds, by listing too, and the probe's before them.
    assert.equal(destinationRequests('GetObjectAcl').length, world.fixture.present.length + 1, method);
  }

  const client = makeS3Client(world.proxy.endpoint);
  try {
    await client.send(new PutObjectAclCommand({ Bucket: DESTINATION, Key: exposed.key, ACL: 'public-read' }));
    await client.send(new PutObjectAclCommand({ Bucket: DESTINATION, Key: hidden.key, ACL: 'private' }));
  } finally {
    client.destroy();
  }
  assert.equal(world.proxy.objectAcl(DESTINATION, exposed.key), 'public-read');

  // Off by default: a request per object is not what a plain verify costs.
  const plain = await verify(config.dir, '--by-head');
  assert.equal(plain.code, 0, plain.stderr + plain.stdout);
  assert.deepEqual(destinationRequests('GetObjectAcl'), []);

  for (const method of ['--by-head', '--by-listing']) {
    const off = await verify(config.dir, '--acl', method);
    assert.equal(off.code, 1, off.stderr + off.stdout);
    assert.deepEqual(
      off.problems.map(({ key, problem, expected, actual }) => ({ key, problem, expected, actual })).sort((a, b) => a.key!.localeCompare(b.key!)),
      [
        { key: exposed.key, problem: 'acl', expected: 'private', actual: 'public-read' },
        { key: hidden.key, problem: 'acl', expected: 'public-read', actual: 'private' },
      ].sort((a, b) => a.key.localeCompare(b.key)),
      method,
    );
    assert.equal(off.total.mismatched, 2);
    assert.equal(off.total.aclDiffers, 2);
  }
  const text = await runCli(['verify', 'all', '--acl', '--quiet'], { cwd: config.dir });
  assert.equal(text.code, 1);
  assert.match(
    text.stdout,
    new RegExp(`^acl differs +${exposed.key} \\(media_attachments \\d+\\): Mastodon makes it private, at the destination it is public-read$`, 'm'),
  );
  assert.match(text.stdout, /^mismatched: 2 ACL /m);
  // Every byte is right: the verdict says so, and that --repair copies nothing.
  assert.equal(
    text.stdout.trim().split('\n').at(-1),
    `verify: all ${world.fixture.present.length} checked objects the source has are present and whole; 2 have the wrong ACL (1 Mastodon makes private is readable by others, 1 Mastodon makes public is not): mastosync verify <the same jobs and scope> --acl --repair sets those ACLs, copying no bytes`,
  );

  const repaired = await verify(config.dir, '--acl', '--repair');
  assert.equal(repaired.code, 0, repaired.stderr + repaired.stdout);
  assert.deepEqual(
    repaired.repairs.map((line) => line.repair),
    ['acl', 'acl'],
  );
  assert.equal(repaired.total.repaired, 2);
  assert.equal(repaired.total.aclsSet, 2);
  assert.deepEqual(destinationRequests('PutObject'), [], 'no bytes copied again');
  assert.equal(destinationRequests('PutObjectAcl').length, 2);
  assert.equal(world.proxy.objectAcl(DESTINATION, exposed.key), 'private');
  assert.equal(world.proxy.objectAcl(DESTINATION, hidden.key), 'public-read');
  const after = await verify(config.dir, '--acl');
  assert.equal(after.code, 0, after.stderr + after.stdout);
});

test('verify --acl on a folder: file modes, as Mastodon sets them (0600 private)', async () => {
  const exposed = join(folder, privateObject().key);
  const hidden = join(folder, publicObject().key);
  assert.equal(statSync(exposed).mode & 0o077, 0, 'written private');
  const clean = await verify(folderConfig.dir, '--acl');
  assert.equal(clean.code, 0, clean.stderr + clean.stdout);
  chmodSync(exposed, 0o644);
  chmodSync(hidden, 0o600);
  const off = await verify(folderConfig.dir, '--acl');
  assert.equal(off.code, 1, off.stderr + off.stdout);
  assert.deepEqual(
    off.problems.map((problem) => [problem.key, problem.problem, problem.expected, problem.actual]).sort(),
    [
      [exposed, 'acl', 'private', 'public-read (mode 0644)'],
      [hidden, 'acl', 'public-read', 'private (mode 0600)'],
    ].sort(),
  );
  const repaired = await verify(folderConfig.dir, '--acl', '--repair');
  assert.equal(repaired.code, 0, repaired.stderr + repaired.stdout);
  assert.equal(statSync(exposed).mode & 0o077, 0);
  assert.notEqual(statSync(hidden).mode & 0o044, 0);
});

test('a folder with acl = "private": every file 0600 whatever the umask, and verify --acl compares that; public files 0644 under a umask of 027 (nginx reads them)', async () => {
  const hidden = mkdtempSync(join(tmpdir(), 'mastosync-private-folder-'));
  const shown = mkdtempSync(join(tmpdir(), 'mastosync-public-folder-'));
  const privateConfig = world.writeConfig({ destination: { type: 'fs', path: hidden, acl: 'private' } });
  const publicConfig = world.writeConfig({ destination: { type: 'fs', path: shown } });
  // A cron job's hardened umask: the child inherits it.
  const umask = process.umask(0o027);
  try {
    for (const dir of [privateConfig.dir, publicConfig.dir]) {
      const copy = await runCli(['run', 'all', '--quiet'], { cwd: dir });
      assert.equal(copy.code, 0, copy.stderr + copy.stdout);
    }
  } finally {
    process.umask(umask);
  }
  for (const object of world.fixture.present) {
    assert.equal(statSync(join(hidden, object.key)).mode & 0o777, 0o600, `${object.key} in the private folder`);
    assert.equal(statSync(join(shown, object.key)).mode & 0o777, publicFolderMode(object), `${object.key} in the public folder`);
  }
  const clean = await verify(privateConfig.dir, '--acl');
  assert.equal(clean.code, 0, clean.stderr + clean.stdout);
  // One file's mode changed, then verify --acl must name it alone.
  const offAfter = async (dir: string, path: string, mode: number) => {
    chmodSync(path, mode);
    const off = await verify(dir, '--acl');
    assert.equal(off.code, 1, off.stderr + off.stdout);
    return off.problems.map((problem) => [problem.key, problem.problem, problem.expected, problem.actual]);
  };
  const exposed = join(hidden, publicObject().key);
  assert.deepEqual(await offAfter(privateConfig.dir, exposed, 0o644), [[exposed, 'acl', 'private', 'public-read (mode 0644)']]);
  // A public file only the group may read is one nginx (another user) cannot serve.
  const grouped = join(shown, publicObject().key);
  assert.deepEqual(await offAfter(publicConfig.dir, grouped, 0o640), [[grouped, 'acl', 'public-read', 'group-read (mode 0640)']]);
  chmodSync(grouped, 0o644);
  // A backup nginx cannot read is a download that fails (403): public-read expects it readable, private hides it.
  const backup = world.fixture.present.find((object) => object.table === 'backups')!;
  const hiddenBackup = join(shown, backup.key);
  assert.deepEqual(await offAfter(publicConfig.dir, hiddenBackup, 0o600), [[hiddenBackup, 'acl', 'public-read', 'private (mode 0600)']]);
  const repaired = await verify(publicConfig.dir, '--acl', '--repair');
  assert.equal(repaired.code, 0, repaired.stderr + repaired.stdout);
  assert.equal(statSync(hiddenBackup).mode & 0o777, 0o644, 'repaired readable by nginx');
  const exposedBackup = join(hidden, backup.key);
  chmodSync(exposed, 0o600);
  assert.deepEqual(await offAfter(privateConfig.dir, exposedBackup, 0o644), [[exposedBackup, 'acl', 'private', 'public-read (mode 0644)']]);
  for (const dir of [hidden, shown]) rmSync(dir, { recursive: true, force: true });
});

test('verify --acl where no ACL is written: refused in one line, exit 2', async () => {
  const none = world.writeConfig({ destination: { endpoint: world.proxy.endpoint, bucket: DESTINATION, acl: '' } });
  try {
    world.proxy.reset();
    const result = await runCli(['verify', 'all', '--acl'], { cwd: none.dir });
    assert.equal(result.code, 2, result.stderr + result.stdout);
    assert.match(result.stderr, /--acl: \[destination\] acl = "" sends no ACL/);
    assert.deepEqual(destinationRequests('GetObjectAcl'), []);
  } finally {
    rmSync(none.dir, { recursive: true, force: true });
  }
});

/** The lines verify wrote to stderr, without the log's (JSON) lines. */
const stderrLines = (stderr: string) => stderr.split('\n').filter((line) => line.startsWith('mastosync:'));

test('verify --acl on a store that keeps no per-object ACL (s3rver as it is: the same grant for any key, PutObjectAcl refused): one line before any check, exit 2', async () => {
  // The same bucket, through a proxy that leaves ACL requests to s3rver: every object reads private there.
  const plain = await startProxy({ upstreamPort: world.s3.port });
  const none = world.writeConfig({ destination: { endpoint: plain.endpoint, bucket: DESTINATION } });
  try {
    for (const args of [['--acl'], ['--acl', '--repair'], ['--acl', '--by-listing']]) {
      plain.reset();
      const result = await runCli(['verify', 'all', '--quiet', ...args], { cwd: none.dir });
      assert.equal(result.code, 2, result.stderr + result.stdout);
      assert.deepEqual(stderrLines(result.stderr), [
        `mastosync: --acl: [destination] bucket "${DESTINATION}" at ${plain.endpoint} does not support per-object ACLs (it answered GetObjectAcl for ${
          plain.requests.find((request) => request.operation === 'GetObjectAcl')?.key
        }, a key that does not exist, as a store that keeps none does): verify --acl cannot check them; verify without --acl`,
      ]);
      assert.equal(result.stdout, '', 'no object reported');
      const aclRequests = plain.requests.filter((request) => request.operation === 'GetObjectAcl' || request.operation === 'PutObjectAcl');
      assert.equal(aclRequests.length, 1, 'the probe alone');
      assert.match(aclRequests[0]!.key!, /^mastosync-acl-probe-[0-9a-f]{16}$/);
      assert.deepEqual(
        plain.requests.filter((request) => request.operation === 'PutObject' || request.operation === 'HeadObject'),
        [],
      );
    }
  } finally {
    rmSync(none.dir, { recursive: true, force: true });
    await plain.stop();
  }
});

test('verify --acl where the provider answers NotImplemented to GetObjectAcl (as R2): one line naming it, exit 2', async () => {
  world.proxy.setFault((request) => (request.operation === 'GetObjectAcl' ? { kind: 'status', status: 501, code: 'NotImplemented' } : undefined));
  try {
    world.proxy.reset();
    const result = await runCli(['verify', 'all', '--acl', '--quiet'], { cwd: config.dir });
    assert.equal(result.code, 2, result.stderr + result.stdout);
    assert.equal(stderrLines(result.stderr).length, 1, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^mastosync: --acl: \\[destination\\] bucket "${DESTINATION}" at ${world.proxy.endpoint} does not support per-object ACLs \\(NotImplemented on GetObjectAcl mastosync-acl-probe-[0-9a-f]+\\): verify --acl cannot check them; verify without --acl$`,
        'm',
      ),
    );
    assert.equal(destinationRequests('GetObjectAcl').length, 1);
  } finally {
    world.proxy.setFault(undefined);
  }
});

test('verify --acl whose GetObjectAcl is refused (AccessDenied) from the first object: stops with one line, exit 1, not a line per object', async () => {
  world.proxy.setFault((request) =>
    request.bucket === DESTINATION && request.operation === 'GetObjectAcl' ? { kind: 'status', status: 403, code: 'AccessDenied' } : undefined,
  );
  try {
    const result = await verify(config.dir, '--acl', '--by-head');
    assert.equal(result.code, 1, result.stderr + result.stdout);
    assert.deepEqual(result.problems, []);
    const lines = stderrLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(
      lines[0]!,
      /^mastosync: stopped: \[destination\] bucket "verify-acl-destination" .* denied reading or setting an ACL \(AccessDenied on GetObjectAcl .+\): verify --acl cannot check them: let the credentials read and set ACLs, or verify without --acl$/,
    );
    // The probe, and at most one wave of --concurrency 4 in flight when the first refusal came.
    assert.ok(destinationRequests('GetObjectAcl').length <= 1 + 4, String(destinationRequests('GetObjectAcl').length));
  } finally {
    world.proxy.setFault(undefined);
  }
});

test('verify --acl --repair on a bucket whose ACLs were disabled since the copy ("bucket owner enforced"): stops at the first refused PutObjectAcl, exit 1', async () => {
  const exposed = privateObject();
  const client = makeS3Client(world.proxy.endpoint);
  try {
    await client.send(new PutObjectAclCommand({ Bucket: DESTINATION, Key: exposed.key, ACL: 'public-read' }));
    world.proxy.setFault((request) =>
      request.operation === 'PutObjectAcl'
        ? { kind: 'status', status: 400, code: 'AccessControlListNotSupported', message: 'The bucket does not allow ACLs' }
        : undefined,
    );
    const result = await verify(config.dir, '--acl', '--repair');
    assert.equal(result.code, 1, result.stderr + result.stdout);
    assert.deepEqual(result.repairs, [], 'no line per object');
    assert.deepEqual(stderrLines(result.stderr), [
      `mastosync: stopped: [destination] bucket "${DESTINATION}" at ${world.proxy.endpoint} does not support per-object ACLs: its Object Ownership is "bucket owner enforced", which disables them (AccessControlListNotSupported on PutObjectAcl ${exposed.key}): verify --acl --repair cannot set them: verify without --acl`,
    ]);
    assert.equal(destinationRequests('PutObjectAcl').length, 1);
  } finally {
    world.proxy.setFault(undefined);
    await client.send(new PutObjectAclCommand({ Bucket: DESTINATION, Key: exposed.key, ACL: 'private' }));
    client.destroy();
  }
});
