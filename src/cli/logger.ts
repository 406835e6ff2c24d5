/**
 * pino, JSON to stderr. Synchronous so the last lines are not lost when the process exits. No transports: they
 * start worker files by path, which the bundle (dist/bundle) does not carry.
 */
import pino, { type Logger } from 'pino';

/**
 * `destination` replaces stderr, e.g. to print log lines above a live progress display. On a terminal the lines
 * are readable ones (readableLogLine); elsewhere JSON, for log collectors.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: {
        paths: [
          'password',
          'secret_access_key',
          'secretAccessKey',
          'passphrase',
          'url',
          '*.password',
          '*.secret_access_key',
          '*.secretAccessKey',
          '*.passphrase',
          '*.url',
          'credentials',
        ],
        censor: '[redacted]',
      },
    },
    destination ?? (process.stderr.isTTY ? readableDestination((text) => process.stderr.write(text)) : pino.destination({ fd: 2, sync: true })),
  );
}

/** Whether info lines (progress among them) are logged at this level: not at warn, error, fatal or silent. */
export function logsInfo(level: string): boolean {
  return pino.levels.values[level] !== undefined && pino.levels.values[level]! <= pino.levels.values.info!;
}

/** On a terminal, log lines are for people to read, not JSON: each is turned into a readableLogLine. */
function readableDestination(write: (text: string) => unknown): pino.DestinationStream {
  return { write: (line: string) => void write(`${readableLogLine(line)}\n`) };
}

/** The fields a reader looks for first, shown as bare values in this order: `media_attachments 123 key`. */
const LEADING_FIELDS = ['job', 'id', 'key'];

/**
 * A pino JSON line as one line for a person: `warn  missing at the source: media_attachments 123 media_attachments/…`,
 * then any other field as `name=value`. A line that is not pino's JSON is left as it is.
 */
export function readableLogLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.replace(/\n$/, '');
  }
  if (typeof entry !== 'object' || entry === null) return line.replace(/\n$/, '');
  const { level, time: _time, msg, ...fields } = entry;
  const name = typeof level === 'number' ? (pino.levels.labels[level] ?? String(level)) : String(level ?? '');
  const leading = LEADING_FIELDS.filter((field) => fields[field] !== undefined).map((field) => plain(fields[field]));
  const others = Object.entries(fields)
    .filter(([field]) => !LEADING_FIELDS.includes(field))
    .map(([field, value]) => `${field}=${plain(value)}`);
  const details = [...leading, ...others].join(' ');
  const message = typeof msg === 'string' ? msg : '';
  return `${name.padEnd(5)} ${message}${details === '' ? '' : `${message === '' ? '' : ':'} ${details}`}`.replace(/\n/g, ' ');
}

function plain(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(plain).join(',');
  // pino's serialized error: its message says it all ({type, message, stack}).
  if (typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string')
    return (value as { message: string }).message;
  return JSON.stringify(value);
}
