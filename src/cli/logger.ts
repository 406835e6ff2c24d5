/**
 * The JSON log lines on stderr, as pino 10 writes them with the options mastosync gave it (no base fields, these
 * redact paths, its error serializer, a synchronous write to fd 2), byte for byte: pino itself cost every start
 * about 18 ms of CPU and 2 MB to load (its worker-thread transport, sonic-boom, the redaction compiler), for the
 * handful of lines a run writes (docs/performance.md, start-up). test/unit/logger.test.ts writes the same lines
 * through pino and through this and compares them. Synchronous so the last lines are not lost when the process exits.
 */
import { writeSync } from 'node:fs';
import { err as serializeError } from 'pino-std-serializers';
import { configure } from 'safe-stable-stringify';
import type { Logger } from '../log.js';

/** Where log lines go, one `write` per line (with its newline). */
export interface LogDestination {
  write(line: string): unknown;
}

/** pino's levels. */
const LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
const LABELS: Readonly<Record<number, string>> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** Fields whose value is never written, whatever it is: pino's top-level redact paths. */
const REDACTED = new Set(['password', 'secret_access_key', 'secretAccessKey', 'passphrase', 'url', 'credentials']);
/** Fields of a field's value that are never written (pino's `*.name` paths): own properties only. */
const REDACTED_WITHIN = ['password', 'secret_access_key', 'secretAccessKey', 'passphrase', 'url'];
const CENSOR = JSON.stringify('[redacted]');

/** What pino falls back to for a value JSON.stringify refuses (a cycle, a BigInt), with its depth and breadth limits. */
const stringifySafe = configure({ maximumDepth: 5, maximumBreadth: 100 });

/**
 * `destination` replaces stderr, e.g. to print log lines above a live progress display. On a terminal the lines
 * are readable ones (readableLogLine); elsewhere JSON, for log collectors.
 */
export function createLogger(level: string, destination?: LogDestination): Logger {
  const out = destination ?? (process.stderr.isTTY ? readableDestination((text) => process.stderr.write(text)) : stderrDestination());
  return new JsonLogger(level, out);
}

/** Whether info lines (progress among them) are logged at this level: not at warn, error, fatal or silent. */
export function logsInfo(level: string): boolean {
  return LEVELS[level] !== undefined && LEVELS[level] <= LEVELS.info!;
}

/**
 * Its methods take whatever pino's take, and write it as pino did (test/unit/logger.test.ts), though the code calls
 * them only as Logger says. No trace or fatal: nothing logs at those levels (--log-level trace or fatal still sets
 * the threshold).
 */
export class JsonLogger implements Logger {
  readonly #threshold: number;
  readonly #out: LogDestination;

  constructor(level: string, out: LogDestination) {
    // As pino: a level's name in any case; an unknown one is refused (--log-level's choices refuse it before).
    const name = LEVELS[level.toLowerCase()] !== undefined ? level.toLowerCase() : level;
    const threshold = name === 'silent' ? Infinity : LEVELS[name];
    if (threshold === undefined) throw new Error(`default level:${level} must be included in custom levels`);
    this.#threshold = threshold;
    this.#out = out;
  }

  isLevelEnabled(level: string): boolean {
    const value = level === 'silent' ? Infinity : LEVELS[level];
    return value !== undefined && value >= this.#threshold;
  }

  debug(fields: unknown, message?: unknown): void {
    this.#log(20, fields, message, arguments.length);
  }
  info(fields: unknown, message?: unknown): void {
    this.#log(30, fields, message, arguments.length);
  }
  warn(fields: unknown, message?: unknown): void {
    this.#log(40, fields, message, arguments.length);
  }
  error(fields: unknown, message?: unknown): void {
    this.#log(50, fields, message, arguments.length);
  }

  /** pino's level method (its genLog and write): `(fields, message)`, `(message)` or `(error, message?)`. */
  #log(level: number, first: unknown, second: unknown, count: number): void {
    if (level < this.#threshold) return;
    let fields: unknown;
    let message: unknown;
    if (typeof first === 'object') {
      fields = first;
      // pino passes a lone null on as the message.
      message = first === null && count < 2 ? null : second;
    } else {
      message = first === undefined ? second : first;
    }
    let entry: Record<string, unknown>;
    if (fields === undefined || fields === null) entry = {};
    else if (fields instanceof Error) {
      entry = { err: fields };
      if (message === undefined) message = fields.message;
    } else {
      entry = fields as Record<string, unknown>;
      if (message === undefined && entry.msg === undefined && entry.err) message = (entry.err as { message?: unknown }).message;
    }
    this.#out.write(`{"level":${level},"time":${Date.now()}${fieldsJson(entry)}${messageJson(message)}}\n`);
  }
}

function fieldsJson(entry: Record<string, unknown>): string {
  let json = '';
  for (const key in entry) {
    let value = entry[key];
    if (!Object.prototype.hasOwnProperty.call(entry, key) || value === undefined) continue;
    if (key === 'err') value = serializeError(value as Error);
    if (typeof value === 'function' || value === undefined) continue;
    if (typeof value === 'number' && !Number.isFinite(value)) value = null;
    const written = REDACTED.has(key) ? CENSOR : redactedJson(value);
    if (written === undefined) continue;
    json += `,${asString(key)}:${written}`;
  }
  return json;
}

function messageJson(message: unknown): string {
  if (message === undefined || typeof message === 'function') return '';
  return `,"msg":${redactedJson(typeof message === 'number' && !Number.isFinite(message) ? null : message) ?? 'undefined'}`;
}

/**
 * A value as pino's redaction writes it: an object is copied one level deep (its prototype kept, its own
 * enumerable properties) with the REDACTED_WITHIN properties it owns censored, then JSON, or for what JSON refuses
 * the safe stringifier, or pino's own last words.
 */
function redactedJson(value: unknown): string | undefined {
  let copy = value;
  if (value !== null && typeof value === 'object') {
    if (value instanceof Date) copy = new Date(value.getTime());
    else if (Array.isArray(value)) copy = [...(value as unknown[])];
    else {
      const object = Object.create(Object.getPrototypeOf(value) as object | null) as Record<string, unknown>;
      for (const key in value) if (Object.prototype.hasOwnProperty.call(value, key)) object[key] = (value as Record<string, unknown>)[key];
      for (const key of REDACTED_WITHIN) if (Object.prototype.hasOwnProperty.call(object, key)) object[key] = '[redacted]';
      copy = object;
    }
  }
  try {
    return JSON.stringify(copy);
  } catch {
    try {
      return stringifySafe(copy);
    } catch {
      return '"[unable to serialize, circular reference is too complex to analyze]"';
    }
  }
}

/** pino's string quoting for field names: JSON's, with a fast path for short strings. */
function asString(text: string): string {
  if (text.length > 100) return JSON.stringify(text);
  let result = '';
  let last = 0;
  let found = false;
  let point = 255;
  for (let index = 0; index < text.length && point >= 32; index++) {
    point = text.charCodeAt(index);
    if (point === 34 || point === 92) {
      result += `${text.slice(last, index)}\\`;
      last = index;
      found = true;
    }
  }
  result = found ? result + text.slice(last) : text;
  return point < 32 ? JSON.stringify(text) : `"${result}"`;
}

/**
 * fd 2, written synchronously as pino.destination({ fd: 2, sync: true }) does: a busy descriptor (EAGAIN) is
 * tried again after 100 ms; once the reader is gone (EPIPE), logging stops; another error is thrown, and what it
 * left unwritten goes before the next line.
 */
function stderrDestination(): LogDestination {
  let gone = false;
  let pending = Buffer.alloc(0);
  return {
    write(line: string) {
      if (gone) return;
      pending = pending.length === 0 ? Buffer.from(line) : Buffer.concat([pending, Buffer.from(line)]);
      while (pending.length > 0) {
        try {
          pending = pending.subarray(writeSync(2, pending));
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'EAGAIN' || code === 'EBUSY') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
          else if (code === 'EPIPE') {
            gone = true;
            return;
          } else throw error;
        }
      }
    },
  };
}

/** On a terminal, log lines are for people to read, not JSON: each is turned into a readableLogLine. */
function readableDestination(write: (text: string) => unknown): LogDestination {
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
  const name = typeof level === 'number' ? (LABELS[level] ?? String(level)) : String(level ?? '');
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
