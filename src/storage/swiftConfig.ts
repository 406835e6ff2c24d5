/** What the Swift backend needs to know of a container; src/cli maps [source] / [destination] type = "swift" onto it. */
export interface SwiftStoreConfig {
  readonly type: 'swift';
  /**
   * Keystone's URL (`https://keystone.example.com:5000/v3`, Mastodon's SWIFT_AUTH_URL) or a v1 auth endpoint
   * (`…/auth/v1.0`: tempauth, swauth, some providers' legacy endpoint).
   */
  readonly authUrl: string;
  readonly username: string;
  readonly password: string;
  /** The project's name (SWIFT_TENANT); with v1 auth, the account part of `account:user` when username has none. */
  readonly tenant?: string;
  /** The project's id (SWIFT_PROJECT_ID): scopes the token instead of tenant. */
  readonly projectId?: string;
  /** The Keystone domain of the user and the project by name (SWIFT_DOMAIN_NAME); unset means the domain whose id is "default". */
  readonly domain?: string;
  /** Which of the catalog's object-store endpoints (SWIFT_REGION); needed when the catalog has several. */
  readonly region?: string;
  readonly container: string;
  /** Put before every key, as `<key_prefix>/<key>`; Mastodon itself uses none on Swift. */
  readonly keyPrefix?: string;
  /**
   * Bytes: larger objects are written as a static large object of segments this size, in `<container>_segments`.
   * Default and most: 5 GiB, the most one Swift object may hold (max_file_size).
   */
  readonly segmentSize?: number;
}
