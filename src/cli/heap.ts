/**
 * V8's young generation: how a long command keeps its peak memory low without slowing every start
 * (docs/performance.md, memory and start-up).
 */
import { setFlagsFromString } from 'node:v8';

/**
 * Keeps the young generation at the size the start has grown it to (two 2 MiB semi-spaces, measured when `run`,
 * `verify` and `prune` begin their work), where V8 would let it grow to two of 16 MiB: about 20 MB less at a run's
 * peak, at the same CPU. Set from here, once the command's code is loaded, and not as `--max-semi-space-size` on
 * Node's command line (the launcher's former way): any V8 flag given at start changes the hash V8 checks code
 * caches against, so Node compiled each of its own modules without its cache, about 30 ms more CPU at every start.
 * A flag set now costs that only for the built-in modules loaded after it.
 */
export function stopYoungGenerationGrowth(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
}
