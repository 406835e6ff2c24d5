/**
 * s3rver in a process of its own, so the bench process (latency proxy, measurements) and the server do not
 * share one event loop. Prints `{"port":N}` once listening; stops on SIGTERM.
 * Usage: node --import tsx bench/s3server.ts DIRECTORY
 */
import S3rver from 's3rver';
import { installS3rverDesShim } from '../test/support/s3.js';

const directory = process.argv[2];
if (directory === undefined) throw new Error('usage: s3server.ts DIRECTORY');

// Listings of more than 1000 keys (rclone --fast-list) need the DES shim (test/support/s3.ts).
installS3rverDesShim();
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
const { port } = (await server.run()) as { port: number };
process.stdout.write(`${JSON.stringify({ port })}\n`);
process.on('SIGTERM', () => void server.close().finally(() => process.exit(0)));
