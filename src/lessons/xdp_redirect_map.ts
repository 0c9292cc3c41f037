/**
 * xdp_redirect_map: the user side of the XDP router lesson.
 *
 * - The structs of bpf/xdp_redirect_map/xdp_redirect_map.h (sharedLayouts).
 * - Router: the DEVMAP of ports (port -> ifindex), the routes (destination
 *   address -> port and MACs) and the per-interface, per-CPU counters.
 * - The neighbours the routes are made of: the kernel's ARP table
 *   (/proc/net/arp of this network namespace), and each port's own MAC.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { formatIpv4, parseIpv4, struct, u32 } from '../codec.js';
import { BpfError, Errno } from '../errors.js';
import type { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import type { Interface } from '../netif.js';
import type { SharedLayout } from './shared.js';

/** struct fwd_route: the DEVMAP port, the next hop's MAC, the egress MAC. */
export const routeStruct = struct('fwd_route', { port: 'u32', dmac: { bytes: 6 }, smac: { bytes: 6 } });
/** struct if_counters: one per interface per CPU. */
export const countersStruct = struct('if_counters', {
  rx_packets: 'u64', rx_bytes: 'u64', redirected: 'u64', passed: 'u64', tx_packets: 'u64', tx_bytes: 'u64',
});
export type IfCounters = ReturnType<typeof countersStruct.zero>;

/** The structs shared with the kernel program, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'xdp_redirect_map', cName: 'fwd_route', codec: routeStruct },
  { object: 'xdp_redirect_map', cName: 'if_counters', codec: countersStruct },
];

export const PROGRAM = 'xdp_redirect_map';
export const MAPS = { ports: 'tx_ports', routes: 'routes', stats: 'port_stats' } as const;
/** max_entries of tx_ports (and of port_stats). */
export const MAX_PORTS = 64;

/** Parses "aa:bb:cc:dd:ee:ff" into 6 bytes. Throws a RangeError. */
export function parseMac(s: string): Uint8Array {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s)) throw new RangeError(`bad MAC address '${s}'`);
  return Uint8Array.from(s.split(':').map((h) => parseInt(h, 16)));
}
/** 6 bytes as "aa:bb:cc:dd:ee:ff". */
export function formatMac(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** A neighbour of this host: an IPv4 address, its MAC, the interface it is on. */
export interface Neighbour {
  ip: string;
  mac: string;
  dev: string;
}

/**
 * The complete entries (flag 0x2) of a /proc/net/arp text: the kernel's
 * IPv4 neighbour table of the reading process's network namespace.
 */
export function parseArpTable(text: string): Neighbour[] {
  const out: Neighbour[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const [ip, , flags, mac, , dev] = f;
    if ((parseInt(flags, 16) & 0x2) === 0 || mac === '00:00:00:00:00:00') continue;
    out.push({ ip, mac, dev });
  }
  return out;
}

/** The neighbours the kernel knows now in this network namespace. */
export function neighbours(): Neighbour[] {
  return parseArpTable(readFileSync('/proc/net/arp', 'utf8'));
}

/**
 * The MAC of an interface of this network namespace (from getifaddrs: it
 * must have an address). Throws a BpfError (EADDRNOTAVAIL) otherwise.
 */
export function interfaceMac(name: string): string {
  const mac = networkInterfaces()[name]?.find((a) => a.mac && a.mac !== '00:00:00:00:00:00')?.mac;
  if (!mac) throw new BpfError(`find the MAC of ${name}`, Errno.EADDRNOTAVAIL, `${name} has no IP address here (give it one: the router answers ARP on it)`);
  return mac;
}

/** A route as the kernel program holds it, readable. */
export interface Route {
  dst: string;
  port: number;
  dmac: string;
  smac: string;
}

/** The router's maps in a loaded xdp_redirect_map object. */
export class Router {
  private constructor(
    private readonly ports: BpfMap<number, number>,
    private readonly routeMap: BpfMap<number, { port: number; dmac: Uint8Array; smac: Uint8Array }>,
    private readonly stats: PerCpuMap<number, IfCounters>,
  ) {}

  /** The maps of a loaded object (closed with it). Throws a BpfError. */
  static fromObject(obj: BpfObject): Router {
    const be32 = { size: 4, encode(v: number, b: Buffer, o = 0) { b.writeUInt32BE(v, o); }, decode(b: Buffer, o = 0) { return b.readUInt32BE(o); } };
    return new Router(obj.map(MAPS.ports, u32, u32), obj.map(MAPS.routes, be32, routeStruct), obj.perCpuMap(MAPS.stats, u32, countersStruct));
  }

  /**
   * Makes `port` (0..63) send out of interface `ifindex` (the DEVMAP entry),
   * and starts its counters at zero. Throws a BpfError (ENODEV: no such
   * interface; E2BIG: port out of range).
   */
  setPort(port: number, ifindex: number): void {
    try {
      this.ports.set(port, ifindex);
    } catch (e) {
      if (e instanceof BpfError && e.errno === Errno.E2BIG) throw new BpfError(`set port ${port}`, Errno.E2BIG, `ports are 0..${MAX_PORTS - 1}`);
      throw e;
    }
    this.stats.set(ifindex, countersStruct.zero());
  }

  /** Sends packets for `dst` out of `port` with these MACs (next hop, egress). Throws a RangeError, a BpfError. */
  addRoute(dst: string, port: number, dmac: string, smac: string): void {
    this.routeMap.set(parseIpv4(dst), { port, dmac: parseMac(dmac), smac: parseMac(smac) });
  }

  /** Forgets the route of `dst`; false when there was none. */
  removeRoute(dst: string): boolean {
    return this.routeMap.delete(parseIpv4(dst));
  }

  /** Every route, by address. Throws a BpfError. */
  routes(): Route[] {
    return this.routeMap.readAll().entries
      .map(([a, r]) => ({ dst: formatIpv4(a), port: r.port, dmac: formatMac(r.dmac), smac: formatMac(r.smac) }))
      .sort((a, b) => parseIpv4(a.dst) - parseIpv4(b.dst));
  }

  /**
   * Adds a route for every neighbour the kernel knows on one of `ports`
   * (index = port number) that has none yet; returns the routes added.
   */
  learn(ports: readonly Interface[], neigh: readonly Neighbour[] = neighbours()): Route[] {
    const known = new Set(this.routes().map((r) => r.dst));
    const added: Route[] = [];
    for (const n of neigh) {
      const port = ports.findIndex((p) => p.name === n.dev);
      if (port < 0 || known.has(n.ip)) continue;
      const smac = interfaceMac(n.dev);
      this.addRoute(n.ip, port, n.mac, smac);
      added.push({ dst: n.ip, port, dmac: n.mac, smac });
    }
    return added;
  }

  /** The counters of interface `ifindex`, summed over CPUs (zeros when it has none). Throws a BpfError. */
  counters(ifindex: number): IfCounters {
    return this.stats.summed(ifindex) ?? countersStruct.zero();
  }

  /** The counters of interface `ifindex`, one per CPU (what the kernel keeps). */
  countersPerCpu(ifindex: number): IfCounters[] | undefined {
    return this.stats.get(ifindex);
  }
}

/** One line per interface: "lb0  rx 12 (1176 B)  redirected 10  passed 2  tx 10 (980 B)". */
export function formatCounters(name: string, c: IfCounters): string {
  return `${name.padEnd(10)} rx ${c.rx_packets} (${c.rx_bytes} B)  redirected ${c.redirected}  passed ${c.passed}  tx ${c.tx_packets} (${c.tx_bytes} B)`;
}
