/** The body of one streamed PUT, as the stores send it. */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export interface OutgoingBody {
  /** What to send: the body, or the body through the hash. */
  readonly sent: Readable;
  /** The MD5 of the bytes sent, when asked for: read it once the request succeeded. */
  readonly hash: Hash | undefined;
  /** Aborted, with the body's error as reason, when the body fails. */
  readonly failed: AbortSignal;
  /** For the request: aborted when the body fails or `signal` aborts. */
  readonly signal: AbortSignal;
}

/**
 * A body that fails ends the request at once (the server would otherwise wait for the missing bytes); with `hashIt`
 * (the MD5 the bytes must have is not known already) the bytes are hashed on the way.
 */
export function outgoingBody(body: Readable, hashIt: boolean, signal: AbortSignal | undefined): OutgoingBody {
  const failed = new AbortController();
  let sent: Readable = body;
  const hash = hashIt ? createHash('md5') : undefined;
  if (hash === undefined) {
    body.once('error', (error) => failed.abort(error));
  } else {
    const hashing = hashingStream(hash);
    pipeline(body, hashing).catch((error: unknown) => failed.abort(error));
    sent = hashing;
  }
  return { sent, hash, failed: failed.signal, signal: signal ? AbortSignal.any([signal, failed.signal]) : failed.signal };
}

/** Passes the bytes through unchanged, into `hash` on the way. */
export function hashingStream(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}
