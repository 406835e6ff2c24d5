/**
 * What the integrity tests (faults, crash, verify) and the run tests share: a fixture world whose source also holds objects uploaded
 * multipart (so their ETags are `<md5>-N`, not MD5s), the byte-for-byte comparison of a destination with it, the
 * multipart uploads s3rver still keeps, and a checkpoint read the way an admin would read it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Upload } from '@aws-sdk/lib-storage';
import { BIG_OBJECT_SIZE, CACHE_CONTROL, buildFixture, fixtureBytes, loadFixture, type Fixture } from './fixture.js';
import type { TestDatabase } from './postgres.js';
import type { S3Server } from './s3.js';
import { readJsonLines } from './cli.js';

const MiB = 1024 * 1024;
const sha256 = (body: Buffer) => createHash('sha256').update(body).digest('hex');

/** One object the destination must hold, byte for byte. */
export interface Wanted {
  readonly key: string;
  /** Where the bytes are at the source (differs for relocated objects). */
  readonly sourceKey: string;
  readonly job: string;
  readonly rowId: string;
  readonly size: number;
  readonly sha256: string;
  readonly contentType: string;
  readonly cacheControl: string;
}

/** A fixture loaded into a database and a source bucket, with what a complete copy must hold. */
export interface CopyWorld {
  readonly fixture: Fixture;
  readonly sourceBucket: string;
  /** Every owned object present at the source. */
  readonly wanted: Wanted[];
  readonly wantedByKey: Map<string, Wanted>;
  readonly sourceSizes: Map<string, number>;
}

export interface IntegrityWorld extends CopyWorld {
  /**
   * The objects with a multipart ETag at the source: the 6 MiB video (5 MiB parts; one PUT copies it), 17 MiB in
   * 5 MiB parts and 12 MiB in 7 MiB parts (both copied multipart, the last with an ETag no common size gives).
   */
  readonly large: readonly [Wanted, Wanted, Wanted];
}

/**
 * Large media the fixture lacks, uploaded to the source multipart with the given part size: 5 MiB parts (what
 * Mastodon's Ruby SDK uses, so the ETag can be recomputed) and 7 MiB parts (an unusual size, which it cannot).
 */
const LARGE_MEDIA = [
  { id: '900001', name: 'f1f1f1f1f1f1f1f1.mp3', size: 17 * MiB + 123, partSize: 5 * MiB },
  { id: '900002', name: 'e2e2e2e2e2e2e2e2.mp3', size: 12 * MiB + 77, partSize: 7 * MiB },
] as const;

/**
 * The 'current' fixture in `sourceBucket` (which must exist), plus LARGE_MEDIA, and with the fixture's 6 MiB
 * video re-uploaded multipart in 5 MiB parts (an object a single PUT copies, from a source with no MD5 ETag).
 */
export async function buildIntegrityWorld(db: TestDatabase, s3: S3Server, sourceBucket: string): Promise<IntegrityWorld> {
  const { fixture, wanted } = await buildCopyWorld(db, s3, sourceBucket);
  const video = fixture.present.find((object) => object.size === BIG_OBJECT_SIZE)!;
  await uploadMultipart(s3, sourceBucket, video.sourceKey!, video.body!, video.contentType!, 5 * MiB);
  const large = [wanted.find((object) => object.key === video.key)!];

  for (const media of LARGE_MEDIA) {
    const key = `media_attachments/files/000/${media.id.slice(0, 3)}/${media.id.slice(3)}/original/${media.name}`;
    const body = fixtureBytes(`large:${media.id}`, media.size, 'audio/mpeg');
    await db.client.query(
      `INSERT INTO media_attachments (id, account_id, type, file_file_name, file_content_type, file_file_size, created_at, updated_at)
       VALUES ($1, 1, 4, $2, 'audio/mpeg', $3, now(), now())`,
      [media.id, media.name, media.size],
    );
    await uploadMultipart(s3, sourceBucket, key, body, 'audio/mpeg', media.partSize);
    const object = {
      key,
      sourceKey: key,
      job: 'media_attachments',
      rowId: media.id,
      size: media.size,
      sha256: sha256(body),
      contentType: 'audio/mpeg',
      cacheControl: CACHE_CONTROL,
    };
    wanted.push(object);
    large.push(object);
  }

  return { ...copyWorld(fixture, sourceBucket, wanted), large: large as unknown as IntegrityWorld['large'] };
}

/**
 * The 'current' fixture alone in `sourceBucket` (which must exist): for tests about something other than
 * large or multipart objects, which copy it in a fraction of an integrity world's time.
 */
export async function buildCopyWorld(db: TestDatabase, s3: S3Server, sourceBucket: string): Promise<CopyWorld> {
  const fixture = buildFixture('current');
  await loadFixture(fixture, db.client, s3, sourceBucket);
  const wanted: Wanted[] = fixture.present.map((object) => ({
    key: object.key,
    sourceKey: object.sourceKey!,
    job: object.table,
    rowId: object.rowId,
    size: object.size,
    sha256: object.sha256,
    contentType: object.contentType!,
    cacheControl: object.cacheControl!,
  }));
  return copyWorld(fixture, sourceBucket, wanted);
}

function copyWorld(fixture: Fixture, sourceBucket: string, wanted: Wanted[]): CopyWorld {
  return {
    fixture,
    sourceBucket,
    wanted,
    wantedByKey: new Map(wanted.map((object) => [object.key, object])),
    sourceSizes: new Map(wanted.map((object) => [object.sourceKey, object.size])),
  };
}

async function uploadMultipart(s3: S3Server, bucket: string, key: string, body: Buffer, contentType: string, partSize: number): Promise<void> {
  const upload = new Upload({
    client: s3.client,
    params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType, CacheControl: CACHE_CONTROL, ACL: 'public-read' },
    partSize,
    queueSize: 2,
  });
  await upload.done();
  // s3rver answers the MD5 of the whole object even for a multipart upload; S3 answers the MD5 of the parts'
  // MD5s with "-<parts>". Store what S3 would (s3rver keeps the ETag beside the object, in `<object>.md5`).
  const parts: Buffer[] = [];
  for (let offset = 0; offset < body.length; offset += partSize)
    parts.push(
      createHash('md5')
        .update(body.subarray(offset, offset + partSize))
        .digest(),
    );
  const etag = `${createHash('md5').update(Buffer.concat(parts)).digest('hex')}-${parts.length}`;
  const segments = key.split('/');
  writeFileSync(join(s3.directory, bucket, ...segments.slice(0, -1), `${segments.at(-1)}._S3rver_object.md5`), etag);
  const stored = await s3.getObject(bucket, key);
  assert.equal(stored?.etag, `"${etag}"`, `${key} must have a multipart ETag at the source`);
}

/** The destination holds exactly `world.wanted` (no more keys), byte-exact, with Content-Type and Cache-Control. */
export async function assertDestinationExact(s3: S3Server, bucket: string, world: CopyWorld): Promise<void> {
  const keys = (await s3.listKeys(bucket)).sort();
  assert.deepEqual(keys, world.wanted.map((object) => object.key).sort(), 'the destination must hold exactly the owned objects');
  for (const object of world.wanted) await assertObjectExact(s3, bucket, object);
}

export async function assertObjectExact(s3: S3Server, bucket: string, object: Wanted): Promise<void> {
  const stored = await s3.getObject(bucket, object.key);
  assert.ok(stored, `${object.key}: missing at the destination`);
  assert.equal(stored.body.length, object.size, `${object.key}: size`);
  assert.equal(sha256(stored.body), object.sha256, `${object.key}: bytes differ from the source`);
  assert.equal(stored.contentType, object.contentType, `${object.key}: Content-Type`);
  assert.equal(stored.cacheControl, object.cacheControl, `${object.key}: Cache-Control`);
}

/**
 * Multipart uploads s3rver still keeps for `bucket`: created and neither completed nor aborted. (s3rver 3.7.1 has
 * no AbortMultipartUpload: it answers 405 and keeps the parts in `<bucket>/._S3rver_uploads/<upload id>/`.)
 */
export function uploadsKept(s3: S3Server, bucket: string): string[] {
  const folder = join(s3.directory, bucket, '._S3rver_uploads');
  return existsSync(folder) ? readdirSync(folder) : [];
}

export interface CheckpointObjectLine {
  readonly job: string;
  readonly id: string;
  readonly key: string;
  readonly status: 'copied' | 'relocated' | 'missing' | 'failed';
  readonly bytes: number;
  readonly from?: string;
  readonly error?: string;
  readonly retry?: true;
}

export interface CheckpointRead {
  readonly headers: Array<{ run: string; mode: string }>;
  readonly objects: CheckpointObjectLine[];
  readonly watermarks: Array<{ job: string; watermark: string }>;
  /** The last line, if a kill cut it short. */
  readonly torn?: string;
}

/**
 * Every line must parse, except a torn one: the last line, or a line a later run wrote its header after (a run
 * that opens a checkpoint ending in a torn line starts a new line first).
 */
export function readCheckpoint(path: string): CheckpointRead {
  const lines = readFileSync(path, 'utf8').split('\n');
  const last = lines.pop()!;
  const read: CheckpointRead = { headers: [], objects: [], watermarks: [], ...(last !== '' && { torn: last }) };
  lines.forEach((line, index) => {
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(line) as Record<string, unknown>;
    } catch {
      const next = index + 1 < lines.length ? lines[index + 1]! : last;
      assert.ok(next.startsWith('{"run"'), `checkpoint line ${index + 1} of ${path} is not JSON, and no new run started after it: ${line}`);
      return;
    }
    if ('run' in value) read.headers.push(value as unknown as CheckpointRead['headers'][number]);
    else if ('watermark' in value) read.watermarks.push(value as unknown as CheckpointRead['watermarks'][number]);
    else read.objects.push(value as unknown as CheckpointObjectLine);
  });
  if (read.torn !== undefined) {
    let parsed = true;
    try {
      JSON.parse(read.torn);
    } catch {
      parsed = false;
    }
    assert.equal(parsed, false, `the last line of ${path} has no newline but is whole: ${read.torn}`);
  }
  return read;
}

/** Every object the checkpoint says was copied is really at the destination, byte-exact. */
export async function assertCheckpointTrue(s3: S3Server, bucket: string, world: IntegrityWorld, checkpoint: CheckpointRead): Promise<void> {
  for (const line of checkpoint.objects) {
    if (line.status !== 'copied' && line.status !== 'relocated') continue;
    const wanted = world.wantedByKey.get(line.key);
    assert.ok(wanted, `the checkpoint records ${line.key}, which no row owns`);
    // A copy made on the provider (CopyObject) passes no bytes through, and records none.
    if (line.bytes !== 0) assert.equal(line.bytes, wanted.size, `${line.key}: bytes recorded`);
    await assertObjectExact(s3, bucket, wanted);
  }
}

/** The checkpoint records each missing object as missing, and each relocated one as relocated from its legacy key. */
/**
 * Missing objects stay in the checkpoint (the next --resume probes them again); relocated ones are told by the log
 * of a run at `--log-level debug` (`stderr`), since a finished run compacts their lines away.
 */
export function assertMissingAndRelocatedRecorded(checkpoint: string, stderr: string, fixture: Fixture): void {
  const lines = readJsonLines<{ key?: string; status?: string }>(readFileSync(checkpoint, 'utf8'));
  const status = new Map(lines.filter((line) => line.key).map((line) => [line.key!, line]));
  for (const expected of fixture.missing) assert.equal(status.get(expected.key)?.status, 'missing', expected.key);
  const logged = readJsonLines<{ key?: string; status?: string; from?: string }>(
    stderr
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .join('\n'),
  );
  const results = new Map(logged.filter((line) => line.status !== undefined).map((line) => [line.key!, line]));
  for (const expected of fixture.relocated) {
    assert.equal(results.get(expected.key)?.status, 'relocated', expected.key);
    assert.equal(results.get(expected.key)?.from, expected.sourceKey, `${expected.key}: relocated from`);
  }
}
