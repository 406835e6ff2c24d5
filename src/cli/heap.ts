/**
 * V8's heap: how a long command keeps its peak memory low without slowing every start (docs/performance.md, memory
 * and start-up).
 */
import { setFlagsFromString } from 'node:v8';
import { collectAll } from '../sync/garbage.js';

/** V8's default interrupt budget (Node 20, V8 11.3: 66 KiB of bytecode) times four. */
const TIER_UP_BUDGET = 4 * 67_584;

/**
 * Readies V8's heap for a long command (`run`, `verify`, `prune`), once its code is loaded:
 * - Keeps the young generation at the size the start has grown it to (two 2 MiB semi-spaces, measured at that
 *   point), where V8 would let it grow to two of 16 MiB: about 20 MB less at a run's peak, at the same CPU. Set from
 *   here, and not as `--max-semi-space-size` on Node's command line (the launcher's former way): any V8 flag given
 *   at start changes the hash V8 checks code caches against, so Node compiled each of its own modules without its
 *   cache, about 30 ms more CPU at every start. A flag set now costs that only for the built-in modules loaded after.
 * - Collects what loading left in the old space, which would otherwise stay there, its pages held, for most of a
 *   run: 7 MB less at the peak of a bucket run at 16 in flight, 14 MB less at 64, for one collection of a few
 *   milliseconds (docs/performance.md).
 * - Lets a function run four times as much bytecode as V8's default before its optimizing compiler (TurboFan) is
 *   asked to compile it: in a bucket run of 666 objects TurboFan's compiling was 40% of the instructions beyond the
 *   start, mostly for code that ran a few hundred times and was then done. Four times the budget leaves that code to
 *   the baseline tiers and still optimizes what stays hot in a long run: 0.69–0.78× the instructions per object
 *   beyond the start (docs/performance.md, the eighth pass); two times saved less, eight times ran too long
 *   unoptimized.
 */
export function settleHeapForWork(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString(`--interrupt-budget=${TIER_UP_BUDGET}`);
  collectAll();
}
