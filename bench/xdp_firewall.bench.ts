/**
 * xdp_firewall figures.
 *
 * Test run: ns per packet of the firewall program with 1, 1,000 and 100,000
 * prefixes in its LPM trie, for a source inside a blocked prefix (XDP_DROP)
 * and one no prefix covers (XDP_PASS), against a bare `return XDP_PASS`,
 * through BPF_PROG_TEST_RUN with a large `repeat` (the kernel runs the
 * program on the same buffer again and again and reports the mean; fine
 * here: the firewall never rewrites the packet). The prefixes are random,
 * /16 to /28 over the whole IPv4 space (seeded: the same set every run);
 * how long writing them takes is a figure too.
 *
 * Wire: see ./xdp_firewall_wire.ts (packets/s a veth drops with the same
 * 10,000-prefix blocklist as an XDP LPM trie, an nftables interval set and
 * 10,000 iptables rules, same sender, same run).
 */
import { BpfObject, XdpAction, formatIpv4 } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { FirewallTable, PROGRAM } from '../src/lessons/xdp_firewall.js';
import { buildFrame } from '../test/helpers/packets.js';
import { now, type BenchModule, type BenchRow } from './lib.js';
import { prng, randomPrefixes, wireRows } from './xdp_firewall_wire.js';

/** An address inside 'a.b.c.d/len' (its last host). */
function inside(prefix: string): string {
  const [a, l] = prefix.split('/');
  const [o1, o2, o3, o4] = a.split('.').map(Number);
  const base = ((o1 << 24) | (o2 << 16) | (o3 << 8) | o4) >>> 0;
  return formatIpv4((base + 2 ** (32 - Number(l)) - 2) >>> 0);
}

function frameFrom(src: string): Buffer {
  return buildFrame({ src, dst: '192.0.2.1', proto: 17, sport: 4000, dport: 53, payload: new Uint8Array(18) });
}

const bench: BenchModule = {
  name: 'xdp_firewall',
  async run({ quick }) {
    const rows: BenchRow[] = [];
    const repeat = quick ? 100_000 : 2_000_000;
    const rounds = quick ? 2 : 5;
    const obj = BpfObject.load(ensureObject('xdp_firewall'));
    const bare = BpfObject.load(ensureObject('testdata', 'pass'));
    try {
      const table = FirewallTable.fromObject(obj);
      const prog = obj.program(PROGRAM);
      const pass = bare.program('xdp_pass');
      const all = randomPrefixes(100_000);
      const timed = (data: Buffer, p = prog) => p.testRun({ data, repeat }).duration;
      let bareNs = Infinity;
      for (const n of [1, 1_000, 100_000]) {
        table.clear();
        const set = all.slice(0, n);
        const t0 = now();
        for (const p of set) table.set(p, 'drop');
        const insertNs = Number(now() - t0) / n;
        // A blocked source: in the last prefix written. A passed one: covered by none.
        const hitSrc = inside(set[set.length - 1]);
        const rnd = prng(99);
        let missSrc = '';
        while (!missSrc) {
          const a = formatIpv4(Math.floor(rnd() * 4294967296));
          if (table.verdict(a) === 'none' && !a.startsWith('0.') && !a.startsWith('127.')) missSrc = a;
        }
        const hit = frameFrom(hitSrc);
        const miss = frameFrom(missSrc);
        if (prog.testRun({ data: hit }).retval !== XdpAction.DROP) throw new Error(`the blocked source ${hitSrc} was not dropped`);
        if (prog.testRun({ data: miss }).retval !== XdpAction.PASS) throw new Error(`the source ${missSrc} was not passed`);
        let dropNs = Infinity;
        let passNs = Infinity;
        for (let r = 0; r < rounds; r++) {
          dropNs = Math.min(dropNs, timed(hit));
          passNs = Math.min(passNs, timed(miss));
          bareNs = Math.min(bareNs, timed(miss, pass));
        }
        const how = `BPF_PROG_TEST_RUN repeat=${repeat}, kernel-timed mean, best of ${rounds}; ratio: vs bare XDP_PASS`;
        const label = n === 1 ? '1 prefix' : `${n.toLocaleString('en-US')} prefixes`;
        rows.push(
          { group: 'xdp_firewall', figure: `test run, ${label}, blocked source (drop)`, unit: 'ns/pkt', ts: dropNs, note: `${how}. Counting its source (per-CPU hash) included` },
          { group: 'xdp_firewall', figure: `test run, ${label}, unlisted source (pass)`, unit: 'ns/pkt', ts: passNs },
        );
        if (n > 1) rows.push({ group: 'xdp_firewall', figure: `write ${label} (FirewallTable.set, one syscall each)`, unit: 'µs/prefix', ts: insertNs / 1000 });
      }
      rows.push({ group: 'xdp_firewall', figure: 'test run, bare XDP_PASS program', unit: 'ns/pkt', ts: bareNs, note: 'the same method: its per-run overhead is in every test-run figure' });
      for (const r of rows) if (r.unit === 'ns/pkt' && r.figure !== 'test run, bare XDP_PASS program') r.ratio = (r.ts ?? 0) / bareNs;
    } finally {
      obj.close();
      bare.close();
    }
    rows.push(...(await wireRows(quick)));
    return rows;
  },
};
export default bench;
