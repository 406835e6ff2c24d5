/** What the Azure Blob backend needs to know of a container; src/cli maps [source] / [destination] type = "azure" onto it. */
export interface AzureStoreConfig {
  readonly type: 'azure';
  readonly container: string;
  /** The storage account (AZURE_STORAGE_ACCOUNT); with a connection string, the one it names unless set. */
  readonly account?: string;
  readonly credentials: AzureCredentials;
  /**
   * The blob service URL, as a connection string's BlobEndpoint: Azurite's `http://127.0.0.1:10000/devstoreaccount1`,
   * or a sovereign cloud's `https://<account>.blob.core.chinacloudapi.cn`. Default `https://<account>.blob.core.windows.net`.
   */
  readonly endpoint?: string;
  /** Blobs live under `<key_prefix>/` (Mastodon itself writes none on Azure); undefined when unset. */
  readonly keyPrefix?: string;
}

export type AzureCredentials =
  /** The account's access key (AZURE_STORAGE_ACCESS_KEY): Shared Key signing. */
  | { readonly kind: 'key'; readonly accessKey: string }
  /** A SAS token (`sv=…&sig=…`), of the account or of the container. */
  | { readonly kind: 'sas'; readonly sasToken: string }
  /** A connection string (`DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…` or with SharedAccessSignature). */
  | { readonly kind: 'connectionString'; readonly connectionString: string };

/** The fields of a connection string, by name (names are case-insensitive there; kept as written). */
function connectionStringFields(connectionString: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of connectionString.split(';')) {
    const equals = part.indexOf('=');
    if (equals > 0) fields.set(part.slice(0, equals).trim().toLowerCase(), part.slice(equals + 1).trim());
  }
  return fields;
}

/** The account the config names, directly or in its connection string. */
export function azureAccount(config: AzureStoreConfig): string | undefined {
  if (config.account !== undefined) return config.account;
  if (config.credentials.kind !== 'connectionString') return undefined;
  const fields = connectionStringFields(config.credentials.connectionString);
  return fields.get('usedevelopmentstorage') === 'true' ? 'devstoreaccount1' : fields.get('accountname');
}

/** The blob service URL, without a trailing slash: the endpoint, the connection string's, or Azure's public one. */
export function azureServiceUrl(config: AzureStoreConfig): string {
  const trimmed = (url: string) => url.replace(/\/+$/, '');
  if (config.endpoint !== undefined) return trimmed(config.endpoint);
  const account = azureAccount(config) ?? '';
  if (config.credentials.kind === 'connectionString') {
    const fields = connectionStringFields(config.credentials.connectionString);
    const blobEndpoint = fields.get('blobendpoint');
    if (blobEndpoint !== undefined) return trimmed(blobEndpoint);
    if (fields.get('usedevelopmentstorage') === 'true') return 'http://127.0.0.1:10000/devstoreaccount1';
    const protocol = fields.get('defaultendpointsprotocol') ?? 'https';
    return `${protocol}://${account}.blob.${fields.get('endpointsuffix') ?? 'core.windows.net'}`;
  }
  return `https://${account}.blob.core.windows.net`;
}
