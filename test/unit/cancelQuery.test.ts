/**
 * The CancelRequest for a query cut at the answer deadline goes to the address its connection uses, not to the host by
 * name again (review L5): behind a name with several addresses another node would get it and do nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import type pg from 'pg';
import { cancelQuery } from '../../src/db/connection.js';

test('cancelQuery connects to the remote address of the query’s socket, with the backend key', async () => {
  const received: Buffer[] = [];
  const server = createServer((socket) => {
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const connection = connect(port, '127.0.0.1');
  await new Promise((resolve) => connection.once('connect', resolve));
  try {
    // A name that resolves nowhere: only the socket's address can reach the server.
    const client = { host: 'db.invalid', port: 1, processID: 4242, secretKey: 77 } as unknown as pg.Client;
    await cancelQuery(client, connection as Socket);
    const request = Buffer.concat(received);
    assert.equal(request.length, 16);
    assert.equal(request.readInt32BE(4), 80877102);
    assert.equal(request.readInt32BE(8), 4242);
    assert.equal(request.readInt32BE(12), 77);
  } finally {
    connection.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
