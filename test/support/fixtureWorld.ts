/** PostgreSQL with the current schema's fixture, s3rver holding its objects in `source`, and a recording proxy in front. */
import { buildFixture, loadFixture, type Fixture } from './fixture.js';
import { createDatabase, startPostgres, type PostgresServer, type TestDatabase } from './postgres.js';
import { startS3, type S3Server } from './s3.js';
import { startProxy, type HttpProxy } from './httpProxy.js';

export interface FixtureWorld {
  readonly postgres: PostgresServer;
  readonly s3: S3Server;
  readonly proxy: HttpProxy;
  readonly fixture: Fixture;
  readonly db: TestDatabase;
  stop(): Promise<void>;
}

export async function startFixtureWorld(source: string): Promise<FixtureWorld> {
  const postgres = await startPostgres();
  const s3 = await startS3();
  const proxy = await startProxy({ upstreamPort: s3.port });
  const fixture = buildFixture('current');
  const db = await createDatabase('current');
  await s3.createBucket(source);
  await loadFixture(fixture, db.client, s3, source);
  return {
    postgres,
    s3,
    proxy,
    fixture,
    db,
    async stop() {
      await proxy.stop();
      await db.drop();
      await s3.stop();
      await postgres.stop();
    },
  };
}
