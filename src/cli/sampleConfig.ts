/**
 * The text of config.sample.toml, for `mastosync init` without --from-env. Both bundles embed it when they are built
 * (esbuild's `define`; scripts/bundle.mjs, scripts/build-binary.mjs), so that the single executable and the container
 * image, which carry no other file, write the same sample; run from the sources (tests, tsx), it is read from the file.
 * A module of its own, imported by `init` only: the text stays out of the chunk every start loads.
 */
import { readFile } from 'node:fs/promises';

declare const MASTOSYNC_SAMPLE_CONFIG: string | undefined;

export async function sampleConfig(): Promise<string> {
  if (typeof MASTOSYNC_SAMPLE_CONFIG !== 'undefined') return MASTOSYNC_SAMPLE_CONFIG;
  return readFile(new URL('../../config.sample.toml', import.meta.url), 'utf8');
}
