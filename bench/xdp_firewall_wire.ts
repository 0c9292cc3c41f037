/**
 * xdp_firewall on the wire: packets per second that one sender gets dropped
 * when the same 10,000-prefix blocklist is
 *   - the lesson's LPM trie, in XDP attached natively to the veth,
 *   - an nftables interval set (auto-merge), matched in a prerouting chain
 *     at priority raw,
 *   - 10,000 iptables rules (`-s PREFIX -j DROP`) in a raw-table chain that
 *     PREROUTING jumps to for the veth, with the nf_tables backend (Debian's
 *     `iptables`) and with the legacy x_tables one (`iptables-legacy`),
 * and, for reference, no filter at all (the stack takes the datagrams to a
 * closed UDP port). Same sender (bench/c/udp_flood.c: 64-byte frames
 * through AF_PACKET with sendmmsg, one CPU) from the peer namespace of a lab pair, same run,
 * modes interleaved over rounds, each one's best round kept.
 *
 * What the figure means: on a veth the receive path runs on the sending
 * CPU (veth_xmit hands the packet to the peer's NAPI or backlog on the same
 * CPU), so the cheaper the drop, the more the one sender gets out: packets
 * dropped per second measure the whole per-packet cost, send included.
 *
 * The sender's source, 198.18.200.1, is in the LAST of the 10,000 prefixes:
 * for the iptables chain (first match wins, in order) that is the worst
 * case, every rule is tried; the trie and the set do not depend on order.
 * The filters live in the root namespace, scoped to the lab's interface
 * (iifname / -i), and are removed afterwards, also on failure, with the
 * nf_tables `ip raw` table iptables made (unless it was there before). What
 * stays: iptables-legacy's raw table, empty with policy ACCEPT, which the
 * kernel keeps once it was used (a built-in module cannot be unloaded).
 */
import { writeFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfObject } from '../src/index.js';
import { ensureObject } from '../src/cli/build.js';
import { FirewallTable, PROGRAM } from '../src/lessons/xdp_firewall.js';
import { pairLab, ping, run, type PairLab } from '../src/lab/index.js';
import { type BenchRow } from './lib.js';
import { udpFlood } from './udp_flood.js';
import { formatIpv4 } from '../src/index.js';

/** A small seeded PRNG (mulberry32): the same prefixes every run. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `n` distinct random prefixes, /16 to /28, over the whole IPv4 space, as 'a.b.c.d/len'. */
export function randomPrefixes(n: number, seed = 11): string[] {
  const rnd = prng(seed);
  const out = new Set<string>();
  while (out.size < n) {
    const len = 16 + Math.floor(rnd() * 13);
    const addr = Math.floor(rnd() * 4294967296);
    const mask = (0xffffffff << (32 - len)) >>> 0;
    out.add(`${formatIpv4((addr & mask) >>> 0)}/${len}`);
  }
  return [...out];
}

const NFT_TABLE = 'lbts_fwbench';
const CHAIN = 'LBTS_FWBENCH';
const SRC = '198.18.200.1';
const SRC_PREFIX = '198.18.200.0/24';
const PORT = 9;

type Mode = 'none' | 'xdp' | 'nft' | 'iptables' | 'iptables-legacy';

async function quiet(cmd: string[]): Promise<void> {
  try { await run(cmd); } catch { /* not there */ }
}

/** Removes every filter this bench may have installed (leftovers of a killed run too). */
async function removeFilters(ifname: string): Promise<void> {
  await quiet(['nft', 'delete', 'table', 'ip', NFT_TABLE]);
  for (const ipt of ['iptables', 'iptables-legacy']) {
    await quiet([ipt, '-t', 'raw', '-D', 'PREROUTING', '-i', ifname, '-j', CHAIN]);
    await quiet([ipt, '-t', 'raw', '-F', CHAIN]);
    await quiet([ipt, '-t', 'raw', '-X', CHAIN]);
  }
}

async function iptDropped(ipt: string): Promise<number> {
  const { stdout } = await run([ipt, '-t', 'raw', '-L', CHAIN, '-v', '-x', '-n']);
  return stdout.split('\n').slice(2).reduce((a, l) => a + (Number(l.trim().split(/\s+/)[0]) || 0), 0);
}

async function nftDropped(): Promise<number> {
  const { stdout } = await run(['nft', '-j', 'list', 'chain', 'ip', NFT_TABLE, 'pre']);
  let n = 0;
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.counter && typeof o.counter === 'object' && typeof (o.counter as { packets?: unknown }).packets === 'number') n += (o.counter as { packets: number }).packets;
      else Object.values(o).forEach(walk);
    }
  };
  walk(JSON.parse(stdout));
  return n;
}

/** Measures one mode: installs its filter, floods, reads its drop counter, removes the filter. */
async function measure(mode: Mode, lab: PairLab, prefixes: string[], seconds: number, dir: string): Promise<{ sent: number; dropped: number; seconds: number }> {
  const ifname = lab.hostIf;
  if (mode === 'none') {
    const r = await udpFlood(lab, SRC, lab.hostIp, PORT, seconds);
    return { sent: r.sent, dropped: 0, seconds: r.seconds };
  }
  if (mode === 'xdp') {
    const obj = BpfObject.load(ensureObject('xdp_firewall'));
    try {
      const table = FirewallTable.fromObject(obj);
      for (const p of prefixes) table.set(p, 'drop');
      const link = obj.program(PROGRAM).attachXdp(lab.hostIfindex, { mode: 'native' });
      try {
        const before = table.stats().drop_prefix;
        const r = await udpFlood(lab, SRC, lab.hostIp, PORT, seconds);
        return { sent: r.sent, dropped: table.stats().drop_prefix - before, seconds: r.seconds };
      } finally {
        link.detach();
      }
    } finally {
      obj.close();
    }
  }
  try {
    if (mode === 'nft') {
      const file = join(dir, 'fw.nft');
      writeFileSync(file, `table ip ${NFT_TABLE} {\n  set block {\n    type ipv4_addr; flags interval; auto-merge;\n    elements = { ${prefixes.join(', ')} }\n  }\n  chain pre {\n    type filter hook prerouting priority raw; policy accept;\n    iifname "${ifname}" ip saddr @block counter drop\n  }\n}\n`);
      await run(['nft', '-f', file]);
      const r = await udpFlood(lab, SRC, lab.hostIp, PORT, seconds);
      return { sent: r.sent, dropped: await nftDropped(), seconds: r.seconds };
    }
    const file = join(dir, 'fw.rules');
    writeFileSync(file, `*raw\n:${CHAIN} - [0:0]\n-A PREROUTING -i ${ifname} -j ${CHAIN}\n${prefixes.map((p) => `-A ${CHAIN} -s ${p} -j DROP`).join('\n')}\nCOMMIT\n`);
    await run(['sh', '-c', `${mode}-restore --noflush < ${file}`]);
    const r = await udpFlood(lab, SRC, lab.hostIp, PORT, seconds);
    return { sent: r.sent, dropped: await iptDropped(mode), seconds: r.seconds };
  } finally {
    await removeFilters(ifname);
  }
}

/** The wire figures (see the top of this file). Needs root, nft, iptables and iptables-legacy. */
export async function wireRows(quick: boolean): Promise<BenchRow[]> {
  for (const tool of ['nft', 'iptables', 'iptables-legacy']) {
    try { await run(['sh', '-c', `command -v ${tool}`]); } catch { throw new Error(`${tool} is not installed (scripts/setup.sh installs nftables and iptables)`); }
  }
  const prefixes = [...randomPrefixes(9_999, 23).filter((p) => !p.startsWith('198.18.')), SRC_PREFIX];
  while (prefixes.length < 10_000) prefixes.unshift(`10.${prefixes.length & 255}.${(prefixes.length >> 8) & 255}.0/24`);
  const seconds = quick ? 1 : 3;
  const rounds = quick ? 1 : 3;
  const dir = mkdtempSync(join(tmpdir(), 'libbpf-ts-fwbench-'));
  // iptables with the nf_tables backend creates `table ip raw` for its PREROUTING chain: removed after, unless it was there before.
  const hadNftRaw = await run(['nft', 'list', 'table', 'ip', 'raw']).then(() => true, () => false);
  const lab = await pairLab('fwb');
  const modes: Mode[] = ['none', 'xdp', 'nft', 'iptables', 'iptables-legacy'];
  const best = new Map<Mode, { sent: number; dropped: number; seconds: number }>();
  try {
    await removeFilters(lab.hostIf);
    await run(['ip', '-n', lab.ns, 'addr', 'add', `${SRC}/32`, 'dev', lab.peerIf]);
    // Where the stack's answers to the sender (ICMP port unreachable, in mode none) go: back over the veth.
    await run(['ip', 'route', 'add', SRC_PREFIX, 'dev', lab.hostIf]);
    if (await ping(lab.ns, lab.hostIp, 1) !== 1) throw new Error('the lab pair does not answer pings');
    for (let r = 0; r < rounds; r++) {
      for (const m of modes) {
        const x = await measure(m, lab, prefixes, seconds, dir);
        const prev = best.get(m);
        const score = (v: { sent: number; dropped: number; seconds: number }) => (m === 'none' ? v.sent : v.dropped) / v.seconds;
        if (!prev || score(x) > score(prev)) best.set(m, x);
      }
    }
  } finally {
    await removeFilters(lab.hostIf);
    if (!hadNftRaw) await quiet(['nft', 'delete', 'table', 'ip', 'raw']);
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  }
  const pps = (m: Mode) => { const v = best.get(m)!; return (m === 'none' ? v.sent : v.dropped) / v.seconds; };
  const sentPps = (m: Mode) => { const v = best.get(m)!; return v.sent / v.seconds; };
  const how = `one sender (udp_flood: 64-byte frames, AF_PACKET + sendmmsg, one CPU) from the peer namespace for ${seconds} s, best of ${rounds} interleaved rounds; the sender's prefix is the last of the 10,000`;
  const ipt = pps('iptables-legacy');
  const row = (m: Mode, figure: string, note?: string): BenchRow => ({
    group: 'xdp_firewall', figure, unit: 'pkt/s', ts: pps(m), ratio: m === 'none' ? undefined : pps(m) / ipt,
    note: `${note ? `${note}; ` : ''}sent ${Math.round(sentPps(m))} pkt/s${m === 'none' ? '' : `, dropped ${best.get(m)!.dropped} of ${best.get(m)!.sent}`}; ratio: vs iptables-legacy`,
  });
  return [
    row('xdp', 'veth drop, 10,000 prefixes: XDP (native) LPM trie', how),
    row('nft', 'veth drop, 10,000 prefixes: nftables interval set (prerouting, raw)'),
    row('iptables', 'veth drop, 10,000 prefixes: 10,000 iptables rules (nf_tables backend)'),
    row('iptables-legacy', 'veth drop, 10,000 prefixes: 10,000 iptables-legacy rules (x_tables)'),
    { ...row('none', 'veth, no filter: the stack takes them (closed UDP port)'), ratio: undefined, note: `sent ${Math.round(sentPps('none'))} pkt/s: for reference, nothing dropped by a filter` },
  ];
}
