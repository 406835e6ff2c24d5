/**
 * Which failures to reach PostgreSQL directly are waited for (the start's patience, then exit 75; a reconnect mid-run)
 * and which stop at once (exit 2): a network coming back is waited for, as the same through an SSH tunnel is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isConnectionLost } from '../../src/db/connection.js';

/** An error as Node's net and dns modules give it (code, syscall). */
function nodeError(code: string, syscall: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${syscall} ${code} db.example.org`), { code, syscall });
}

test('no route to the host, a network down, the resolver failing for a moment: waited for', () => {
  for (const [code, syscall] of [
    ['EHOSTUNREACH', 'connect'],
    ['ENETUNREACH', 'connect'],
    ['EAI_AGAIN', 'getaddrinfo'],
    ['ECONNREFUSED', 'connect'],
  ] as const) {
    assert.equal(isConnectionLost(nodeError(code, syscall)), true, code);
  }
});

test('a host name that does not exist stops at once: [database] url needs changing', () => {
  assert.equal(isConnectionLost(nodeError('ENOTFOUND', 'getaddrinfo')), false);
});
