/**
 * xdp_sock: the user side of the lesson. The kernel program steers UDP
 * datagrams to one port into an AF_XDP socket (XSKMAP slot of the packet's
 * RX queue); this module answers them from the rings: a UDP echo written on
 * the UMEM's frames (swap MACs, addresses and ports, complete the UDP
 * checksum, send the frame back through the TX ring, recycle it through the
 * completion ring), or, with --drop, only counts them. Also the per-second
 * report: packets/s in and out and the socket's ring statistics.
 *
 * Checksums: swapping the source and destination addresses (and ports)
 * changes no 16-bit word's value in the one's-complement sum, only its
 * position, so a correct IPv4 header checksum and a correct UDP checksum
 * stay correct. The UDP checksum is recomputed anyway: a datagram sent by a
 * local socket through a veth leaves with CHECKSUM_PARTIAL (its checksum
 * field holds only the pseudo-header sum, which the NIC would complete),
 * and XDP sees it as it is; echoed as it is, the peer would drop it. A zero
 * UDP checksum (none, over IPv4) stays zero.
 */
import { performance } from 'node:perf_hooks';
import { struct, u32, u64 } from '../codec.js';
import type { SharedLayout } from './shared.js';
import type { BpfMap, PerCpuMap } from '../map.js';
import type { BpfObject } from '../object.js';
import { formatRate, rate } from '../cli/output.js';
import type { XskSocket, XskStatistics } from '../xsk/index.js';

/** The maps' names in the object. */
export const XSKS_MAP = 'xsks';
export const CONFIG_MAP = 'config';
export const COUNTERS_MAP = 'counters';
/** Slots of the counters map (enum xsk_counter). */
export const XskCounter = { MATCHED: 0, NO_SOCKET: 1 } as const;

/** struct xsk_config. */
export const xskConfig = struct('xsk_config', { port: 'u16', pad: { pad: 2 } });

/** The structs of bpf/xdp_sock/xdp_sock.h, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'xdp_sock', cName: 'xsk_config', codec: xskConfig },
];

/** The XSKMAP of a loaded xdp_sock object: queue → socket fd. Throws a BpfError. */
export function xsksMap(obj: BpfObject): BpfMap<number, number> {
  return obj.map(XSKS_MAP, u32, u32);
}

/** Writes the port to steer (host order) into the config map. Throws a BpfError. */
export function setPort(obj: BpfObject, port: number): void {
  obj.map(CONFIG_MAP, u32, xskConfig).set(0, { port });
}

/** The per-CPU counters of a loaded xdp_sock object. Throws a BpfError. */
export function countersMap(obj: BpfObject): PerCpuMap<number, number> {
  return obj.perCpuMap(COUNTERS_MAP, u32, u64);
}

const ETH_HLEN = 14;
const ETH_P_IP = 0x0800;
const IPPROTO_UDP = 17;

/**
 * The UDP checksum of the datagram at `udp` (`udpLen` bytes, its checksum
 * field counted as zero) with the IPv4 pseudo-header of the header at `ip`;
 * 0xffff for a sum of zero (zero means "no checksum").
 */
export function udpChecksum(b: Uint8Array, ip: number, udp: number, udpLen: number): number {
  let sum = ((b[ip + 12] << 8) | b[ip + 13]) + ((b[ip + 14] << 8) | b[ip + 15])
    + ((b[ip + 16] << 8) | b[ip + 17]) + ((b[ip + 18] << 8) | b[ip + 19]) + IPPROTO_UDP + udpLen;
  const end = udp + udpLen;
  let i = udp;
  for (; i + 1 < end; i += 2) if (i !== udp + 6) sum += (b[i] << 8) | b[i + 1];
  if (i < end) sum += b[i] << 8; // odd length: pad with a zero byte
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const c = ~sum & 0xffff;
  return c === 0 ? 0xffff : c;
}

/** The IPv4 header checksum of the header at `ip` (its checksum field counted as zero). */
export function ipv4Checksum(b: Uint8Array, ip: number): number {
  const hl = (b[ip] & 0x0f) * 4;
  let sum = 0;
  for (let i = ip; i < ip + hl; i += 2) if (i !== ip + 10) sum += (b[i] << 8) | b[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function swap(b: Uint8Array, x: number, y: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const t = b[x + i];
    b[x + i] = b[y + i];
    b[y + i] = t;
  }
}

/**
 * Turns the Ethernet/IPv4/UDP frame at `off` (`len` bytes) into its echo,
 * in place: MACs, addresses and ports swapped, UDP checksum recomputed
 * (left zero when zero). Returns false, changing nothing, for anything else
 * (not IPv4 UDP, truncated, a fragment).
 */
export function echoUdpInPlace(b: Uint8Array, off: number, len: number): boolean {
  if (len < ETH_HLEN + 20 + 8) return false;
  if (((b[off + 12] << 8) | b[off + 13]) !== ETH_P_IP) return false;
  const ip = off + ETH_HLEN;
  const ihl = (b[ip] & 0x0f) * 4;
  if (b[ip] >> 4 !== 4 || ihl < 20 || b[ip + 9] !== IPPROTO_UDP) return false;
  if ((((b[ip + 6] << 8) | b[ip + 7]) & 0x3fff) !== 0) return false;
  const udp = ip + ihl;
  if (udp + 8 > off + len) return false;
  const udpLen = (b[udp + 4] << 8) | b[udp + 5];
  if (udpLen < 8 || udp + udpLen > off + len) return false;
  swap(b, off, off + 6, 6);
  swap(b, ip + 12, ip + 16, 4);
  swap(b, udp, udp + 2, 2);
  if (b[udp + 6] !== 0 || b[udp + 7] !== 0) {
    const c = udpChecksum(b, ip, udp, udpLen);
    b[udp + 6] = c >> 8;
    b[udp + 7] = c & 0xff;
  }
  return true;
}

/** Counts of the service since it started. */
export interface EchoCounts {
  /** Packets taken off the RX ring. */
  rx: number;
  /** Packets put on the TX ring. */
  tx: number;
  /** Frames the kernel has sent (completion ring). */
  completed: number;
  /** Packets not echoed: not IPv4 UDP, or the TX ring was full. */
  notEchoed: number;
  /** Bytes received. */
  rxBytes: number;
}

/** Packets handled per wake-up before Node's event loop gets a turn. */
const BATCH = 64;
const BATCHES_PER_WAKEUP = 16;

/**
 * The echo (or count-only) service on a bound socket: call start() to fill
 * the fill ring and watch the fd on the event loop; stop() ends the watch
 * (closing the socket is its owner's job).
 */
export class XskEcho {
  readonly counts: EchoCounts = { rx: 0, tx: 0, completed: 0, notEchoed: 0, rxBytes: 0 };

  constructor(private readonly sock: XskSocket, private readonly drop: boolean) {}

  /** Fills the fill ring and starts answering. Throws a BpfError. */
  start(): void {
    this.sock.refill();
    this.sock.watch(() => this.poll());
  }

  /** Handles what the RX ring holds (at most BATCH * BATCHES_PER_WAKEUP packets). Returns how many. */
  poll(): number {
    const sock = this.sock;
    const rx = sock.rx!;
    const tx = sock.tx;
    const umem = sock.umem;
    const buf = umem.buffer;
    const c = this.counts;
    let total = 0;
    for (let round = 0; round < BATCHES_PER_WAKEUP; round++) {
      const n = rx.peek(BATCH);
      if (n === 0) break;
      if (this.drop || !tx) {
        for (let k = 0; k < n; k++) { c.rxBytes += rx.len(k); umem.freeFrame(rx.addr(k)); }
        rx.release(n);
        c.rx += n;
      } else {
        let room = tx.reserve(n);
        // Copy mode transmits a bounded batch per kick: make room by kicking
        // and collecting completions before a frame is given up on.
        for (let tries = 0; room < n && tries < 16; tries++) {
          sock.kickTx(true);
          c.completed += sock.complete();
          const more = tx.reserve(n);
          if (more === room && tries >= 2) break; // the kernel is not sending: give up for now
          room = more;
        }
        let j = 0;
        for (let k = 0; k < n; k++) {
          const addr = rx.addr(k);
          const len = rx.len(k);
          c.rxBytes += len;
          if (j < room && echoUdpInPlace(buf, addr, len)) tx.setDesc(j++, addr, len);
          else { umem.freeFrame(addr); c.notEchoed++; }
        }
        rx.release(n);
        c.rx += n;
        if (j > 0) {
          tx.submit(j);
          c.tx += j;
          sock.kickTx();
        }
        c.completed += sock.complete();
      }
      sock.refill();
      total += n;
    }
    if (!this.drop && tx) {
      // Copy mode sends during the kick; what it left (EAGAIN, EBUSY) goes at the next wake-up or tick.
      c.completed += sock.complete();
      sock.refill();
    }
    return total;
  }

  /** Retries a TX kick and collects completions (call it on a timer, e.g. every second). */
  flush(): void {
    if (this.drop || !this.sock.tx) return;
    if (this.counts.tx > this.counts.completed) this.sock.kickTx();
    this.counts.completed += this.sock.complete();
    this.sock.refill();
  }
}

/** One second's report. */
export interface XskSnapshot {
  time: Date;
  elapsed: number;
  mode: string;
  counts: EchoCounts;
  rxRate: number;
  txRate: number;
  /** Packets the XDP program matched (sum over CPUs): each is received, dropped in a statistic, or passed with no socket. */
  matched: number;
  noSocket: number;
  stats: XskStatistics;
}

/** Keeps the previous reading to compute rates. */
export class XskReporter {
  #prevRx = 0;
  #prevTx = 0;
  #last = performance.now();

  constructor(private readonly sock: XskSocket, private readonly echo: XskEcho, private readonly counters: PerCpuMap<number, number>) {}

  /** Reads the counters and statistics. Throws a BpfError. */
  snapshot(): XskSnapshot {
    const now = performance.now();
    const elapsed = (now - this.#last) / 1000;
    const counts = { ...this.echo.counts };
    const s: XskSnapshot = {
      time: new Date(), elapsed, mode: this.sock.mode, counts,
      rxRate: rate(this.#prevRx, counts.rx, elapsed), txRate: rate(this.#prevTx, counts.tx, elapsed),
      matched: this.counters.sum(XskCounter.MATCHED), noSocket: this.counters.sum(XskCounter.NO_SOCKET),
      stats: this.sock.statistics(),
    };
    this.#prevRx = counts.rx;
    this.#prevTx = counts.tx;
    this.#last = now;
    return s;
  }
}

/** The report as text lines. */
export function renderXsk(s: XskSnapshot): string[] {
  const st = s.stats;
  return [
    `${s.time.toISOString().slice(11, 19)}  in ${formatRate(s.rxRate)} pkt/s  out ${formatRate(s.txRate)} pkt/s  ` +
      `(total in ${s.counts.rx}, out ${s.counts.tx}, sent ${s.counts.completed}, not echoed ${s.counts.notEchoed}; XDP matched ${s.matched})`,
    `  rings: rx dropped ${st.rxDropped}, rx ring full ${st.rxRingFull}, fill ring empty ${st.rxFillRingEmptyDescs}, ` +
      `tx ring empty ${st.txRingEmptyDescs}, invalid rx/tx descs ${st.rxInvalidDescs}/${st.txInvalidDescs}`,
  ];
}

/** The report as one JSON line. */
export function xskJson(s: XskSnapshot): string {
  const round = (n: number) => Math.round(n * 1000) / 1000;
  return JSON.stringify({
    time: s.time.toISOString(), elapsed: round(s.elapsed), mode: s.mode,
    rx: s.counts.rx, tx: s.counts.tx, completed: s.counts.completed, notEchoed: s.counts.notEchoed, rxBytes: s.counts.rxBytes,
    rxRate: round(s.rxRate), txRate: round(s.txRate), matched: s.matched, noSocket: s.noSocket, stats: s.stats,
  });
}
