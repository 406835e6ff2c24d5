/**
 * SSH tunnel to the production database.
 *
 * A local TCP listener on 127.0.0.1:<random port> whose every connection becomes one `direct-tcpip` channel
 * (ssh2 `forwardOut`) to the database as the SSH server sees it. pg connects to the local port and never
 * knows about SSH.
 *
 * Safety rules, because this talks to a live production server for hours:
 * - The host key is always verified, by a pinned SHA256 fingerprint or by known_hosts, before any credential is
 *   sent (src/ssh/hostKey.ts, src/ssh/connect.ts).
 * - A dropped connection is reported once (`drop`) and the tunnel then refuses new local connections, so callers
 *   fail fast and reconnect with a fresh `openTunnel` instead of hanging on a dead channel.
 *
 * Pure library: no config parsing, no logging. Errors are typed and their messages say what to fix
 * (src/ssh/errors.ts).
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Client as SshClient, ClientChannel } from 'ssh2';
import type { SshOptions, TunnelTarget } from './config.js';
import { connect } from './connect.js';
import { TunnelError, sshTunnelError } from './errors.js';

export interface Tunnel {
  readonly localHost: string;
  readonly localPort: number;
  /** Fingerprint of the verified host key. */
  readonly hostKeyFingerprint: string;
  /** True once the SSH connection was lost (not by close()). */
  readonly dropped: boolean;
  /** Closes the listener, every forwarded connection (those ending get a moment to finish) and the SSH session. Idempotent. */
  close(): Promise<void>;
  /** Calls `listener` once when the connection drops (at once, on the next tick, if it already has). */
  onDrop(listener: (err: TunnelError) => void): void;
  /** Emitted once when the SSH connection is lost after being ready; open a new tunnel to carry on. */
  on(event: 'drop', listener: (err: TunnelError) => void): this;
  /**
   * Emitted when the SSH server could not open a channel to the target: it forbids forwarding, or it cannot reach
   * the database (wrong [database].url, database down).
   */
  on(event: 'forwardError', listener: (err: TunnelError) => void): this;
  once(event: 'drop' | 'forwardError', listener: (err: TunnelError) => void): this;
  off(event: 'drop' | 'forwardError', listener: (err: TunnelError) => void): this;
}

class SshTunnel extends EventEmitter implements Tunnel {
  readonly localHost = '127.0.0.1';
  localPort = 0;
  dropped = false;
  private closing: Promise<void> | undefined;
  private clientClosed = false;
  private readonly sockets = new Set<net.Socket>();
  private readonly channels = new Set<ClientChannel>();
  /** Set while close() waits for the forwarded connections to finish. */
  private whenNoForwards: (() => void) | undefined;
  private readonly server: net.Server;
  private dropError: TunnelError | undefined;

  constructor(
    private readonly client: SshClient,
    readonly hostKeyFingerprint: string,
    private readonly ssh: SshOptions,
    private readonly target: TunnelTarget,
  ) {
    super();
    this.server = net.createServer((sock) => this.forward(sock));
    // Nagle on either hop adds a delayed-ACK wait to every small pg round trip.
    client.setNoDelay(true);
    let lastError: Error | undefined;
    client.on('error', (err: Error) => {
      lastError = err;
    });
    client.on('close', () => {
      this.clientClosed = true;
      if (this.closing || this.dropped) return;
      this.dropped = true;
      // Stop accepting so new pg connections fail at once (ECONNREFUSED) rather than hang on a dead session.
      this.server.close();
      for (const s of this.sockets) s.destroy();
      this.dropError = sshTunnelError(lastError, { phase: 'session', host: ssh.host, port: ssh.port, user: ssh.user });
      this.emit('drop', this.dropError);
    });
  }

  onDrop(listener: (err: TunnelError) => void): void {
    // Registering after the drop still fires, so callers cannot miss a drop that raced their setup.
    const err = this.dropError;
    if (err) process.nextTick(() => listener(err));
    else this.once('drop', listener);
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, this.localHost, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.localPort = (this.server.address() as net.AddressInfo).port;
  }

  private forward(sock: net.Socket): void {
    if (this.dropped || this.closing) {
      sock.destroy();
      return;
    }
    sock.setNoDelay(true);
    this.sockets.add(sock);
    let channel: ClientChannel | undefined;
    sock.on('error', () => sock.destroy()); // pg sees the close; nothing to add here
    sock.on('close', () => {
      this.sockets.delete(sock);
      channel?.close();
      // ssh2 reports a channel closed only once its end was read: drain what still comes, nobody reads it now.
      channel?.resume();
      this.forwardGone();
    });
    // Until the channel opens the socket stays paused, so pg's first bytes wait in its buffer and are not lost.
    try {
      this.openChannel(sock, (ch) => (channel = ch));
    } catch {
      // ssh2 throws "Not connected" once its socket has ended, a moment before it reports the session closed: the
      // connection goes the way of all of them at the drop, and pg sees it close.
      sock.destroy();
    }
  }

  private openChannel(sock: net.Socket, opened: (ch: ClientChannel) => void): void {
    this.client.forwardOut(sock.remoteAddress ?? '127.0.0.1', sock.remotePort ?? 0, this.target.host, this.target.port, (err, ch) => {
      if (err) {
        sock.destroy();
        this.emit('forwardError', sshTunnelError(err, { phase: 'forward', host: this.ssh.host, target: this.target }));
        return;
      }
      this.channels.add(ch);
      ch.on('close', () => {
        this.channels.delete(ch);
        sock.destroy();
        this.forwardGone();
      });
      if (sock.destroyed) {
        ch.close();
        ch.resume();
        return;
      }
      opened(ch);
      ch.on('error', () => sock.destroy());
      sock.pipe(ch).pipe(sock);
    });
  }

  private forwardGone(): void {
    if (this.sockets.size === 0 && this.channels.size === 0) this.whenNoForwards?.();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (!this.clientClosed && (this.sockets.size > 0 || this.channels.size > 0)) {
        // pg has just written its goodbye (Terminate) on each connection it ends: let that reach the database and
        // the server close those channels, so the disconnect below cuts nothing; what does not finish soon is cut.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          this.whenNoForwards = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
      for (const s of this.sockets) s.destroy();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      if (this.clientClosed) return;
      await new Promise<void>((resolve) => {
        // A polite disconnect first; a dead peer would never answer, so cut the socket after a moment.
        const timer = setTimeout(() => {
          this.client.destroy();
          resolve();
        }, 2000);
        this.client.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        this.client.end();
      });
    })();
    return this.closing;
  }
}

/**
 * Opens an SSH connection (host key verified first) and a local listener forwarding to `target` as seen from
 * the SSH server. Rejects with HostKeyError (never retry) or TunnelError (see `reason` / `retryable`).
 */
export async function openTunnel(ssh: SshOptions, target: TunnelTarget): Promise<Tunnel> {
  const { client, fingerprint } = await connect(ssh);
  const tunnel = new SshTunnel(client, fingerprint, ssh, target);
  try {
    await tunnel.listen();
  } catch (err) {
    await tunnel.close();
    throw new TunnelError('config', `ssh: cannot listen on 127.0.0.1 for the tunnel: ${(err as Error).message}`, { cause: err });
  }
  return tunnel;
}
