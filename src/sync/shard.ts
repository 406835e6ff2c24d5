/**
 * Splitting a run over N processes or machines: shard I of N takes the rows whose id is I modulo N (the
 * condition is in src/db/scope), so every row, and with it every key, belongs to exactly one shard. Each shard
 * keeps its own checkpoint, named after it, so shards sharing a folder never write one file.
 */
import { basename, dirname, extname, join } from 'node:path';
import { UsageError } from '../errors.js';
import type { Shard } from '../db/scope.js';

/** At most this many shards: more only adds processes that scan the same tables. */
const MAX_SHARDS = 1024;

/** `--shard I/N`, with I from 0 to N-1. */
export function parseShard(text: string): Shard {
  const match = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!match) throw new UsageError(`--shard must look like I/N (for example 0/3: the first of three shards), not "${text}"`);
  return checkedShard(Number(match[1]), Number(match[2]), '--shard');
}

/** `--shards N`: the index comes from $JOB_COMPLETION_INDEX, which a Kubernetes Indexed Job sets in each pod. */
export function shardFromEnvironment(count: number, env: NodeJS.ProcessEnv): Shard {
  const index = env.JOB_COMPLETION_INDEX;
  if (index === undefined || !/^\d+$/.test(index.trim())) {
    throw new UsageError(
      `--shards ${count} takes this process's index from $JOB_COMPLETION_INDEX (set by a Kubernetes Indexed Job), which is ${index === undefined ? 'not set' : `"${index}"`}: set it, or pass --shard I/${count}`,
    );
  }
  return checkedShard(Number(index), count, '$JOB_COMPLETION_INDEX with --shards');
}

function checkedShard(index: number, count: number, what: string): Shard {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_SHARDS) {
    throw new UsageError(`${what}: the number of shards must be from 1 to ${MAX_SHARDS}, not ${count}`);
  }
  if (!Number.isSafeInteger(index) || index >= count) {
    throw new UsageError(`${what}: the shard index counts from 0, so it must be from 0 to ${count - 1}, not ${index}`);
  }
  return { index, count };
}

/** `mastosync.checkpoint.jsonl` → `mastosync.checkpoint.shard-1-of-3.jsonl`. */
export function checkpointForShard(path: string, shard: Shard | undefined): string {
  if (shard === undefined) return path;
  const extension = extname(path);
  const stem = basename(path, extension);
  return join(dirname(path), `${stem}.shard-${shard.index}-of-${shard.count}${extension}`);
}

export function describeShard(shard: Shard): string {
  return `shard ${shard.index} of ${shard.count} (ids ≡ ${shard.index} mod ${shard.count})`;
}
