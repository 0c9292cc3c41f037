/**
 * The raw AF_XDP socket interface over libc (linux/if_xdp.h): socket,
 * setsockopt/getsockopt at SOL_XDP, bind with a sockaddr_xdp, the
 * sendto/recvfrom kicks, and the anonymous mapping that backs a UMEM.
 * Functions return the kernel's result or an errno and never throw.
 * Layouts are x86-64/arm64 (LP64, little endian) as the kernel defines them.
 */
import { func, lastErrno, libc } from './native.js';
import { bind, getsockopt, setsockopt, socket } from './sockcalls.js';
import { c, MAP_FAILED, viewOf } from './libbpf.js';

/** Address family of XDP sockets. */
export const AF_XDP = 44;
/** setsockopt level of XDP sockets. */
export const SOL_XDP = 283;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;

/** Socket options at SOL_XDP. */
export const XdpOpt = {
  MMAP_OFFSETS: 1, RX_RING: 2, TX_RING: 3, UMEM_REG: 4, UMEM_FILL_RING: 5, UMEM_COMPLETION_RING: 6,
  STATISTICS: 7, OPTIONS: 8,
} as const;
/** sockaddr_xdp.sxdp_flags. */
export const XdpBindFlag = { SHARED_UMEM: 1, COPY: 2, ZEROCOPY: 4, USE_NEED_WAKEUP: 8 } as const;
/** xdp_options.flags: the socket is bound in zero-copy mode. */
export const XDP_OPTIONS_ZEROCOPY = 1;
/** A ring's flags word: the kernel must be kicked (sendto for TX, recvfrom/poll for fill). */
export const XDP_RING_NEED_WAKEUP = 1;
/** mmap page offsets of the four rings. */
export const XdpPgoff = { RX: 0, TX: 0x80000000, FILL: 0x100000000, COMPLETION: 0x180000000 } as const;
/** Bytes of an RX/TX descriptor (u64 addr, u32 len, u32 options) and of a fill/completion entry (u64 addr). */
export const XDP_DESC_SIZE = 16;
export const XDP_ADDR_SIZE = 8;
/** Bytes before the packet in an RX frame in copy mode (XDP_PACKET_HEADROOM). */
export const XDP_PACKET_HEADROOM = 256;

const MSG_DONTWAIT = 0x40;

const sendto = func<(fd: number, buf: null, len: number, flags: number, addr: null, alen: number) => number>(
  libc, 'intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t alen)');
const recvfrom = func<(fd: number, buf: null, len: number, flags: number, addr: null, alen: null) => number>(
  libc, 'intptr_t recvfrom(int fd, void *buf, size_t len, int flags, void *addr, uint32_t *alen)');

/** socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0): the fd, or the errno. */
export function xskSocket(): { fd: number } | { errno: number } {
  const fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
  return fd >= 0 ? { fd } : { errno: lastErrno() };
}

/** setsockopt(fd, SOL_XDP, opt, value): 0, or the errno. */
export function xskSetOpt(fd: number, opt: number, value: Buffer): number {
  return setsockopt(fd, SOL_XDP, opt, value, value.length) === 0 ? 0 : lastErrno();
}

/** setsockopt of a u32 (ring sizes): 0, or the errno. */
export function xskSetOptU32(fd: number, opt: number, value: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return xskSetOpt(fd, opt, b);
}

/** getsockopt(fd, SOL_XDP, opt) into a buffer of `size` bytes: the bytes the kernel wrote, or the errno. */
export function xskGetOpt(fd: number, opt: number, size: number): { value: Buffer } | { errno: number } {
  const b = Buffer.alloc(size);
  const len = new Uint32Array([size]);
  if (getsockopt(fd, SOL_XDP, opt, b, len) !== 0) return { errno: lastErrno() };
  return { value: b.subarray(0, len[0]) };
}

/** struct xdp_umem_reg (32 bytes; tx_metadata_len zero). */
export function umemReg(addr: bigint, len: number, chunkSize: number, headroom: number, flags = 0): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigUInt64LE(addr, 0);
  b.writeBigUInt64LE(BigInt(len), 8);
  b.writeUInt32LE(chunkSize, 16);
  b.writeUInt32LE(headroom, 20);
  b.writeUInt32LE(flags, 24);
  return b;
}

/** bind(fd, sockaddr_xdp{AF_XDP, flags, ifindex, queue, shared_umem_fd}): 0, or the errno. */
export function xskBind(fd: number, ifindex: number, queue: number, flags: number, sharedUmemFd = 0): number {
  const b = Buffer.alloc(16);
  b.writeUInt16LE(AF_XDP, 0);
  b.writeUInt16LE(flags, 2);
  b.writeUInt32LE(ifindex, 4);
  b.writeUInt32LE(queue, 8);
  b.writeUInt32LE(sharedUmemFd, 12);
  return bind(fd, b, 16) === 0 ? 0 : lastErrno();
}

/** sendto(fd, NULL, 0, MSG_DONTWAIT): the TX kick. 0, or the errno. */
export function xskKickTx(fd: number): number {
  return sendto(fd, null, 0, MSG_DONTWAIT, null, 0) >= 0 ? 0 : lastErrno();
}

/** recvfrom(fd, NULL, 0, MSG_DONTWAIT): the RX/fill wake-up. 0, or the errno. */
export function xskKickRx(fd: number): number {
  return recvfrom(fd, null, 0, MSG_DONTWAIT, null, null) >= 0 ? 0 : lastErrno();
}

/** Anonymous, page-aligned, zeroed memory (a UMEM's frames); unmap() is idempotent. */
export interface AnonMapping {
  readonly addr: bigint;
  readonly buffer: ArrayBuffer;
  readonly length: number;
  unmap(): void;
}

const PROT_RW = 3;
const MAP_PRIVATE_ANON = 0x02 | 0x20;

/** mmap(NULL, length, RW, MAP_PRIVATE|MAP_ANONYMOUS): the mapping, or the errno. */
export function mapAnonymous(length: number): AnonMapping | { errno: number } {
  const addr = c.mmap(null, length, PROT_RW, MAP_PRIVATE_ANON, -1, 0);
  if (addr === MAP_FAILED || addr === 0n) return { errno: lastErrno() };
  let mapped = true;
  return {
    addr, length, buffer: viewOf(addr, length),
    unmap() { if (mapped) { mapped = false; c.munmap(addr, length); } },
  };
}
