/** [database] url's sslmode as pg is given it (src/db/config.ts strictSslMode). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { strictSslMode } from '../../src/db/config.js';

test('prefer, require and verify-ca are spelled verify-full, the check pg makes of them today', () => {
  for (const mode of ['prefer', 'require', 'verify-ca']) {
    assert.equal(strictSslMode(`postgres://u:p@db:5432/mastodon?sslmode=${mode}`), 'postgres://u:p@db:5432/mastodon?sslmode=verify-full');
    assert.equal(
      strictSslMode(`postgres://db/m?application_name=x&sslmode=${mode}&sslrootcert=/ca.pem`),
      'postgres://db/m?application_name=x&sslmode=verify-full&sslrootcert=/ca.pem',
    );
  }
});

test('other modes, a password that reads like one, and an asked-for libpq meaning are left as written', () => {
  for (const url of [
    'postgres://db/m?sslmode=disable',
    'postgres://db/m?sslmode=no-verify',
    'postgres://db/m?sslmode=verify-full',
    'postgres://u:sslmode=require@db/m',
    'postgres://db/m?sslmode=requirex',
    'postgres://db/m?uselibpqcompat=true&sslmode=require',
  ])
    assert.equal(strictSslMode(url), url);
});
