/**
 * A bucket's URL as the AWS SDK's S3 endpoint rules give it, for the configurations mastosync meets: a custom
 * endpoint (path style when forced, when its host is an IP address, or when the bucket cannot be a host name;
 * otherwise the bucket as a virtual host), and AWS's regional endpoints in the standard partition. Our own rules, so
 * that a run need not load the SDK (its client costs 17 MB of RSS and 0.16 s of CPU to load, docs/performance.md);
 * anything else (an ARN, a directory bucket or access point alias, another partition, a region that is no host name)
 * gives undefined, and the caller asks the SDK's rules. test/unit/s3Direct.test.ts compares both on every shape.
 */
import type { S3StoreConfig } from './s3Config.js';

/** Regions of AWS's standard partition (amazonaws.com): cn-, us-gov-, us-iso- and the like are left to the SDK. */
const STANDARD_REGION = /^(?:us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$/;
/** A DNS label, as the SDK's isValidHostLabel. */
const HOST_LABEL = /^(?!.*-$)(?!-)[a-zA-Z0-9-]{1,63}$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)$/;
/** Pseudo-regions the SDK signs for another region (aws-global as us-east-1) or sends elsewhere (FIPS). */
const PSEUDO_REGION = /^aws-global$|fips/;
/** Names the SDK treats otherwise: directory buckets (--x-s3), access point aliases, Outposts. */
const SPECIAL_BUCKET = /^arn:|--[a-z0-9]+-s3$/;

/**
 * Whether `region` can be signed for and put in a host name, as the SDK's rules require of it (they refused
 * "us-east-1 " or "eu central 1" when the client was made; the direct requests would sign with it as written).
 */
export function isRegionName(region: string): boolean {
  return HOST_LABEL.test(region);
}

/** The endpoint as messages and logs show it: a user name or password written into the URL is masked. */
export function shownEndpoint(endpoint: string): string {
  // Any scheme, any case, and up to the last @ before the path: a password may hold an @ of its own.
  return endpoint.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, '$1***@');
}

/** The bucket's URL (with its path in path style), or undefined where the SDK's rules must decide. */
export function bucketUrl(config: Pick<S3StoreConfig, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>): URL | undefined {
  const { bucket, region, endpoint, forcePathStyle } = config;
  if (SPECIAL_BUCKET.test(bucket) || bucket === '' || !HOST_LABEL.test(region) || PSEUDO_REGION.test(region)) return undefined;
  if (endpoint === undefined) {
    if (!STANDARD_REGION.test(region)) return undefined;
    // Dots would not match the wildcard certificate of *.s3.<region>.amazonaws.com: path style.
    if (!forcePathStyle && virtualHostable(bucket, false)) return new URL(`https://${bucket}.s3.${region}.amazonaws.com`);
    return new URL(`https://s3.${region}.amazonaws.com/${encodeBucket(bucket)}`);
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '' || url.username !== '' || url.password !== '') {
    return undefined;
  }
  const path = url.pathname.replace(/\/+$/, '');
  const isIp = IPV4.test(url.hostname) || url.hostname.startsWith('[');
  // Over TLS only a name without dots: a dotted one would not match the endpoint's wildcard certificate.
  const virtual = !forcePathStyle && !isIp && (virtualHostable(bucket, false) || (url.protocol === 'http:' && virtualHostable(bucket, true)));
  if (virtual) return new URL(`${url.protocol}//${bucket}.${url.host}${path}`);
  return new URL(`${url.protocol}//${url.host}${path}/${encodeBucket(bucket)}`);
}

/**
 * The endpoint and addressing style to give the SDK's client, so that what it sends (multipart uploads, copies in
 * parts) goes where the direct requests go. Where our rules decide, the SDK is told their choice: path style
 * whenever they chose it (for a dotted bucket on an IP endpoint the SDK's own rules make an invalid URL), and the
 * endpoint without trailing slashes (with one, the SDK's virtual-host URL has an empty path segment before the
 * key: another key on a server that keeps it). Elsewhere the SDK's rules decide everything, as configured.
 */
export function sdkAddressing(config: Pick<S3StoreConfig, 'bucket' | 'region' | 'endpoint' | 'forcePathStyle'>): {
  endpoint: string | undefined;
  forcePathStyle: boolean;
} {
  const ours = bucketUrl(config);
  if (ours === undefined) return { endpoint: config.endpoint, forcePathStyle: config.forcePathStyle };
  const virtual = ours.hostname.startsWith(`${config.bucket}.`);
  return { endpoint: config.endpoint?.replace(/\/+$/, ''), forcePathStyle: config.forcePathStyle || !virtual };
}

/** The SDK's isVirtualHostableS3Bucket: lower-case DNS labels of 3 to 63 characters, not an IP address. */
function virtualHostable(bucket: string, allowDots: boolean): boolean {
  if (allowDots) return bucket.split('.').every((label) => virtualHostable(label, false));
  return HOST_LABEL.test(bucket) && bucket.length >= 3 && bucket === bucket.toLowerCase() && !IPV4.test(bucket);
}

/** A bucket name in a path, encoded as the SDK's uri_encoded_bucket. */
function encodeBucket(bucket: string): string {
  return encodeURIComponent(bucket).replace(/[!'()*]/g, (character) => `%${character.charCodeAt(0).toString(16).toUpperCase()}`);
}
