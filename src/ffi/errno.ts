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
/* Kernel-internal errnos that the bpf syscall and libbpf return. */
const extra: Record<number, string> = { 524: 'ENOTSUPP', 4001: 'LIBBPF_ERRNO__LIBELF', 4003: 'LIBBPF_ERRNO__FORMAT' };
for (const [n, s] of Object.entries(extra)) if (!names.has(Number(n))) names.set(Number(n), s);

const strerror_r = func<(errnum: number, buf: Buffer, len: number) => string>(
  libc,
  'const char *strerror_r(int errnum, char *buf, size_t len)', // the GNU variant
);

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
  if (n === 524) return 'Operation not supported by the kernel';
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
