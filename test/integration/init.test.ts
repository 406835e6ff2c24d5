/**
 * `mastosync init --from-env` and `mastosync check`, as an admin meets them: a config written from a real-looking
 * .env.production (every mapping written out literally below), never over an existing file without --force,
 * readable by its owner only; the file it writes loads in the real config loader, so `check` and
 * `run --dry-run` work against it once the destination is given; and `check` reports every problem at once,
 * one line each, writing nothing.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { configFromEnv, refuseOtherFile } from '../../src/cli/commands/init.js';
import { loadConfigParts } from '../../src/cli/config.js';
import { UsageError } from '../../src/errors.js';
import { parseEnvFile } from '../../src/cli/envFile.js';
import { buildFixture, loadFixture, type Fixture } from '../support/fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { startS3, type S3Server } from '../support/s3.js';
import { readJsonLines, runCli } from '../support/cli.js';

const folders: string[] = [];
function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mastosync-init-'));
  folders.push(dir);
  return dir;
}

after(() => {
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
});

/** The config `init` derives from `envText` for a .env.production at /home/mastodon/live, as TOML data. */
function derive(envText: string): Record<string, unknown> {
  const toml = parseToml(configFromEnv(parseEnvFile(envText).values, '/home/mastodon/live/.env.production').text);
  return JSON.parse(JSON.stringify(toml)) as Record<string, unknown>; // plain objects, for deepEqual
}

describe('init: .env.production → config (docs/storage-layout.md §1.3)', () => {
  test('S3 with an endpoint, a key prefix and S3_PERMISSION; DB_* parts; quoting as mastodon:setup and admins write it', () => {
    const config = derive(`# Generated with mastodon:setup on 2024-05-01 10:00:00 UTC
LOCAL_DOMAIN=social.example.org
export DB_HOST=db.internal
DB_PORT=6432
DB_NAME='mastodon_production'
DB_USER="mastodon"
DB_PASS="p#ss \\"word\\"" # quoted: the # is part of it
S3_ENABLED=true
S3_BUCKET=files-social
AWS_ACCESS_KEY_ID=AKIAEXAMPLE
AWS_SECRET_ACCESS_KEY='abc$def/ghi+jkl'
S3_ENDPOINT=https://s3.eu-central-1.wasabisys.com
S3_REGION=eu-central-1
S3_KEY_PREFIX=\${LOCAL_DOMAIN}
S3_PERMISSION=private
S3_ALIAS_HOST=files.social.example.org
`);
    assert.deepEqual(config, {
      database: { host: 'db.internal', port: 6432, user: 'mastodon', password: 'p#ss "word"', database: 'mastodon_production', batch_size: 10000 },
      source: {
        type: 's3',
        bucket: 'files-social',
        region: 'eu-central-1',
        endpoint: 'https://s3.eu-central-1.wasabisys.com',
        force_path_style: true,
        access_key_id: 'AKIAEXAMPLE',
        secret_access_key: 'abc$def/ghi+jkl',
        key_prefix: 'social.example.org',
      },
      destination: { acl: 'private' },
    });
  });

  test('S3_OVERRIDE_PATH_STYLE=true means virtual-hosted style (inverted); S3_PERMISSION= sends no ACL', () => {
    const config = derive(
      'S3_ENABLED=true\nS3_BUCKET=b\nS3_ENDPOINT=https://nyc3.digitaloceanspaces.com\nS3_OVERRIDE_PATH_STYLE=true\nS3_PERMISSION=\nAWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\n',
    );
    assert.equal((config.source as Record<string, unknown>).force_path_style, false);
    assert.deepEqual(config.destination, { acl: '' });
  });

  test('AWS without an endpoint: region default us-east-1, virtual-hosted style, no key prefix; the default ACL left commented', () => {
    const config = derive(
      'S3_ENABLED=true\nS3_BUCKET=b\nS3_KEY_PREFIX=\nAWS_ACCESS_KEY_ID=k\nAWS_SECRET_ACCESS_KEY=s\nDATABASE_URL=postgres://mastodon:pw@db:5432/mastodon_production\n',
    );
    assert.deepEqual(config.source, { type: 's3', bucket: 'b', region: 'us-east-1', force_path_style: false, access_key_id: 'k', secret_access_key: 's' });
    assert.deepEqual(config.database, { url: 'postgres://mastodon:pw@db:5432/mastodon_production', batch_size: 10000 });
    // Mastodon's default, mastosync's too, left commented: a Swift or Azure destination (no ACL there) then passes check.
    assert.deepEqual(config.destination, {});
  });

  test("S3 off: the public/system folder of the live directory; Mastodon's database defaults where DB_* is unset", () => {
    const config = derive('LOCAL_DOMAIN=social.example.org\nS3_ENABLED=false\n');
    assert.deepEqual(config.source, { type: 'fs', path: '/home/mastodon/live/public/system' });
    assert.deepEqual(config.database, { host: 'localhost', port: 5432, user: 'mastodon', database: 'mastodon_production', batch_size: 10000 });
  });

  test('SWIFT_ENABLED=true (S3 off): every SWIFT_* setting Mastodon reads, as [source] type = "swift"', () => {
    const config = derive(`SWIFT_ENABLED=true
SWIFT_USERNAME=user-abc
SWIFT_TENANT=1234567890
SWIFT_PASSWORD='pa$$word'
SWIFT_PROJECT_ID=0a1b2c3d
SWIFT_AUTH_URL=https://auth.cloud.ovh.net/v3
SWIFT_CONTAINER=mastodon-media
SWIFT_REGION=GRA
SWIFT_DOMAIN_NAME=Default
SWIFT_OBJECT_URL=https://storage.gra.cloud.ovh.net/v1/AUTH_0a1b2c3d/mastodon-media
S3_KEY_PREFIX=ignored-on-swift
`);
    assert.deepEqual(config.source, {
      type: 'swift',
      auth_url: 'https://auth.cloud.ovh.net/v3',
      username: 'user-abc',
      password: 'pa$$word',
      tenant: '1234567890',
      project_id: '0a1b2c3d',
      domain: 'Default',
      region: 'GRA',
      container: 'mastodon-media',
    });
    // Mastodon checks S3 first: S3_ENABLED=true wins over SWIFT_ENABLED.
    assert.equal((derive('S3_ENABLED=true\nS3_BUCKET=b\nSWIFT_ENABLED=true\n').source as { type: string }).type, 's3');
  });

  test('PAPERCLIP_ROOT_PATH wins, absolute or relative to the live directory', () => {
    assert.deepEqual(derive('PAPERCLIP_ROOT_PATH=/srv/mastodon-media\n').source, { type: 'fs', path: '/srv/mastodon-media' });
    assert.deepEqual(derive('PAPERCLIP_ROOT_PATH=media/system\n').source, { type: 'fs', path: '/home/mastodon/live/media/system' });
  });

  test('AZURE_ENABLED=true (Mastodon 4.2+): account, access key and container, no key prefix; the loader takes it', () => {
    const env = 'AZURE_ENABLED=true\nAZURE_STORAGE_ACCOUNT=socialmedia\nAZURE_STORAGE_ACCESS_KEY=a2V5+/k=\nAZURE_CONTAINER_NAME=media\nS3_KEY_PREFIX=unused\n';
    const config = derive(env);
    assert.deepEqual(config.source, { type: 'azure', account: 'socialmedia', access_key: 'a2V5+/k=', container: 'media' });
    const file = join(folder(), 'mastosync.toml');
    writeFileSync(file, configFromEnv(parseEnvFile(env).values, '/home/mastodon/live/.env.production').text);
    assert.deepEqual(loadConfigParts(file, {}).source, {
      type: 'azure',
      account: 'socialmedia',
      credentials: { kind: 'key', accessKey: 'a2V5+/k=' },
      container: 'media',
      endpoint: undefined,
      keyPrefix: undefined,
    });
    assert.throws(
      () => derive('AZURE_ENABLED=true\nAZURE_STORAGE_ACCOUNT=a\n'),
      /sets AZURE_ENABLED=true but no AZURE_STORAGE_ACCESS_KEY, AZURE_CONTAINER_NAME/,
    );
  });

  test('DATABASE_URL wins over the DB_* parts; no password key without DB_PASS', () => {
    assert.deepEqual(derive('DATABASE_URL=postgresql://u@h/d\nDB_HOST=ignored\n').database, { url: 'postgresql://u@h/d', batch_size: 10000 });
    assert.equal('password' in (derive('DB_HOST=h\n').database as object), false);
  });

  test("the destination is left as commented placeholders, with the source's key prefix suggested", () => {
    const text = configFromEnv(
      parseEnvFile('S3_ENABLED=true\nS3_BUCKET=b\nS3_KEY_PREFIX=media\nS3_STORAGE_CLASS=STANDARD_IA\n').values,
      '/l/.env.production',
    ).text;
    const destination = text.slice(text.indexOf('[destination]'));
    assert.match(destination, /^# bucket = "new-mastodon-media"$/m);
    assert.match(destination, /^# key_prefix = "media"$/m);
    assert.match(destination, /^# storage_class = "STANDARD_IA"/m);
    assert.match(text, /^# \[database\.ssh\]$/m);
  });
});

describe('init on the command line', () => {
  test('without --from-env: the sample config, mode 0600, and what to do next; refused over a file without --force', async () => {
    const dir = folder();
    const result = await runCli(['init'], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    const file = join(dir, 'mastosync.toml');
    assert.equal(readFileSync(file, 'utf8'), readFileSync(new URL('../../config.sample.toml', import.meta.url), 'utf8'));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(
      result.stdout,
      'wrote mastosync.toml from the sample config (readable by its owner only: it will hold secrets)\n' +
        "  fill in [database], [source] and [destination] (or init --from-env with Mastodon's .env.production), then: mastosync check --config mastosync.toml\n",
    );
    const again = await runCli(['init'], { cwd: dir });
    assert.equal(again.code, 2);
    assert.equal(again.stderr.trim(), 'mastosync: mastosync.toml already exists: pass --force to replace it, or --out FILE to write another file');
  });

  test('writes mode 0600; refuses to replace a file without --force (exit 2, file untouched); --force replaces it as 0600', async () => {
    const dir = folder();
    writeFileSync(join(dir, '.env.production'), 'S3_ENABLED=true\nS3_BUCKET=first\n');
    const first = await runCli(['init', '--from-env', '.env.production'], { cwd: dir });
    assert.equal(first.code, 0, first.stderr);
    const file = join(dir, 'mastosync.toml');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.match(first.stdout, /wrote mastosync\.toml/);

    writeFileSync(join(dir, '.env.production'), 'S3_ENABLED=true\nS3_BUCKET=second\n');
    const before = readFileSync(file, 'utf8');
    const refused = await runCli(['init', '--from-env', '.env.production'], { cwd: dir });
    assert.equal(refused.code, 2);
    assert.equal(refused.stderr.trim(), 'mastosync: mastosync.toml already exists: pass --force to replace it, or --out FILE to write another file');
    assert.equal(readFileSync(file, 'utf8'), before);

    chmodSync(file, 0o644);
    const forced = await runCli(['init', '--from-env', '.env.production', '--force'], { cwd: dir });
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(readFileSync(file, 'utf8'), /bucket = "second"/);
    assert.equal(statSync(file).mode & 0o777, 0o600, 'a replaced file does not keep the old, wider mode');

    const other = await runCli(['init', '--from-env', '.env.production', '--out', 'other.toml'], { cwd: dir });
    assert.equal(other.code, 0, other.stderr);
    assert.equal(statSync(join(dir, 'other.toml')).mode & 0o777, 0o600);
  });

  test('--out - writes the config to standard output, the lines about it to stderr, and no file named "-"', async () => {
    const dir = folder();
    writeFileSync(join(dir, '.env.production'), 'S3_ENABLED=true\nS3_BUCKET=piped\nAWS_SECRET_ACCESS_KEY=s3cret\n');
    const piped = await runCli(['init', '--from-env', '.env.production', '--out', '-'], { cwd: dir });
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, /^\[database\]/m);
    assert.match(piped.stdout, /bucket = "piped"/);
    assert.doesNotMatch(piped.stdout, /wrote/);
    assert.match(piped.stderr, /wrote the config to standard output/);
    assert.deepEqual(readdirSync(dir).sort(), ['.env.production']);
    const sample = await runCli(['init', '--out', '-'], { cwd: dir });
    assert.equal(sample.code, 0, sample.stderr);
    assert.match(sample.stdout, /^\[destination\]/m);
    assert.deepEqual(readdirSync(dir).sort(), ['.env.production']);
  });

  test('a missing .env file, S3 without a bucket, or Swift without a container: exit 2 naming the fix, nothing written', async () => {
    const dir = folder();
    const missing = await runCli(['init', '--from-env', 'nope/.env.production'], { cwd: dir });
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /cannot read nope\/\.env\.production .*: pass --from-env with Mastodon's \.env\.production/);
    writeFileSync(join(dir, 'no-bucket.env'), 'S3_ENABLED=true\n');
    const noBucket = await runCli(['init', '--from-env', 'no-bucket.env'], { cwd: dir });
    assert.equal(noBucket.code, 2);
    assert.match(noBucket.stderr, /sets S3_ENABLED=true but no S3_BUCKET/);
    writeFileSync(join(dir, 'swift.env'), 'SWIFT_ENABLED=true\nSWIFT_AUTH_URL=https://auth.example.com/v3\nSWIFT_USERNAME=u\nSWIFT_PASSWORD=p\n');
    const swift = await runCli(['init', '--from-env', 'swift.env'], { cwd: dir });
    assert.equal(swift.code, 2);
    assert.match(swift.stderr, /sets SWIFT_ENABLED=true but no SWIFT_CONTAINER: add the one Mastodon uses/);
    assert.equal(existsSync(join(dir, 'mastosync.toml')), false);
  });

  test('a file without one KEY=value line (another file given by mistake, or an empty one): exit 2, one line, nothing written', async () => {
    const dir = folder();
    writeFileSync(join(dir, 'passwd'), 'root:x:0:0:root:/root:/bin/bash\nmastodon:x:991:991::/home/mastodon:/bin/bash\n');
    writeFileSync(join(dir, 'empty.env'), '# nothing yet\n\n');
    for (const file of ['passwd', 'empty.env']) {
      const result = await runCli(['init', '--from-env', file], { cwd: dir });
      assert.equal(result.code, 2, result.stderr);
      assert.equal(
        result.stderr.trim(),
        `mastosync: ${file} holds no KEY=value line: pass --from-env with Mastodon's .env.production, e.g. /home/mastodon/live/.env.production`,
      );
      assert.equal(result.stdout, '');
      assert.equal(existsSync(join(dir, 'mastosync.toml')), false, 'nothing written');
    }
  });
});

describe('init refuses a file that is not a .env.production', () => {
  const refusal = (text: string): string | undefined => {
    try {
      refuseOtherFile(parseEnvFile(text), text, 'given');
      return undefined;
    } catch (error) {
      assert.ok(error instanceof UsageError);
      return error.message;
    }
  };

  test(".env.production files as admins have them pass: quotes, comments, export lines, blank values, Mastodon's variables alone", () => {
    for (const text of [
      '# Generated with mastodon:setup\nLOCAL_DOMAIN=social.example.org\nSECRET_KEY_BASE=abc\n',
      'export DB_HOST="db"\nexport DB_PASS=\n',
      "DATABASE_URL='postgres://m:p@db/mastodon'  # the pooler\n",
      'REDIS_HOST=redis\nS3_ENABLED=true\nS3_BUCKET=media\n',
      'PAPERCLIP_ROOT_PATH=/srv/system\n',
      'AZURE_ENABLED=true\n',
      'SWIFT_ENABLED=\n',
    ]) {
      assert.equal(refusal(text), undefined, text);
    }
  });

  test("a TOML file (mastosync.toml given by mistake) or one with none of Mastodon's variables is refused, naming the file", () => {
    const toml = '# mastosync configuration\n\n[database]\nurl = "postgres://m@db/mastodon"\n[destination]\nbucket = "new"\n';
    assert.equal(
      refusal(toml),
      "given sets none of Mastodon's variables (LOCAL_DOMAIN, DATABASE_URL or DB_*, S3_*, PAPERCLIP_ROOT_PATH…) (it looks like TOML: [database] on line 3): pass --from-env with Mastodon's .env.production, e.g. /home/mastodon/live/.env.production",
    );
    // Lower-case `bucket` is not S3_BUCKET, nor are other programs' variables Mastodon's.
    assert.match(refusal('bucket = "new"\nregion = "eu"\n') ?? '', /^given sets none of Mastodon's variables \(.*\): pass --from-env/);
    assert.match(refusal('NODE_ENV=production\nPORT=3000\n') ?? '', /^given sets none of Mastodon's variables \(.*\): pass --from-env/);
  });

  test('init --from-env mastosync.toml: exit 2, one line, nothing written (a config of defaults and exit 0 before)', async () => {
    const dir = folder();
    writeFileSync(join(dir, 'mastosync.toml'), '[database]\nhost = "db"\ndatabase = "mastodon_production"\n\n[source]\ntype = "fs"\npath = "/srv/system"\n');
    const result = await runCli(['init', '--from-env', 'mastosync.toml', '--out', 'b.toml'], { cwd: dir });
    assert.equal(result.code, 2, result.stdout + result.stderr);
    assert.equal(
      result.stderr,
      "mastosync: mastosync.toml sets none of Mastodon's variables (LOCAL_DOMAIN, DATABASE_URL or DB_*, S3_*, PAPERCLIP_ROOT_PATH…) (it looks like TOML: [database] on line 1): pass --from-env with Mastodon's .env.production, e.g. /home/mastodon/live/.env.production\n",
    );
    assert.equal(result.stdout, '');
    assert.equal(existsSync(join(dir, 'b.toml')), false, 'nothing written');
  });
});

describe('the written config works: init, then check and run --dry-run', () => {
  let postgres: PostgresServer;
  let s3: S3Server;
  let fixture: Fixture;
  let db: TestDatabase;
  let dir: string;
  /** The destination an admin fills in, here through MASTOSYNC_DESTINATION_* (the loader overlays them). */
  let destination: Record<string, string>;

  before(async () => {
    postgres = await startPostgres();
    s3 = await startS3();
    fixture = buildFixture('current');
    db = await createDatabase('current');
    await s3.createBucket('init-source');
    await s3.createBucket('init-destination');
    await loadFixture(fixture, db.client, s3, 'init-source');
    destination = {
      MASTOSYNC_DESTINATION_ENDPOINT: s3.endpoint,
      MASTOSYNC_DESTINATION_BUCKET: 'init-destination',
      MASTOSYNC_DESTINATION_ACCESS_KEY_ID: 'S3RVER',
      MASTOSYNC_DESTINATION_SECRET_ACCESS_KEY: 'S3RVER',
    };

    const url = new URL(db.url);
    dir = folder();
    writeFileSync(
      join(dir, '.env.production'),
      [
        '# Generated with mastodon:setup',
        'LOCAL_DOMAIN=social.example.org',
        `DB_HOST=${url.hostname}`,
        `DB_PORT=${url.port}`,
        `DB_NAME=${decodeURIComponent(url.pathname.slice(1))}`,
        `DB_USER=${decodeURIComponent(url.username)}`,
        `DB_PASS=${decodeURIComponent(url.password)}`,
        'S3_ENABLED=true',
        'S3_PROTOCOL=http',
        `S3_ENDPOINT=${s3.endpoint}`,
        'S3_BUCKET=init-source',
        'AWS_ACCESS_KEY_ID=S3RVER',
        'AWS_SECRET_ACCESS_KEY="S3RVER"',
        'S3_ALIAS_HOST=files.social.example.org',
        '',
      ].join('\n'),
    );
    const init = await runCli(['init', '--from-env', '.env.production'], { cwd: dir });
    assert.equal(init.code, 0, init.stderr);
  });

  after(async () => {
    await db?.drop();
    await s3?.stop();
    await postgres?.stop();
  });

  test('check right after init: the database and the source are checked, the destination is not configured yet; exit 2, nothing written', async () => {
    const result = await runCli(['check'], { cwd: dir });
    assert.equal(result.code, 2, result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.deepEqual(
      lines.map((line) => line.split(':')[0]),
      [
        'ok   config',
        'ok   database',
        'ok   session',
        ...['media_attachments', 'accounts', 'custom_emojis', 'preview_cards', 'preview_card_providers', 'site_uploads', 'backups', 'imports'].map(
          (table) => `ok   table ${table}`,
        ),
        'ok   source',
        'ok   source objects',
        'FAIL destination',
      ],
    );
    assert.match(result.stdout, /^ok {3}source: s3:\/\/init-source at http:\/\/127\.0\.0\.1:\d+ answers a listing$/m);
    assert.equal(
      lines.at(-1),
      'FAIL destination: mastosync.toml: [destination] is not configured yet: fill in the placeholders `mastosync init` wrote: bucket, endpoint and credentials (or type = "fs" with path), or set MASTOSYNC_DESTINATION_* variables',
    );
    assert.equal(result.stderr, '');
    assert.deepEqual(await s3.listKeys('init-destination'), []);
    assert.equal(existsSync(join(dir, 'mastosync.checkpoint.jsonl')), false);

    const json = await runCli(['check', '--json'], { cwd: dir });
    assert.equal(json.code, 2);
    const report = JSON.parse(json.stdout) as { ok: boolean; checks: Array<{ check: string; ok: boolean }> };
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.filter((check) => !check.ok).map((check) => check.check),
      ['destination'],
    );
  });

  test('run right after init: exit 2, one line saying the destination is not configured yet, nothing written', async () => {
    const result = await runCli(['run', 'all'], { cwd: dir });
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^mastosync: mastosync\.toml: \[destination\] is not configured yet: fill in the placeholders/);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.equal(existsSync(join(dir, 'mastosync.checkpoint.jsonl')), false);
  });

  test('a placeholder uncommented as init wrote it is named, not sent to the network', async () => {
    const result = await runCli(['check'], { cwd: dir, env: { ...destination, MASTOSYNC_DESTINATION_ENDPOINT: 'https://<account>.r2.cloudflarestorage.com' } });
    assert.equal(result.code, 2);
    assert.match(result.stdout, /^ok {3}source: /m);
    assert.match(
      result.stdout,
      // Given by the variable: the line names it, not the file (which has the endpoint commented out).
      /^FAIL destination: environment variable MASTOSYNC_DESTINATION_ENDPOINT is still the placeholder "https:\/\/<account>\.r2\.cloudflarestorage\.com": fill in your own$/m,
    );
  });

  test('check: every check ok, the tables and version columns listed, nothing written', async () => {
    const result = await runCli(['check'], { cwd: dir, env: destination });
    assert.equal(result.code, 0, result.stdout + result.stderr);
    const lines = result.stdout.trim().split('\n');
    assert.deepEqual(
      lines.map((line) => line.split(':')[0]),
      [
        'ok   config',
        'ok   database',
        'ok   session',
        'ok   table media_attachments',
        'ok   table accounts',
        'ok   table custom_emojis',
        'ok   table preview_cards',
        'ok   table preview_card_providers',
        'ok   table site_uploads',
        'ok   table backups',
        'ok   table imports',
        'ok   source',
        'ok   source objects',
        'ok   destination',
      ],
    );
    assert.ok(lines.includes('ok   table media_attachments: version columns: file_storage_schema_version, thumbnail_storage_schema_version'), result.stdout);
    assert.ok(lines.includes('ok   table accounts: version columns: avatar_storage_schema_version, header_storage_schema_version'), result.stdout);
    assert.ok(lines.includes('ok   table imports: absent (not in this Mastodon version): run all skips it'), result.stdout);
    assert.match(result.stdout, /^ok {3}session: read-only, application_name mastosync, PostgreSQL \d+/m);
    assert.match(result.stdout, new RegExp(`^ok {3}database: .*@${new URL(db.url).hostname.replace(/\./g, '\\.')}:\\d+/${db.name}$`, 'm'));
    assert.match(result.stdout, /^ok {3}source: s3:\/\/init-source at http:\/\/127\.0\.0\.1:\d+ answers a listing$/m);
    // It writes nothing: the destination's line says so, rather than pass for a proof that the run can write.
    assert.match(result.stdout, /^ok {3}destination: s3:\/\/\S+ at http:\/\/127\.0\.0\.1:\d+ answers a listing; writing with acl "public-read" not checked$/m);
    assert.deepEqual(await s3.listKeys('init-destination'), []);
    assert.equal(existsSync(join(dir, 'mastosync.checkpoint.jsonl')), false);
  });

  test('run --dry-run with the written config lists exactly the owned keys', async () => {
    const result = await runCli(['run', 'all', '--dry-run', '--json'], { cwd: dir, env: destination });
    assert.equal(result.code, 0, result.stderr);
    const planned = readJsonLines<{ destination?: string }>(result.stdout).flatMap((line) => (line.destination === undefined ? [] : [line.destination]));
    assert.deepEqual(planned.sort(), fixture.expected.map((object) => object.key).sort());
  });

  test('check reports every failure at once (database, source, destination), exit 2; --json gives the same', async () => {
    const env = {
      ...destination,
      MASTOSYNC_DESTINATION_BUCKET: 'no-such-bucket',
      MASTOSYNC_SOURCE_BUCKET: 'also-missing',
      MASTOSYNC_DATABASE_DATABASE: 'no_such_database',
    };
    const result = await runCli(['check'], { cwd: dir, env });
    assert.equal(result.code, 2, result.stdout);
    assert.match(result.stdout, /^ok {3}config: mastosync\.toml$/m);
    assert.match(result.stdout, /^FAIL database: cannot connect to PostgreSQL .*no_such_database.*: no such database/m);
    assert.match(
      result.stdout,
      /^FAIL source: \[source\] bucket "also-missing" at http:\/\/127\.0\.0\.1:\d+ does not exist: check bucket, endpoint and region$/m,
    );
    assert.match(result.stdout, /^FAIL destination: \[destination\] bucket "no-such-bucket" .* does not exist/m);

    const json = await runCli(['check', '--json'], { cwd: dir, env });
    assert.equal(json.code, 2);
    const report = JSON.parse(json.stdout) as { ok: boolean; checks: Array<{ check: string; ok: boolean; detail: string }> };
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.checks.map((check) => [check.check, check.ok]),
      [
        ['config', true],
        ['database', false],
        ['source', false],
        ['destination', false],
      ],
    );
  });

  test('check on an old Mastodon: no version columns, older layout, missing tables noted', async () => {
    const old = await createDatabase('old');
    try {
      const result = await runCli(['check'], { cwd: dir, env: { ...destination, MASTOSYNC_DATABASE_DATABASE: old.name } });
      assert.equal(result.code, 0, result.stdout + result.stderr);
      assert.ok(
        result.stdout.includes(
          'ok   table media_attachments: version columns: none; older layout, lacks file_storage_schema_version, thumbnail_file_name, ' +
            'thumbnail_content_type, thumbnail_file_size, thumbnail_updated_at, thumbnail_storage_schema_version\n',
        ),
        result.stdout,
      );
      assert.match(result.stdout, /^ok {3}table preview_card_providers: absent/m);
      assert.match(
        result.stdout,
        /^ok {3}table accounts: version columns: none; older layout, lacks avatar_storage_schema_version, header_storage_schema_version$/m,
      );
      assert.match(result.stdout, /^ok {3}table imports: version columns: none$/m, 'imports never had a version column');
    } finally {
      await old.drop();
    }
  });
});
