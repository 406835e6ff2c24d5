/** The config loader: TOML plus MASTOSYNC_<SECTION>_<KEY> overrides; every mistake names its key. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../src/cli/config.js';
import { UsageError } from '../../src/errors.js';

const MINIMAL = `
[database]
url = "postgres://mastodon@127.0.0.1:5432/mastodon_production"
[source]
bucket = "old"
[destination]
bucket = "new"
`;

const AZURE = MINIMAL.replace('bucket = "new"', 'type = "azure"\naccount = "mastodon"\naccess_key = "a2V5"\ncontainer = "media"');
const SWIFT = MINIMAL.replace(
  'bucket = "new"',
  'type = "swift"\nauth_url = "https://keystone.example:5000/v3"\nusername = "u"\npassword = "p"\ntenant = "t"\ncontainer = "media"',
);

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'mastosync-config-')), 'mastosync.toml');
  writeFileSync(path, text);
  return path;
}

test('defaults: s3 stores, public-read ACL, concurrency 8, batch 10000, 5 retries', () => {
  const path = file(MINIMAL);
  const config = loadConfig(path, {});
  assert.equal(config.source.type, 's3');
  assert.equal(config.destination.acl, 'public-read');
  assert.equal(config.sync.concurrency, 8);
  assert.equal(config.sync.retries, 5);
  assert.equal(config.sync.checkpoint, join(dirname(path), 'mastosync.checkpoint.jsonl'), 'beside the config, wherever the run starts (cron starts in $HOME)');
  assert.equal(config.sync.changeMarginMs, 60 * 60_000);
  assert.equal(config.database.batchSize, 10_000);
  assert.equal(config.database.answerTimeoutMs, 60_000, 'a read silent for a minute is told, and its path checked');
  assert.equal(config.source.type === 's3' && config.source.region, 'us-east-1');
  assert.equal(config.source.type === 's3' && config.source.keyPrefix, undefined);
});

test('a custom endpoint implies path-style addressing unless told otherwise', () => {
  const config = loadConfig(file(MINIMAL.replace('bucket = "old"', 'bucket = "old"\nendpoint = "https://s3.example"')), {});
  assert.equal(config.source.type === 's3' && config.source.forcePathStyle, true);
  assert.equal(config.destination.type === 's3' && config.destination.forcePathStyle, false);
});

test('environment variables override the file, typed per key, for nested sections too', () => {
  const config = loadConfig(file(MINIMAL), {
    MASTOSYNC_SOURCE_SECRET_ACCESS_KEY: 'from-env',
    MASTOSYNC_SOURCE_ACCESS_KEY_ID: 'id',
    MASTOSYNC_SYNC_CONCURRENCY: '32',
    MASTOSYNC_DESTINATION_ACL: '',
    MASTOSYNC_DATABASE_SSH_HOST: 'db.example.org',
    MASTOSYNC_DATABASE_SSH_USER: 'mastodon',
    MASTOSYNC_DATABASE_SSH_AGENT: 'true',
  });
  assert.equal(config.source.type === 's3' && config.source.credentials?.secretAccessKey, 'from-env');
  assert.equal(config.sync.concurrency, 32);
  assert.equal(config.destination.acl, '');
  assert.deepEqual(
    { host: config.database.ssh?.host, port: config.database.ssh?.port, agent: config.database.ssh?.agent },
    { host: 'db.example.org', port: 22, agent: true },
  );
});

test('an empty variable whose Mastodon counterpart takes "" is that value: no key prefix, the default storage class', () => {
  const config = loadConfig(file(MINIMAL), {
    MASTOSYNC_SOURCE_KEY_PREFIX: '',
    MASTOSYNC_DESTINATION_KEY_PREFIX: '',
    MASTOSYNC_DESTINATION_STORAGE_CLASS: '',
  });
  const prefix = (store: typeof config.source) => (store.type === 's3' ? (store.keyPrefix ?? '') : 'not s3');
  assert.deepEqual(
    { source: prefix(config.source), destination: prefix(config.destination), storageClass: config.destination.storageClass },
    { source: '', destination: '', storageClass: undefined },
  );
});

test('the environment alone is a complete config', () => {
  const config = loadConfig(undefined, {
    MASTOSYNC_DATABASE_URL: 'postgres://x@y/z',
    MASTOSYNC_SOURCE_BUCKET: 'a',
    MASTOSYNC_DESTINATION_TYPE: 'fs',
    MASTOSYNC_DESTINATION_PATH: '/srv/system',
  });
  assert.equal(config.origin, 'the environment');
  assert.deepEqual(config.destination.type === 'fs' && config.destination.path, '/srv/system');
});

test('an empty variable counts as unset: the file’s value stands, with a notice, and else the default', () => {
  const path = file(MINIMAL.replace('bucket = "new"', 'bucket = "new"\nkey_prefix = "mastodon-backup"\nacl = "private"'));
  const config = loadConfig(path, {
    MASTOSYNC_DESTINATION_BUCKET: '',
    MASTOSYNC_DESTINATION_KEY_PREFIX: '',
    MASTOSYNC_DESTINATION_ACL: ' ',
    MASTOSYNC_DATABASE_PASSWORD: '',
    MASTOSYNC_SOURCE_REGION: '  ',
    MASTOSYNC_SYNC_CONCURRENCY: '',
  });
  assert.deepEqual(
    {
      bucket: config.destination.type === 's3' && config.destination.bucket,
      prefix: config.destination.type === 's3' && config.destination.keyPrefix,
      acl: config.destination.acl,
      password: config.database.password,
      region: config.source.type === 's3' && config.source.region,
      concurrency: config.sync.concurrency,
    },
    { bucket: 'new', prefix: 'mastodon-backup', acl: 'private', password: undefined, region: 'us-east-1', concurrency: 8 },
  );
  assert.deepEqual(config.notices, []);
  assert.deepEqual(config.warnings, [
    `environment variable MASTOSYNC_DESTINATION_ACL is empty: [destination] acl from ${path} stands (an empty variable never overrides the file)`,
    `environment variable MASTOSYNC_DESTINATION_BUCKET is empty: [destination] bucket from ${path} stands (an empty variable never overrides the file)`,
    `environment variable MASTOSYNC_DESTINATION_KEY_PREFIX is empty: [destination] key_prefix from ${path} stands (an empty variable never overrides the file)`,
  ]);
});

test('a folder destination takes acl = "" as public-read: Mastodon\'s private objects never fall to the umask', () => {
  assert.equal(loadConfig(file(MINIMAL.replace('bucket = "new"', 'type = "fs"\npath = "/srv/media"\nacl = ""')), {}).destination.acl, 'public-read');
});

test('MASTOSYNC_DESTINATION_ACL= where the file sets no acl sends none, as S3_PERMISSION= does', () => {
  assert.equal(loadConfig(file(MINIMAL), { MASTOSYNC_DESTINATION_ACL: '' }).destination.acl, '');
});

test('a variable that overrides the file is a notice naming both, never the value', () => {
  const path = file(MINIMAL);
  const config = loadConfig(path, {
    MASTOSYNC_DESTINATION_BUCKET: 'staging',
    MASTOSYNC_SOURCE_SECRET_ACCESS_KEY: 's3cr3t',
    MASTOSYNC_SOURCE_ACCESS_KEY_ID: 'a',
  });
  assert.deepEqual(config.notices, [`environment variable MASTOSYNC_DESTINATION_BUCKET overrides [destination] bucket from ${path}`]);
});

const MISTAKES: ReadonlyArray<[string, string, NodeJS.ProcessEnv, RegExp]> = [
  ['unknown key', MINIMAL.replace('bucket = "new"', 'bucket = "new"\nacces_key_id = "x"'), {}, /unknown key "acces_key_id" in \[destination\]/],
  ['unknown section', `${MINIMAL}\n[sink]\nx = 1`, {}, /unknown section \[sink\]/],
  ['a mistyped sub-table', `${MINIMAL}\n[database.sh]\nhost = "db"`, {}, /unknown section \[database\.sh\]; known sections: .*database\.ssh/],
  ['wrong type', MINIMAL.replace('[source]', '[source]\nforce_path_style = "yes"'), {}, /\[source\] force_path_style must be a boolean/],
  ['bad choice', MINIMAL.replace('[source]', '[source]\ntype = "gcs"'), {}, /\[source\] type must be one of "s3", "fs"/],
  ['integer below 1', `${MINIMAL}\n[sync]\nconcurrency = 0`, {}, /\[sync\] concurrency must be at least 1/],
  ['an answer_timeout of 0', MINIMAL.replace('[source]', 'answer_timeout = 0\n[source]'), {}, /\[database\] answer_timeout must be at least 1, not 0$/],
  [
    'not a canned ACL',
    MINIMAL.replace('bucket = "new"', 'bucket = "new"\nacl = "publicread"'),
    {},
    /\[destination\] acl must be one of "public-read", "private", .*, not "publicread"/,
  ],
  [
    'not a canned ACL, from the environment',
    MINIMAL,
    { MASTOSYNC_DESTINATION_ACL: 'public' },
    /^environment variable MASTOSYNC_DESTINATION_ACL must be one of .*, not "public"/,
  ],
  ['acl on the source', MINIMAL.replace('[source]', '[source]\nacl = "private"'), {}, /unknown key "acl" in \[source\]/],
  ['half the credentials', MINIMAL.replace('bucket = "old"', 'bucket = "old"\naccess_key_id = "x"'), {}, /needs both access_key_id and secret_access_key/],
  ['no bucket', MINIMAL.replace('bucket = "new"', 'endpoint = "https://s3.example.org"'), {}, /\[destination\] needs bucket/],
  [
    'a destination not configured yet',
    MINIMAL.replace('bucket = "new"', 'acl = "public-read"'),
    {},
    /\[destination\] is not configured yet: fill in the placeholders/,
  ],
  [
    'a placeholder left in',
    MINIMAL.replace('bucket = "new"', 'bucket = "new"\naccess_key_id = "..."\nsecret_access_key = "..."'),
    {},
    /\[destination\] access_key_id is still the placeholder "\.\.\."/,
  ],
  ['no database', MINIMAL.replace(/url = .*/, ''), {}, /\[database\] needs url/],
  ['fs without path', MINIMAL.replace('[destination]', '[destination]\ntype = "fs"'), {}, /type = "fs" needs path/],
  [
    'a bucket setting in a folder section',
    MINIMAL.replace('bucket = "new"', 'type = "fs"\npath = "/srv/media"\nregion = "eu-west-1"'),
    {},
    /^\S*mastosync\.toml: \[destination\] region is not a folder setting: type = "fs" takes path \(and acl in \[destination\]\); remove it$/,
  ],
  [
    'a canned ACL a folder has no mode for',
    MINIMAL.replace('bucket = "new"', 'type = "fs"\npath = "/srv/media"\nacl = "authenticated-read"'),
    {},
    /^\S*mastosync\.toml: \[destination\] acl for a folder \(type = "fs"\) must be "public-read" \(files 0644, .*; "" is taken as this\) or "private" \(every file 0600\), not "authenticated-read"$/,
  ],
  ['invalid TOML', 'this is = = not toml', {}, /invalid TOML/],
  ['unknown variable', MINIMAL, { MASTOSYNC_SOURCE_BUKET: 'x' }, /unknown environment variable MASTOSYNC_SOURCE_BUKET/],
  ['variable of the wrong type', MINIMAL, { MASTOSYNC_SYNC_CONCURRENCY: 'many' }, /MASTOSYNC_SYNC_CONCURRENCY must be an integer/],
  // `MASTOSYNC_DESTINATION_BUCKET: ${BUCKET}` with BUCKET unset, and no bucket in the file: the line names the variable too.
  [
    'an empty variable for a key the file lacks, which is needed',
    MINIMAL.replace('bucket = "new"', 'endpoint = "https://s3.example.org"'),
    { MASTOSYNC_DESTINATION_BUCKET: '', MASTOSYNC_DATABASE_PASSWORD: '' },
    /\[destination\] needs bucket \(empty, so taken as unset: MASTOSYNC_DESTINATION_BUCKET\)$/,
  ],
  // Out of range from the environment: the variable is named, not the file (which may not even set the key).
  ['a variable out of range', MINIMAL, { MASTOSYNC_SYNC_CONCURRENCY: '0' }, /^environment variable MASTOSYNC_SYNC_CONCURRENCY must be at least 1, not 0$/],
  ['a negative variable', MINIMAL, { MASTOSYNC_SYNC_RETRIES: '-1' }, /^environment variable MASTOSYNC_SYNC_RETRIES must be 0 or more, not -1$/],
  [
    'an upload cutoff variable above 5 GiB',
    MINIMAL,
    { MASTOSYNC_SYNC_UPLOAD_CUTOFF: '6000' },
    /^environment variable MASTOSYNC_SYNC_UPLOAD_CUTOFF is in MiB and at most 5120 .*, not 6000$/,
  ],
  ['a batch size variable of 0', MINIMAL, { MASTOSYNC_DATABASE_BATCH_SIZE: '0' }, /^environment variable MASTOSYNC_DATABASE_BATCH_SIZE must be at least 1/],
  ['the same out of range in the file', `${MINIMAL}\n[sync]\nconcurrency = 0`, {}, /^\S*mastosync\.toml: \[sync\] concurrency must be at least 1, not 0$/],
  // Azure's and Swift's values from the environment: the variable is named, as S3's are (the file may not set the key).
  ['an Azure acl variable', AZURE, { MASTOSYNC_DESTINATION_ACL: 'private' }, /^environment variable MASTOSYNC_DESTINATION_ACL does not apply to Azure, /],
  ['the same acl in the file', `${AZURE}\nacl = "private"`, {}, /^\S*mastosync\.toml: \[destination\] acl does not apply to Azure, /],
  [
    'an Azure container variable',
    AZURE,
    { MASTOSYNC_DESTINATION_CONTAINER: 'Media_2' },
    /^environment variable MASTOSYNC_DESTINATION_CONTAINER "Media_2" is not an Azure container name/,
  ],
  [
    'an S3 key for Azure from the environment',
    AZURE,
    { MASTOSYNC_DESTINATION_BUCKET: 'media' },
    /^environment variable MASTOSYNC_DESTINATION_BUCKET is not an Azure setting/,
  ],
  [
    'a second Azure credential from the environment',
    AZURE,
    { MASTOSYNC_DESTINATION_SAS_TOKEN: 'sv=2022' },
    /needs one of access_key .*, not access_key and sas_token \(environment variable MASTOSYNC_DESTINATION_SAS_TOKEN\)$/,
  ],
  [
    'an Azure endpoint variable that is no URL',
    AZURE,
    { MASTOSYNC_DESTINATION_ENDPOINT: 'mastodon.blob.core.windows.net' },
    /^environment variable MASTOSYNC_DESTINATION_ENDPOINT must be a URL like https:\/\/<account>\.blob\.core\.windows\.net, not "mastodon\.blob\.core\.windows\.net"$/,
  ],
  [
    'an Azure endpoint variable beside a connection string',
    AZURE.replace('access_key = "a2V5"', 'connection_string = "AccountName=mastodon;AccountKey=a2V5"'),
    { MASTOSYNC_DESTINATION_ENDPOINT: 'https://mastodon.blob.core.windows.net' },
    /endpoint \(environment variable MASTOSYNC_DESTINATION_ENDPOINT\) and connection_string both name the service/,
  ],
  ['a Swift acl variable', SWIFT, { MASTOSYNC_DESTINATION_ACL: 'private' }, /^environment variable MASTOSYNC_DESTINATION_ACL does not apply to Swift, /],
  [
    'an S3 key for Swift from the environment',
    SWIFT,
    { MASTOSYNC_DESTINATION_BUCKET: 'media' },
    /^environment variable MASTOSYNC_DESTINATION_BUCKET is not a Swift setting/,
  ],
  ['the same key in the file', `${SWIFT}\nbucket = "media"`, {}, /^\S*mastosync\.toml: \[destination\] bucket is not a Swift setting/],
  [
    'a Swift auth_url variable that is no URL',
    SWIFT,
    { MASTOSYNC_DESTINATION_AUTH_URL: 'keystone.example:5000' },
    /^environment variable MASTOSYNC_DESTINATION_AUTH_URL must be .*, not "keystone\.example:5000"$/,
  ],
  // Each names the key once: "[destination] auth_url: auth_url must be …" said it twice.
  [
    'the same auth_url in the file',
    SWIFT.replace('https://keystone.example:5000/v3', 'keystone.example/v3'),
    {},
    /^\S*mastosync\.toml: \[destination\] auth_url must be a URL like https:\/\/keystone\.example\.com:5000\/v3, not "keystone\.example\/v3"$/,
  ],
  [
    'a Swift key for S3 from the environment',
    MINIMAL,
    { MASTOSYNC_DESTINATION_CONTAINER: 'media' },
    /^environment variable MASTOSYNC_DESTINATION_CONTAINER is a Swift setting/,
  ],
  [
    'a placeholder from the environment',
    MINIMAL,
    { MASTOSYNC_SOURCE_SECRET_ACCESS_KEY: '<secret>', MASTOSYNC_SOURCE_ACCESS_KEY_ID: 'x' },
    /^environment variable MASTOSYNC_SOURCE_SECRET_ACCESS_KEY is still the placeholder/,
  ],
  [
    'half the credentials from the environment',
    MINIMAL,
    { MASTOSYNC_SOURCE_ACCESS_KEY_ID: 'x' },
    /\[source\] needs both access_key_id and secret_access_key .*: access_key_id \(environment variable MASTOSYNC_SOURCE_ACCESS_KEY_ID\) is set, secret_access_key is not$/,
  ],
  [
    'an S3 endpoint variable that is no URL',
    MINIMAL,
    { MASTOSYNC_SOURCE_ENDPOINT: 's3.example.org' },
    /^environment variable MASTOSYNC_SOURCE_ENDPOINT must be a URL like https:\/\/s3\.example\.com, not "s3\.example\.org"$/,
  ],
  [
    'an S3 region variable that is no region',
    MINIMAL,
    { MASTOSYNC_SOURCE_REGION: 'EU West' },
    /^environment variable MASTOSYNC_SOURCE_REGION must be a region's name/,
  ],
];

for (const [name, text, env, message] of MISTAKES) {
  test(`a config mistake is a UsageError naming the key: ${name}`, () => {
    assert.throws(
      () => loadConfig(file(text), env),
      (error: unknown) => error instanceof UsageError && message.test(error.message),
    );
  });
}

test('no file and no environment: says how to provide a config', () => {
  assert.throws(() => loadConfig(undefined, {}), /pass --config FILE, set MASTOSYNC_CONFIG, or write \.\/mastosync\.toml with `mastosync init`/);
});

test('Azure has no per-blob ACL: none is sent by default, and one asked for is refused rather than ignored', () => {
  const azure = MINIMAL.replace('bucket = "new"', 'type = "azure"\naccount = "mastodon"\naccess_key = "a2V5"\ncontainer = "media"');
  assert.equal(loadConfig(file(azure), {}).destination.acl, '');
  assert.equal(loadConfig(file(`${azure}\nacl = ""`), {}).destination.acl, '');
  assert.throws(() => loadConfig(file(`${azure}\nacl = "private"`), {}), /\[destination\] acl does not apply to Azure, which has no per-blob ACL/);
});

test('an Azure container name Azure would refuse is named at load, not met as a 400 that reads as a wrong account', () => {
  const azure = (name: string) => MINIMAL.replace('bucket = "new"', `type = "azure"\naccount = "mastodon"\naccess_key = "a2V5"\ncontainer = "${name}"`);
  for (const name of ['media', 'mastodon-media-2', 'abc', '$web']) assert.equal(loadConfig(file(azure(name)), {}).destination.type, 'azure', name);
  for (const name of ['Bad_Name', 'ab', 'media--x', '-media', 'media-', 'x'.repeat(64)]) {
    assert.throws(() => loadConfig(file(azure(name)), {}), new RegExp(`container "${name}" is not an Azure container name: 3 to 63 lowercase letters`), name);
  }
});
