/**
 * The default checkpoint was `mastosync-checkpoint.jsonl` beside the config file; it is named after the config file now
 * (`mastosync.toml` → `mastosync.checkpoint.jsonl`), so that two configs in one folder no longer share one, each
 * refusing the other's. A cron job set up before goes on: a run whose checkpoint is the default finds the earlier
 * file alone, and takes it over if it is this run's (same source and destination), moving it to the new name once,
 * with one warning. An earlier file of another config in the folder is left where it is, for that config's run.
 */
import { existsSync, renameSync } from 'node:fs';
import { basename } from 'node:path';
import type { Logger } from '../log.js';
import { CheckpointLock } from '../sync/lock.js';
import { checkpointRoute } from '../sync/checkpoint.js';
import { checkpointForShard } from '../sync/shard.js';
import type { Shard } from '../db/scope.js';
import { createStore } from '../storage/index.js';
import type { Config } from './config.js';

/**
 * The earlier default checkpoint this run takes over, if any: `checkpoint` (the default's path, a shard's derived from
 * it) does not exist, and the earlier one does and is this config's. Undefined when --checkpoint or [sync] checkpoint
 * names the file.
 */
export function earlierCheckpointOf(config: Config, checkpoint: string, shard: Shard | undefined, log: Logger): string | undefined {
  if (config.sync.earlierCheckpoint === undefined || existsSync(checkpoint)) return undefined;
  const earlier = checkpointForShard(config.sync.earlierCheckpoint, shard);
  if (!existsSync(earlier)) return undefined;
  const route = checkpointRoute(earlier);
  const mine = route !== undefined && sameRoute(route, config);
  if (!mine) {
    log.info(
      { checkpoint: earlier, ...route },
      `${earlier}, the default checkpoint of earlier versions, is not this config's (${route === undefined ? 'it names no run' : `a run from ${route.source} to ${route.destination}`}): left for its own`,
    );
  }
  return mine ? earlier : undefined;
}

/**
 * Moves `earlier` to `checkpoint`, holding both locks: this run holds `checkpoint`'s already, and an earlier version's
 * run still writing `earlier` holds its lock (the move then waits for a later run: exit 75, nothing written). Said once:
 * the file is not found again.
 */
export function moveEarlierCheckpoint(earlier: string, checkpoint: string, config: Config, warn: (line: string) => void): void {
  const lock = CheckpointLock.acquire(earlier);
  try {
    if (!existsSync(earlier) || existsSync(checkpoint)) return;
    renameSync(earlier, checkpoint);
  } finally {
    lock.release();
  }
  warn(
    `moved checkpoint ${earlier} to ${checkpoint}: the default checkpoint is now named after the config file (${basename(config.file ?? '')}), ` +
      'so that two configs in one folder keep theirs apart; the run resumes it as before (said once)',
  );
}

/** What the run's checkpoint header will name as its source and destination (the stores' descriptions). */
function sameRoute(route: { readonly source: string; readonly destination: string }, config: Config): boolean {
  const source = createStore(config.source, { role: 'source', concurrency: 1 });
  const destination = createStore(config.destination, { role: 'destination', concurrency: 1 });
  try {
    return route.source === source.description && route.destination === destination.description;
  } finally {
    source.close();
    destination.close();
  }
}
