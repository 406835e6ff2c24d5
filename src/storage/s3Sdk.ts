/**
 * The AWS SDK's S3 client, for what the direct requests (s3Direct.ts) do not do: multipart uploads (lib-storage),
 * copies in parts (s3Copy.ts), and the endpoint rules and signers of configurations our rules do not cover. S3Store
 * imports this module dynamically (its own chunk of the bundle) the first time one of those is needed: a run of small
 * objects on a plain endpoint never loads the SDK.
 */
import { createHash } from 'node:crypto';
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgent } from 'node:https';
import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { BuildMiddleware, InitializeMiddleware } from '@smithy/types';
import type { S3StoreConfig } from './s3Config.js';
import { NEVER_ABORTED, SILENT_SDK_LOGGER, digestEtag, type CredentialProvider } from './s3Direct.js';
import { sdkAddressing } from './s3Endpoint.js';
import { IntegrityError, md5FromEtag } from './errors.js';
import type { RequestGate } from './types.js';

export interface SdkClientOptions {
  /** The store's agents: one pool of sockets for the SDK's requests and the direct ones. */
  readonly agents: { readonly httpAgent: HttpAgent; readonly httpsAgent: HttpsAgent };
  readonly connectionTimeoutMs: number;
  readonly socketTimeoutMs: number;
  readonly credentials: CredentialProvider;
  /** The direct requests' correction of our clock, when they learnt one. */
  readonly clockOffset: number;
  readonly gate?: RequestGate;
}

export function createSdkClient(config: S3StoreConfig, options: SdkClientOptions): S3Client {
  const client = new S3Client({
    region: config.region,
    ...sdkAddressing(config),
    credentials: options.credentials,
    systemClockOffset: options.clockOffset,
    // The SDK's default checksum mode frames streamed bodies as aws-chunked, which some servers store
    // verbatim (corrupting the object) and R2/B2 reject. Integrity is checked by Content-MD5 and the answered
    // ETag (S3Store.put() and verifyPartDigest) and, where those prove nothing, by src/sync/integrity.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Retries are ours (src/sync/retry): each attempt restarts the whole object from a fresh GET.
    maxAttempts: 1,
    // "Expect: 100-continue" (the default above 2 MiB) costs a round trip per part, and the SDK's handler sends
    // such requests on a fresh connection each: a TCP and TLS handshake for every part of every large object.
    expectContinueHeader: false,
    // Without a logger the SDK warns on the console about every failed streamed PUT; failures reach our log.
    logger: SILENT_SDK_LOGGER,
    // Inactivity, not total time (socketTimeout): a large object may take long, a silent connection must not.
    requestHandler: new NodeHttpHandler({
      ...options.agents,
      connectionTimeout: options.connectionTimeoutMs,
      socketTimeout: options.socketTimeoutMs,
    }),
  });
  client.middlewareStack.add(verifyPartDigest, { step: 'initialize', name: 'mastosyncVerifyPartDigest' });
  if (options.gate !== undefined) gateSdkRequests(client, options.gate);
  return client;
}

/** Makes every request `client` sends through its middleware wait for `gate` first. */
export function gateSdkRequests(client: S3Client, gate: RequestGate): void {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- one middleware for every command, whose input and output types differ
  const middleware: BuildMiddleware<any, any> = (next, context) => async (args) => {
    await gate(context.commandName === 'AbortMultipartUploadCommand' ? NEVER_ABORTED : undefined);
    return next(args);
  };
  client.middlewareStack.add(middleware, { step: 'build', name: 'mastosyncMaxRps' });
}

/**
 * Each part of a multipart upload carries Content-MD5, so the destination refuses a part altered on the way;
 * a server that ignores the header is caught by comparing the part's ETag, and the upload is then aborted.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- one middleware for every command, whose input and output types differ
const verifyPartDigest: InitializeMiddleware<any, any> = (next, context) => async (args) => {
  const body: unknown = args.input.Body;
  if (context.commandName !== 'UploadPartCommand' || !(body instanceof Uint8Array)) return next(args);
  const digest = createHash('md5').update(body).digest();
  args.input.ContentMD5 = digest.toString('base64');
  const result = await next(args);
  const output = result.output as { ETag?: string; ServerSideEncryption?: string; SSECustomerAlgorithm?: string };
  const stored = digestEtag({
    etag: output.ETag,
    'x-amz-server-side-encryption': output.ServerSideEncryption,
    'x-amz-server-side-encryption-customer-algorithm': output.SSECustomerAlgorithm,
  });
  const md5 = digest.toString('hex');
  if (md5FromEtag(stored) !== undefined && stored !== md5) {
    throw new IntegrityError(`the destination stored part ${String(args.input.PartNumber)} with MD5 ${stored}, not the ${md5} sent`);
  }
  return result;
};
