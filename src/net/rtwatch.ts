/**
 * Watches the IPv4 routes and neighbour entries of the calling thread's
 * network namespace (a NETLINK_ROUTE socket in RTMGRP_IPV4_ROUTE and
 * RTMGRP_NEIGH, read on Node's event loop) and reports changes that can
 * move a packet's forwarding, coalesced: at most one report per
 * `coalesceMs`, the first one at once.
 */
import { BpfError, Errno } from '../errors.js';
import { RTMGRP, rtnetlinkClose, rtnetlinkReceive, rtnetlinkSubscribe } from '../ffi/rtnetlink.js';
import { watchReadable, type FdWatch } from '../ffi/sys.js';
import { ForwardingChanges, parseRtDatagram, type RtEvent } from './rtmsg.js';

export type { RtEvent, RouteEvent, NeighbourEvent } from './rtmsg.js';

/** What a report carries: the changes since the last one; `lost` when the kernel dropped notifications (ENOBUFS). */
export interface RtChange {
  events: RtEvent[];
  lost: boolean;
}

/** Options of RouteWatcher.open. */
export interface RouteWatcherOptions {
  /** Reports come at most this often, in ms (default 50); a burst of changes is one report. */
  coalesceMs?: number;
  /** Called when reading the socket fails for another reason than EAGAIN/ENOBUFS (the watch stops). */
  onError?: (e: BpfError) => void;
}

/** Watches IPv4 route and neighbour changes; close() is safe twice. */
export class RouteWatcher {
  private readonly buf = Buffer.alloc(64 * 1024);
  private readonly changes = new ForwardingChanges();
  private pending: RtEvent[] = [];
  private lost = false;
  private last = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  private watch: FdWatch | undefined;
  private fd: number;

  private constructor(fd: number, private readonly onChange: (c: RtChange) => void, private readonly coalesceMs: number, private readonly onError?: (e: BpfError) => void) {
    this.fd = fd;
    this.watch = watchReadable(fd, () => this.read());
    // It never keeps the process alive by itself.
    this.watch.unref();
  }

  /**
   * Starts watching the calling thread's network namespace; `onChange` gets
   * the changes. Throws a BpfError ("subscribe to route and neighbour
   * changes: ...") when the socket cannot be opened or bound. Needs no
   * privilege (any process may listen to these groups); Linux >= 2.6.
   */
  static open(onChange: (c: RtChange) => void, opts: RouteWatcherOptions = {}): RouteWatcher {
    const r = rtnetlinkSubscribe(RTMGRP.ipv4Route | RTMGRP.neigh);
    if ('errno' in r) throw new BpfError('subscribe to route and neighbour changes', r.errno);
    return new RouteWatcher(r.fd, onChange, opts.coalesceMs ?? 50, opts.onError);
  }

  private read(): void {
    for (;;) {
      if (this.fd < 0) return;
      const n = rtnetlinkReceive(this.fd, this.buf);
      if (typeof n === 'number') {
        if (n === 0) break;
        this.pending.push(...this.changes.filter(parseRtDatagram(this.buf.subarray(0, n))));
        continue;
      }
      if (n.errno === Errno.EAGAIN || n.errno === Errno.EINTR) break;
      if (n.errno === Errno.ENOBUFS) { this.lost = true; continue; }
      const e = new BpfError('read route and neighbour changes', n.errno);
      this.close();
      this.onError?.(e);
      return;
    }
    if (this.pending.length || this.lost) this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = this.last + this.coalesceMs - performance.now();
    if (wait <= 0) { this.flush(); return; }
    this.timer = setTimeout(() => this.flush(), wait);
    this.timer.unref();
  }

  private flush(): void {
    this.timer = undefined;
    if (this.fd < 0) return;
    this.last = performance.now();
    const c: RtChange = { events: this.pending, lost: this.lost };
    this.pending = [];
    this.lost = false;
    this.onChange(c);
  }

  /** Stops watching and closes the socket; pending changes are dropped. Safe twice. */
  close(): void {
    if (this.timer) { clearTimeout(this.timer); this.timer = undefined; }
    this.watch?.close();
    this.watch = undefined;
    if (this.fd >= 0) { rtnetlinkClose(this.fd); this.fd = -1; }
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** One line about a change: "route 10.244.1.0/24 added (table 254), neighbour 10.244.1.5 → 02:00:00:00:be:ef". */
export function describeChange(c: RtChange): string {
  const parts = c.events.map((e) => (e.kind === 'route'
    ? `route ${e.dst} ${e.action}${e.table !== 254 ? ` (table ${e.table})` : ''}`
    : `neighbour ${e.ip} ${e.action === 'removed' || e.mac === undefined ? 'gone' : `→ ${e.mac}`}`));
  if (c.lost) parts.push('some notifications lost (ENOBUFS)');
  const shown = parts.slice(0, 4);
  if (parts.length > shown.length) shown.push(`${parts.length - shown.length} more`);
  return shown.join(', ');
}
