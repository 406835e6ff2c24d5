/**
 * Plain HTTP for the Swift backend (node:http and node:https with keep-alive agents): Swift's API is a few verbs on
 * paths with a token header, and a streamed PUT needs an exact Content-Length and a body piped without buffering.
 */
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';

export interface Agents {
  readonly http: http.Agent;
  readonly https: https.Agent;
}

export function keepAliveAgents(maxSockets: number): Agents {
  const options = { keepAlive: true, maxSockets };
  return { http: new http.Agent(options), https: new https.Agent(options) };
}

export interface HttpRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body?: Readable | Buffer | string;
  readonly signal?: AbortSignal;
  readonly agents: Agents;
  /** A connection silent this long fails (and is retried): a stalled server must not hang a run. */
  readonly timeoutMs: number;
}

/** Sends the request; resolves with the answer once its head arrived (its body then streams). */
export function send(request: HttpRequest): Promise<IncomingMessage> {
  const { url, body } = request;
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const outgoing = (secure ? https : http).request(url, {
      method: request.method,
      headers: request.headers,
      agent: secure ? request.agents.https : request.agents.http,
      signal: request.signal,
      timeout: request.timeoutMs,
    });
    outgoing.once('response', resolve);
    outgoing.once('error', reject);
    outgoing.once('timeout', () => outgoing.destroy(Object.assign(new Error(`no answer from ${url.host} for ${request.timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      outgoing.end(body);
      return;
    }
    sendBody(body, outgoing);
  });
}

/**
 * Pipes `body` into the request. A body that fails ends the request at once, with the body's error, also when it
 * failed before this (while the request waited for a token or a signature): the server would otherwise wait for the
 * missing bytes until a timeout.
 */
export function sendBody(body: Readable, outgoing: ClientRequest): void {
  if (body.errored) outgoing.destroy(body.errored);
  else if (body.destroyed)
    outgoing.destroy(Object.assign(new Error('the request body was destroyed before it was sent'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
  else {
    body.once('error', (error) => outgoing.destroy(error));
    body.pipe(outgoing);
  }
}

/** The answer's body as text, at most `limit` characters (the rest is read and dropped). */
export async function readText(response: IncomingMessage, limit = 1_000_000): Promise<string> {
  let text = '';
  response.setEncoding('utf8');
  for await (const chunk of response) if (text.length < limit) text += chunk as string;
  return text.slice(0, limit);
}

/** Reads and drops the answer's body, so its connection goes back to the pool. */
export async function drain(response: IncomingMessage): Promise<void> {
  for await (const chunk of response) void chunk;
}

/** One value per header (repeated ones joined), names in lower case. */
export function flatHeaders(response: IncomingMessage): Record<string, string | undefined> {
  // Node gives every header as one string but set-cookie (an array): without one, its own object is already flat,
  // and no copy is made per answer (two per object copied).
  const given = response.headers;
  if (given['set-cookie'] === undefined) return given as Record<string, string | undefined>;
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(given)) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  return headers;
}

/** A key or container name as a URL path: each `/`-separated part percent-encoded, the slashes kept. */
export function encodePath(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}
