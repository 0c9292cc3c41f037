/**
 * The lab's topologies: throwaway network namespaces joined by veth pairs,
 * built with iproute2, for tests, the demo, the benchmarks and users with no
 * spare interface (scripts/lab.ts is the command line over this). Traffic
 * only ever goes to addresses inside the lab. Needs root.
 *
 * Names: a tag is 1-10 characters of a-z, 0-9 and '-', starting with a letter
 * or digit (so `<tag>h` fits the 15-character interface name limit); the
 * namespaces are `<prefix><tag>...`, prefix `lbts-` unless given. Every
 * builder first removes leftovers of the same tag and kind, tears down what
 * it made if it fails half way, and returns a lab whose down() is
 * idempotent. The only thing a lab puts in the root namespace is a pair
 * lab's host interface, marked with the alias `<prefix><tag>`; teardown
 * deletes root-namespace interfaces only when they carry that mark.
 */
import { createHash } from 'node:crypto';
import { formatIpv4, parseIpv4 } from '../codec.js';
import {
  addNs, delMarkedLink, delNs, link, links, listNetns, run, runNs, sysctl, waitUp,
} from './netns.js';
import { allowTrafficFrom } from './traffic.js';

/** The default name prefix of lab namespaces (and of the host interface's mark). */
export const DEFAULT_PREFIX = 'lbts-';

/** Options of every lab function. */
export interface LabOptions {
  /** Name prefix of the namespaces (and of a pair lab's host-interface mark); default `lbts-`. */
  prefix?: string;
}

/**
 * The prefix of `opts`, checked: 1-16 characters of a-z, 0-9 and '-',
 * starting with a letter and ending with '-'. Throws on anything else.
 */
export function labPrefix(opts: LabOptions = {}): string {
  const p = opts.prefix ?? DEFAULT_PREFIX;
  if (typeof p !== 'string' || !/^[a-z][a-z0-9-]{0,14}-$/.test(p)) {
    throw new Error(`lab prefix '${p}': use 2-16 characters of a-z, 0-9 and '-', starting with a letter and ending with '-'`);
  }
  return p;
}

const DNAT_ROLES = ['client', 'lb', 'backend'] as const;

/**
 * Throws unless `tag` is 1-10 characters of a-z, 0-9 and '-' starting with a
 * letter or digit, and does not end in -client, -lb or -backend (those would
 * name a dnat lab's namespaces).
 */
export function checkTag(tag: string): void {
  if (typeof tag !== 'string' || !/^[a-z0-9][a-z0-9-]{0,9}$/.test(tag)) {
    throw new Error(`lab tag '${tag}': use 1-10 characters of a-z, 0-9 and '-', starting with a letter or digit`);
  }
  if (/-(client|lb|backend)$/.test(tag)) throw new Error(`lab tag '${tag}': must not end in -client, -lb or -backend`);
}

// ---------------------------------------------------------------- helpers

/** Runs the teardown steps, all of them, then throws one error naming those that failed. */
async function teardown(what: string, steps: Array<() => Promise<boolean>>, names: string[]): Promise<string[]> {
  const removed: string[] = [];
  const errors: string[] = [];
  for (const [i, step] of steps.entries()) {
    try {
      if (await step()) removed.push(names[i]);
    } catch (e) {
      errors.push((e as Error).message);
    }
  }
  if (errors.length) throw new Error(`lab ${what}: teardown incomplete: ${errors.join('; ')}`);
  return removed;
}

/** Builds with `build`; if it throws, tears down with `down` and rethrows the build's error. */
async function buildOrTeardown<T>(build: () => Promise<T>, down: () => Promise<unknown>): Promise<T> {
  try {
    return await build();
  } catch (e) {
    try {
      await down();
    } catch (e2) {
      (e as Error).message += ` (and ${(e2 as Error).message})`;
    }
    throw e;
  }
}

// ---------------------------------------------------------------- pair lab

/** A veth pair: the host end in the root namespace, the peer end in namespace `ns`. */
export interface PairLab {
  tag: string;
  /** `<prefix><tag>` (`lbts-<tag>`), where the peer end lives. */
  ns: string;
  /** `<tag>h`, in the root namespace: attach XDP here. */
  hostIf: string;
  /** `<tag>p`, in `ns`. */
  peerIf: string;
  hostIp: string;
  peerIp: string;
  /** With `ipv6: true`: the host end's ULA, `fd6c:6274:7300:<slot>::1` (a /64; slot as for the IPv4 /30). */
  hostIp6?: string;
  /** With `ipv6: true`: the peer end's ULA, `fd6c:6274:7300:<slot>::2`. */
  peerIp6?: string;
  hostMac: string;
  peerMac: string;
  hostIfindex: number;
  /** Removes the pair and the namespace. Idempotent; throws only when something stays. */
  down(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SLOTS = 16384; // the /30s of 10.201.0.0/16

const BASE = parseIpv4('10.201.0.0');

/**
 * The IPv4 ranges of the root namespace that a lab subnet must not overlap:
 * every address and route outside `exceptIf`. A network wider than /16 (a
 * default route, a 10.0.0.0/8 LAN) only blocks its own address, not the
 * whole range, as our /30 is more specific.
 */
async function takenRanges(exceptIf: string): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  const add = (ip: string, len: number, net: boolean) => {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return;
    const a = parseIpv4(ip);
    if (net && len >= 16) {
      const size = 2 ** (32 - len);
      const start = a - (a % size);
      out.push([start, start + size - 1]);
    } else {
      out.push([a, a]);
    }
  };
  const addrs = await run(['ip', '-4', '-o', 'addr', 'show']);
  for (const line of addrs.stdout.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/.exec(line);
    if (m && m[1] !== exceptIf) add(m[2], Number(m[3]), true);
  }
  const routes = await run(['ip', '-4', 'route', 'show', 'table', 'all']);
  for (const line of routes.stdout.split('\n')) {
    if (line.includes(` dev ${exceptIf} `) || line.endsWith(` dev ${exceptIf}`)) continue;
    const m = /^(?:(?:unicast|local|broadcast|anycast|multicast|blackhole|unreachable|prohibit|throw|nat)\s+)?(\d+\.\d+\.\d+\.\d+)(?:\/(\d+))?/.exec(line);
    if (m) add(m[1], m[2] === undefined ? 32 : Number(m[2]), m[2] !== undefined);
  }
  return out;
}

function slotFree(slot: number, taken: Array<[number, number]>): boolean {
  const lo = BASE + slot * 4;
  const hi = lo + 3;
  return !taken.some(([a, b]) => a <= hi && b >= lo);
}

/**
 * Gives `hostIf` a /30 from 10.201.0.0/16: first the one the hash of `tag`
 * points at, else the next free one; then checks again that no other
 * interface took an overlapping subnet meanwhile (a lab being built in
 * parallel) and, if one did, moves to a random free /30 and retries.
 */
async function assignSubnet(tag: string, hostIf: string): Promise<{ hostIp: string; peerIp: string; slot: number }> {
  const start = createHash('sha1').update(tag).digest().readUInt16BE(0) % SLOTS;
  const tried = new Set<number>();
  for (let attempt = 0; attempt < 8; attempt++) {
    const taken = await takenRanges(hostIf);
    const from = attempt === 0 ? start : Math.floor(Math.random() * SLOTS);
    let slot = -1;
    for (let i = 0; i < SLOTS; i++) {
      const s = (from + i) % SLOTS;
      if (!tried.has(s) && slotFree(s, taken)) { slot = s; break; }
    }
    if (slot < 0) throw new Error('lab: no free /30 in 10.201.0.0/16 (the host uses it)');
    tried.add(slot);
    const hostIp = formatIpv4(BASE + slot * 4 + 1);
    const peerIp = formatIpv4(BASE + slot * 4 + 2);
    await run(['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    if (slotFree(slot, await takenRanges(hostIf))) return { hostIp, peerIp, slot };
    await run(['ip', 'addr', 'del', `${hostIp}/30`, 'dev', hostIf]);
  }
  throw new Error('lab: could not claim a free /30 in 10.201.0.0/16 after 8 tries');
}

/** Options of pairLab. */
export interface PairLabOptions extends LabOptions {
  /**
   * Give both ends IPv6 too: a ULA /64 from fd6c:6274:7300::/48 ("lbts" in
   * ASCII is 6c 62 74 73), the subnet number the slot of the IPv4 /30.
   * Off by default: then the lab's IPv6 is off, so the kernel sends no
   * packets of its own and lessons can count exactly.
   */
  ipv6?: boolean;
}

/** The ULA /64 of a /30 slot: fd6c:6274:7300:<slot in hex>::. */
export const ULA_PREFIX = 'fd6c:6274:7300';

/**
 * Turns IPv6 on for both ends, quietly: no duplicate address detection
 * (nodad: the addresses work at once), no router solicitations, no router
 * advertisements taken, and permanent neighbour entries for each other's
 * address so no neighbour solicitations go between them. What the kernel
 * still sends of its own: MLD reports (to ff02::16) when the interfaces
 * come up and join their solicited-node groups.
 */
async function addIpv6(ns: string, hostIf: string, peerIf: string, slot: number, hostMac: string, peerMac: string): Promise<{ hostIp6: string; peerIp6: string }> {
  const net = `${ULA_PREFIX}:${slot.toString(16)}`;
  const hostIp6 = `${net}::1`;
  const peerIp6 = `${net}::2`;
  const quiet = (ifname: string) => ({
    [`net.ipv6.conf.${ifname}.accept_dad`]: 0,
    [`net.ipv6.conf.${ifname}.accept_ra`]: 0,
    [`net.ipv6.conf.${ifname}.router_solicitations`]: 0,
    [`net.ipv6.conf.${ifname}.disable_ipv6`]: 0, // last: the link-local address comes without DAD or RS
  });
  await sysctl(null, quiet(hostIf));
  await sysctl(ns, quiet(peerIf));
  await run(['ip', '-6', 'addr', 'add', `${hostIp6}/64`, 'dev', hostIf, 'nodad']);
  await run(['ip', '-n', ns, '-6', 'addr', 'add', `${peerIp6}/64`, 'dev', peerIf, 'nodad']);
  await run(['ip', '-6', 'neigh', 'replace', peerIp6, 'lladdr', peerMac, 'dev', hostIf, 'nud', 'permanent']);
  await run(['ip', '-n', ns, '-6', 'neigh', 'replace', hostIp6, 'lladdr', hostMac, 'dev', peerIf, 'nud', 'permanent']);
  return { hostIp6, peerIp6 };
}

function pairNames(tag: string, prefix: string) {
  return { ns: `${prefix}${tag}`, hostIf: `${tag}h`, peerIf: `${tag}p` };
}

/**
 * Removes the pair lab `tag`: its host interface (only if it carries the
 * lab's mark), then its namespace. Resolves with what it removed; already
 * gone is fine. Throws when something could not be removed.
 */
async function downPair(tag: string, prefix: string): Promise<string[]> {
  const { ns, hostIf } = pairNames(tag, prefix);
  // The interface first: deleting a veth is synchronous, while a deleted
  // namespace takes its interfaces down asynchronously.
  return teardown(tag, [() => delMarkedLink(hostIf, ns), () => delNs(ns)], [hostIf, ns]);
}

/**
 * Builds a veth pair: `<tag>h` in the root namespace (so in-process code can
 * attach XDP to it) and `<tag>p` in a new namespace `<prefix><tag>`, with a /30
 * from 10.201.0.0/16 (host .1, peer .2 of it) that overlaps nothing on the
 * host, IPv6 off on both ends (the kernel then sends nothing of its own but
 * ARP), both ends up. With `ipv6: true` both ends also get a ULA /64
 * (see PairLabOptions.ipv6 and addIpv6: usable at once, neighbours static).
 * Removes leftovers of a pair lab with the same tag
 * first (a concurrent user of the same tag loses its lab).
 * Throws on an invalid tag (before touching anything), or, after removing
 * what it created, when a step fails, e.g. `<tag>h` exists and is not a lab
 * interface ("File exists").
 */
export async function pairLab(tag: string, opts: PairLabOptions = {}): Promise<PairLab> {
  const prefix = labPrefix(opts);
  checkTag(tag);
  allowTrafficFrom(prefix);
  const { ns, hostIf, peerIf } = pairNames(tag, prefix);
  await downPair(tag, prefix);
  return buildOrTeardown(async () => {
    await addNs(ns);
    await run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', peerIf, 'netns', ns]);
    await run(['ip', 'link', 'set', 'dev', hostIf, 'alias', ns]);
    await sysctl(null, { [`net.ipv6.conf.${hostIf}.disable_ipv6`]: 1 });
    await sysctl(ns, { [`net.ipv6.conf.${peerIf}.disable_ipv6`]: 1 });
    const { hostIp, peerIp, slot } = await assignSubnet(tag, hostIf);
    await run(['ip', '-n', ns, 'addr', 'add', `${peerIp}/30`, 'dev', peerIf]);
    await run(['ip', 'link', 'set', 'dev', hostIf, 'up']);
    await run(['ip', '-n', ns, 'link', 'set', 'dev', peerIf, 'up']);
    await waitUp(null, [hostIf]);
    await waitUp(ns, [peerIf]);
    const host = (await link(null, hostIf))!;
    const peer = (await link(ns, peerIf))!;
    const down = async () => { await downPair(tag, prefix); };
    const lab: PairLab = {
      tag, ns, hostIf, peerIf, hostIp, peerIp,
      hostMac: host.address, peerMac: peer.address, hostIfindex: host.ifindex,
      down, [Symbol.asyncDispose]: down,
    };
    if (opts.ipv6) Object.assign(lab, await addIpv6(ns, hostIf, peerIf, slot, host.address, peer.address));
    return lab;
  }, () => downPair(tag, prefix));
}

// ---------------------------------------------------------------- dnat lab

/** Three namespaces, client -- lb -- backend, with the service network routed through lb. */
export interface DnatLab {
  tag: string;
  /** Namespace names: `<prefix><tag>-client`, `-lb`, `-backend` (prefix `lbts-` by default). */
  client: string;
  lb: string;
  backend: string;
  /** Interface names: client's `eth0`; lb's `lb0` (to client) and `lb1` (to backend); backend's `eth0`. */
  clientIf: string;
  lbClientIf: string;
  lbBackendIf: string;
  backendIf: string;
  /** 10.0.1.2 */
  clientIp: string;
  /** 10.0.1.1 */
  lbClientIp: string;
  /** 10.244.1.1 */
  lbBackendIp: string;
  /** 10.244.1.5 */
  backendIp: string;
  /** 10.96.0.0/12, the service network: the client routes it via lb. */
  vipNet: string;
  /** Removes the three namespaces. Idempotent; throws only when something stays. */
  down(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function dnatNames(tag: string, prefix: string) {
  const [client, lb, backend] = DNAT_ROLES.map((r) => `${prefix}${tag}-${r}`);
  return { client, lb, backend };
}

/** Removes the dnat lab `tag` (its three namespaces, which hold all of it). Already gone is fine. */
async function downDnat(tag: string, prefix: string): Promise<string[]> {
  const names = Object.values(dnatNames(tag, prefix));
  return teardown(tag, names.map((ns) => () => delNs(ns)), names);
}

/**
 * Builds the load balancer's lab, entirely inside three new namespaces (so
 * labs with different tags never collide, and nothing touches the root
 * namespace): client eth0 10.0.1.2/24 -- lb0 10.0.1.1/24 [lb, forwarding,
 * rp_filter 0] lb1 10.244.1.1/24 -- backend eth0 10.244.1.5/24. The client
 * routes 10.96.0.0/12 and its default via 10.0.1.1; the backend's default
 * is 10.244.1.1; lb has only its two subnets. IPv6 off, loopback up, every
 * link up; GRO on the backend's eth0, so XDP in native mode on lb0 can
 * redirect into lb1 (a veth drops redirected frames unless its peer has GRO
 * or an XDP program). Removes leftovers of a dnat lab with the same tag first.
 * Throws on an invalid tag (before touching anything), or, after removing
 * what it created, when a step fails.
 */
export async function dnatLab(tag: string, opts: LabOptions = {}): Promise<DnatLab> {
  const prefix = labPrefix(opts);
  checkTag(tag);
  allowTrafficFrom(prefix);
  const { client, lb, backend } = dnatNames(tag, prefix);
  const down = async () => { await downDnat(tag, prefix); };
  const lab: DnatLab = {
    tag, client, lb, backend,
    clientIf: 'eth0', lbClientIf: 'lb0', lbBackendIf: 'lb1', backendIf: 'eth0',
    clientIp: '10.0.1.2', lbClientIp: '10.0.1.1', lbBackendIp: '10.244.1.1', backendIp: '10.244.1.5',
    vipNet: '10.96.0.0/12',
    down, [Symbol.asyncDispose]: down,
  };
  await downDnat(tag, prefix);
  return buildOrTeardown(async () => {
    for (const ns of [client, lb, backend]) await addNs(ns);
    await sysctl(lb, {
      'net.ipv4.ip_forward': 1, 'net.ipv4.conf.all.forwarding': 1,
      'net.ipv4.conf.all.rp_filter': 0, 'net.ipv4.conf.default.rp_filter': 0,
    });
    await run(['ip', '-n', client, 'link', 'add', lab.clientIf, 'type', 'veth', 'peer', 'name', lab.lbClientIf, 'netns', lb]);
    await run(['ip', '-n', backend, 'link', 'add', lab.backendIf, 'type', 'veth', 'peer', 'name', lab.lbBackendIf, 'netns', lb]);
    await sysctl(lb, {
      [`net.ipv4.conf.${lab.lbClientIf}.rp_filter`]: 0, [`net.ipv4.conf.${lab.lbBackendIf}.rp_filter`]: 0,
      [`net.ipv6.conf.${lab.lbClientIf}.disable_ipv6`]: 1, [`net.ipv6.conf.${lab.lbBackendIf}.disable_ipv6`]: 1,
    });
    await sysctl(client, { [`net.ipv6.conf.${lab.clientIf}.disable_ipv6`]: 1 });
    await sysctl(backend, { [`net.ipv6.conf.${lab.backendIf}.disable_ipv6`]: 1 });
    const ends: Array<[string, string, string]> = [
      [client, lab.clientIf, `${lab.clientIp}/24`],
      [lb, lab.lbClientIf, `${lab.lbClientIp}/24`],
      [lb, lab.lbBackendIf, `${lab.lbBackendIp}/24`],
      [backend, lab.backendIf, `${lab.backendIp}/24`],
    ];
    for (const [ns, ifname, addr] of ends) {
      await run(['ip', '-n', ns, 'addr', 'add', addr, 'dev', ifname]);
      await run(['ip', '-n', ns, 'link', 'set', 'dev', ifname, 'up']);
    }
    // XDP on lb0 in native mode redirects into lb1. A veth hands an XDP
    // frame to its peer only when the peer runs NAPI: GRO on (or an XDP
    // program of its own). Otherwise the kernel drops the frame without a
    // word (veth_xdp_xmit: no napi; not even lb1's tx drop counter moves).
    await runNs(backend, ['ethtool', '-K', lab.backendIf, 'gro', 'on']);
    await run(['ip', '-n', client, 'route', 'add', lab.vipNet, 'via', lab.lbClientIp]);
    await run(['ip', '-n', client, 'route', 'add', 'default', 'via', lab.lbClientIp]);
    await run(['ip', '-n', backend, 'route', 'add', 'default', 'via', lab.lbBackendIp]);
    await waitUp(client, [lab.clientIf]);
    await waitUp(lb, [lab.lbClientIf, lab.lbBackendIf]);
    await waitUp(backend, [lab.backendIf]);
    return lab;
  }, () => downDnat(tag, prefix));
}

// ---------------------------------------------------------------- clean-up

/**
 * Removes the pair and the dnat lab of `tag` (exactly those names; tag
 * 'a' does not touch tag 'a-b'). Resolves with the names it removed.
 * Throws on an invalid tag, or when something could not be removed.
 */
export async function cleanup(tag: string, opts: LabOptions = {}): Promise<string[]> {
  const prefix = labPrefix(opts);
  checkTag(tag);
  return [...(await downPair(tag, prefix)), ...(await downDnat(tag, prefix))];
}

/**
 * Removes what crashed runs left behind: every root-namespace interface whose
 * lab mark (alias) starts with `match`, then every namespace whose name
 * starts with `match` (the lab prefix by default: every lab; `lbts-<tag>`
 * for one tag and any tag it prefixes). Also removes labs in use by running
 * processes: call it only when none are. Resolves with the names removed.
 * Throws when `match` does not start with the lab prefix, or when something
 * could not be removed.
 */
export async function cleanupStale(match?: string, opts: LabOptions = {}): Promise<string[]> {
  const prefix = labPrefix(opts);
  const m = match ?? prefix;
  if (!m.startsWith(prefix)) throw new Error(`cleanupStale: prefix must start with '${prefix}', not '${m}'`);
  const marked = (await links(null)).filter((l) => l.ifalias?.startsWith(m));
  const nss = (await listNetns()).filter((n) => n.startsWith(m));
  return teardown(m, [
    ...marked.map((l) => () => delMarkedLink(l.ifname, l.ifalias!)),
    ...nss.map((ns) => () => delNs(ns)),
  ], [...marked.map((l) => l.ifname), ...nss]);
}

/** A lab that is up, as listLabs() finds it. */
export interface LabInfo {
  tag: string;
  kind: 'pair' | 'dnat';
  namespaces: string[];
  /** A pair lab's host interface in the root namespace (found by its mark). */
  hostIf?: string;
}

/** The labs with `opts.prefix` that are up: tag, kind and namespaces, from the namespace names. Throws when `ip` fails. */
export async function listLabs(opts: LabOptions = {}): Promise<LabInfo[]> {
  const prefix = labPrefix(opts);
  const labs = new Map<string, LabInfo>();
  for (const ns of (await listNetns()).filter((n) => n.startsWith(prefix)).sort()) {
    const rest = ns.slice(prefix.length);
    const m = /^(.+)-(client|lb|backend)$/.exec(rest);
    const [tag, kind] = m ? [m[1], 'dnat' as const] : [rest, 'pair' as const];
    const key = `${kind} ${tag}`;
    if (!labs.has(key)) labs.set(key, { tag, kind, namespaces: [] });
    labs.get(key)!.namespaces.push(ns);
  }
  const marked = (await links(null)).filter((l) => l.ifalias?.startsWith(prefix));
  for (const l of labs.values()) {
    if (l.kind === 'pair') l.hostIf = marked.find((x) => x.ifalias === l.namespaces[0])?.ifname;
  }
  return [...labs.values()];
}
