/**
 * A NETLINK_ROUTE socket subscribed to multicast groups (route and
 * neighbour notifications), read without blocking. Functions return the
 * kernel's result or an errno and never throw; src/net/rtwatch.ts parses
 * what they receive and watches the fd on the event loop.
 */
import { lastErrno } from './native.js';
import { bind, recv, socket } from './sockcalls.js';
import { closeFd } from './sys.js';

const AF_NETLINK = 16;
const NETLINK_ROUTE = 0;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
/** Bytes of a struct sockaddr_nl. */
const SOCKADDR_NL_SIZE = 12;

/** rtnetlink multicast groups (linux/rtnetlink.h RTMGRP_*), the bind() mask. */
export const RTMGRP = { link: 0x1, neigh: 0x4, ipv4Addr: 0x10, ipv4Route: 0x40 } as const;

/**
 * socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE)
 * bound to the multicast `groups` (a mask of RTMGRP values) in the calling
 * thread's network namespace: the fd, or the errno.
 */
export function rtnetlinkSubscribe(groups: number): { fd: number } | { errno: number } {
  const fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return { errno: lastErrno() };
  const sa = Buffer.alloc(SOCKADDR_NL_SIZE);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(0, 4); // nl_pid 0: the kernel assigns one
  sa.writeUInt32LE(groups >>> 0, 8);
  if (bind(fd, sa, sa.length) !== 0) {
    const e = lastErrno();
    closeFd(fd);
    return { errno: e };
  }
  return { fd };
}

/**
 * One non-blocking recv into `buf`: the datagram's length, or the errno
 * (EAGAIN: nothing queued; ENOBUFS: the socket's buffer overflowed and
 * notifications were lost).
 */
export function rtnetlinkReceive(fd: number, buf: Buffer): number | { errno: number } {
  const n = recv(fd, buf, buf.length, MSG_DONTWAIT);
  return n >= 0 ? n : { errno: lastErrno() };
}

/** close(fd) of a socket from rtnetlinkSubscribe. */
export function rtnetlinkClose(fd: number): void {
  closeFd(fd);
}
