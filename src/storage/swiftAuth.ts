/**
 * Swift's two ways to a token and a storage URL, as pure functions over requests and answers (the store sends them):
 * - Keystone v3: POST <auth_url>/auth/tokens with a password and a project scope; the token comes in
 *   X-Subject-Token, the storage URL from the catalog's object-store service (public interface, the region asked).
 * - v1 (tempauth, swauth, legacy provider endpoints): GET <auth_url> with X-Auth-User and X-Auth-Key; the answer's
 *   X-Auth-Token and X-Storage-Url.
 * Keystone v2.0 was removed from OpenStack in 2018 (Queens): its URL is refused with the v3 one to use.
 */
import { UsageError } from '../errors.js';
import type { SwiftStoreConfig } from './swiftConfig.js';

export interface SwiftSession {
  readonly token: string;
  /** The account's URL, `https://swift.example.com/v1/AUTH_<project id>`, without a trailing slash. */
  readonly storageUrl: string;
  /** When the token stops working (ms since the epoch), if the answer said. */
  readonly expiresAt?: number;
}

export interface AuthRequest {
  readonly version: 'v1' | 'v3';
  readonly url: string;
  readonly method: 'GET' | 'POST';
  readonly headers: Record<string, string>;
  readonly body?: string;
}

export interface AuthAnswer {
  readonly status: number;
  /** Header names in lower case. */
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: string;
}

/** Which auth `authUrl` speaks: its path names the version (`/auth/v1.0`, `/v3`); a bare host means Keystone v3. */
export function authVersion(authUrl: string): 'v1' | 'v3' {
  let url: URL;
  try {
    url = new URL(authUrl);
  } catch {
    throw new UsageError(`auth_url must be a URL like https://keystone.example.com:5000/v3, not "${authUrl}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`auth_url must be an http(s) URL, not "${authUrl}"`);
  const path = url.pathname.replace(/\/+$/, '');
  if (/\/v1(\.0)?$/.test(path) || /\/auth\/v1/.test(path)) return 'v1';
  if (/\/v2(\.0)?$/.test(path)) {
    throw new UsageError(
      `auth_url ${authUrl} is Keystone v2.0, which OpenStack removed in 2018: use the v3 URL (${url.origin}${path.replace(/\/v2(\.0)?$/, '/v3')})`,
    );
  }
  return 'v3';
}

/** The request that asks for a token. */
export function authRequest(config: SwiftStoreConfig): AuthRequest {
  const version = authVersion(config.authUrl);
  const base = config.authUrl.replace(/\/+$/, '');
  if (version === 'v1') {
    // tempauth and swauth name a user `account:user`; SWIFT_TENANT is the account when the name lacks one.
    const user = config.username.includes(':') || config.tenant === undefined ? config.username : `${config.tenant}:${config.username}`;
    return { version, url: base, method: 'GET', headers: { 'x-auth-user': user, 'x-auth-key': config.password } };
  }
  if (config.projectId === undefined && config.tenant === undefined) {
    throw new UsageError('Keystone v3 needs a project to scope the token to: set tenant (the project name, SWIFT_TENANT) or project_id (SWIFT_PROJECT_ID)');
  }
  // Mastodon's SWIFT_DOMAIN_NAME defaults to "default": the default domain's id; any domain given is a name.
  const domain = config.domain === undefined ? { id: 'default' } : { name: config.domain };
  const project = config.projectId !== undefined ? { id: config.projectId } : { name: config.tenant, domain };
  const body = {
    auth: {
      identity: { methods: ['password'], password: { user: { name: config.username, domain, password: config.password } } },
      scope: { project },
    },
  };
  const url = `${/\/v3$/.test(base) ? base : `${base}/v3`}/auth/tokens`;
  return { version, url, method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) };
}

/** Why an auth answer is refused; `credentials` when the server refused who we said we are (401/403). */
export class SwiftAuthError extends Error {
  override readonly name = 'SwiftAuthError';
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly credentials: boolean,
  ) {
    super(message);
  }
}

/** The session in an answer to `request`, or a SwiftAuthError saying what is wrong. */
export function parseAuthAnswer(request: AuthRequest, answer: AuthAnswer, region: string | undefined): SwiftSession {
  const { status, headers } = answer;
  if (status === 401 || status === 403) {
    throw new SwiftAuthError(`${request.url} refused the credentials (${status})`, status, true);
  }
  if (status < 200 || status >= 300) throw new SwiftAuthError(`${request.url} answered ${status}: ${answer.body.slice(0, 200)}`, status, false);
  if (request.version === 'v1') {
    const token = headers['x-auth-token'] ?? headers['x-storage-token'];
    const storageUrl = headers['x-storage-url'];
    if (token === undefined || storageUrl === undefined) {
      throw new SwiftAuthError(`${request.url} answered ${status} without X-Auth-Token and X-Storage-Url: is it a Swift v1 auth endpoint?`, status, false);
    }
    const seconds = Number(headers['x-auth-token-expires']);
    return { token, storageUrl: storageUrl.replace(/\/+$/, ''), ...(Number.isFinite(seconds) && seconds > 0 && { expiresAt: Date.now() + seconds * 1000 }) };
  }
  const token = headers['x-subject-token'];
  if (token === undefined) throw new SwiftAuthError(`${request.url} answered ${status} without X-Subject-Token: is it Keystone v3?`, status, false);
  let parsed: V3TokenBody;
  try {
    parsed = JSON.parse(answer.body) as V3TokenBody;
  } catch {
    throw new SwiftAuthError(`${request.url} answered ${status} with a body that is not JSON`, status, false);
  }
  const expires = Date.parse(parsed.token?.expires_at ?? '');
  return { token, storageUrl: objectStoreUrl(parsed.token?.catalog ?? [], region), ...(!Number.isNaN(expires) && { expiresAt: expires }) };
}

interface V3Endpoint {
  readonly interface?: string;
  readonly region?: string;
  readonly region_id?: string;
  readonly url?: string;
}

interface V3TokenBody {
  readonly token?: {
    readonly expires_at?: string;
    readonly catalog?: ReadonlyArray<{ readonly type?: string; readonly endpoints?: readonly V3Endpoint[] }>;
  };
}

/** The object-store service's public URL in `region` (or the only region there is) from a v3 catalog. */
function objectStoreUrl(catalog: NonNullable<NonNullable<V3TokenBody['token']>['catalog']>, region: string | undefined): string {
  const endpoints = catalog.filter((service) => service.type === 'object-store').flatMap((service) => service.endpoints ?? []);
  const usable = endpoints.filter((endpoint) => endpoint.interface === 'public' && typeof endpoint.url === 'string');
  if (usable.length === 0) {
    throw new UsageError('the Keystone catalog of this project has no public object-store endpoint: check tenant / project_id (the project must have Swift)');
  }
  const regionOf = (endpoint: V3Endpoint) => endpoint.region_id ?? endpoint.region;
  const regions = [...new Set(usable.map(regionOf))];
  let chosen: V3Endpoint | undefined;
  if (region !== undefined) {
    chosen = usable.find((endpoint) => endpoint.region_id === region || endpoint.region === region);
    if (chosen === undefined)
      throw new UsageError(`the Keystone catalog has no object-store endpoint in region "${region}": choose one of ${regions.join(', ')}`);
  } else {
    if (regions.length > 1)
      throw new UsageError(`the Keystone catalog has object-store endpoints in several regions: set region (SWIFT_REGION) to one of ${regions.join(', ')}`);
    chosen = usable[0];
  }
  return chosen!.url!.replace(/\/+$/, '');
}
