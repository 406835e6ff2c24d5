/** Figures per tool and scenario, as a terminal table and as the Markdown of BENCHMARKS.md. */

export interface ToolResult {
  readonly tool: string;
  readonly ok: boolean;
  /** Why the run does not count (exit code, destination not exact). */
  readonly problem?: string;
  readonly wallMs: number;
  readonly objects: number;
  readonly bytes: number;
  readonly cpuMs: number;
  readonly peakRssBytes: number;
  /** Requests per S3 operation the tool sent through the proxy. */
  readonly requests: Readonly<Record<string, number>>;
  /** CPU of the same tool copying nothing (start, connect, check, exit): what is not per object. */
  readonly fixedCpuMs?: number;
  /** TCP connections the tool opened to the proxies (keep-alive: far fewer than requests). */
  readonly connections?: number;
  /** From spawn to the first object written at the destination. */
  readonly firstObjectMs?: number;
  /** Instructions the run took, counted by callgrind (bench --callgrind). */
  readonly instructions?: number;
  /** Instructions of the same tool copying nothing. */
  readonly fixedInstructions?: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  readonly concurrency: number;
  readonly latencyMs: number;
  /** N × round trips per object × latency / C. */
  readonly limitMs: number;
  readonly results: readonly ToolResult[];
  /** Lines shown after the table. */
  readonly notes?: readonly string[];
}

const MB = 1e6;

export function perObject(result: ToolResult): {
  objectsPerSecond: number;
  megabytesPerSecond: number;
  cpuMsPerObject: number;
  marginalCpuMsPerObject?: number;
} {
  const seconds = result.wallMs / 1000;
  return {
    objectsPerSecond: result.objects / seconds,
    megabytesPerSecond: result.bytes / 1e6 / seconds,
    cpuMsPerObject: result.cpuMs / Math.max(1, result.objects),
    marginalCpuMsPerObject: result.fixedCpuMs === undefined ? undefined : (result.cpuMs - result.fixedCpuMs) / Math.max(1, result.objects),
  };
}

function requestsText(result: ToolResult): string {
  const total = Object.values(result.requests).reduce((sum, count) => sum + count, 0);
  const parts = Object.entries(result.requests)
    .sort((a, b) => b[1] - a[1])
    .map(([operation, count]) => `${operation} ${count}`);
  const connections = result.connections === undefined ? '' : `; ${result.connections} connections`;
  return `${(total / Math.max(1, result.objects)).toFixed(2)} (${parts.join(', ')}${connections})`;
}

function rows(scenario: ScenarioResult): string[][] {
  const rclone = scenario.results.find((result) => result.tool.startsWith('rclone') && result.ok);
  const header = [
    'tool',
    'wall s',
    'objects/s',
    'MB/s',
    'CPU ms/object',
    'beyond start',
    'peak RSS MB',
    'wall × rclone',
    'CPU × rclone',
    'wall × limit',
    'requests/object',
  ];
  // Under callgrind: millions of instructions per object, in all and beyond start, and against the bare copier's.
  const counted = scenario.results.some((result) => result.instructions !== undefined);
  const floor = scenario.results.find((result) => result.tool.startsWith('node-floor') && result.instructions !== undefined);
  const perObjectM = (result: ToolResult, fixed = 0) =>
    result.instructions === undefined ? undefined : (result.instructions - fixed) / Math.max(1, result.objects) / 1e6;
  const beyondStartM = (result: ToolResult) => (result.fixedInstructions === undefined ? undefined : perObjectM(result, result.fixedInstructions));
  const instructionCells = (result: ToolResult): string[] => {
    const [all, beyond] = [perObjectM(result), beyondStartM(result)];
    const floorBeyond = floor && beyondStartM(floor);
    return [
      all === undefined ? '–' : all.toFixed(2),
      beyond === undefined ? '–' : beyond.toFixed(2),
      beyond !== undefined && floorBeyond ? (beyond / floorBeyond).toFixed(2) : '–',
    ];
  };
  if (counted) header.push('M instr./object', 'beyond start', 'beyond start × node-floor');
  const body = scenario.results.map((result) => {
    const figures = perObject(result);
    return [
      result.ok ? result.tool : `${result.tool} (FAILED: ${result.problem})`,
      (result.wallMs / 1000).toFixed(2),
      figures.objectsPerSecond.toFixed(0),
      figures.megabytesPerSecond.toFixed(1),
      figures.cpuMsPerObject.toFixed(2),
      figures.marginalCpuMsPerObject === undefined ? '–' : figures.marginalCpuMsPerObject.toFixed(2),
      (result.peakRssBytes / MB).toFixed(0),
      rclone ? (result.wallMs / rclone.wallMs).toFixed(2) : '–',
      rclone ? (result.cpuMs / rclone.cpuMs).toFixed(2) : '–',
      scenario.limitMs > 0 ? (result.wallMs / scenario.limitMs).toFixed(2) : '–',
      requestsText(result),
      ...(counted ? instructionCells(result) : []),
    ];
  });
  const limit = ['latency limit', (scenario.limitMs / 1000).toFixed(2), '', '', '', '', '', '', '', '1.00', '', ...(counted ? ['', '', ''] : [])];
  return [header, ...body, ...(scenario.limitMs > 0 ? [limit] : [])];
}

export function scenarioText(scenario: ScenarioResult): string {
  const table = rows(scenario);
  const widths = table[0]!.map((_, column) => Math.max(...table.map((row) => row[column]!.length)));
  const lines = table.map((row) => row.map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  '));
  return [`${scenario.name}: ${scenario.description}`, ...lines, ...(scenario.notes ?? [])].join('\n');
}

export function scenarioMarkdown(scenario: ScenarioResult): string {
  const [header, ...body] = rows(scenario);
  return [
    `### ${scenario.name}`,
    '',
    scenario.description,
    '',
    `| ${header!.join(' | ')} |`,
    `|${header!.map((_, index) => (index === 0 ? '---' : '---:')).join('|')}|`,
    ...body.map((row) => `| ${row.join(' | ')} |`),
    ...(scenario.notes ?? []).flatMap((note) => ['', note]),
  ].join('\n');
}
