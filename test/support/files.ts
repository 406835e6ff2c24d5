/** Files of a folder destination, as tests list them. */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every file below `root`, as keys relative to it, sorted. */
export function filesBelow(root: string): string[] {
  const found: string[] = [];
  const walk = (folder: string) => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else found.push(relative(root, path));
    }
  };
  walk(root);
  return found.sort();
}
