/**
 * Loaded into a child CLI with `node --import`: appends the URL of every module the child loads, one a line, to the
 * file named by TEST_RECORD_LOADS_FILE (the module hooks run in a thread of their own, which sees the environment).
 * test/integration/s3-direct.test.ts and cli.test.ts read it to learn which chunks of the bundle a command loaded.
 */
import { register } from 'node:module';

const hooks = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  appendFileSync(process.env.TEST_RECORD_LOADS_FILE, url + '\\n');
  return nextLoad(url, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
