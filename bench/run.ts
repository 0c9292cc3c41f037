/**
 * npm run bench [-- --json] [--quick] [--only <group>]
 * Runs every bench/*.bench.ts module in one process, one after the other,
 * and prints one table (or JSON). Ratios compare figures measured side by
 * side in this one run.
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchModule, BenchRow } from './lib.js';

const args = process.argv.slice(2);
const json = args.includes('--json');
const quick = args.includes('--quick');
const onlyAt = args.indexOf('--only');
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;

const dir = dirname(fileURLToPath(import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.bench.ts')).sort();
const rows: BenchRow[] = [];
let failed = false;
for (const f of files) {
  const mod = (await import(pathToFileURL(join(dir, f)).href)).default as BenchModule;
  if (only && mod.name !== only) continue;
  if (!json) process.stderr.write(`running ${mod.name}...\n`);
  try {
    rows.push(...(await mod.run({ quick })));
  } catch (e) {
    failed = true;
    process.stderr.write(`bench ${mod.name} failed: ${(e as Error).message}\n`);
  }
}

function fmt(n: number | undefined): string {
  if (n === undefined) return '';
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 3 : 1);
}

if (json) {
  process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), quick, rows }, null, 2)}\n`);
} else {
  const header = ['group', 'figure', 'TS', 'C', 'unit', 'ratio', 'goal', 'met'];
  const table = rows.map((r) => [r.group, r.figure, fmt(r.ts), fmt(r.c), r.unit, r.ratio === undefined ? '' : r.ratio.toFixed(2), r.goal ?? '', r.pass === undefined ? '' : r.pass ? 'yes' : 'NO']);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of table) console.log(line(r));
  for (const r of rows) if (r.note) console.log(`- ${r.figure}: ${r.note}`);
}
process.exit(failed ? 1 : 0);
