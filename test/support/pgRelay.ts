/**
 * A TCP relay to PostgreSQL that fails the way paths to a production database fail, for tests of what the session
 * (src/db/connection.ts) and the commands do then:
 * - `freeze()`: a proxy, NAT or host that stops forwarding without closing anything: the connections open then
 *   forward nothing, ever, and stay open; connections made while frozen wait, and go through once it thaws;
 *   `freezeAt(statement)`: the same, as the first statement whose text matches is sent (it never reaches the server:
 *   a query that waits for good, as on a database that hangs);
 * - `loseAt(statement, occurrence)`: the database gone for good at a chosen statement (the occurrence-th one whose
 *   text matches, counted over every connection): that statement never reaches the server, every connection is cut,
 *   and every connection after is refused as a rotated password is (FATAL 28P01), which no reconnecting heals;
 *   `loseForGood()`: the same, at once;
 * - `refuseNew()`: a server at max_connections: connections open go on, each new one is refused (FATAL 53300);
 * - `drop()` / `restore()`: a database restarting: every connection cut, and each new one reset, until restored;
 * - `swallowGoodbyes`: the path freezes as the client leaves: a client's Terminate is not forwarded, and its FIN
 *   is never answered (the connection stays half-open for good).
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface PgRelayOptions {
  readonly swallowGoodbyes?: boolean;
}

/** A connection's client-to-server bytes, cut into protocol messages (the first, the startup packet, has no type byte). */
class MessageReader {
  private buffered = Buffer.alloc(0);
  private started = false;

  /** The whole messages `chunk` completes: each with its type ('' for the startup packet and an SSL request) and bytes. */
  push(chunk: Buffer): Array<{ type: string; bytes: Buffer }> {
    this.buffered = Buffer.concat([this.buffered, chunk]);
    const messages: Array<{ type: string; bytes: Buffer }> = [];
    for (;;) {
      const header = this.started ? 5 : 4;
      if (this.buffered.length < header) return messages;
      const length = this.started ? this.buffered.readInt32BE(1) + 1 : this.buffered.readInt32BE(0);
      if (this.buffered.length < length) return messages;
      const bytes = this.buffered.subarray(0, length);
      this.buffered = this.buffered.subarray(length);
      // An SSL request (80877103) is followed by the real startup packet, also untyped.
      const type = this.started ? String.fromCharCode(bytes[0]!) : '';
      if (!this.started && bytes.readInt32BE(4) !== 80877103) this.started = true;
      messages.push({ type, bytes });
    }
  }
}

/** A statement's text: a simple query ('Q') or the parse of an extended one ('P', after the statement's name). */
function statementText(message: { type: string; bytes: Buffer }): string | undefined {
  if (message.type === 'Q') return message.bytes.subarray(5).toString('utf8');
  if (message.type === 'P') {
    const nameEnd = message.bytes.indexOf(0, 5);
    return message.bytes.subarray(nameEnd + 1, message.bytes.indexOf(0, nameEnd + 1)).toString('utf8');
  }
  return undefined;
}

/** What PostgreSQL answers a startup it refuses: by default a refused password. */
function refusal(code = '28P01', message = 'password authentication failed for user "postgres"'): Buffer {
  const fields = Buffer.from(`SFATAL\0VFATAL\0C${code}\0M${message}\0\0`, 'utf8');
  const header = Buffer.alloc(5);
  header.write('E', 0);
  header.writeInt32BE(fields.length + 4, 1);
  return Buffer.concat([header, fields]);
}

export class PgRelay {
  private readonly server: Server;
  private readonly live = new Set<{ frozen: boolean; end: () => void }>();
  private readonly held: Array<() => void> = [];
  private readonly sockets = new Set<Socket>();
  private frozen = false;
  private gone = false;
  private full = false;
  private dropped = false;
  private resetsLeft: number | undefined;
  private lose: { statement: RegExp; left: number } | undefined;
  private freezeOn: RegExp | undefined;
  /** Statements that reached the server. */
  readonly statements: string[] = [];
  /** New connections reset while dropped. */
  resets = 0;

  constructor(
    private readonly target: { host: string; port: number },
    private readonly options: PgRelayOptions = {},
  ) {
    // Half-open allowed: a client's FIN is answered only by forwarding it, which a swallowed goodbye never does.
    this.server = createServer({ allowHalfOpen: true }, (client) => {
      this.sockets.add(client);
      client.on('error', () => client.destroy());
      if (this.gone) return this.refuse(client);
      if (this.full) return void client.once('data', () => client.end(refusal('53300', 'sorry, too many clients already')));
      if (this.dropped) {
        this.resets += 1;
        if (this.resetsLeft !== undefined && --this.resetsLeft === 0) this.restore();
        return void client.resetAndDestroy();
      }
      const start = () => this.forward(client);
      if (this.frozen) this.held.push(start);
      else start();
    });
  }

  /** Listens on 127.0.0.1 and gives `url` (a connection URL to the target) with the relay's port in it. */
  async listen(url: string): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const relayed = new URL(url);
    relayed.hostname = '127.0.0.1';
    relayed.port = String((this.server.address() as { port: number }).port);
    return relayed.toString();
  }

  private refuse(client: Socket): void {
    // Answered once the startup packet came, as the server would.
    client.once('data', () => client.end(refusal()));
  }

  private forward(client: Socket): void {
    const upstream = connect(this.target.port, this.target.host);
    this.sockets.add(upstream);
    const end = () => {
      this.live.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    const pair = { frozen: false, end };
    this.live.add(pair);
    const reader = new MessageReader();
    client.on('data', (chunk) => {
      if (pair.frozen) return;
      for (const message of reader.push(chunk)) {
        if (message.type === 'X' && this.options.swallowGoodbyes) {
          pair.frozen = true;
          return;
        }
        const text = statementText(message);
        if (text !== undefined && this.lose?.statement.test(text) && --this.lose.left === 0) {
          this.loseForGood();
          return;
        }
        if (text !== undefined && this.freezeOn?.test(text)) {
          this.freezeOn = undefined;
          this.freeze();
          return;
        }
        if (text !== undefined) this.statements.push(text);
        upstream.write(message.bytes);
      }
    });
    upstream.on('data', (chunk) => pair.frozen || client.write(chunk));
    // A client's FIN is forwarded (and so answered) unless its goodbye was swallowed.
    client.on('end', () => pair.frozen || end());
    client.on('close', end);
    upstream.on('error', end).on('close', () => pair.frozen || end());
  }

  freeze(): void {
    this.frozen = true;
    for (const pair of this.live) pair.frozen = true;
  }

  /** Freezes (see freeze) as the first statement matching `statement` is sent, holding that statement back. */
  freezeAt(statement: RegExp): void {
    this.freezeOn = statement;
  }

  /** Whether the relay is frozen (by freeze, or by freezeAt's statement). */
  get isFrozen(): boolean {
    return this.frozen;
  }

  thaw(): void {
    this.frozen = false;
    for (const start of this.held.splice(0)) start();
  }

  /**
   * Every connection cut, and every new one reset, until `restore()`; with `connections`, until that many new ones
   * were reset (a restart as short as it can be: the client's next try finds the server up).
   */
  drop(options: { connections?: number } = {}): void {
    this.dropped = true;
    this.resetsLeft = options.connections;
    for (const pair of [...this.live]) pair.end();
  }

  restore(): void {
    this.dropped = false;
    this.resetsLeft = undefined;
  }

  /** The database goes away for good when the `occurrence`-th statement matching `statement` is sent. */
  loseAt(statement: RegExp, occurrence = 1): void {
    this.lose = { statement, left: occurrence };
  }

  /** Every new connection refused as by a server at max_connections; those open go on. */
  refuseNew(): void {
    this.full = true;
  }

  /** The database goes away for good now: every connection is cut, and every one after refused. */
  loseForGood(): void {
    this.gone = true;
    this.lose = undefined;
    for (const pair of [...this.live]) pair.end();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
