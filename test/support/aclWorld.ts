/**
 * What the ACL tests share: the 'current' fixture loaded into a source bucket, an empty destination bucket, both
 * behind a proxy that keeps each object's ACL as S3 does (s3rver answers PutObjectAcl 501 and keeps none).
 */
import { buildFixture, loadFixture, type Fixture } from './fixture.js';
import { createDatabase, type TestDatabase } from './postgres.js';
import { startS3, type S3Server } from './s3.js';
import { startProxy, type HttpProxy } from './httpProxy.js';
import { writeConfig } from './cli.js';

export interface AclWorld {
  readonly s3: S3Server;
  readonly proxy: HttpProxy;
  readonly db: TestDatabase;
  readonly fixture: Fixture;
  /** A config copying from the source bucket to the destination bucket, both through the proxy. */
  writeConfig(settings?: Partial<Parameters<typeof writeConfig>[0]>): ReturnType<typeof writeConfig>;
  stop(): Promise<void>;
}

export async function startAclWorld(source: string, destination: string): Promise<AclWorld> {
  const s3 = await startS3();
  const proxy = await startProxy({ upstreamPort: s3.port, objectAcls: true });
  const db = await createDatabase('current');
  const fixture = buildFixture('current');
  await s3.createBucket(source);
  await s3.createBucket(destination);
  await loadFixture(fixture, db.client, s3, source);
  return {
    s3,
    proxy,
    db,
    fixture,
    writeConfig: (settings) =>
      writeConfig({
        databaseUrl: db.url,
        source: { endpoint: proxy.endpoint, bucket: source },
        destination: { endpoint: proxy.endpoint, bucket: destination },
        ...settings,
      }),
    stop: async () => {
      await db.drop();
      await proxy.stop();
      await s3.stop();
    },
  };
}
