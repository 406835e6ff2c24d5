/**
 * The HTTP under the direct requests (s3Direct.ts): node:http and node:https on the store's own keep-alive agents.
 * It keeps the SDK handler's behaviour where callers can see it — a connection not made within the connection
 * timeout and a socket silent for the socket timeout fail as `TimeoutError`, an abort rejects with an `AbortError`
 * whose cause is the signal's reason, a reset or broken pipe is renamed `TimeoutError` as the SDK does — so
 * s3Errors.ts and the retries see no difference. What it leaves out is the SDK handler's per-request machinery
 * (four timers, a socket-usage check, a header copy and a promise chain per request): about a third of a direct
 * request's CPU (docs/performance.md).
 */
import { request as httpRequest, type Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type Agent as HttpsAgent } from 'node:https';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { encodeQueryPart, isEmpty } from './s3Direct.js';
import { flatHeaders, sendBody } from './swiftHttp.js';

/** A request as s3Direct.ts builds and signs it (the shape of the SDK's HttpRequest, which its signer takes). */
export interface OutgoingRequest {
  protocol: string;
  hostname: string;
  port?: number;
  method: string;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  /** A stream, or a body held whole (sent in one write with the headers). */
  body?: Readable | Buffer;
}

export interface DirectResponse {
  readonly statusCode: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: Readable;
}

/** The SDK's HttpHandler interface, as far as the direct requests use it: this transport, or the SDK's own handler. */
export interface HttpHandler {
  handle(request: OutgoingRequest, options: { abortSignal?: AbortSignal }): Promise<{ response: DirectResponse }>;
}

export interface HttpTransportOptions {
  readonly httpAgent: HttpAgent;
  readonly httpsAgent: HttpsAgent;
  /** A new connection not made within this fails. */
  readonly connectionTimeoutMs: number;
  /** Inactivity, not total time: a large object may take long, a silent connection must not. */
  readonly socketTimeoutMs: number;
}

/** Node's errors the SDK handler renames TimeoutError (keeping their code). */
const RENAMED_TIMEOUT = new Set(['ECONNRESET', 'EPIPE', 'ETIMEDOUT']);

export class HttpTransport implements HttpHandler {
  constructor(private readonly options: HttpTransportOptions) {}

  handle(request: OutgoingRequest, { abortSignal: signal }: { abortSignal?: AbortSignal }): Promise<{ response: DirectResponse }> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const secure = request.protocol === 'https:';
      const { hostname } = request;
      let answer: IncomingMessage | undefined;
      const outgoing = (secure ? httpsRequest : httpRequest)(
        {
          // An IPv6 literal comes in brackets from the URL, and goes to Node without them.
          host: hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname,
          port: request.port,
          method: request.method,
          path: withQuery(request),
          // Raw ([name, value, …]): node:http writes the head from them at once, where a record costs a setHeader per
          // header (its name lower-cased again, an array per header, a record of them) and the head at the first write.
          headers: rawHeaders(request),
          agent: secure ? this.options.httpsAgent : this.options.httpAgent,
          // Node keeps this on the socket while the request has it (one timer, pushed back by each read and write).
          timeout: this.options.socketTimeoutMs,
        },
        (response: IncomingMessage) => {
          answer = response;
          resolve({ response: { statusCode: response.statusCode ?? -1, headers: flatHeaders(response), body: response } });
        },
      );
      const { body } = request;
      outgoing.on('error', (error: NodeJS.ErrnoException) =>
        reject(
          !(body instanceof Readable && error === body.errored) && RENAMED_TIMEOUT.has(error.code ?? '')
            ? Object.assign(error, { name: 'TimeoutError' })
            : error,
        ),
      );
      outgoing.on('timeout', () => {
        // Silent after the whole answer arrived: only the idle connection goes.
        if (answer?.complete) {
          outgoing.socket?.destroy();
          return;
        }
        const error = timeoutError(`the request socket timed out after ${this.options.socketTimeoutMs} ms of inactivity`);
        answer?.destroy(error);
        outgoing.destroy();
        reject(error);
      });
      // Only a new connection is connecting; a reused one skips this at once. `on`, not `once`: a request is given
      // one socket, and once() wraps each listener in two more objects (two listeners per request here).
      outgoing.on('socket', (socket: Socket) => {
        if (!socket.connecting) return;
        const { connectionTimeoutMs } = this.options;
        const timer = setTimeout(() => {
          outgoing.destroy();
          reject(timeoutError(`the request socket did not establish a connection with the server within ${connectionTimeoutMs} ms`));
        }, connectionTimeoutMs);
        socket.once('connect', () => clearTimeout(timer));
        outgoing.once('close', () => clearTimeout(timer));
      });
      if (signal !== undefined) {
        const forget = onAbort(signal, () => {
          outgoing.destroy();
          reject(abortError(signal));
        });
        outgoing.on('close', forget);
      }
      // A body that fails ends the request, with its own error (the SDK's handler leaves that to an abort from the
      // caller, which costs an AbortController per request).
      if (body instanceof Readable) sendBody(body, outgoing);
      else outgoing.end(body);
    });
  }
}

/** Methods node:http frames as chunked when their length is not given (it does so for every method but these). */
const NEVER_CHUNKED = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);

/**
 * The headers as node:http takes them raw, as IncomingMessage.rawHeaders has them (names as the caller gave them).
 * From raw headers node:http writes the head before it knows the body, so a PUT or POST without a content-length
 * would go `Transfer-Encoding: chunked`, which AWS refuses (501 NotImplemented): a body held whole, or none (a
 * CopyObject), gets its length here, as node:http gives it when it writes the head at the end.
 */
function rawHeaders({ method, headers, body }: OutgoingRequest): string[] {
  const raw: string[] = [];
  for (const name in headers) raw.push(name, headers[name]!);
  if (!(body instanceof Readable) && headers['content-length'] === undefined && !NEVER_CHUNKED.has(method)) {
    raw.push('content-length', String(body?.length ?? 0));
  }
  return raw;
}

/** The path with the query string, if any (listings, the bucket check, a batch delete, an abort), encoded as it was signed. */
function withQuery(request: OutgoingRequest): string {
  if (isEmpty(request.query)) return request.path;
  const parts = Object.entries(request.query).map(([name, value]) => `${encodeQueryPart(name)}=${encodeQueryPart(value)}`);
  return parts.length === 0 ? request.path : `${request.path}?${parts.join('&')}`;
}

/** What each signal's one listener runs: the requests in flight under it. */
const abortHooks = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Runs `hook` when `signal` aborts, until the returned function forgets it. The run's stop is one signal under every
 * request, and Node's EventTarget compares each listener added with all those already there (a duplicate check):
 * a listener per request cost time in proportion to the requests in flight, 2% of a bucket run's busy CPU at 16.
 * So each signal gets one listener, and the requests a set.
 */
function onAbort(signal: AbortSignal, hook: () => void): () => void {
  let hooks = abortHooks.get(signal);
  if (hooks === undefined) {
    const created = new Set<() => void>();
    signal.addEventListener('abort', () => [...created].forEach((run) => run()), { once: true });
    abortHooks.set(signal, created);
    hooks = created;
  }
  hooks.add(hook);
  const registered = hooks;
  return () => registered.delete(hook);
}

function timeoutError(message: string): Error {
  return Object.assign(new Error(message), { name: 'TimeoutError' });
}

/** As the SDK's handler builds it: name AbortError, the signal's reason as cause (or as message when not an Error). */
function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason && !(reason instanceof Error)) return Object.assign(new Error(String(reason)), { name: 'AbortError' });
  return Object.assign(new Error('Request aborted', reason ? { cause: reason } : undefined), { name: 'AbortError' });
}
