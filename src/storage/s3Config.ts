/** What the S3 backend needs to know of a bucket; src/cli maps [source] / [destination] type = "s3" onto it. */
export interface S3StoreConfig {
  readonly type: 's3';
  readonly bucket: string;
  readonly region: string;
  readonly endpoint?: string;
  readonly forcePathStyle: boolean;
  readonly credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Mastodon's S3_KEY_PREFIX for this bucket; undefined when unset. */
  readonly keyPrefix?: string;
}
