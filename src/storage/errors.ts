/**
 * Errors a store classifies itself, so that src/sync needs to know no backend: a FatalStoreError is one that no
 * retry can fix (a bucket gone, credentials refused, a full disk…). Every later request would fail the same way,
 * so the run stops at the first one instead of failing each remaining object separately.
 */
export type StoreSide = 'source' | 'destination';

export class FatalStoreError extends Error {
  override readonly name = 'FatalStoreError';
  constructor(
    readonly side: StoreSide,
    /** The key whose request showed it (the store's own key: with the key prefix, or the file's path). */
    readonly key: string,
    /** What is wrong, e.g. `[destination] folder /srv/system is full (ENOSPC)`. */
    readonly problem: string,
    /** What the admin does about it, as one sentence. */
    readonly fix: string,
    options: { cause: unknown },
  ) {
    super(`${problem}: ${fix}`, options);
  }
}

/**
 * The provider refused a request body of `size` bytes as too large (413, EntityTooLarge, or a connection closed
 * while the body was sent). The store remembers the size, and the next attempt goes in smaller parts.
 */
export class BodyRefusedError extends Error {
  override readonly name = 'BodyRefusedError';
  constructor(
    readonly size: number,
    message: string,
    /** False when the next attempt could not send a smaller body. */
    readonly retryable: boolean,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** `20 MiB`, `1.5 MiB`, `800 KiB`: sizes as an admin sets them in nginx or a provider's limits. */
export function formatSize(bytes: number): string {
  const MiB = 1024 * 1024;
  if (bytes >= MiB) return `${Number((bytes / MiB).toFixed(1))} MiB`;
  if (bytes >= 1024) return `${Number((bytes / 1024).toFixed(1))} KiB`;
  return `${bytes} B`;
}
