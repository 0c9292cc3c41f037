/**
 * BTF-typed maps and globals:
 * - `bpfts map dump --json` of a 64K-entry hash map with a struct key and a
 *   struct value (conn_table of bpf/testdata/btf_kinds.bpf.o) against
 *   `bpftool -j map dump` of the same pinned map, alternating runs, wall
 *   time of the whole command (output to /dev/null). bpfts runs as the
 *   package ships it, compiled JS under plain node (src/ transpiled by
 *   esbuild into bench/build/dist, not bundled); a second row shows it
 *   under tsx, as `node --import tsx` runs it in the repo.
 * - a global counter (.bss `packets`) read through the mapping
 *   (obj.globals.bss.packets) against BpfMap.get of the same 8 bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, openSync, closeSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfObject, type Codec } from '../src/index.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { nsPerOp, type BenchModule, type BenchRow } from './lib.js';

const DIST = join(REPO_ROOT, 'bench', 'build', 'dist');

/** Transpiles src/ to plain JS (one file per module, as tsc at pack time would) and returns bpfts' entry. */
function buildJs(): string {
  const files = execFileSync('find', [join(REPO_ROOT, 'src'), '-name', '*.ts'], { encoding: 'utf8' }).trim().split('\n');
  execFileSync(join(REPO_ROOT, 'node_modules', '.bin', 'esbuild'), [...files, `--outdir=${join(DIST, 'src')}`, '--format=esm', '--platform=node', '--log-level=error'], { cwd: REPO_ROOT });
  return join(DIST, 'src', 'cli', 'bpfts', 'main.js');
}

/** Wall milliseconds of a command writing to /dev/null; throws when it fails. */
function timeRun(cmd: string, args: string[]): number {
  const fd = openSync('/dev/null', 'w');
  try {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { stdio: ['ignore', fd, 'pipe'], encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
    return ms;
  } finally {
    closeSync(fd);
  }
}

const bench: BenchModule = {
  name: 'btf',
  async run({ quick }) {
    const rows: BenchRow[] = [];
    const pinDir = `/sys/fs/bpf/libbpf-ts-bench-btf-${process.pid}`;
    mkdirSync(pinDir, { recursive: true });
    const pin = join(pinDir, 'conn_table');
    using obj = BpfObject.load(ensureObject('testdata', 'btf_kinds'));
    try {
      const m = obj.map('conn_table');
      const n = 65536;
      const entries: Array<readonly [Record<string, number>, Record<string, bigint>]> = [];
      for (let i = 0; i < n; i++) entries.push([{ src_ip: 0x0a000000 + i, dst_ip: 0x0a800000 + (i * 7 & 0xffff), proto: i & 1 ? 6 : 17 }, { packets: BigInt(i), bytes: BigInt(i) * 1500n }]);
      m.updateBatch(entries);
      m.pin(pin);
      const main = buildJs();
      const rounds = quick ? 2 : 5;
      const best = { js: Infinity, tsx: Infinity, tool: Infinity };
      for (let r = 0; r < rounds; r++) {
        best.tool = Math.min(best.tool, timeRun('bpftool', ['-j', 'map', 'dump', 'pinned', pin]));
        best.js = Math.min(best.js, timeRun(process.execPath, [main, 'map', 'dump', '--json', pin]));
        if (r < 1) best.tsx = Math.min(best.tsx, timeRun(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/bpfts/main.ts'), 'map', 'dump', '--json', pin]));
      }
      const startup = Math.min(...Array.from({ length: rounds }, () => timeRun(process.execPath, [main, '--help'])));
      rows.push({ group: 'btf', figure: 'map dump --json, 64K-entry hash (12 B struct key, 16 B struct value)', unit: 'ms', ts: best.js, c: best.tool, ratio: best.js / best.tool,
        goal: 'bpfts/bpftool < 1', pass: best.js < best.tool,
        note: `whole command, wall time, best of ${rounds} alternating runs, output to /dev/null; "TS" is bpfts as compiled JS under plain node (${startup.toFixed(0)} ms of it is node starting and loading the modules: bpfts --help), "C" is bpftool -j map dump pinned (it also prints every key and value as hex bytes)` });
      rows.push({ group: 'btf', figure: '  the same under tsx (node --import tsx src/cli/bpfts/main.ts)', unit: 'ms', ts: best.tsx, c: best.tool, ratio: best.tsx / best.tool,
        note: 'tsx transpiles the TypeScript at start-up: what running it from the repo costs' });

      // A global counter: through the mapping vs a map lookup syscall.
      const g = obj.globals.bss;
      const bssName = obj.maps.find((x) => x.name.endsWith('.bss'))!;
      const off = obj.btf!.datasec('.bss')!.vars.find((v) => v.name === 'packets')!.offset;
      const packetsOnly: Codec<bigint> = { size: bssName.valueSize, encode: () => { throw new Error('read only'); }, decode: (b, o = 0) => b.readBigUInt64LE(o + off) };
      const bss = obj.map(bssName.name, { size: 4, encode: (v: number, b: Buffer, o = 0) => { b.writeUInt32LE(v, o); }, decode: (b: Buffer, o = 0) => b.readUInt32LE(o) }, packetsOnly);
      g.packets = 12345n;
      if (bss.get(0) !== 12345n || g.packets !== 12345n) throw new Error('the mapping and the map disagree');
      const iters = quick ? 20_000 : 200_000;
      let last: unknown;
      const viaMap = nsPerOp(quick ? 5_000 : 50_000, () => { last = bss.get(0); }, 5);
      const viaMapping = nsPerOp(iters, () => { last = g.packets; }, 5);
      if (last !== 12345n) throw new Error(`read ${String(last)}, wrote 12345`);
      rows.push({ group: 'btf', figure: 'global u64 counter read: obj.globals.bss.packets vs BpfMap.get', unit: 'ns/op', ts: viaMapping, c: viaMap, ratio: viaMap / viaMapping,
        goal: 'speed-up >= 100', pass: viaMap / viaMapping >= 100,
        note: '"TS" reads through the mmapped .bss (a DataView load, no syscall); "C" column here is BpfMap.get(0) of the .bss map with a codec that reads the same 8 bytes (one bpf syscall); ratio = get / mapping' });
      return rows;
    } finally {
      rmSync(pinDir, { recursive: true, force: true });
    }
  },
};
export default bench;
