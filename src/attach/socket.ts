/**
 * Socket filters: a BPF_PROG_TYPE_SOCKET_FILTER program attached to a
 * socket (setsockopt SO_ATTACH_BPF) decides which packets that one socket
 * receives, and how many bytes of each (tcpdump's use of classic BPF). No
 * bpf_link exists for this hook: the filter belongs to the socket and goes
 * away with it, so a process that dies leaves nothing attached.
 *
 * Also the small raw socket the socket_filter lesson reads: PacketSocket, an
 * AF_PACKET SOCK_RAW socket bound to one interface, whose filter is
 * attached before it is bound (so not one unfiltered packet is queued),
 * read on Node's event loop.
 */
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import {
  ETH_P_ALL, attachBpfFilter, detachBpfFilter, packetBind, packetReceiver, packetSocket, packetStatistics, setReceiveBuffer,
  type PacketReceiver,
} from '../ffi/socket.js';
import { progTypeName } from '../kinds.js';
import { closeFd, watchReadable, type FdWatch } from '../ffi/sys.js';
import type { Attachment } from '../link.js';
import { resolveInterface, type Interface } from '../netif.js';

/** BPF_PROG_TYPE_SOCKET_FILTER. */
const SOCKET_FILTER = 1;

/** What attaching to a socket needs of a program (a loaded Program has all three). */
export interface SocketFilterProgram {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
}

/** Throws the one-line error of a program of the wrong type for `hook`. */
function checkSocketFilter(prog: SocketFilterProgram, hook: string): void {
  if (prog.type !== SOCKET_FILTER) {
    throw new BpfError(`attach ${prog.name}`, Errno.EINVAL,
      `${progTypeName(prog.type)} program cannot attach to ${hook} (a socket filter is a socket_filter program: SEC("socket"))`);
  }
}

/**
 * Attaches a socket filter program to socket `sockFd` (SO_ATTACH_BPF,
 * Linux >= 3.19), replacing the socket's filter if it had one. detach()
 * removes it (SO_DETACH_BPF) and is safe twice, and after the socket was
 * closed; call it before closing the socket, whose fd number may otherwise
 * be reused. Throws a BpfError: EINVAL for a program that is not a
 * socket_filter one, EBADF/ENOTSOCK for a bad fd.
 */
export function attachSocketFilter(prog: SocketFilterProgram, sockFd: number): Attachment {
  checkSocketFilter(prog, `socket ${sockFd}`);
  const progFd = prog.fd;
  const e = attachBpfFilter(sockFd, progFd);
  if (e) {
    const cause = e === Errno.EPERM ? NEEDS_PRIVILEGE : e === Errno.ENOTSOCK ? `fd ${sockFd} is not a socket` : undefined;
    throw new BpfError(`attach socket filter ${prog.name} to socket ${sockFd}`, e, cause);
  }
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    detachBpfFilter(sockFd); // ENOENT/EBADF: the filter or the socket is already gone
  };
  return { description: `socket filter ${prog.name} on socket ${sockFd}`, detach, [Symbol.dispose]: detach };
}

/** sll_pkttype names, by number (linux/if_packet.h). */
const PKT_TYPES = ['host', 'broadcast', 'multicast', 'otherhost', 'outgoing'] as const;
/** Which way a packet went, as a packet socket sees it. */
export type PacketDirection = typeof PKT_TYPES[number] | 'other';

/** A packet a PacketSocket received. */
export interface Packet {
  /** The bytes received (at most the socket's snapLen), from the Ethernet header on. A copy. */
  data: Buffer;
  /** The frame's length (more than data.length when cut at snapLen). */
  length: number;
  /** The interface it was seen on. */
  ifindex: number;
  /** 'host' (to this host), 'outgoing' (sent by it), 'broadcast', ... */
  direction: PacketDirection;
  /** EtherType, host order. */
  protocol: number;
}

/** Options of PacketSocket.open. */
export interface PacketSocketOptions {
  /** A socket_filter program to attach before the socket is bound. */
  filter?: SocketFilterProgram;
  /** EtherType to receive (default ETH_P_ALL: every protocol, both directions). */
  protocol?: number;
  /** Bytes of each packet to copy out (default 2048). */
  snapLen?: number;
  /** SO_RCVBUF in bytes (the kernel doubles it, capped by net.core.rmem_max). */
  receiveBuffer?: number;
}

/** PACKET_STATISTICS: counted by the kernel since the previous call. */
export interface PacketSocketStats {
  /** Packets the filter let through (queued, or dropped below). */
  packets: number;
  /** Of those, dropped because the socket's receive queue was full. */
  drops: number;
}

/**
 * A raw AF_PACKET socket bound to one interface: what tcpdump opens. With a
 * filter, the socket is created receiving nothing (protocol 0), the filter
 * attached, and only then bound to the interface and protocol, so every
 * packet it queues went through the filter. Needs CAP_NET_RAW.
 */
export class PacketSocket {
  #fd: number;
  #receiver: PacketReceiver;
  #watch: FdWatch | undefined;
  #filter: Attachment | undefined;
  readonly iface: Interface;
  readonly snapLen: number;

  private constructor(fd: number, iface: Interface, snapLen: number) {
    this.#fd = fd;
    this.iface = iface;
    this.snapLen = snapLen;
    this.#receiver = packetReceiver(fd, snapLen);
  }

  /**
   * Opens a packet socket on `iface` (name or ifindex). Throws a BpfError:
   * ENODEV for an unknown interface, EPERM without CAP_NET_RAW, EINVAL for
   * a filter that is not a socket_filter program.
   */
  static open(iface: string | number, opts: PacketSocketOptions = {}): PacketSocket {
    const ifc = resolveInterface(iface);
    if (opts.filter) checkSocketFilter(opts.filter, `a packet socket on ${ifc.name}`);
    const op = `open packet socket on ${ifc.name}`;
    const s = packetSocket(0);
    if ('errno' in s) throw new BpfError(op, s.errno, s.errno === Errno.EPERM ? 'raw sockets need root (CAP_NET_RAW)' : undefined);
    const sock = new PacketSocket(s.fd, ifc, opts.snapLen ?? 2048);
    try {
      if (opts.receiveBuffer !== undefined) {
        const e = setReceiveBuffer(s.fd, opts.receiveBuffer);
        if (e) throw new BpfError(`${op}: set SO_RCVBUF`, e);
      }
      if (opts.filter) sock.#filter = attachSocketFilter(opts.filter, s.fd);
      const e = packetBind(s.fd, ifc.index, opts.protocol ?? ETH_P_ALL);
      if (e) throw new BpfError(`${op}: bind`, e, e === Errno.ENETDOWN ? `${ifc.name} is down` : undefined);
    } catch (err) {
      sock.close();
      throw err;
    }
    return sock;
  }

  /** The socket's fd (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Attaches (or replaces) the socket's filter now; packets queued before
   * stay queued. Throws as attachSocketFilter.
   */
  attachFilter(prog: SocketFilterProgram): Attachment {
    this.#filter?.detach();
    this.#filter = attachSocketFilter(prog, this.#live('attach a filter'));
    return this.#filter;
  }

  #live(op: string): number {
    if (this.#fd < 0) throw new BpfError(`${op} on packet socket ${this.iface.name}`, Errno.EBADF, 'the socket is closed');
    return this.#fd;
  }

  /** One packet if one is queued, else undefined. Throws a BpfError (EBADF once closed). */
  receive(): Packet | undefined {
    this.#live('receive');
    const r = this.#receiver.receive();
    if ('errno' in r) {
      if (r.errno === Errno.EAGAIN || r.errno === Errno.EINTR) return undefined;
      throw new BpfError(`receive on packet socket ${this.iface.name}`, r.errno);
    }
    return {
      data: Buffer.from(this.#receiver.buf.subarray(0, r.copied)),
      length: r.length, ifindex: r.ifindex, protocol: r.protocol,
      direction: PKT_TYPES[r.pktType] ?? 'other',
    };
  }

  /**
   * Calls `handler` with every packet as it arrives, from Node's event loop
   * (the fd is watched; each wake-up drains the queue). Returns a function
   * that stops it (close() stops it too). Throws a BpfError once closed.
   */
  onPacket(handler: (p: Packet) => void): () => void {
    this.#live('watch');
    this.#watch?.close();
    const watch = watchReadable(this.#fd, () => {
      for (let p = this.receive(); p; p = this.#fd >= 0 && this.#watch === watch ? this.receive() : undefined) handler(p);
    });
    this.#watch = watch;
    return () => { watch.close(); if (this.#watch === watch) this.#watch = undefined; };
  }

  /** Packets the filter let through and queue drops, since the previous call. Throws a BpfError. */
  stats(): PacketSocketStats {
    const r = packetStatistics(this.#live('read statistics'));
    if ('errno' in r) throw new BpfError(`read statistics of packet socket ${this.iface.name}`, r.errno);
    return r;
  }

  /** Stops watching, detaches the filter and closes the socket. Safe to call twice. */
  close(): void {
    if (this.#fd < 0) return;
    this.#watch?.close();
    this.#watch = undefined;
    this.#filter?.detach();
    this.#filter = undefined;
    closeFd(this.#fd);
    this.#fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
