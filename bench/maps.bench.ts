/**
 * Single-element map lookup and update: the TS API (BpfMap.get/set, codecs
 * included) against the same loop in C through libbpf, in one run.
 */
import { BpfMap, MapType, u32, u64 } from '../src/index.js';
import { buildC, nsPerOp, runC, type BenchModule, type BenchRow } from './lib.js';

const bench: BenchModule = {
  name: 'maps',
  async run({ quick }) {
    const iters = quick ? 20_000 : 200_000;
    const bin = buildC('maps');
    const m = BpfMap.create({ type: MapType.HASH, name: 'bench_ts', maxEntries: 1024 }, u32, u64);
    try {
      for (let k = 0; k < 1024; k++) m.set(k, k);
      let i = 0;
      let sum = 0;
      const rows: BenchRow[] = [];
      // Alternate C and TS rounds so both see the same machine state; keep each side's best.
      let c = { lookup_ns: Infinity, update_ns: Infinity };
      let tsLookup = Infinity;
      let tsUpdate = Infinity;
      for (let round = 0; round < 3; round++) {
        const r = runC<{ lookup_ns: number; update_ns: number }>(bin, [String(iters)]);
        c = { lookup_ns: Math.min(c.lookup_ns, r.lookup_ns), update_ns: Math.min(c.update_ns, r.update_ns) };
        tsLookup = Math.min(tsLookup, nsPerOp(iters, () => { sum += m.get(i++ & 1023) ?? 0; }, 1));
        tsUpdate = Math.min(tsUpdate, nsPerOp(iters, () => { m.set(i & 1023, i++); }, 1));
      }
      if (sum === -1) console.log(sum);
      for (const [figure, ts, cns] of [['lookup (get)', tsLookup, c.lookup_ns], ['update (set)', tsUpdate, c.update_ns]] as const) {
        const ratio = ts / cns;
        rows.push({ group: 'maps', figure: `hash u32->u64 ${figure}`, unit: 'ns/op', ts, c: cns, ratio, goal: 'TS/C <= 1.15', pass: ratio <= 1.15 });
      }
      return rows;
    } finally {
      m.close();
    }
  },
};
export default bench;
