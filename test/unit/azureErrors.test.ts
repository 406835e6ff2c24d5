/**
 * How the Azure store judges its failures: the RestError shapes @azure/storage-blob 12.32 throws (recorded against
 * Azurite: a HEAD's error has no body, so its code is only in `details.errorCode`; a GET's has it in `code` too),
 * Azurite 3.35's own code for a Content-MD5 mismatch, and the SDK's message for a download cut short.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RestError } from '@azure/storage-blob';
import { createStore } from '../../src/storage/index.js';

const CONTAINER = 'http://127.0.0.1:10000/devstoreaccount1/media';
const store = createStore(
  {
    type: 'azure',
    account: 'devstoreaccount1',
    credentials: { kind: 'key', accessKey: Buffer.from('key').toString('base64') },
    container: 'media',
    endpoint: 'http://127.0.0.1:10000/devstoreaccount1',
  },
  { role: 'destination', concurrency: 1 },
);

/** A service error as the SDK throws it for `method` on `blob`. */
function serviceError(
  status: number,
  code: string,
  options: { method?: string; blob?: string; body?: boolean; message?: string; headers?: Record<string, string> } = {},
) {
  const { method = 'GET', blob = 'accounts/avatars/1.png', body = method !== 'HEAD', message = '', headers = {} } = options;
  const error = new RestError(message, {
    statusCode: status,
    code: body ? code : undefined,
    request: { url: `${CONTAINER}/${encodeURIComponent(blob).replace(/%2F/g, '/')}`, method } as never,
    response: { status, headers: httpHeaders({ 'x-ms-error-code': code, ...headers }) } as never,
  });
  return Object.assign(error, { details: { errorCode: code } });
}

/** Headers as the SDK's responses carry them: read with get(name), any case. */
function httpHeaders(values: Record<string, string>) {
  return { get: (name: string) => values[name.toLowerCase()] };
}

describe('the Azure store classifies its failures', () => {
  test('ServerBusy (503) is throttling, with the Retry-After asked; 500 InternalError and OperationTimedOut are retried', () => {
    assert.deepEqual(store.classify(serviceError(503, 'ServerBusy', { headers: { 'retry-after': '7' } })), { kind: 'throttled', afterMs: 7000 });
    assert.deepEqual(store.classify(serviceError(500, 'InternalError')), { kind: 'retryable', afterMs: undefined });
    assert.deepEqual(store.classify(serviceError(500, 'OperationTimedOut')), { kind: 'retryable', afterMs: undefined });
  });

  test('bytes changed on the way: Md5Mismatch (Azure), InvalidOperation "Provided contentMD5 doesn\'t match." (Azurite 3.35)', () => {
    assert.equal(store.classify(serviceError(400, 'Md5Mismatch', { method: 'PUT' })).kind, 'retryable');
    assert.equal(store.classify(serviceError(400, 'InvalidOperation', { method: 'PUT', message: "Provided contentMD5 doesn't match." })).kind, 'retryable');
    assert.equal(store.classify(serviceError(400, 'InvalidOperation', { method: 'PUT', message: 'Something else.' })).kind, 'permanent');
  });

  test('a blob in the Archive tier (409 BlobArchived) is refused for its own state', () => {
    assert.deepEqual(store.classify(serviceError(409, 'BlobArchived')), { kind: 'permanent', ofObject: true });
    assert.deepEqual(store.classify(serviceError(409, 'LeaseIdMissing')), { kind: 'permanent' });
  });

  test('a blob not there is notFound, from a HEAD (no body: the code only in details) as from a GET', () => {
    assert.deepEqual(store.classify(serviceError(404, 'BlobNotFound', { method: 'HEAD' })), { kind: 'notFound' });
    assert.deepEqual(store.classify(serviceError(404, 'BlobNotFound')), { kind: 'notFound' });
  });

  test('refused credentials and a missing container stop the run, naming the blob, the code and the fix', () => {
    const refused = store.classify(serviceError(403, 'AuthenticationFailed', { method: 'PUT', blob: 'media_attachments/files/a b+c.png' }));
    assert.equal(refused.kind, 'fatal');
    assert.match(
      refused.kind === 'fatal' ? refused.error.message : '',
      /^\[destination\] container "media" at http:\/\/127\.0\.0\.1:10000\/devstoreaccount1 refused the credentials \(AuthenticationFailed on PUT media_attachments\/files\/a b\+c\.png\): check access_key/,
    );
    // Azurite says AuthorizationFailure for a wrong key, from a HEAD too.
    assert.equal(store.classify(serviceError(403, 'AuthorizationFailure', { method: 'HEAD' })).kind, 'fatal');
    const gone = store.classify(serviceError(404, 'ContainerNotFound'));
    assert.equal(gone.kind, 'fatal');
    assert.match(
      gone.kind === 'fatal' ? gone.error.message : '',
      /does not exist \(ContainerNotFound on GET accounts\/avatars\/1\.png\): check container, account and endpoint/,
    );
  });

  test('a dropped connection and a download the SDK found cut short are retried; an unknown error is permanent', () => {
    assert.equal(store.classify(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' })).kind, 'retryable');
    const cut = new Error(
      'Data corruption failure: received less data than required and reached maxRetires limitation. Received data offset: 1048575, data needed offset: 6295776, retries: 0, max retries: 0',
    );
    assert.equal(store.classify(cut).kind, 'retryable');
    assert.equal(store.classify(new TypeError('x is not a function')).kind, 'permanent');
  });
});
