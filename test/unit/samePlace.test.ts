/**
 * samePlace (src/storage/index.ts) for stores given by URL: the one line it gives shows endpoints as every other line
 * does (a password masked), and Swift containers are told apart by their account (review of the same-place check).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { samePlace } from '../../src/storage/index.js';
import type { S3StoreConfig } from '../../src/storage/s3Config.js';
import type { SwiftStoreConfig } from '../../src/storage/swiftConfig.js';

const s3 = (endpoint: string): S3StoreConfig => ({ type: 's3', bucket: 'media', region: 'us-east-1', endpoint, forcePathStyle: true });
const swift = (fields: Partial<SwiftStoreConfig>): SwiftStoreConfig => ({
  type: 'swift',
  authUrl: 'https://auth.cloud.ovh.net/v3',
  username: 'user-1',
  password: 'secret',
  region: 'GRA',
  container: 'mastodon',
  ...fields,
});

test('an endpoint with a user and password in it: the line shows neither', () => {
  const line = samePlace(s3('http://admin:S3cretPassw0rd@localhost:9000'), s3('http://127.0.0.1:9000'));
  assert.equal(line, 'bucket "media" at http://***@localhost:9000 and http://127.0.0.1:9000, one machine');
});

test('the same spelling twice, with a password: still one place, masked', () => {
  assert.equal(samePlace(s3('http://a:b@minio:9000'), s3('http://a:b@minio:9000')), 'bucket "media" at http://***@minio:9000');
});

test('two Keystone projects with a container of the same name are two places: a migration between them', () => {
  assert.equal(samePlace(swift({ tenant: 'old-project' }), swift({ tenant: 'new-project' })), undefined);
  assert.equal(samePlace(swift({ projectId: 'a1' }), swift({ projectId: 'b2', username: 'user-2' })), undefined);
});

test("one project, two users of it: one place (containers are the project's, not the user's)", () => {
  assert.match(samePlace(swift({ tenant: 'p', username: 'user-1' }), swift({ tenant: 'p', username: 'user-2' })) ?? '', /^container "mastodon" at /);
});

test("tempauth's account:user names the account", () => {
  assert.equal(samePlace(swift({ username: 'old:admin' }), swift({ username: 'new:admin' })), undefined);
  assert.match(samePlace(swift({ username: 'acct:admin' }), swift({ username: 'acct:other' })) ?? '', /^container "mastodon"/);
});
