/**
 * xdp_dnat figures: ns per packet of the forward program against a bare
 * `return XDP_PASS` program, through BPF_PROG_TEST_RUN, all measured in one
 * run by the same method:
 * - established-flow hit: a packet of a flow in the flow cache (what every
 *   packet of an established flow is, but its first and one per 16 jiffies
 *   per CPU): the slot (one cache line: the flow, the backend, egress, MACs,
 *   MTU) checked against the packet and the epoch, rewrite, checksums, TTL,
 *   MACs, XDP_REDIRECT;
 * - established-flow hit, full path: the same packet with the epoch changed
 *   before each call (a map write outside the timed run), so it misses the
 *   flow cache: conntrack lookup, backend check, the entry's cached
 *   forwarding, the slot refilled, XDP_REDIRECT (what the established hit
 *   was before the flow cache);
 * - new-flow hit: every packet a new 5-tuple: conntrack miss, service
 *   lookup, flow hash, Maglev slot, backend, bpf_fib_lookup (twice: the
 *   route and MACs, then the MTU), connection and reverse entries inserted;
 * - miss: parse, conntrack miss, service_map miss;
 * - bare XDP_PASS.
 * The programs run in a worker process inside the load balancer namespace of
 * a dnat lab (nsenter --net), with the lab's lb0 as ingress interface, so
 * bpf_fib_lookup does real work: a forwarding route and a resolved
 * (permanent) neighbour for the backend; the hit ends in XDP_REDIRECT.
 *
 * Why repeat = 1, many calls: with `repeat`, the kernel runs the program
 * again on the same buffer, so from the second run on a hit sees its own
 * output: destination = the backend, which is no connection and no service:
 * a miss. (Not idempotent on its output, on purpose: a packet to a backend
 * is not a service's.) So every figure comes from many BPF_PROG_TEST_RUN
 * calls with repeat = 1, each on a fresh copy of the packet (the kernel
 * copies the input in every call), averaging the kernel-measured duration
 * of each run, which includes the same per-run timer overhead for every
 * program: compare to the bare program's figure. The established figure's
 * runs are checked to be what they claim: the dnat_stats counters of the
 * timed calls must show fib_cached for (nearly) all of them and conn_new for
 * none; the new-flow calls must all show conn_new.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BpfObject, XdpAction, resolveInterface, type Program } from '../src/index.js';
import { parseIpv4 } from '../src/codec.js';
import { ensureObject, REPO_ROOT } from '../src/cli/build.js';
import { LB_PROGRAMS, bumpEpoch, configureDataPlane, dataPlaneMaps, readDnatStats } from '../src/lb/dataplane.js';
import { dnatLab, run } from '../src/lab/index.js';
import { buildFrame } from '../test/helpers/packets.js';
import { TestLb } from '../test/helpers/lb.js';
import { runJsonWorkerInNetns } from '../test/helpers/kernel.js';
import type { BenchModule, BenchRow } from './lib.js';

const BACKEND = { ip: '10.244.1.5', port: 8080 };
const WARM_REPEAT = 200;

interface WorkerResult {
  establishedNs: number; fullNs: number; newNs: number; missNs: number; passNs: number;
  hitVerdict: number; calls: number; rounds: number;
  establishedCached: number; establishedRuns: number; newConns: number; newRuns: number;
  /** The warm method (repeat > 1 on a flow whose backend is its own VIP:port). */
  warmEstNs: number; warmPassNs: number; warmMissNs: number; warmRepeat: number; warmCalls: number;
  warmRedirects: number; warmRefreshes: number; warmNew: number; warmVerdict: number;
}

/** struct xdp_md for test runs: the packet's bounds, and the ingress interface. */
function xdpMd(len: number, ifindex: number): Uint8Array {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(len, 4); // data_end
  b.writeUInt32LE(ifindex, 12); // ingress_ifindex
  return b;
}

/** Mean kernel-measured ns per run of `calls` test runs of `repeat` runs each on the same packet. */
function meanRepeat(prog: Program, data: Buffer, ctx: Uint8Array, calls: number, repeat: number): number {
  let total = 0;
  for (let k = 0; k < calls; k++) total += prog.testRun({ data, ctx, dataOutSize: data.length, repeat }).duration;
  return total / calls;
}

/** Mean kernel-measured ns of `calls` single runs (repeat 1), `next(k)` giving the k-th packet. */
function meanRun(prog: Program, next: (k: number) => Buffer, ctx: Uint8Array, calls: number): number {
  let total = 0;
  for (let k = 0; k < calls; k++) {
    const data = next(k);
    total += prog.testRun({ data, ctx, dataOutSize: data.length }).duration;
  }
  return total / calls;
}

async function worker(lbIf: string, quick: boolean): Promise<WorkerResult> {
  const ifindex = resolveInterface(lbIf).index;
  const obj = BpfObject.open(ensureObject('xdp_dnat'));
  const bare = BpfObject.load(ensureObject('testdata', 'pass'));
  try {
    configureDataPlane(obj, { conntrackSize: 1 << 20 });
    obj.load();
    const maps = dataPlaneMaps(obj);
    const lb = new TestLb(maps);
    lb.set('10.96.0.10:80/tcp', [{ addr: '10.244.1.5:8080' }]);
    const fwd = obj.program(LB_PROGRAMS.forward);
    const pass = bare.program('xdp_pass');
    const payload = new Uint8Array(64).fill(0x61);
    const hit = buildFrame({ src: '10.0.1.2', dst: '10.96.0.10', proto: 6, sport: 40000, dport: 80, payload });
    const miss = buildFrame({ src: '10.0.1.2', dst: '10.96.0.99', proto: 6, sport: 40000, dport: 80, payload });
    const ctx = xdpMd(hit.length, ifindex);
    const hitVerdict = fwd.testRun({ data: hit, ctx }).retval; // also creates the flow's entry and cache
    // The warm method's flow: the client's flow to the backend's own address and port,
    // given the established entry of the hit flow (same backend, same cached forwarding),
    // as if it had been picked earlier. The program rewrites it to what it already
    // carries, so its output is the same established flow again and `repeat` re-runs
    // the whole established path (lookup, backend check, checksums, TTL, MACs,
    // redirect) on its own output.
    const hitKey = { saddr: parseIpv4('10.0.1.2'), daddr: parseIpv4('10.96.0.10'), sport: 40000, dport: 80, proto: 6 };
    const entry = maps.conntrack.get(hitKey);
    if (!entry) throw new Error('the hit flow has no connection entry');
    maps.conntrack.set({ ...hitKey, daddr: parseIpv4(BACKEND.ip), dport: BACKEND.port }, entry);
    const self = buildFrame({ src: '10.0.1.2', dst: BACKEND.ip, proto: 6, sport: 40000, dport: BACKEND.port, payload, ttl: 255 });
    const warmVerdict = fwd.testRun({ data: self, ctx }).retval;
    const calls = quick ? 5_000 : 30_000;
    const rounds = quick ? 2 : 3;
    // New flows: a fresh source address and port in every call.
    const fresh = Buffer.from(hit);
    let flow = 0;
    const nextNew = () => {
      flow++;
      fresh.writeUInt32BE(0x0a010000 + (flow >>> 10), 26); // 10.1.x.y
      fresh.writeUInt16BE(1024 + (flow & 1023) * 61, 34);
      return fresh;
    };
    const best = { est: Infinity, full: Infinity, neu: Infinity, miss: Infinity, pass: Infinity };
    let establishedCached = 0;
    let establishedRuns = 0;
    let newConns = 0;
    let newRuns = 0;
    for (let r = 0; r < rounds; r++) {
      let s0 = readDnatStats(maps.stats, maps.flowCache);
      best.est = Math.min(best.est, meanRun(fwd, () => hit, ctx, calls));
      let s1 = readDnatStats(maps.stats, maps.flowCache);
      establishedCached += calls - (s1.fib_refresh - s0.fib_refresh);
      establishedRuns += calls;
      if (s1.conn_new !== s0.conn_new) throw new Error('an established-flow run created a connection: not the established path');
      best.full = Math.min(best.full, meanRun(fwd, () => { bumpEpoch(maps.globals); return hit; }, ctx, calls));
      s0 = readDnatStats(maps.stats, maps.flowCache);
      best.neu = Math.min(best.neu, meanRun(fwd, nextNew, ctx, calls));
      s1 = readDnatStats(maps.stats, maps.flowCache);
      newConns += s1.conn_new - s0.conn_new;
      newRuns += calls;
      best.miss = Math.min(best.miss, meanRun(fwd, () => miss, ctx, calls));
      best.pass = Math.min(best.pass, meanRun(pass, () => miss, ctx, calls));
    }
    // Warm: repeat runs on one buffer, so the code and data stay in cache between them.
    // TTL 255 and one decrement per run: WARM_REPEAT runs all stay on the forwarding path.
    const warmCalls = quick ? 500 : 2_000;
    const warm = { est: Infinity, pass: Infinity, miss: Infinity };
    let warmRedirects = 0;
    let warmRefreshes = 0;
    let warmNew = 0;
    for (let r = 0; r < rounds; r++) {
      const s0 = readDnatStats(maps.stats, maps.flowCache);
      warm.est = Math.min(warm.est, meanRepeat(fwd, self, ctx, warmCalls, WARM_REPEAT));
      const s1 = readDnatStats(maps.stats, maps.flowCache);
      warmRedirects += s1.redirect - s0.redirect;
      warmRefreshes += s1.fib_refresh - s0.fib_refresh;
      warmNew += s1.conn_new - s0.conn_new;
      warm.miss = Math.min(warm.miss, meanRepeat(fwd, miss, ctx, warmCalls, WARM_REPEAT));
      warm.pass = Math.min(warm.pass, meanRepeat(pass, miss, ctx, warmCalls, WARM_REPEAT));
    }
    return {
      establishedNs: best.est, fullNs: best.full, newNs: best.neu, missNs: best.miss, passNs: best.pass, hitVerdict, calls, rounds, establishedCached, establishedRuns, newConns, newRuns,
      warmEstNs: warm.est, warmPassNs: warm.pass, warmMissNs: warm.miss, warmRepeat: WARM_REPEAT, warmCalls, warmRedirects, warmRefreshes, warmNew, warmVerdict,
    };
  } finally {
    obj.close();
    bare.close();
  }
}

/** Runs the worker inside the lab's load balancer namespace and returns what it measured. */
function runWorker(lbNs: string, lbIf: string, quick: boolean): Promise<WorkerResult> {
  return runJsonWorkerInNetns<WorkerResult>(lbNs, join(REPO_ROOT, 'bench', 'xdp_dnat.bench.ts'), ['--worker', lbIf, quick ? 'quick' : 'full'], 'xdp_dnat bench worker');
}

const bench: BenchModule = {
  name: 'xdp_dnat',
  async run({ quick }) {
    const rows: BenchRow[] = [];
    const lab = await dnatLab('xdnbench');
    try {
      // A resolved next hop for the backend, so the FIB lookup succeeds as in steady state.
      const mac = JSON.parse((await run(['ip', '-n', lab.backend, '-j', 'link', 'show', 'dev', lab.backendIf])).stdout)[0].address as string;
      await run(['ip', '-n', lab.lb, 'neigh', 'replace', lab.backendIp, 'lladdr', mac, 'dev', lab.lbBackendIf, 'nud', 'permanent']);
      const w = await runWorker(lab.lb, lab.lbClientIf, quick);
      const verdict = w.hitVerdict === XdpAction.REDIRECT ? 'XDP_REDIRECT' : `verdict ${w.hitVerdict} (not the redirect path!)`;
      const how = `mean of ${w.calls} BPF_PROG_TEST_RUN calls with repeat=1, kernel-timed, best of ${w.rounds} rounds, ingress lb0 of a lab namespace`;
      const ratio = w.establishedNs / w.passNs;
      rows.push(
        {
          group: 'xdp_dnat', figure: 'established-flow hit (flow cache)', unit: 'ns/pkt', ts: w.establishedNs, ratio, goal: 'established / bare <= 3', pass: ratio <= 3,
          note: `${how}; ends in ${verdict}; ${w.establishedCached} of ${w.establishedRuns} timed runs used a cached forwarding (the rest looked the route up: once a second), none created a connection; the full path revalidates the slot once per 16 jiffies`,
        },
        { group: 'xdp_dnat', figure: 'established-flow hit, full path (flow cache missed: conntrack, backend check, cached forwarding)', unit: 'ns/pkt', ts: w.fullNs, ratio: w.fullNs / w.passNs, note: `${how}; the epoch changed before each call (outside the timed run); ratio: vs bare` },
        { group: 'xdp_dnat', figure: 'new-flow hit (Maglev pick, FIB lookups, connection + reverse entry inserted)', unit: 'ns/pkt', ts: w.newNs, ratio: w.newNs / w.passNs, note: `${how}; a new 5-tuple in every call: ${w.newConns} of ${w.newRuns} runs counted conn_new; ratio: vs bare` },
        { group: 'xdp_dnat', figure: 'miss (parse, conntrack miss, service miss)', unit: 'ns/pkt', ts: w.missNs, ratio: w.missNs / w.passNs, note: `${how}; ratio: vs bare` },
        { group: 'xdp_dnat', figure: 'bare XDP_PASS program', unit: 'ns/pkt', ts: w.passNs, note: `${how}; the per-run timer overhead of this method is in every figure of it` },
        {
          group: 'xdp_dnat', figure: `warm: established-flow hit (repeat ${w.warmRepeat} on its own output)`, unit: 'ns/pkt', ts: w.warmEstNs, ratio: w.warmEstNs / w.warmPassNs,
          note: `mean of ${w.warmCalls} calls with repeat=${w.warmRepeat}, best of ${w.rounds} rounds; the flow client -> backend address with the hit flow's entry, so each run's output is the same established flow again; first verdict ${w.warmVerdict === XdpAction.REDIRECT ? 'XDP_REDIRECT' : w.warmVerdict}; ${w.warmRedirects} of ${w.warmCalls * w.rounds * w.warmRepeat} runs counted redirect, ${w.warmRefreshes} refreshed the forwarding, ${w.warmNew} created a connection; ratio: vs warm bare`,
        },
        { group: 'xdp_dnat', figure: `warm: miss (repeat ${w.warmRepeat})`, unit: 'ns/pkt', ts: w.warmMissNs, ratio: w.warmMissNs / w.warmPassNs, note: 'ratio: vs warm bare' },
        { group: 'xdp_dnat', figure: `warm: bare XDP_PASS program (repeat ${w.warmRepeat})`, unit: 'ns/pkt', ts: w.warmPassNs },
        { group: 'xdp_dnat', figure: 'established hit minus bare (the program\'s own work)', unit: 'ns/pkt', ts: w.establishedNs - w.passNs },
        { group: 'xdp_dnat', figure: 'new-flow hit minus bare', unit: 'ns/pkt', ts: w.newNs - w.passNs },
      );
    } finally {
      await lab.down();
    }
    return rows;
  },
};
export default bench;

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--worker') {
  worker(process.argv[3], process.argv[4] === 'quick').then(
    (r) => { process.stdout.write(`${JSON.stringify(r)}\n`); process.exit(0); },
    (e: Error) => { process.stderr.write(`${e.message}\n`); process.exit(1); },
  );
}
