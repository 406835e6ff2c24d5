/**
 * Bad input stops a command before it writes anything: one clear line on stderr naming what to fix, exit 2, no
 * object at the destination and no checkpoint. Each case is what an admin really gets wrong.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFixture, loadFixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { JOB_NAMES } from '../../src/mastodon/tables.js';
import { BIN, runCli, runProgram, writeConfig, type ConfigSettings } from '../support/cli.js';

let postgres: PostgresServer;
let s3: S3Server;
let db: TestDatabase;
const dirs: string[] = [];

before(async () => {
  postgres = await startPostgres();
  s3 = await startS3();
  db = await createDatabase('current');
  await s3.createBucket('bad-source');
  await s3.createBucket('bad-destination');
  await loadFixture(buildFixture('current'), db.client, s3, 'bad-source');
  // docs/ssh.md's least-privilege role, each with one table of its GRANT left out.
  for (const [role, missing] of Object.entries(LIMITED_ROLES)) {
    await db.client.query(`CREATE ROLE ${role} LOGIN PASSWORD 'limited'`);
    const tables = [...JOB_NAMES, 'statuses'];
    const { rows } = await db.client.query<{ name: string }>(`SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename = ANY($1)`, [
      tables,
    ]);
    await db.client.query(
      `GRANT SELECT ON ${rows
        .map((row) => row.name)
        .filter((table) => table !== missing)
        .join(', ')} TO ${role}`,
    );
  }
});

after(async () => {
  for (const role of Object.keys(LIMITED_ROLES)) await db?.client.query(`DROP OWNED BY ${role}; DROP ROLE ${role}`).catch(() => undefined);
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  await db?.drop();
  await s3?.stop();
  await postgres?.stop();
});

/** Database roles made for these cases (cluster-wide, so named per process), each with the table it may not read. */
const LIMITED_ROLES: Record<string, string> = {
  [`mastosync_nomedia_${process.pid}`]: 'media_attachments',
  [`mastosync_nostatus_${process.pid}`]: 'statuses',
  [`mastosync_nocards_${process.pid}`]: 'preview_cards',
};

/** The test database's URL as `role` (LIMITED_ROLES) logs in. */
function urlAs(missing: string): string {
  const url = new URL(db.url);
  url.username = Object.keys(LIMITED_ROLES).find((role) => LIMITED_ROLES[role] === missing)!;
  url.password = 'limited';
  return url.toString();
}

function settings(overrides: Partial<ConfigSettings> = {}): ConfigSettings {
  return {
    databaseUrl: db.url,
    source: { endpoint: s3.endpoint, bucket: 'bad-source' },
    destination: { endpoint: s3.endpoint, bucket: 'bad-destination' },
    ...overrides,
  };
}

interface Case {
  readonly name: string;
  readonly args: string[];
  readonly config?: () => Partial<ConfigSettings>;
  /** Replaces the whole config file. */
  readonly text?: () => string;
  /** What the one line must say (the thing to fix). */
  readonly says: RegExp | (() => RegExp);
  /** What the line must not show. */
  readonly hides?: RegExp;
  /** The command's whole environment (nothing of this process's), when the case depends on it. */
  readonly env?: () => NodeJS.ProcessEnv;
}

/** A [source] on the tests' s3rver with these lines instead of the usual keys. */
function sourceWith(lines: string[]): Partial<ConfigSettings> {
  return { source: { lines: ['type = "s3"', `endpoint = ${JSON.stringify(s3.endpoint)}`, 'bucket = "bad-source"', 'force_path_style = true', ...lines] } };
}

const CASES: Case[] = [
  {
    // Not a canned ACL: every provider refuses it object by object (400 InvalidArgument), after check said ok.
    name: 'an acl that is not one of S3\'s canned ACLs ("public" for "public-read")',
    args: ['run', 'all'],
    config: () => ({ destination: { endpoint: s3.endpoint, bucket: 'bad-destination', acl: 'public' } }),
    says: /\[destination\] acl must be one of "public-read", "private", .*"bucket-owner-full-control".*, or "" \(no ACL, as S3_PERMISSION=""\), not "public"$/,
  },
  {
    // Mastodon cannot serve an archived object (403 InvalidObjectState until each is restored): written silently before.
    name: 'a destination storage_class that archives (DEEP_ARCHIVE), with no backup_only',
    args: ['run', 'all'],
    config: () => ({ destination: { endpoint: s3.endpoint, bucket: 'bad-destination', storageClass: 'DEEP_ARCHIVE' } }),
    says: /\[destination\] storage_class is "DEEP_ARCHIVE", an archive class: Mastodon cannot serve its objects .*STANDARD_IA.*; for a backup Mastodon never serves from, add backup_only = true to \[destination\]$/,
  },
  {
    name: 'GLACIER from the environment, named as the variable',
    args: ['run', 'all'],
    env: () => ({ PATH: process.env.PATH, MASTOSYNC_DESTINATION_STORAGE_CLASS: 'GLACIER' }),
    says: /^mastosync: environment variable MASTOSYNC_DESTINATION_STORAGE_CLASS is "GLACIER", an archive class/,
  },
  {
    // Mastodon's DATABASE_URL with sslmode=require, against a server without TLS: pg also printed a ten-line warning.
    name: 'sslmode=require in [database] url, to a server that offers no TLS',
    args: ['run', 'all'],
    config: () => ({ databaseUrl: `${db.url}${db.url.includes('?') ? '&' : '?'}sslmode=require` }),
    says: /\(The server does not support SSL connections\): the server offers no TLS: remove sslmode=… from \[database\] url/,
  },
  {
    // information_schema hid the table, which passed for a Mastodon version without it: run all exited 0 with no media.
    name: 'a database role that may not read media_attachments (a GRANT left out)',
    args: ['run', 'all'],
    config: () => ({ databaseUrl: urlAs('media_attachments') }),
    says: /role mastosync_nomedia_\d+ may not read media_attachments in .*: GRANT SELECT ON media_attachments TO mastosync_nomedia_\d+ \(docs\/ssh\.md/,
  },
  {
    // Without statuses, discarded statuses' media were written public-read.
    name: 'a database role that may not read statuses, which says which media stay private',
    args: ['run', 'media_attachments'],
    config: () => ({ databaseUrl: urlAs('statuses') }),
    says: /role mastosync_nostatus_\d+ may not read statuses in .*: GRANT SELECT ON statuses TO/,
  },
  {
    // prune --delete took every preview card at the destination for an orphan of "no such table", and deleted it.
    name: 'prune --delete with a database role that may not read preview_cards',
    args: ['prune', 'all', '--delete'],
    config: () => ({ databaseUrl: urlAs('preview_cards') }),
    says: /role mastosync_nocards_\d+ may not read preview_cards in .*: GRANT SELECT ON preview_cards TO/,
  },
  {
    // Mastodon's DB_HOST on one machine, copied by init: the tunnel was asked to forward to a folder's name.
    name: 'a Unix socket folder as the database host, through an SSH tunnel',
    args: ['run', 'all'],
    config: () => ({
      databaseUrl: 'postgres://mastodon@/mastodon_production?host=/var/run/postgresql',
      extra:
        '[database.ssh]\nhost = "127.0.0.1"\nport = 1\nuser = "mastodon"\npassword = "unused"\nhost_key = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"',
    }),
    says: /\[database\] host is the Unix socket folder \/var\/run\/postgresql, which an SSH tunnel cannot reach: set host = "127\.0\.0\.1"/,
  },
  { name: 'malformed TOML', args: ['run', 'all'], text: () => '[database\nurl = "postgres://x"\n', says: /mastosync\.toml:1:\d+: invalid TOML/ },
  { name: 'an unknown key (a typo)', args: ['run', 'all'], config: () => ({ extra: 'concurency = 4' }), says: /unknown key "concurency" in \[sync\]/ },
  { name: 'a wrong type', args: ['run', 'all'], config: () => ({ extra: 'retries = "five"' }), says: /\[sync\] retries must be an integer/ },
  {
    name: 'a wrong source credential',
    args: ['run', 'all'],
    config: () => ({ source: { endpoint: s3.endpoint, bucket: 'bad-source', accessKeyId: 'AKIAWRONG' } }),
    says: /\[source\] bucket "bad-source".* refused the credentials \(InvalidAccessKeyId\): check access_key_id/,
  },
  {
    name: 'a wrong destination credential',
    args: ['run', 'all'],
    config: () => ({ destination: { endpoint: s3.endpoint, bucket: 'bad-destination', accessKeyId: 'AKIAWRONG' } }),
    says: /\[destination\] bucket "bad-destination".* refused the credentials/,
  },
  {
    name: 'a bucket that does not exist',
    args: ['run', 'all'],
    config: () => ({ destination: { endpoint: s3.endpoint, bucket: 'no-such-bucket' } }),
    says: /\[destination\] bucket "no-such-bucket".* does not exist: check bucket/,
  },
  {
    // A database where nothing listens may be restarting: waited for, then exit 75 (startOutage.test.ts).
    name: 'a database that does not exist',
    args: ['run', 'all'],
    config: () => ({ databaseUrl: db.url.replace(/\/[^/]*$/, '/no_such_mastodon') }),
    says: /cannot connect to PostgreSQL .*\/no_such_mastodon .*: no such database: check \[database\]/,
  },
  { name: 'a table this Mastodon version lacks, named', args: ['run', 'imports'], says: /table imports does not exist.*leave the job out/ },
  {
    // The server's maintenance database: reachable, but not Mastodon's. Naming a job must not blame the version.
    name: "a database that is not Mastodon's, with a job named",
    args: ['run', 'accounts'],
    config: () => ({ databaseUrl: postgres.url('postgres') }),
    says: /has no accounts or media_attachments table: is \[database\] the Mastodon database\?/,
  },
  { name: '--concurrency 0', args: ['run', 'all', '--concurrency', '0'], says: /--concurrency must be a whole number of at least 1, not 0/ },
  { name: '--max-rps that is not a number', args: ['run', 'all', '--max-rps', 'lots'], says: /--max-rps must be a whole number of at least 1, not "lots"/ },
  // Without its value, a flag used to be dropped silently: --max-rps with no number ran with no limit at all.
  { name: '--max-rps with no value', args: ['run', 'all', '--max-rps'], says: /--max-rps needs a value/ },
  { name: '--limit with no value (an empty $N in a cron line)', args: ['run', 'all', '--limit'], says: /--limit needs a value/ },
  { name: 'verify --sample with no value', args: ['verify', 'all', '--sample'], says: /--sample needs a value/ },
  // yargs reads an empty value as 0 (--limit 0: no rows) or as no value at all (--config: the default file).
  { name: '--limit= with an empty value', args: ['run', 'all', '--limit='], says: /--limit is given an empty value: give it one, or leave it out/ },
  { name: '--config "" (an empty variable)', args: ['run', 'all', '--config', ''], says: /--config is given an empty value/ },
  { name: 'manifest --format with no value', args: ['manifest', 'all', '--format'], says: /--format needs a value/ },
  { name: 'run with no job', args: ['run'], says: /name the jobs \(media_attachments, .*\), or all/ },
  // Node's timers hold at most 24.8 days and fire at once for more: a progress line every millisecond, copies cut at once.
  {
    name: '--progress-interval over 24 days',
    args: ['run', 'all', '--progress-interval', '3000000'],
    says: /--progress-interval must be a whole number from 1 to 2147483, not 3000000/,
  },
  {
    name: '--metrics-hold over 24 days',
    args: ['run', 'all', '--metrics', '127.0.0.1:0', '--metrics-hold', '3000000'],
    says: /--metrics-hold must be a whole number from 0 to 2147483, not 3000000/,
  },
  {
    name: 'a stop_grace over 24 days',
    args: ['run', 'all'],
    config: () => ({ extra: 'stop_grace = 3000000' }),
    says: /\[sync\] stop_grace must be at most 2147483, not 3000000/,
  },
  { name: 'a mistyped command', args: ['--log-level', 'warn', 'runn', 'all'], says: /unknown command "runn": choose from run, init, check/ },
  {
    // A compose file's `MASTOSYNC_DESTINATION_BUCKET: ${BUCKET}` with BUCKET unset, and no bucket in the file: an empty
    // variable counts as unset, and the line must not send the admin to the file alone.
    name: 'an empty MASTOSYNC_* variable for a setting the file lacks',
    args: ['run', 'all'],
    config: () => ({ destination: { lines: ['type = "s3"', `endpoint = ${JSON.stringify(s3.endpoint)}`] } }),
    env: () => ({ PATH: process.env.PATH, HOME: process.env.HOME, MASTOSYNC_DESTINATION_BUCKET: '' }),
    says: /^mastosync: mastosync\.toml: \[destination\] needs bucket.* \(empty, so taken as unset: MASTOSYNC_DESTINATION_BUCKET\)$/,
  },
  {
    // A range check of a value from the environment blamed the config file, which may not even set the key.
    name: 'MASTOSYNC_SYNC_CONCURRENCY=0',
    args: ['run', 'all'],
    env: () => ({ PATH: process.env.PATH, HOME: process.env.HOME, MASTOSYNC_SYNC_CONCURRENCY: '0' }),
    says: /^mastosync: environment variable MASTOSYNC_SYNC_CONCURRENCY must be at least 1, not 0$/,
  },
  {
    // Azure's and Swift's values from the environment were blamed on the file, which may not even set the key.
    name: 'MASTOSYNC_DESTINATION_ACL=private on an Azure destination',
    args: ['run', 'all'],
    config: () => ({
      destination: {
        lines: [
          'type = "azure"',
          'account = "devstoreaccount1"',
          'access_key = "a2V5"',
          'container = "media"',
          'endpoint = "http://127.0.0.1:10000/devstoreaccount1"',
        ],
      },
    }),
    env: () => ({ PATH: process.env.PATH, HOME: process.env.HOME, MASTOSYNC_DESTINATION_ACL: 'private' }),
    says: /^mastosync: environment variable MASTOSYNC_DESTINATION_ACL does not apply to Azure, which has no per-blob ACL .*: remove it, or set it to ""$/,
  },
  {
    name: 'MASTOSYNC_DESTINATION_AUTH_URL that is no URL on a Swift destination',
    args: ['run', 'all'],
    config: () => ({
      destination: {
        lines: ['type = "swift"', 'auth_url = "http://127.0.0.1:1/v3"', 'username = "u"', 'password = "p"', 'tenant = "t"', 'container = "media"'],
      },
    }),
    env: () => ({ PATH: process.env.PATH, HOME: process.env.HOME, MASTOSYNC_DESTINATION_AUTH_URL: 'keystone.example:5000/v3' }),
    says: /^mastosync: environment variable MASTOSYNC_DESTINATION_AUTH_URL must be .*, not "keystone\.example:5000\/v3"$/,
  },
  { name: '--retry-failed with no checkpoint', args: ['run', 'all', '--retry-failed'], says: /--retry-failed .* no checkpoint at/ },
  { name: 'verify --sample 0', args: ['verify', 'all', '--sample', '0'], says: /--sample must be a percentage above 0 and at most 100, not 0/ },
  {
    name: 'prune --max-delete without --delete',
    args: ['prune', 'all', '--max-delete', '5'],
    says: /--max-delete limits what --delete deletes: pass --delete too, or leave --max-delete out/,
  },
  {
    name: 'prune --max-delete that is neither a count nor a percentage',
    args: ['prune', 'all', '--delete', '--max-delete', '10x'],
    says: /--max-delete takes a number of objects or a percentage of those listed \(e\.g\. 500 or 10%\), not "10x"/,
  },
  {
    name: 'prune --dry-run --delete',
    args: ['prune', 'all', '--dry-run', '--delete'],
    says: /--dry-run deletes nothing and --delete deletes the orphans: pass one of them/,
  },
  {
    name: 'prune --manifest without --delete',
    args: ['prune', 'all', '--manifest', 'x.jsonl'],
    says: /--manifest lists what --delete deleted: pass --delete too/,
  },
  {
    name: 'prune --delete --manifest in a folder that does not exist',
    args: ['prune', 'all', '--delete', '--manifest', '/nonexistent-mastosync-folder/deleted.jsonl'],
    says: /--manifest \/nonexistent-mastosync-folder\/deleted\.jsonl: the folder \/nonexistent-mastosync-folder does not exist/,
  },
  {
    name: 'verify with a wrong credential',
    args: ['verify', 'all'],
    config: () => ({ source: { endpoint: s3.endpoint, bucket: 'bad-source', accessKeyId: 'AKIAWRONG' } }),
    says: /\[source\] bucket "bad-source".* refused the credentials/,
  },
  {
    name: 'a region with a space in it',
    args: ['run', 'all'],
    config: () => sourceWith(['access_key_id = "S3RVER"', 'secret_access_key = "S3RVER"', 'region = "eu central 1"']),
    says: /\[source\] region must be a region's name like us-east-1, fr-par or auto, not "eu central 1"/,
  },
  {
    name: 'no credentials anywhere',
    args: ['run', 'all'],
    config: () => sourceWith([]),
    // No AWS_* variable, no ~/.aws, and no instance metadata service asked (tests talk to 127.0.0.1 only).
    env: () => ({ PATH: process.env.PATH, HOME: mkdtempSync(join(tmpdir(), 'mastosync-home-')), AWS_EC2_METADATA_DISABLED: 'true' }),
    says: /\[source\] bucket "bad-source".*: no credentials found .*: set access_key_id and secret_access_key in \[source\], or AWS credentials in the environment or a profile/,
  },
  {
    // Nothing listening there may be a restart: waited for, then exit 75 (startOutage.test.ts); an unknown name is not.
    name: 'an endpoint with a password in it, an unknown host',
    args: ['run', 'all'],
    config: () => ({
      source: {
        lines: [
          'type = "s3"',
          'endpoint = "http://media:hunter2@no-such-host.invalid:9000"',
          'bucket = "bad-source"',
          'access_key_id = "S3RVER"',
          'secret_access_key = "S3RVER"',
        ],
      },
    }),
    says: /\[source\] bucket "bad-source" at http:\/\/\*\*\*@no-such-host\.invalid:9000 is unreachable \(.*ENOTFOUND/,
    hides: /hunter2/,
  },
  {
    // OpenSSL's "wrong version number" came as two raw lines; the admin needs to hear the endpoint speaks plain HTTP.
    name: 'an https:// endpoint on a plain-HTTP server',
    args: ['run', 'all'],
    config: () => ({ source: { endpoint: s3.endpoint.replace(/^http:/, 'https:'), bucket: 'bad-source' } }),
    says: () => new RegExp(`\\[source\\] bucket "bad-source" at ${s3.endpoint.replace(/^http:/, 'https:')} answers plain HTTP, not HTTPS: use http://`),
  },
];

describe('bad input: one clear line, exit 2, nothing written', () => {
  for (const badCase of CASES) {
    test(badCase.name, async () => {
      const config = writeConfig(settings(badCase.config?.()));
      dirs.push(config.dir);
      if (badCase.text) writeFileSync(config.file, badCase.text());
      const started = Date.now();
      const result = await runCli(badCase.args, { cwd: config.dir, ...(badCase.env && { env: badCase.env(), replaceEnv: true }) });
      assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
      const lines = result.stderr.split('\n').filter((line) => line.trim() !== '');
      assert.equal(lines.length, 1, `exactly one line on stderr, got:\n${result.stderr}`);
      assert.match(lines[0]!, /^mastosync: /);
      assert.match(lines[0]!, typeof badCase.says === 'function' ? badCase.says() : badCase.says);
      if (badCase.hides) assert.doesNotMatch(result.stderr, badCase.hides);
      assert.equal(result.stdout, '', 'nothing on stdout');
      assert.ok(Date.now() - started < 15_000, 'a bad input must fail fast, not after minutes of retrying');
      assert.deepEqual(await s3.listKeys('bad-destination'), [], 'no object may be written');
      assert.equal(existsSync(config.checkpoint), false, 'no checkpoint may be written');
    });
  }
});

test('check fails the destination on an acl that is not a canned ACL, naming the allowed values (it said ok before)', async () => {
  const config = writeConfig(settings({ destination: { endpoint: s3.endpoint, bucket: 'bad-destination', acl: 'public_read' } }));
  dirs.push(config.dir);
  const result = await runCli(['check'], { cwd: config.dir });
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(result.stdout, /^FAIL destination: .*\[destination\] acl must be one of "public-read", .*, not "public_read"$/m);
  assert.deepEqual(await s3.listKeys('bad-destination'), []);
});

test('check fails a table the role may not read, naming the GRANT (it said "absent (not in this Mastodon version)")', async () => {
  const config = writeConfig(settings({ databaseUrl: urlAs('preview_cards') }));
  dirs.push(config.dir);
  const result = await runCli(['check'], { cwd: config.dir });
  assert.equal(result.code, 2, result.stdout + result.stderr);
  assert.match(
    result.stdout,
    /^FAIL table preview_cards: role mastosync_nocards_\d+ may not read preview_cards: GRANT SELECT ON preview_cards TO mastosync_nocards_\d+$/m,
  );
  assert.match(result.stdout, /^ok {3}table media_attachments: /m);
});

/**
 * A cron job run as `mastodon` whose checkpoint (or manifest) is left under /root from a test run as root: the folder
 * cannot even be entered. A raw `EACCES … lstat` and exit 1 before; now the line of a read-only folder, exit 2.
 */
describe(
  'a checkpoint or manifest in a folder this user may not enter: one line, exit 2, nothing written',
  { skip: process.getuid?.() !== 0 && 'needs root to run the CLI as another user' },
  () => {
    // 0700, root's: uid 65534 may not look into it.
    let closed: string;
    before(() => {
      closed = mkdtempSync(join(tmpdir(), 'mastosync-closed-'));
      dirs.push(closed);
    });

    const cases: ReadonlyArray<{ name: string; args: (closed: string) => string[]; says: (closed: string) => string }> = [
      ...[['--fresh'], ['--resume'], [], ['--dry-run', '--resume'], ['--retry-failed']].map((flags) => ({
        name: `run all ${flags.join(' ')}`,
        args: (folder: string) => ['run', 'all', ...flags, '--checkpoint', join(folder, 'x.jsonl')],
        says: (folder: string) =>
          `mastosync: cannot reach checkpoint ${join(folder, 'x.jsonl')} (EACCES: this user may not enter its folder): pass --checkpoint in a folder this user may write to`,
      })),
      {
        name: 'prune all --delete --manifest',
        args: (folder: string) => ['prune', 'all', '--delete', '--manifest', join(folder, 'sub', 'deleted.jsonl')],
        says: (folder: string) =>
          `mastosync: --manifest ${join(folder, 'sub', 'deleted.jsonl')}: the folder ${join(folder, 'sub')} cannot be reached by this user (EACCES): name a file in another folder`,
      },
    ];
    for (const { name, args, says } of cases) {
      test(name, async () => {
        const config = writeConfig(settings());
        dirs.push(config.dir);
        chmodSync(config.dir, 0o755);
        chmodSync(config.file, 0o644);
        const result = await runProgram('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, BIN, ...args(closed)], {
          cwd: config.dir,
          env: { HOME: config.dir },
        });
        assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
        assert.deepEqual(
          result.stderr.split('\n').filter((line) => line.trim() !== ''),
          [says(closed)],
        );
        assert.equal(result.stdout, '');
        assert.deepEqual(readdirSync(closed), [], 'nothing written in the folder');
        assert.deepEqual(readdirSync(config.dir), ['mastosync.toml'], 'nor beside the config');
        assert.deepEqual(await s3.listKeys('bad-destination'), []);
      });
    }
  },
);

test('an archive storage_class with backup_only = true (a backup Mastodon never serves from) is written as asked', async () => {
  await s3.createBucket('backup-archive');
  const config = writeConfig(settings({ destination: { endpoint: s3.endpoint, bucket: 'backup-archive', storageClass: 'DEEP_ARCHIVE' }, extra: '' }));
  dirs.push(config.dir);
  writeFileSync(config.file, readFileSync(config.file, 'utf8').replace('storage_class = "DEEP_ARCHIVE"', 'storage_class = "DEEP_ARCHIVE"\nbackup_only = true'));
  const result = await runCli(['run', 'all', '--quiet', '--log-level', 'warn'], { cwd: config.dir });
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /^mastosync:/m, 'no refusal');
  assert.ok((await s3.listKeys('backup-archive')).length > 0, 'objects written');
});
