/**
 * `npm run bench:startup`: the single executable against `node bin/mastosync.js`: its size, and how long
 * `--version` and `--help` take from spawn to exit (the whole start: loading the code, parsing, printing), with and
 * without the V8 code cache in the executable. The runs alternate (a, b, c, a, b, c, …) so that the machine's
 * load falls on each the same; medians. Prints a Markdown table for BENCHMARKS.md. Needs `npm run build` first.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: flags } = parseArgs({ options: { runs: { type: 'string', default: '30' } } });
const runs = Number(flags.runs);
const root = resolve(import.meta.dirname, '..');
const folder = mkdtempSync(join(os.tmpdir(), 'mastosync-startup-'));

try {
  const cached = join(folder, 'mastosync-cached');
  const uncached = join(folder, 'mastosync-uncached');
  const build = (out: string, extra: string[]) =>
    execFileSync(process.execPath, [join(root, 'scripts/build-binary.mjs'), '--out', out, ...extra], { cwd: root, stdio: 'ignore' });
  build(cached, []);
  build(uncached, ['--no-code-cache']);

  const variants = [
    { name: '`node bin/mastosync.js`', command: process.execPath, args: [join(root, 'bin/mastosync.js')] },
    { name: 'executable, code cache (as built)', command: cached, args: [] },
    { name: 'executable, no code cache', command: uncached, args: [] },
  ];
  const commands = [['--version'], ['--help']];
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)]!;
  };
  const times = new Map<string, number[]>();
  for (let run = 0; run < runs; run++) {
    for (const command of commands) {
      for (const variant of variants) {
        const started = performance.now();
        const result = spawnSync(variant.command, [...variant.args, ...command], { stdio: 'ignore', cwd: folder });
        const ms = performance.now() - started;
        if (result.status !== 0) throw new Error(`${variant.name} ${command.join(' ')} exited ${result.status}`);
        const key = `${variant.name} ${command.join(' ')}`;
        times.set(key, [...(times.get(key) ?? []), ms]);
      }
    }
  }

  const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
  const nodeSize = statSync(process.execPath).size;
  const base = (command: string[]) => median(times.get(`${variants[0]!.name} ${command.join(' ')}`)!);
  console.log(
    `Node ${process.version}, ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? 'unknown'}), load ${os
      .loadavg()
      .map((load) => load.toFixed(2))
      .join(' ')}; ${runs} runs each, alternating, median wall ms from spawn to exit.`,
  );
  console.log('');
  console.log('| how | size MiB | `--version` ms | × node | `--help` ms | × node |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const variant of variants) {
    const size =
      variant.command === process.execPath
        ? `${mib(nodeSize)} (node) + bundle ${mib(statSync(join(root, 'dist/bundle/main.js')).size)}`
        : mib(statSync(variant.command).size);
    const cells = commands.flatMap((command) => {
      const ms = median(times.get(`${variant.name} ${command.join(' ')}`)!);
      return [ms.toFixed(0), `${(ms / base(command)).toFixed(2)}×`];
    });
    console.log(`| ${variant.name} | ${size} | ${cells.join(' | ')} |`);
  }
} finally {
  rmSync(folder, { recursive: true, force: true });
}
