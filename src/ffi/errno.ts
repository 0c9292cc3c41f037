/**
 * errno names and messages, and the one place where libbpf's sign convention
 * (negative errno returns) is normalised.
 */
import { koffi, libc, func } from './native.js';

const names = new Map<number, string>();
for (const [name, num] of Object.entries(koffi.os.errno)) {
  // Prefer the canonical name for aliases (EAGAIN over EWOULDBLOCK, ENOTSUP...).
  if (!names.has(num) || name === 'EAGAIN' || name === 'EOPNOTSUPP') names.set(num, name);
}

const strerror_r = func<(errnum: number, buf: Buffer, len: number) => string>(
  libc,
  'const char *strerror_r(int errnum, char *buf, size_t len)', // the GNU variant
);

/**
 * The errno values the library and the lessons test for, by name: compare
 * `e.errno === Errno.ENOENT`, never a bare number. Values come from the
 * platform (koffi's table), plus the kernel-internal ENOTSUPP (524) that the
 * bpf syscall returns, and libbpf's LIBBPF_ERRNO__* codes (4000 and up).
 */
export const Errno = Object.freeze({
  EPERM: errnoValue('EPERM'),
  ENOENT: errnoValue('ENOENT'),
  ESRCH: errnoValue('ESRCH'),
  EINTR: errnoValue('EINTR'),
  EIO: errnoValue('EIO'),
  E2BIG: errnoValue('E2BIG'),
  EBADF: errnoValue('EBADF'),
  EAGAIN: errnoValue('EAGAIN'),
  ENOMEM: errnoValue('ENOMEM'),
  EACCES: errnoValue('EACCES'),
  EFAULT: errnoValue('EFAULT'),
  EBUSY: errnoValue('EBUSY'),
  EEXIST: errnoValue('EEXIST'),
  ENODEV: errnoValue('ENODEV'),
  ENOTDIR: errnoValue('ENOTDIR'),
  EISDIR: errnoValue('EISDIR'),
  EINVAL: errnoValue('EINVAL'),
  ENOSPC: errnoValue('ENOSPC'),
  ERANGE: errnoValue('ERANGE'),
  EPIPE: errnoValue('EPIPE'),
  ENOSYS: errnoValue('ENOSYS'),
  ENOTTY: errnoValue('ENOTTY'),
  ENOTSOCK: errnoValue('ENOTSOCK'),
  EOPNOTSUPP: errnoValue('EOPNOTSUPP'),
  ENOBUFS: errnoValue('ENOBUFS'),
  ENETDOWN: errnoValue('ENETDOWN'),
  EADDRNOTAVAIL: errnoValue('EADDRNOTAVAIL'),
  ENOTSUPP: 524,
  LIBBPF_ERRNO__START: 4000,
  LIBBPF_ERRNO__LIBELF: 4000,
  LIBBPF_ERRNO__FORMAT: 4001,
  LIBBPF_ERRNO__KVERSION: 4002,
  LIBBPF_ERRNO__ENDIAN: 4003,
  LIBBPF_ERRNO__INTERNAL: 4004,
  LIBBPF_ERRNO__RELOC: 4005,
  LIBBPF_ERRNO__LOAD: 4006,
  LIBBPF_ERRNO__VERIFY: 4007,
  LIBBPF_ERRNO__PROG2BIG: 4008,
  LIBBPF_ERRNO__KVER: 4009,
  LIBBPF_ERRNO__PROGTYPE: 4010,
  LIBBPF_ERRNO__WRNGPID: 4011,
  LIBBPF_ERRNO__INVSEQ: 4012,
  LIBBPF_ERRNO__NLPARSE: 4013,
} as const);

/* Kernel-internal errnos that the bpf syscall returns, and libbpf's own codes. */
for (const [name, n] of Object.entries(Errno)) if (!names.has(n) && name !== 'LIBBPF_ERRNO__START') names.set(n, name);

/** The symbolic name of an errno value ("ENOENT"), or "E<n>" when unknown. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno);
  return names.get(n) ?? `E${n}`;
}

/** The errno value for a symbolic name, e.g. errnoValue('EEXIST') === 17. */
export function errnoValue(name: string): number {
  const v = (koffi.os.errno as Record<string, number>)[name];
  if (v === undefined) throw new RangeError(`unknown errno name ${name}`);
  return v;
}

/** libc's message for an errno value ("No such file or directory"). */
export function errnoMessage(errno: number): string {
  const n = Math.abs(errno);
  if (n === Errno.ENOTSUPP) return 'Operation not supported by the kernel';
  const buf = Buffer.alloc(256);
  // GNU strerror_r returns a pointer to the message (maybe not buf).
  const s = strerror_r(n, buf, buf.length);
  return typeof s === 'string' && s.length > 0 ? s : `errno ${n}`;
}

/**
 * Normalises libbpf's return convention: a negative return is -errno, and
 * returns the positive errno (0 when the call succeeded).
 */
export function errnoOf(ret: number): number {
  return ret < 0 ? -ret : 0;
}
