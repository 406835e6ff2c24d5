/**
 * Loaded into a child CLI with `node --import`: appends the URL of every module the child loads, one a line, to the
 * file named by TEST_RECORD_LOADS_FILE. test/integration/s3-direct.test.ts and cli.test.ts read it to learn which
 * chunks of the bundle a command loaded. bin/mastosync.js reads each chunk with fs.readFileSync and compiles it
 * itself (with its code cache), so the reads of .js files are recorded; ES modules, if any, through the module hooks
 * (which run in a thread of their own, which sees the environment).
 */
import fs from 'node:fs';
import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

const record = process.env.TEST_RECORD_LOADS_FILE;
const readFileSync = fs.readFileSync;
fs.readFileSync = function recordingReadFileSync(path, ...rest) {
  if (typeof path === 'string' && path.endsWith('.js')) fs.appendFileSync(record, `${pathToFileURL(path).href}\n`);
  return readFileSync.call(this, path, ...rest);
};

const hooks = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  appendFileSync(process.env.TEST_RECORD_LOADS_FILE, url + '\\n');
  return nextLoad(url, context);
}
`;
register(`data:text/javascript,${encodeURIComponent(hooks)}`);
