/**
 * npm run bench [-- --json] [--quick] [--only <group>]
 * Runs every bench/*.bench.ts module in one process, one after the other,
 * and prints one table (or JSON). Ratios compare figures measured side by
 * side in this one run.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { newCommand, runCommand } from '../src/cli/command.js';
import type { BenchModule, BenchRow } from './lib.js';

const dir = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();
const groups = files.map((f) => f.replace(/\.bench\.ts$/, ''));

const program = newCommand('bench')
  .description('measure the figures of every bench/*.bench.ts module (needs root), side by side in one run, and print a table')
  .option('--json', 'print JSON instead of the table', false)
  .option('--quick', 'fewer iterations: a smoke run, not figures to quote', false)
  .option('--only <group>', `run one group: ${groups.join(', ')}`);

function fmt(n: number | undefined): string {
  if (n === undefined) return '';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 3 : 1);
}

await runCommand(program, async ({ out, log, signal }) => {
  const { json, quick, only } = program.opts<{ json: boolean; quick: boolean; only?: string }>();
  if (only !== undefined && !groups.includes(only)) {
    log(`error: --only ${only}: no such group (have: ${groups.join(', ')})`);
    return 2;
  }
  const rows: BenchRow[] = [];
  let failed = false;
  for (const f of files) {
    if (signal.aborted) break;
    const mod = (await import(pathToFileURL(join(dir, f)).href)).default as BenchModule;
    if (only && mod.name !== only) continue;
    if (!json) log(`running ${mod.name}...`);
    try {
      rows.push(...(await mod.run({ quick })));
    } catch (e) {
      failed = true;
      log(`bench ${mod.name} failed: ${(e as Error).message}`);
    }
  }
  if (json) {
    out.line(JSON.stringify({ date: new Date().toISOString(), quick, rows }, null, 2));
  } else {
    const header = ['group', 'figure', 'TS', 'C', 'unit', 'ratio', 'goal', 'met'];
    const table = rows.map((r) => [r.group, r.figure, fmt(r.ts), fmt(r.c), r.unit, r.ratio === undefined ? '' : r.ratio.toFixed(2), r.goal ?? '', r.pass === undefined ? '' : r.pass ? 'yes' : 'NO']);
    const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
    const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
    out.line(line(header));
    out.line(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of table) out.line(line(r));
    for (const r of rows) if (r.note) out.line(`- ${r.figure}: ${r.note}`);
  }
  return failed ? 1 : 0;
});
