/**
 * Sockets over libc for the socket hooks: a raw AF_PACKET socket (socket,
 * bind to an interface with a sockaddr_ll, non-blocking recvfrom with the
 * sender's sockaddr_ll, PACKET_STATISTICS), and the SOL_SOCKET options that
 * attach and detach a BPF socket filter (SO_ATTACH_BPF, SO_DETACH_BPF).
 * Functions return the kernel's result or an errno and never throw.
 * Layouts are those of Linux on LP64 little-endian machines (x86-64, arm64).
 */
import { func, lastErrno, libc } from './native.js';
import { bind, getsockopt, setsockopt, socket } from './sockcalls.js';

/** Address family of packet sockets. */
export const AF_PACKET = 17;
/** Every protocol (linux/if_ether.h ETH_P_ALL), host order. */
export const ETH_P_ALL = 0x0003;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SOL_PACKET = 263;
/** setsockopt(SOL_SOCKET): attach an eBPF socket filter by program fd (Linux >= 3.19). */
const SO_ATTACH_BPF = 50;
/** setsockopt(SOL_SOCKET): detach the socket's filter, classic or eBPF (SO_DETACH_FILTER). */
const SO_DETACH_BPF = 27;
const SO_RCVBUF = 8;
const PACKET_STATISTICS = 6;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
/** Bytes of a struct sockaddr_ll. */
const SOCKADDR_LL_SIZE = 20;

const recvfrom = func<(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: Uint32Array) => number>(
  libc, 'intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, _Inout_ uint32_t *alen)');

const htons = (v: number) => ((v & 0xff) << 8) | ((v >> 8) & 0xff);

/**
 * socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(protocol)):
 * the fd, or the errno. Protocol 0 receives nothing until bind() names one.
 */
export function packetSocket(protocol: number): { fd: number } | { errno: number } {
  const fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(protocol));
  return fd >= 0 ? { fd } : { errno: lastErrno() };
}

/** bind(fd, sockaddr_ll{AF_PACKET, htons(protocol), ifindex}): 0, or the errno. */
export function packetBind(fd: number, ifindex: number, protocol: number): number {
  const b = Buffer.alloc(SOCKADDR_LL_SIZE);
  b.writeUInt16LE(AF_PACKET, 0);
  b.writeUInt16BE(protocol, 2);
  b.writeInt32LE(ifindex, 4);
  return bind(fd, b, b.length) === 0 ? 0 : lastErrno();
}

function setInt(fd: number, level: number, opt: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeInt32LE(value);
  return setsockopt(fd, level, opt, b, 4) === 0 ? 0 : lastErrno();
}

/** setsockopt(fd, SOL_SOCKET, SO_ATTACH_BPF, progFd): 0, or the errno. */
export function attachBpfFilter(fd: number, progFd: number): number {
  return setInt(fd, SOL_SOCKET, SO_ATTACH_BPF, progFd);
}

/** setsockopt(fd, SOL_SOCKET, SO_DETACH_BPF): 0, or the errno (ENOENT: no filter attached). */
export function detachBpfFilter(fd: number): number {
  return setInt(fd, SOL_SOCKET, SO_DETACH_BPF, 0);
}

/** setsockopt(fd, SOL_SOCKET, SO_RCVBUF, bytes): 0, or the errno (the kernel doubles it, capped by rmem_max). */
export function setReceiveBuffer(fd: number, bytes: number): number {
  return setInt(fd, SOL_SOCKET, SO_RCVBUF, bytes);
}

/** What recvfrom on a packet socket gave: the frame's whole length, the bytes copied, its sockaddr_ll fields. */
export interface PacketReceived {
  /** The frame's length on the wire (MSG_TRUNC), even when the buffer was shorter. */
  length: number;
  /** Bytes copied into the buffer. */
  copied: number;
  /** sll_ifindex: the interface it was seen on. */
  ifindex: number;
  /** sll_pkttype: 0 to us, 1 broadcast, 2 multicast, 3 to another host, 4 outgoing. */
  pktType: number;
  /** sll_protocol, host order: the EtherType. */
  protocol: number;
}

/** A recvfrom() on a packet socket with its buffers allocated once. */
export interface PacketReceiver {
  /** The frame buffer the last receive() filled. */
  readonly buf: Buffer;
  /** One non-blocking recvfrom: the packet, or the errno (EAGAIN: nothing queued). */
  receive(): PacketReceived | { errno: number };
}

/** A receiver with a `size`-byte frame buffer (longer frames are cut, their length still reported). */
export function packetReceiver(fd: number, size: number): PacketReceiver {
  const buf = Buffer.alloc(size);
  const addr = Buffer.alloc(SOCKADDR_LL_SIZE);
  const alen = new Uint32Array(1);
  return {
    buf,
    receive() {
      alen[0] = SOCKADDR_LL_SIZE;
      const n = recvfrom(fd, buf, size, MSG_DONTWAIT | MSG_TRUNC, addr, alen);
      if (n < 0) return { errno: lastErrno() };
      return {
        length: n, copied: Math.min(n, size),
        protocol: addr.readUInt16BE(2), ifindex: addr.readInt32LE(4), pktType: addr.readUInt8(10),
      };
    },
  };
}

/**
 * getsockopt(fd, SOL_PACKET, PACKET_STATISTICS): packets queued to the
 * socket (after its filter) and dropped for a full receive queue since the
 * last call (the kernel resets them on read), or the errno.
 */
export function packetStatistics(fd: number): { packets: number; drops: number } | { errno: number } {
  const b = Buffer.alloc(8);
  const len = new Uint32Array([8]);
  if (getsockopt(fd, SOL_PACKET, PACKET_STATISTICS, b, len) !== 0) return { errno: lastErrno() };
  return { packets: b.readUInt32LE(0), drops: b.readUInt32LE(4) };
}
