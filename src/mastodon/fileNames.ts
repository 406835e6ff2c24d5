/**
 * File names of styles (docs/storage-layout.md §1.2 `:filename`): `original` keeps the stored name; any other
 * style is `basename.ext`, where ext is the style's format or else the original's extension, and a blank part
 * (empty or only white space: Mastodon's `delete_if(&:blank?)`) is left out together with its dot. The helpers follow Ruby's File.extname / File.basename(name, ".*"),
 * which Paperclip uses, for names with several dots, a leading dot or a trailing dot.
 */

/** Ruby File.extname without its dot: leading dots do not start an extension; "a." gives "". */
export function extensionOf(fileName: string): string {
  const body = fileName.replace(/^\.+/, '');
  const dot = body.lastIndexOf('.');
  return dot === -1 ? '' : body.slice(dot + 1);
}

/**
 * Ruby File.basename(name, ".*"): everything before the last dot, where leading dots (all of them, as in
 * extensionOf) never count, so "..hidden" has no extension and keeps its whole name.
 */
function baseNameOf(fileName: string): string {
  const leadingDots = fileName.length - fileName.replace(/^\.+/, '').length;
  const dot = fileName.lastIndexOf('.');
  return dot < leadingDots ? fileName : fileName.slice(0, dot);
}

/** The `:filename` of one style. `format` is the style's own format, if it has one. */
export function styleFileName(fileName: string, style: string, format: string | undefined): string {
  if (style === 'original') return fileName;
  return [baseNameOf(fileName), format ?? extensionOf(fileName)].filter((part) => !/^\s*$/u.test(part)).join('.');
}
