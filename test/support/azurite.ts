/**
 * Azure Blob Storage for tests: Microsoft's emulator Azurite (npm `azurite`), its blob service alone, on 127.0.0.1
 * and a free port, in memory, run from a temp folder; plus small helpers over @azure/storage-blob.
 *
 * Traps (/work/shared/components.md): `import 'azurite'` fails (its main module requires vscode), so it runs as a
 * child process; the SDK sends a newer x-ms-version than Azurite accepts, so --skipApiVersionCheck; telemetry is on
 * unless --disableTelemetry. Azurite checks Shared Key signatures: a wrong key gets 403.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { BlobServiceClient, StorageSharedKeyCredential, type ContainerClient } from '@azure/storage-blob';

/** Azurite's one account and its well-known key (documented by Microsoft; not a secret). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

const MAIN = join(dirname(createRequire(import.meta.url).resolve('azurite/package.json')), 'dist/src/blob/main.js');

export interface StoredBlob {
  body: Buffer;
  contentType?: string;
  cacheControl?: string;
  /** The blob's Content-MD5 property, hex, when it has one. */
  md5?: string;
}

export interface Azurite {
  port: number;
  /** The blob service URL, path style: http://127.0.0.1:PORT/devstoreaccount1 (what [*] endpoint takes). */
  endpoint: string;
  connectionString: string;
  service: BlobServiceClient;
  createContainer(name: string): Promise<void>;
  /** As the fixture loader calls an S3 target's put (the ACL is ignored: Azure has none per blob). */
  put(container: string, key: string, body: Buffer, options?: { contentType?: string; cacheControl?: string }): Promise<void>;
  /** The blob, or null when it does not exist. */
  getBlob(container: string, key: string): Promise<StoredBlob | null>;
  /** Every blob name in the container, in the service's order. */
  listKeys(container: string): Promise<string[]>;
  stop(): Promise<void>;
}

/** Starts Azurite's blob service; resolves once it listens. Another URL (a fault proxy's) can front it: `endpointAt(port)`. */
export async function startAzurite(): Promise<Azurite> {
  const folder = mkdtempSync(join(tmpdir(), 'mastosync-azurite-'));
  const child = spawn(
    process.execPath,
    [MAIN, '--blobHost', '127.0.0.1', '--blobPort', '0', '--inMemoryPersistence', '--skipApiVersionCheck', '--disableTelemetry', '--silent'],
    { cwd: folder, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let port: number;
  try {
    port = await listeningPort(child);
  } catch (error) {
    child.kill('SIGTERM');
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
  const endpoint = endpointAt(port);
  const connectionString = azuriteConnectionString(endpoint);
  const service = new BlobServiceClient(endpoint, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY));
  const container = (name: string): ContainerClient => service.getContainerClient(name);
  return {
    port,
    endpoint,
    connectionString,
    service,
    async createContainer(name) {
      await container(name).create();
    },
    async put(name, key, body, options = {}) {
      await container(name)
        .getBlockBlobClient(key)
        .upload(body, body.length, { blobHTTPHeaders: { blobContentType: options.contentType, blobCacheControl: options.cacheControl } });
    },
    async getBlob(name, key) {
      const blob = container(name).getBlobClient(key);
      try {
        const response = await blob.download();
        const chunks: Buffer[] = [];
        for await (const chunk of response.readableStreamBody as Readable) chunks.push(chunk as Buffer);
        const md5 = response.contentMD5 ?? response.blobContentMD5;
        return {
          body: Buffer.concat(chunks),
          contentType: response.contentType,
          cacheControl: response.cacheControl,
          md5: md5 === undefined ? undefined : Buffer.from(md5).toString('hex'),
        };
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return null;
        throw error;
      }
    },
    async listKeys(name) {
      const keys: string[] = [];
      for await (const blob of container(name).listBlobsFlat()) keys.push(blob.name);
      return keys;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

/** Azurite's blob service URL on `port` (its own, or a proxy's in front of it). */
export function endpointAt(port: number): string {
  return `http://127.0.0.1:${port}/${AZURITE_ACCOUNT}`;
}

export function azuriteConnectionString(endpoint: string): string {
  return `DefaultEndpointsProtocol=http;AccountName=${AZURITE_ACCOUNT};AccountKey=${AZURITE_KEY};BlobEndpoint=${endpoint};`;
}

/** The port Azurite prints once it listens ("Azurite Blob service successfully listens on http://127.0.0.1:PORT"). */
function listeningPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`Azurite did not listen within 60 s; it said: ${output}`)), 60_000);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      const match = /listens on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        // Keep draining stdout, or a full pipe would stall Azurite.
        child.stdout!.resume();
        resolve(Number(match[1]));
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`Azurite exited (${signal ?? code}) before listening; it said: ${output}`));
    });
  });
}
