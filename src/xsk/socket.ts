/**
 * An AF_XDP socket bound to one queue of an interface, with its UMEM and
 * its four rings, set up in the kernel's order:
 *
 *   socket(AF_XDP) → XDP_UMEM_REG → fill/completion ring sizes → RX/TX ring
 *   sizes → getsockopt(XDP_MMAP_OFFSETS) → mmap each ring at its page
 *   offset → bind(ifindex, queue, copy/zero-copy, need-wakeup)
 *
 * then the socket's fd goes into the XSKMAP slot of its queue (setInMap)
 * so the XDP program can bpf_redirect_map() packets to it.
 */
import { BpfError, Errno } from '../errors.js';
import { closeFd, mapFd, watchReadable, type FdWatch, type Mapping } from '../ffi/sys.js';
import {
  XDP_ADDR_SIZE, XDP_DESC_SIZE, XDP_OPTIONS_ZEROCOPY, XDP_PACKET_HEADROOM, XdpBindFlag, XdpOpt, XdpPgoff,
  umemReg, xskBind, xskGetOpt, xskKickRx, xskKickTx, xskSetOpt, xskSetOptU32, xskSocket,
} from '../ffi/xsk.js';
import { isPowerOfTwo, XskRing, type RingKind, type RingOffsets } from './ring.js';
import { Umem, type UmemOptions } from './umem.js';

/** Bind mode asked for: 'auto' lets the kernel try zero-copy and fall back to copy. */
export type XskMode = 'auto' | 'copy' | 'zerocopy';
/** The mode the kernel gave. */
export type XskBoundMode = 'copy' | 'zerocopy';

/** Options of XskSocket.open(). */
export interface XskOptions {
  /** Interface index. */
  ifindex: number;
  /** Queue id (default 0). */
  queue?: number;
  /** UMEM geometry. */
  umem?: UmemOptions;
  /** Entries of the RX and TX rings (powers of two; default 2048 each; 0: no such ring). */
  rxSize?: number;
  txSize?: number;
  /** Entries of the fill and completion rings (default 2048 each). */
  fillSize?: number;
  completionSize?: number;
  /** Default 'auto'. */
  mode?: XskMode;
  /** Bind with XDP_USE_NEED_WAKEUP (default true): the kernel says in a ring's flags when it needs a kick. */
  needWakeup?: boolean;
}

/** XDP_STATISTICS, typed. */
export interface XskStatistics {
  /** Packets dropped for other reasons than a full RX ring or an empty fill ring (too big, ...). */
  rxDropped: number;
  /** Fill ring entries the kernel rejected. */
  rxInvalidDescs: number;
  /** TX descriptors the kernel rejected. */
  txInvalidDescs: number;
  /** Packets dropped because the RX ring was full. */
  rxRingFull: number;
  /** Times the kernel found the fill ring empty when it needed a frame. */
  rxFillRingEmptyDescs: number;
  /** Times the kernel found the TX ring empty when kicked. */
  txRingEmptyDescs: number;
}

/** The XSKMAP side: anything with set(queue, fd) (a BpfMap<number, number> of u32 → u32). */
export interface XskMapLike {
  set(key: number, value: number): void;
}

const OFFSETS_SIZE = 128;
const RLIMIT_HINT = 'the UMEM counts against RLIMIT_MEMLOCK: raise it (ulimit -l) or run as root with CAP_IPC_LOCK';

function parseOffsets(b: Buffer, i: number): RingOffsets {
  const o = i * 32;
  return {
    producer: Number(b.readBigUInt64LE(o)),
    consumer: Number(b.readBigUInt64LE(o + 8)),
    desc: Number(b.readBigUInt64LE(o + 16)),
    flags: Number(b.readBigUInt64LE(o + 24)),
  };
}

/** Parses struct xdp_statistics (48 bytes on kernels >= 5.9; older ones give the first 24). */
export function parseStatistics(b: Buffer): XskStatistics {
  const at = (i: number) => (b.length >= (i + 1) * 8 ? Number(b.readBigUInt64LE(i * 8)) : 0);
  return {
    rxDropped: at(0), rxInvalidDescs: at(1), txInvalidDescs: at(2),
    rxRingFull: at(3), rxFillRingEmptyDescs: at(4), txRingEmptyDescs: at(5),
  };
}

/**
 * An AF_XDP socket with its own UMEM, bound to one queue. Kernel 5.4+ (need-
 * wakeup 5.4, 32-byte xdp_umem_reg 6.8 accepts the older sizes too), root or
 * CAP_NET_RAW + CAP_BPF. close() is idempotent; `using` disposes it.
 */
export class XskSocket {
  readonly fd: number;
  readonly ifindex: number;
  readonly queue: number;
  readonly umem: Umem;
  /** The mode the kernel bound the socket in (XDP_OPTIONS). */
  readonly mode: XskBoundMode;
  readonly fill: XskRing;
  readonly completion: XskRing;
  /** Undefined when opened with rxSize 0 (TX only). */
  readonly rx: XskRing | undefined;
  /** Undefined when opened with txSize 0 (RX only). */
  readonly tx: XskRing | undefined;
  /** Bytes from a frame's start to a received packet: XDP_PACKET_HEADROOM + the UMEM's headroom in copy mode. */
  readonly rxOffset: number;
  readonly #maps: Mapping[];
  #watch: FdWatch | undefined;
  #closed = false;

  private constructor(fd: number, ifindex: number, queue: number, umem: Umem, mode: XskBoundMode,
    rings: Record<RingKind, XskRing | undefined>, maps: Mapping[]) {
    this.fd = fd;
    this.ifindex = ifindex;
    this.queue = queue;
    this.umem = umem;
    this.mode = mode;
    this.fill = rings.fill!;
    this.completion = rings.completion!;
    this.rx = rings.rx;
    this.tx = rings.tx;
    this.#maps = maps;
    this.rxOffset = XDP_PACKET_HEADROOM + umem.headroom;
  }

  /**
   * Creates the socket, its UMEM and rings, and binds it to `ifindex`/`queue`.
   * Throws a BpfError: EOPNOTSUPP when zero-copy was asked and the driver
   * has none; ENOBUFS when RLIMIT_MEMLOCK is too small for the UMEM; EINVAL
   * for bad ring sizes or no such queue; EPERM without privileges.
   */
  static open(opts: XskOptions): XskSocket {
    const queue = opts.queue ?? 0;
    const where = `AF_XDP socket on ifindex ${opts.ifindex} queue ${queue}`;
    const sizes: Record<RingKind, number> = {
      fill: opts.fillSize ?? 2048, completion: opts.completionSize ?? 2048,
      rx: opts.rxSize ?? 2048, tx: opts.txSize ?? 2048,
    };
    for (const [k, n] of Object.entries(sizes)) {
      if (!(n === 0 && (k === 'rx' || k === 'tx')) && !isPowerOfTwo(n)) {
        throw new BpfError(`create ${where}`, Errno.EINVAL, `${k} ring size ${n} is not a power of two`);
      }
    }
    if (sizes.rx === 0 && sizes.tx === 0) throw new BpfError(`create ${where}`, Errno.EINVAL, 'needs an RX or a TX ring');
    const s = xskSocket();
    if ('errno' in s) throw new BpfError(`create ${where}`, s.errno);
    const fd = s.fd;
    const maps: Mapping[] = [];
    let umem: Umem | undefined;
    try {
      umem = new Umem(opts.umem);
      let e = xskSetOpt(fd, XdpOpt.UMEM_REG, umemReg(umem.addr, umem.length, umem.frameSize, umem.headroom));
      if (e === Errno.ENOBUFS) throw new BpfError(`register UMEM of ${where}`, e, RLIMIT_HINT);
      if (e) throw new BpfError(`register UMEM of ${where}`, e);
      const opt: Record<RingKind, number> = {
        fill: XdpOpt.UMEM_FILL_RING, completion: XdpOpt.UMEM_COMPLETION_RING, rx: XdpOpt.RX_RING, tx: XdpOpt.TX_RING,
      };
      for (const k of ['fill', 'completion', 'rx', 'tx'] as const) {
        if (sizes[k] === 0) continue;
        e = xskSetOptU32(fd, opt[k], sizes[k]);
        if (e) throw new BpfError(`set ${k} ring size of ${where}`, e);
      }
      const offs = xskGetOpt(fd, XdpOpt.MMAP_OFFSETS, OFFSETS_SIZE);
      if ('errno' in offs) throw new BpfError(`read ring offsets of ${where}`, offs.errno);
      const order: RingKind[] = ['rx', 'tx', 'fill', 'completion']; // struct xdp_mmap_offsets
      const pgoff: Record<RingKind, number> = { rx: XdpPgoff.RX, tx: XdpPgoff.TX, fill: XdpPgoff.FILL, completion: XdpPgoff.COMPLETION };
      const rings: Record<RingKind, XskRing | undefined> = { rx: undefined, tx: undefined, fill: undefined, completion: undefined };
      order.forEach((k, i) => {
        if (sizes[k] === 0) return;
        const off = parseOffsets(offs.value, i);
        const entry = k === 'rx' || k === 'tx' ? XDP_DESC_SIZE : XDP_ADDR_SIZE;
        const m = mapFd(fd, off.desc + sizes[k] * entry, pgoff[k], true);
        if ('errno' in m) throw new BpfError(`map ${k} ring of ${where}`, m.errno);
        maps.push(m);
        rings[k] = new XskRing(k, m.buffer, off, sizes[k]);
      });
      const mode = opts.mode ?? 'auto';
      let flags = mode === 'copy' ? XdpBindFlag.COPY : mode === 'zerocopy' ? XdpBindFlag.ZEROCOPY : 0;
      if (opts.needWakeup ?? true) flags |= XdpBindFlag.USE_NEED_WAKEUP;
      e = xskBind(fd, opts.ifindex, queue, flags);
      if (e === Errno.EOPNOTSUPP && mode === 'zerocopy') {
        throw new BpfError(`bind ${where}`, e, 'the driver has no zero-copy AF_XDP support (use copy or auto mode)');
      }
      if (e) throw new BpfError(`bind ${where}`, e);
      const o = xskGetOpt(fd, XdpOpt.OPTIONS, 4);
      const bound: XskBoundMode = 'value' in o && (o.value.readUInt32LE(0) & XDP_OPTIONS_ZEROCOPY) ? 'zerocopy' : 'copy';
      return new XskSocket(fd, opts.ifindex, queue, umem, bound, rings, maps);
    } catch (err) {
      for (const m of maps) m.unmap();
      closeFd(fd);
      umem?.close();
      throw err;
    }
  }

  /** True after close(). */
  get closed(): boolean {
    return this.#closed;
  }

  #check(what: string): void {
    if (this.#closed) throw new BpfError(`${what} AF_XDP socket`, Errno.EBADF, 'socket is closed');
  }

  /** Puts this socket's fd in the XSKMAP slot of its queue. Throws the map's BpfError. */
  setInMap(map: XskMapLike): void {
    this.#check('register');
    map.set(this.queue, this.fd);
  }

  /**
   * Moves up to `max` frames from the UMEM's free stack to the fill ring
   * (default: as many as fit) and kicks the kernel if it asked for it.
   * Returns how many.
   */
  refill(max = Infinity): number {
    this.#check('fill');
    const n = this.fill.reserve(Math.min(max, this.umem.freeFrames));
    for (let k = 0; k < n; k++) this.fill.setAddr(k, this.umem.allocFrame());
    if (n > 0) {
      this.fill.submit(n);
      if (this.fill.needsWakeup()) xskKickRx(this.fd);
    }
    return n;
  }

  /**
   * Tells the kernel to send what the TX ring holds (sendto), if it asked
   * for a kick (always in copy mode) or `force`. Returns 0, or the errno
   * (EAGAIN, EBUSY, ENOBUFS, ENETDOWN: try again later).
   */
  kickTx(force = false): number {
    this.#check('kick');
    if (!force && this.tx && !this.tx.needsWakeup()) return 0;
    return xskKickTx(this.fd);
  }

  /**
   * Takes up to `max` addresses out of the completion ring (frames the
   * kernel has sent) and hands each to `onFrame` (default: back to the
   * UMEM's free stack). Returns how many.
   */
  complete(max = Infinity, onFrame?: (addr: number) => void): number {
    this.#check('complete');
    const c = this.completion;
    const n = c.peek(Math.min(max, c.size));
    for (let k = 0; k < n; k++) {
      const a = c.addr(k);
      if (onFrame) onFrame(a); else this.umem.freeFrame(a);
    }
    if (n > 0) c.release(n);
    return n;
  }

  /** XDP_STATISTICS. Throws a BpfError. */
  statistics(): XskStatistics {
    this.#check('read statistics of');
    const r = xskGetOpt(this.fd, XdpOpt.STATISTICS, 48);
    if ('errno' in r) throw new BpfError(`read statistics of AF_XDP socket on queue ${this.queue}`, r.errno);
    return parseStatistics(r.value);
  }

  /**
   * Calls `onReadable` from Node's event loop whenever the RX ring has
   * packets (level-triggered poll on the fd: no busy loop). One watch per
   * socket; close() stops it. Throws a BpfError (EBUSY) for a second watch.
   */
  watch(onReadable: () => void): FdWatch {
    this.#check('watch');
    if (this.#watch) throw new BpfError('watch AF_XDP socket', Errno.EBUSY, 'already watched');
    this.#watch = watchReadable(this.fd, onReadable);
    return this.#watch;
  }

  /** Stops the watch, unmaps the rings, closes the fd (the kernel drops it from XSKMAPs) and frees the UMEM. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#watch?.close();
    for (const m of this.#maps) m.unmap();
    closeFd(this.fd);
    this.umem.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

