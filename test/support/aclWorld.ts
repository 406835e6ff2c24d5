/**
 * What the ACL tests share: the 'current' fixture loaded into a source bucket, an empty destination bucket, both
 * behind a proxy that keeps each object's ACL as S3 does (s3rver answers PutObjectAcl 501 and keeps none).
 */
import { startFixtureWorld, type FixtureWorld } from './fixtureWorld.js';
import type { writeConfig } from './cli.js';

export interface AclWorld extends FixtureWorld {
  /** A config copying from the source bucket to the destination bucket, both through the proxy. */
  writeConfig(settings?: Partial<Parameters<typeof writeConfig>[0]>): ReturnType<typeof writeConfig>;
}

export async function startAclWorld(source: string, destination: string): Promise<AclWorld> {
  const world = await startFixtureWorld(source, { destinations: [destination], proxy: { objectAcls: true } });
  return {
    ...world,
    writeConfig: (settings) =>
      world.writeConfig({
        databaseUrl: world.db.url,
        source: { endpoint: world.proxy.endpoint, bucket: source },
        destination: { endpoint: world.proxy.endpoint, bucket: destination },
        ...settings,
      }),
  };
}
