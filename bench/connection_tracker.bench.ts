/**
 * connection_tracker: dumping a full conn_table (65536 flows, struct
 * conn_key -> struct conn_stats) through the TS API, with batch lookups
 * versus get_next_key + lookup per entry; and the cost of decoding entries
 * into JS objects.
 */
import { BpfMap, MapType } from '../src/index.js';
import { CONN_TABLE_SIZE, connKey, connStats, type ConnKey, type ConnStats } from '../src/lessons/connection_tracker.js';
import { now, type BenchModule, type BenchRow } from './lib.js';

/** Best wall time of `rounds` runs of fn, in ms. */
function bestMs(rounds: number, fn: () => void): number {
  let best = Infinity;
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    fn();
    best = Math.min(best, Number(now() - t0) / 1e6);
  }
  return best;
}

const bench: BenchModule = {
  name: 'connection_tracker',
  async run({ quick }) {
    const n = CONN_TABLE_SIZE;
    const m = BpfMap.create({ type: MapType.HASH, name: 'ct_bench', maxEntries: n }, connKey, connStats);
    try {
      const fill: Array<[ConnKey, ConnStats]> = [];
      for (let i = 0; i < n; i++) {
        fill.push([{ src_ip: 0x0a000000 + (i >>> 8), dst_ip: 0x0a640000 + (i & 255), proto: [6, 17, 1][i % 3] }, { packets: i + 1, bytes: (i + 1) * 1500 }]);
      }
      if (m.updateBatch(fill) !== n) throw new Error('fill: not every entry was written');

      let count = 0;
      const batchMs = bestMs(quick ? 3 : 15, () => { count = m.lookupBatch().length; });
      if (count !== n) throw new Error(`batch dump read ${count} entries, expected ${n}`);
      const iterMs = bestMs(quick ? 1 : 3, () => { count = [...m.entries()].length; });
      if (count !== n) throw new Error(`iteration dump read ${count} entries, expected ${n}`);
      // Visiting every entry without holding them all (sum packets), both ways.
      let total = 0;
      const expectTotal = (n * (n + 1)) / 2;
      const visitBatchMs = bestMs(quick ? 3 : 15, () => { total = 0; for (const [, v] of m.entriesBatched()) total += v.packets; });
      if (total !== expectTotal) throw new Error(`batch visit summed ${total} packets, expected ${expectTotal}`);
      const visitIterMs = bestMs(quick ? 1 : 3, () => { total = 0; for (const [, v] of m.entries()) total += v.packets; });
      if (total !== expectTotal) throw new Error(`iteration visit summed ${total} packets, expected ${expectTotal}`);
      const rawMs = bestMs(quick ? 3 : 15, () => { count = 0; m.lookupBatchRaw((_k, _v, c) => { count += c; }); });

      // Decode only: the raw buffers of one batch dump, decoded to [key, value] objects.
      const keys = Buffer.alloc(n * connKey.size);
      const values = Buffer.alloc(n * connStats.size);
      let at = 0;
      m.lookupBatchRaw((k, v, c) => {
        k.copy(keys, at * connKey.size, 0, c * connKey.size);
        v.copy(values, at * connStats.size, 0, c * connStats.size);
        at += c;
      });
      let sink = 0;
      const decodeMs = bestMs(quick ? 5 : 15, () => {
        const out: Array<[ConnKey, ConnStats]> = new Array(n);
        for (let i = 0; i < n; i++) out[i] = [connKey.decode(keys, i * 12), connStats.decode(values, i * 16)];
        sink += out[n - 1][1].packets;
      });
      if (sink === -1) console.log(sink);
      const decodeRate = n / (decodeMs / 1000);

      const ratio = iterMs / batchMs;
      const visitRatio = visitIterMs / visitBatchMs;
      const rows: BenchRow[] = [
        { group: 'connection_tracker', figure: `dump ${n / 1024}K flows into an array: batch lookup`, unit: 'ms', ts: batchMs },
        { group: 'connection_tracker', figure: `dump ${n / 1024}K flows into an array: get_next_key + lookup`, unit: 'ms', ts: iterMs },
        {
          group: 'connection_tracker', figure: 'dump into an array, speed-up batch vs iteration', unit: 'x', ratio, goal: 'batch >= 10x', pass: ratio >= 10,
          note: `lookupBatch() vs [...entries()]. Of the batch dump's ${batchMs.toFixed(1)} ms, the batch syscalls alone (lookupBatchRaw, no decoding) take ${rawMs.toFixed(1)} ms; the rest is decoding 64K entries into 196K live objects, and with Node's default young generation the scavenges that copy them cost as much as the decoding (node --max-semi-space-size=64 halves this row here)`,
        },
        { group: 'connection_tracker', figure: `visit ${n / 1024}K flows (sum packets): batch lookup`, unit: 'ms', ts: visitBatchMs },
        { group: 'connection_tracker', figure: `visit ${n / 1024}K flows (sum packets): get_next_key + lookup`, unit: 'ms', ts: visitIterMs },
        {
          group: 'connection_tracker', figure: 'visit every entry, speed-up batch vs iteration', unit: 'x', ratio: visitRatio, goal: 'batch >= 10x', pass: visitRatio >= 10,
          note: 'for (const [k, v] of entriesBatched()) vs for (const [k, v] of entries()): every entry decoded, none kept',
        },
        { group: 'connection_tracker', figure: `dump ${n / 1024}K flows: batch syscalls only, no decoding`, unit: 'ms', ts: rawMs },
        { group: 'connection_tracker', figure: 'decode conn_key+conn_stats to objects', unit: 'entries/s', ts: decodeRate, goal: '>= 2M/s', pass: decodeRate >= 2e6 },
      ];
      return rows;
    } finally {
      m.close();
    }
  },
};
export default bench;
