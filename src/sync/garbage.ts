/**
 * Streaming allocates almost nothing on V8's heap but a Buffer per socket read (64 KB each, outside the heap), so
 * V8, which collects by its own heap's growth, lets up to 64 MB of read buffers already sent pile up before it
 * collects them (its allowance for memory outside the heap): a 200 MB video at 8 in flight peaked at 115–123 MB
 * against about 70 at rest. A minor collection every few MB streamed frees them (dead young Buffers take their
 * memory with them) for about a millisecond each. `gc` is not exposed without --expose-gc, which the launcher
 * cannot give the single executable; a context created while the flag is set has it, and nothing else sees it.
 * Joins of listings with rows (and the checkpoint's read) ask for full collections as they grow: collectIfGrown.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
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
/** V8's `gc`: a full collection without an argument (V8 11's `{ type: 'major' }` makes a minor one), a minor one with `{ type: 'minor' }`. */
let collect: ((options?: { type: 'minor' }) => void) | undefined;

/**
 * Counts `bytes` streamed, and collects the young generation (and the buffers it holds) once a few MB passed with no
 * collection. Any collection V8 makes on its own counts: copying many small objects allocates enough on the heap
 * for V8 to collect every MB or so, and a forced collection as well would only cost (a run of small objects made a
 * quarter of its collections so).
 */
export function streamed(bytes: number): void {
  streamedSinceCollection += bytes;
  if (streamedSinceCollection < COLLECT_EVERY_BYTES) return;
  if (!watching) watchCollections();
  const now = performance.now();
  if (now - lastCollection < COLLECT_AT_MOST_EVERY_MS) return;
  streamedSinceCollection = 0;
  lastCollection = now;
  (collect ??= collector())({ type: 'minor' });
}

let watching = false;

/** From now on every collection, V8's own too, starts the count of bytes streamed again. */
function watchCollections(): void {
  watching = true;
  // Told a little after each collection (a few a second at most): nothing per chunk streamed.
  new PerformanceObserver(() => (streamedSinceCollection = 0)).observe({ entryTypes: ['gc'] });
}

/**
 * What a listing join may add to the memory held (V8's heap in use and the Buffers outside it) before it collects.
 * Every object of a join outlives V8's 2 MB young generation (a listing page or a window of rows lives a thousand
 * keys), so 1.5 KB a key are promoted, and V8 lets its old generation reach about three times the live heap (14–17
 * MB) before collecting it, with the dead Buffers of listing pages waiting for that collection too: a 1 M verify
 * peaked 44 MB above a 10 k one. A major collection costs about 20 ms here (docs/performance.md).
 */
const GROWTH_BEFORE_COLLECTION = 20 * 1024 * 1024;
/**
 * And at least half of what the last collection left: a full collection costs in proportion to what is live, so a
 * caller whose live heap keeps growing (not a join's, flat at 14–17 MB) pays for it in proportion to what it
 * allocates, not to the square of its heap.
 */
const GROWTH_SHARE_OF_LIVE = 0.5;
const grown = growthTrigger(GROWTH_BEFORE_COLLECTION, GROWTH_SHARE_OF_LIVE);

/**
 * Collects the whole heap now: what loading the code and setting up left behind (parsed sources, the bundle's
 * start-up objects) waits in the old space until a full collection, which a short run may never make on its own.
 */
export function collectAll(): void {
  (collect ??= collector())();
}

/** Collects the whole heap when what is held grew by its allowance (above) since the last time; called often. */
export function collectIfGrown(): void {
  if (!grown(held())) return;
  collectAll();
  grown(held());
}

function held(): number {
  const { used_heap_size: heap, external_memory: external } = getHeapStatistics();
  return heap + external;
}

/**
 * Told what is held, says whether it grew by `growth` bytes, or by `share` of the least it was told if that is more,
 * over the least it was told since it last said so (then the next value, taken after the collection, is the new
 * least). The least, not the first: a collection V8 makes on its own lowers what the growth is counted from.
 */
export function growthTrigger(growth: number, share = 0): (held: number) => boolean {
  let least = Infinity;
  return (held) => {
    least = Math.min(least, held);
    if (held - least < Math.max(growth, least * share)) return false;
    least = Infinity;
    return true;
  };
}

function collector(): (options?: { type: 'minor' }) => void {
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    setFlagsFromString('--no-expose-gc');
    if (typeof gc === 'function') return gc as (options?: { type: 'minor' }) => void;
  } catch {
    // A runtime without the flag or the function: V8 collects on its own schedule, as without this.
  }
  return () => undefined;
}
