/**
 * A lost database connection is logged as what an admin can act on: the code and message (which names the address) and
 * which database. pg-pool hangs the whole Client on an idle client's error (internal state, type tables, processID and
 * the cancel secretKey), which was logged whole, and every reconnect line carried a stack trace (tester1 F9).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { connectDatabase } from '../../src/db/connection.js';
import { createLogger } from '../../src/cli/logger.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from '../support/postgres.js';
import { PgRelay } from '../support/pgRelay.js';

let postgres: PostgresServer;
let db: TestDatabase;

before(async () => {
  postgres = await startPostgres();
  db = await createDatabase('current');
});

after(async () => {
  await db?.drop();
  await postgres?.stop();
});

test('an idle connection lost, a reconnect, a database still unreachable: one short line each, no Client, no secretKey, no stack', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const relay = new PgRelay(postgres);
  const session = await connectDatabase({ connectionString: await relay.listen(db.url), ssl: false, batchSize: 10 }, createLogger('info', sink));
  try {
    await session.query('SELECT 1');
    relay.drop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    setTimeout(() => relay.restore(), 1200);
    assert.deepEqual(await session.query<{ one: number }>('SELECT 1 AS one'), [{ one: 1 }]);
  } finally {
    await session.close();
    await relay.close();
  }
  const messages = lines.map((line) => line.msg);
  for (const expected of [
    'idle database connection lost',
    'database connection lost; reconnecting',
    'database still unreachable',
    'database connection restored',
  ])
    assert.ok(messages.includes(expected), `${expected} in ${JSON.stringify(messages)}`);
  const text = JSON.stringify(lines);
  for (const leak of ['secretKey', 'processID', '_types', 'connectionParameters', '"stack"', '    at ']) assert.ok(!text.includes(leak), `${leak} in ${text}`);
  for (const line of lines.filter((line) => line.level === 40)) {
    assert.equal(typeof line.error, 'string', JSON.stringify(line));
    assert.ok(JSON.stringify(line).length < 300, JSON.stringify(line));
  }
  const reset = lines.find((line) => line.msg === 'database still unreachable')!;
  assert.match(String(reset.error), /^ECONNRESET: .*127\.0\.0\.1:\d+/);
  const idle = lines.find((line) => line.msg === 'idle database connection lost')!;
  assert.match(String(idle.database), /^postgres@127\.0\.0\.1:\d+\//);
});
