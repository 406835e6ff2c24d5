/**
 * What the SDK's client sends (multipart uploads, copies in parts) goes where the direct requests go, for the
 * configurations where the SDK's own rules and ours disagree: found in review, a dotted bucket on an IP endpoint
 * (the SDK's rules make an invalid URL: every object above the upload cutoff failed) and an endpoint path ending in
 * a slash (the SDK put the object under another key on a server that keeps empty path segments).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { UploadPartCommand } from '@aws-sdk/client-s3';
import type { FinalizeRequestMiddleware } from '@smithy/types';
import type { S3StoreConfig } from '../../src/storage/s3Config.js';
import { bucketUrl } from '../../src/storage/s3Endpoint.js';
import { createSdkClient } from '../../src/storage/s3Sdk.js';

/** Where the SDK's client would send an UploadPart of `key`: host and path, caught before anything is sent. */
async function sdkTarget(config: S3StoreConfig, key: string): Promise<string> {
  const client = createSdkClient(config, {
    agents: { httpAgent: new HttpAgent(), httpsAgent: new HttpsAgent() },
    connectionTimeoutMs: 1000,
    socketTimeoutMs: 1000,
    credentials: async () => ({ accessKeyId: 'AKID', secretAccessKey: 'secret' }),
    clockOffset: 0,
  });
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one middleware for every command, as src/storage/s3Sdk.ts's
  const caught: FinalizeRequestMiddleware<any, any> = () => async (args) => {
    const request = args.request as { hostname: string; port?: number; path: string };
    throw Object.assign(new Error('caught'), { target: `${request.hostname}${request.port ? `:${request.port}` : ''}${request.path}` });
  };
  client.middlewareStack.add(caught, { step: 'finalizeRequest', priority: 'low', name: 'caught' });
  try {
    await client.send(new UploadPartCommand({ Bucket: config.bucket, Key: key, UploadId: 'u', PartNumber: 1, Body: 'x' }));
  } catch (error) {
    if ((error as { target?: string }).target) return (error as { target: string }).target;
    throw error;
  } finally {
    client.destroy();
  }
  throw new Error('the request was not caught');
}

/** Where the direct requests send `key`: host and path. */
function directTarget(config: S3StoreConfig, key: string): string {
  const url = bucketUrl(config)!;
  return `${url.host}${url.pathname.replace(/\/$/, '')}/${key}`;
}

const base = { type: 's3' as const, region: 'us-east-1', credentials: { accessKeyId: 'AKID', secretAccessKey: 'secret' } };
const shapes: Array<[what: string, config: S3StoreConfig]> = [
  ['a dotted bucket on an IP endpoint', { ...base, bucket: 'media.example.social', endpoint: 'http://10.0.0.5:9000', forcePathStyle: false }],
  ['a dotted bucket on an IP endpoint over TLS', { ...base, bucket: 'files.mastodon.example', endpoint: 'https://192.168.1.20', forcePathStyle: false }],
  ['a virtual host with a path ending in a slash', { ...base, bucket: 'media', endpoint: 'https://s3.example.com/storage/', forcePathStyle: false }],
  ['path style with a path ending in slashes', { ...base, bucket: 'media', endpoint: 'https://s3.example.com/storage//', forcePathStyle: true }],
  ['a plain virtual host', { ...base, bucket: 'media', endpoint: 'https://s3.example.com', forcePathStyle: false }],
  ['AWS with a dotted bucket', { ...base, bucket: 'media.example.social', endpoint: undefined, forcePathStyle: false, region: 'eu-west-1' }],
];

for (const [what, config] of shapes) {
  test(`the SDK's client sends where the direct requests send: ${what}`, async () => {
    assert.equal(await sdkTarget(config, 'media_attachments/files/1/original/a.png'), directTarget(config, 'media_attachments/files/1/original/a.png'));
  });
}
