/**
 * Reads Mastodon's `.env.production` the way the dotenv gem Mastodon loads it does, so `init` sees the values
 * Mastodon sees:
 * - `KEY=value`, `export KEY=value`, `KEY: value`; blank lines and `#` comment lines are skipped.
 * - Unquoted values end at the first `#` and are trimmed; `\x` becomes `x`.
 * - 'Single quotes' are literal. "Double quotes" turn `\n` and `\r` into line breaks and `\x` into `x`.
 *   Either kind may span lines.
 * - `$VAR` and `${VAR}` in unquoted and double-quoted values take the value of a variable defined earlier in
 *   the file ('' when there is none); `\$` is a literal `$`. The process environment is not consulted, so the
 *   result depends on the file alone. `$(command)` is left as written: it is never run.
 * Lines that are none of these are reported back (1-based) rather than guessed at.
 */

export interface EnvFile {
  readonly values: ReadonlyMap<string, string>;
  /** Line numbers that are neither a setting, a comment nor blank. */
  readonly ignoredLines: readonly number[];
}

const ASSIGNMENT = /^[ \t]*(?:export[ \t]+)?([\w.]+)(?:[ \t]*=[ \t]*|:[ \t]+)/;
const VARIABLE = /(\\)?\$(?!\()\{?([A-Z0-9_]+)?\}?/gi;

export function parseEnvFile(text: string): EnvFile {
  const values = new Map<string, string>();
  const ignoredLines: number[] = [];
  const source = text.replace(/\r\n?/g, '\n');
  let position = 0;
  let line = 1;

  while (position < source.length) {
    const lineEnd = endOfLine(source, position);
    const current = source.slice(position, lineEnd);
    const startLine = line;
    if (/^\s*(#.*)?$/.test(current)) {
      position = lineEnd + 1;
      line += 1;
      continue;
    }
    const assignment = ASSIGNMENT.exec(current);
    if (!assignment) {
      ignoredLines.push(startLine);
      position = lineEnd + 1;
      line += 1;
      continue;
    }
    const key = assignment[1]!;
    const valueStart = position + assignment[0].length;
    const quote = source[valueStart];
    if (quote === "'" || quote === '"') {
      const close = closingQuote(source, valueStart + 1, quote);
      const rest = close === -1 ? '' : source.slice(close + 1, endOfLine(source, close + 1));
      if (close === -1 || !/^\s*(#.*)?$/.test(rest)) {
        // An unterminated quote or text after the closing one: dotenv would not take this line either.
        ignoredLines.push(startLine);
        position = lineEnd + 1;
        line += 1;
        continue;
      }
      const raw = source.slice(valueStart + 1, close);
      values.set(key, quote === "'" ? raw : substitute(unescape(raw.replace(/\\n/g, '\n').replace(/\\r/g, '\r')), values));
      const end = endOfLine(source, close + 1);
      line += countLines(source, position, end) + 1;
      position = end + 1;
      continue;
    }
    const raw = current.slice(assignment[0].length).split('#', 1)[0]!.trim();
    values.set(key, substitute(unescape(raw), values));
    position = lineEnd + 1;
    line += 1;
  }
  return { values, ignoredLines };
}

function endOfLine(text: string, from: number): number {
  const index = text.indexOf('\n', from);
  return index === -1 ? text.length : index;
}

function countLines(text: string, from: number, to: number): number {
  let count = 0;
  for (let index = from; index < to; index++) if (text[index] === '\n') count += 1;
  return count;
}

/** The index of the quote that closes a value opened just before `from`; a backslash-escaped quote does not. */
function closingQuote(text: string, from: number, quote: string): number {
  for (let index = from; index < text.length; index++) {
    if (text[index] === '\\' && text[index + 1] === quote) index += 1;
    else if (text[index] === quote) return index;
  }
  return -1;
}

/** `\x` → `x`, except `\$`, which substitution turns into a literal `$`. */
function unescape(value: string): string {
  return value.replace(/\\([^$])/g, '$1');
}

function substitute(value: string, earlier: ReadonlyMap<string, string>): string {
  return value.replace(VARIABLE, (match: string, escaped: string | undefined, name: string | undefined) => {
    if (escaped) return match.slice(1);
    if (name === undefined) return match;
    return earlier.get(name) ?? '';
  });
}
