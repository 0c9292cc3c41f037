/**
 * rtnetlink notifications about IPv4 forwarding, parsed from the bytes a
 * NETLINK_ROUTE socket receives: routes added or removed (RTM_NEWROUTE,
 * RTM_DELROUTE) and neighbour entries (RTM_NEWNEIGH, RTM_DELNEIGH). Other
 * messages and other families (IPv6, bridge fdb) are skipped. Pure: no
 * socket here (see src/net/rtwatch.ts).
 */
import { formatIpv4 } from '../codec.js';
import { attributes } from '../inspect/netlink.js';

const NLMSG_HDRLEN = 16;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const AF_INET = 2;
/** struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags (u32). */
const RTMSG_LEN = 12;
/** struct ndmsg: family, pad1 (u8), pad2 (u16), ifindex (s32), state (u16), flags, type (u8). */
const NDMSG_LEN = 12;
const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_TABLE = 15;
const NDA_DST = 1;
const NDA_LLADDR = 2;

/** NUD_* states of a neighbour entry (linux/neighbour.h). */
export const NUD = {
  incomplete: 0x01, reachable: 0x02, stale: 0x04, delay: 0x08, probe: 0x10, failed: 0x20, noarp: 0x40, permanent: 0x80,
} as const;

/** An IPv4 route added or removed, in any table. */
export interface RouteEvent {
  kind: 'route';
  action: 'added' | 'removed';
  /** The destination prefix, e.g. "10.244.1.0/24" ("0.0.0.0/0": the default route). */
  dst: string;
  /** The routing table (254: main, 255: local). */
  table: number;
  /** rtm_type: 1 unicast, 2 local, 3 broadcast, 6 blackhole, 7 unreachable... */
  type: number;
  /** The output interface's index, when the route names one. */
  oif?: number;
  /** The next hop, when the route has a gateway. */
  gateway?: string;
}

/** An IPv4 neighbour (ARP) entry added, updated or removed. */
export interface NeighbourEvent {
  kind: 'neighbour';
  action: 'changed' | 'removed';
  ip: string;
  ifindex: number;
  /** Its link-layer address ("aa:bb:cc:dd:ee:ff"); absent while unresolved or failed. */
  mac?: string;
  /** NUD_* bits (see NUD). */
  state: number;
}

/** What a route/neighbour watch reports. */
export type RtEvent = RouteEvent | NeighbourEvent;

const mac = (b: Buffer) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
const ipv4 = (b: Buffer) => formatIpv4(b.readUInt32BE(0));

/**
 * The IPv4 route and neighbour events in one netlink datagram (several
 * messages may share it). Truncated or malformed messages end the parse of
 * that datagram; what came before them is returned. Never throws.
 */
export function parseRtDatagram(d: Buffer): RtEvent[] {
  const out: RtEvent[] = [];
  for (let o = 0; o + NLMSG_HDRLEN <= d.length;) {
    const len = d.readUInt32LE(o);
    if (len < NLMSG_HDRLEN || o + len > d.length) break;
    const type = d.readUInt16LE(o + 4);
    const body = o + NLMSG_HDRLEN;
    const end = o + len;
    if ((type === RTM_NEWROUTE || type === RTM_DELROUTE) && end - body >= RTMSG_LEN && d.readUInt8(body) === AF_INET) {
      const attrs = attributes(d, body + RTMSG_LEN, end);
      const get = (t: number) => attrs.find((a) => a.type === t)?.data;
      const dst = get(RTA_DST);
      const oif = get(RTA_OIF);
      const gw = get(RTA_GATEWAY);
      const table = get(RTA_TABLE);
      const ev: RouteEvent = {
        kind: 'route',
        action: type === RTM_NEWROUTE ? 'added' : 'removed',
        dst: `${dst && dst.length >= 4 ? ipv4(dst) : '0.0.0.0'}/${d.readUInt8(body + 1)}`,
        table: table && table.length >= 4 ? table.readUInt32LE(0) : d.readUInt8(body + 4),
        type: d.readUInt8(body + 7),
      };
      if (oif && oif.length >= 4) ev.oif = oif.readInt32LE(0);
      if (gw && gw.length >= 4) ev.gateway = ipv4(gw);
      out.push(ev);
    } else if ((type === RTM_NEWNEIGH || type === RTM_DELNEIGH) && end - body >= NDMSG_LEN && d.readUInt8(body) === AF_INET) {
      const attrs = attributes(d, body + NDMSG_LEN, end);
      const dst = attrs.find((a) => a.type === NDA_DST)?.data;
      const ll = attrs.find((a) => a.type === NDA_LLADDR)?.data;
      if (dst && dst.length >= 4) {
        const ev: NeighbourEvent = {
          kind: 'neighbour',
          action: type === RTM_NEWNEIGH ? 'changed' : 'removed',
          ip: ipv4(dst),
          ifindex: d.readInt32LE(body + 4),
          state: d.readUInt16LE(body + 8),
        };
        if (ll && ll.length === 6) ev.mac = mac(ll);
        out.push(ev);
      }
    }
    o += (len + 3) & ~3;
  }
  return out;
}

/**
 * Keeps what matters for forwarding out of a stream of events: every route
 * event, and a neighbour event only when the entry's link-layer address
 * changes (a new one, another one, none any more: removed or failed), not
 * for the state changes a resolved entry goes through every few seconds
 * (reachable, stale, delay, probe, with the same address).
 */
export class ForwardingChanges {
  private readonly macs = new Map<string, string | undefined>();

  /** The events of `events` that change forwarding, in order. */
  filter(events: readonly RtEvent[]): RtEvent[] {
    return events.filter((e) => {
      if (e.kind === 'route') return true;
      const key = `${e.ifindex} ${e.ip}`;
      const now = e.action === 'removed' || (e.state & NUD.failed) !== 0 ? undefined : e.mac;
      const known = this.macs.has(key);
      const before = this.macs.get(key);
      if (e.action === 'removed') this.macs.delete(key); else this.macs.set(key, now);
      return now !== before || (!known && e.action === 'removed');
    });
  }
}
