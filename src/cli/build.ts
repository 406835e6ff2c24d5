/**
 * What this build is, as --version prints it and the metrics' mastosync_build_info carries it. Both bundles embed it
 * when they are built (scripts/buildInfo.mjs, as esbuild's `define`); run from the sources (tests, tsx), it is the
 * package's version alone.
 */
import { readFileSync } from 'node:fs';

export interface BuildInfo {
  readonly version: string;
  /** The git commit the build was made from; absent when built outside a git checkout (a source tarball). */
  readonly commit?: string;
  /** Tracked files differed from that commit when it was built. */
  readonly dirty?: boolean;
}

declare const MASTOSYNC_BUILD: BuildInfo | undefined;

let read: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (typeof MASTOSYNC_BUILD !== 'undefined') return MASTOSYNC_BUILD;
  read ??= { version: (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version };
  return read;
}

/**
 * `0.1.0+c7b965c0d1e2` (semver's build metadata: the commit's first 12 digits), `0.1.0+c7b965c0d1e2.dirty` when
 * built with uncommitted changes, `0.1.0` when built outside a git checkout.
 */
export function versionText(build: BuildInfo = buildInfo()): string {
  if (build.commit === undefined) return build.version;
  return `${build.version}+${build.commit.slice(0, 12)}${build.dirty ? '.dirty' : ''}`;
}
