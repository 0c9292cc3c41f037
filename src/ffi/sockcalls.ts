/**
 * libc's socket calls shared by the packet socket, AF_XDP and rtnetlink bindings:
 * each returns -1 and sets errno on failure (read it with lastErrno()).
 */
import { func, libc } from './native.js';

export const socket = func<(domain: number, type: number, proto: number) => number>(libc, 'int socket(int domain, int type, int protocol)');
export const setsockopt = func<(fd: number, level: number, opt: number, val: Buffer, len: number) => number>(
  libc, 'int setsockopt(int fd, int level, int optname, const void *optval, uint32_t optlen)');
export const getsockopt = func<(fd: number, level: number, opt: number, val: Buffer, len: Uint32Array) => number>(
  libc, 'int getsockopt(int fd, int level, int optname, void *optval, _Inout_ uint32_t *optlen)');
export const bind = func<(fd: number, addr: Buffer, len: number) => number>(libc, 'int bind(int fd, const void *addr, uint32_t len)');
export const recv = func<(fd: number, buf: Buffer, len: number, flags: number) => number>(
  libc, 'intptr_t recv(int fd, void *buf, size_t len, int flags)');
