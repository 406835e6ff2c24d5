/**
 * The world most integration tests run the real CLI in: PostgreSQL, one s3rver, a recording proxy in front of it
 * (or none), and the fixture of a schema loaded into a database and a source bucket. Built once per file and shared
 * by its cases where they do not interfere; what a case adds (a config folder, another database) is removed by
 * `stop()`.
 */
import { rmSync } from 'node:fs';
import { buildFixture, loadFixture, type Fixture } from './fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from './postgres.js';
import { startS3, type S3Server } from './s3.js';
import { startProxy, type HttpProxy, type ProxyOptions } from './httpProxy.js';
import { writeConfig, type ConfigSettings } from './cli.js';
import type { SchemaName } from './schema.js';

export interface StoresOptions {
  /** The proxy's options (latency, object ACLs…), in front of the s3rver. */
  readonly proxy?: Omit<ProxyOptions, 'upstreamPort'>;
}

export interface LoadOptions {
  /** Default 'current'. */
  readonly schema?: SchemaName;
  /** Buckets created empty beside the source. */
  readonly destinations?: readonly string[];
  /** Where the objects lie in the source bucket. */
  readonly keyPrefix?: string;
}

export interface Stores {
  readonly postgres: PostgresServer;
  readonly s3: S3Server;
  readonly proxy: HttpProxy;
  /** The fixture of `options.schema` in a new database, its objects in a new `source` bucket. */
  load(source: string, options?: LoadOptions): Promise<{ fixture: Fixture; db: TestDatabase }>;
  /** A config folder (cli.ts writeConfig), removed by `stop()`. */
  writeConfig(settings: ConfigSettings): ReturnType<typeof writeConfig>;
  /** Run by `stop()`, the last one given first, before the servers stop. */
  onStop(cleanup: () => unknown): void;
  stop(): Promise<void>;
}

export async function startStores(options: StoresOptions = {}): Promise<Stores> {
  const postgres = await startPostgres();
  const s3 = await startS3();
  const proxy = await startProxy({ ...options.proxy, upstreamPort: s3.port });
  const cleanups: Array<() => unknown> = [];
  return {
    postgres,
    s3,
    proxy,
    async load(source, { schema = 'current', destinations = [], keyPrefix } = {}) {
      const fixture = buildFixture(schema);
      const db = await createDatabase(schema);
      cleanups.push(() => db.drop());
      await s3.createBucket(source);
      for (const destination of destinations) await s3.createBucket(destination);
      await loadFixture(fixture, db.client, s3, source, keyPrefix);
      return { fixture, db };
    },
    writeConfig(settings) {
      const config = writeConfig(settings);
      cleanups.push(() => rmSync(config.dir, { recursive: true, force: true }));
      return config;
    },
    onStop: (cleanup) => cleanups.push(cleanup),
    async stop() {
      for (const cleanup of cleanups.reverse()) await cleanup();
      await proxy.stop();
      await s3.stop();
      await postgres.stop();
    },
  };
}

export interface FixtureWorld extends Stores {
  readonly fixture: Fixture;
  readonly db: TestDatabase;
}

/** The stores, with the fixture loaded into the source bucket `source`. */
export async function startFixtureWorld(source: string, options: StoresOptions & LoadOptions = {}): Promise<FixtureWorld> {
  const stores = await startStores(options);
  return { ...stores, ...(await stores.load(source, options)) };
}
