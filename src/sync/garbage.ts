/**
 * Streaming allocates almost nothing on V8's heap but a Buffer per socket read (64 KB each, outside the heap), so
 * V8, which collects by its own heap's growth, lets up to 64 MB of read buffers already sent pile up before it
 * collects them (its allowance for memory outside the heap): a 200 MB video at 8 in flight peaked at 115–123 MB
 * against about 70 at rest. A minor collection every few MB streamed frees them (dead young Buffers take their
 * memory with them) for about a millisecond each. `gc` is not exposed without --expose-gc, which the launcher
 * cannot give the single executable; a context created while the flag is set has it, and nothing else sees it.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes streamed between two minor collections. */
const COLLECT_EVERY_BYTES = 2 * 1024 * 1024;
/**
 * And at most one collection this often: on a fast link (hundreds of MB/s between two stores on one LAN), 2 MB
 * come every few milliseconds, and collections of about a millisecond each would take a large share of the thread.
 */
const COLLECT_AT_MOST_EVERY_MS = 10;

let streamedSinceCollection = 0;
let lastCollection = 0;
let collect: ((options: { type: 'minor' }) => void) | undefined;

/** Counts `bytes` streamed, and collects the young generation (and the buffers it holds) every few MB. */
export function streamed(bytes: number): void {
  streamedSinceCollection += bytes;
  if (streamedSinceCollection < COLLECT_EVERY_BYTES) return;
  const now = performance.now();
  if (now - lastCollection < COLLECT_AT_MOST_EVERY_MS) return;
  streamedSinceCollection = 0;
  lastCollection = now;
  (collect ??= minorCollector())({ type: 'minor' });
}

function minorCollector(): (options: { type: 'minor' }) => void {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    if (typeof gc === 'function') return gc as (options: { type: 'minor' }) => void;
  } catch {
    // A runtime without the flag or the function: V8 collects on its own schedule, as without this.
  }
  return () => undefined;
}
