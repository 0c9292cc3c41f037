/**
 * Loading of the native libraries: the system's libbpf (at runtime, no build
 * step) and libc. This file and its siblings in src/ffi are the only code
 * that touches koffi.
 */
import koffi, { type LibraryHandle, type TypeObject } from 'koffi';

/** Thrown when libbpf (or libc) cannot be loaded, or is too old. */
export class NativeLoadError extends Error {
  override name = 'NativeLoadError';
}

const LIBBPF_HINT =
  'install it: apt-get install libbpf1 (Debian 12, Ubuntu 24.04), or set LIBBPF_PATH to a libbpf.so';

function loadLibbpf(): LibraryHandle {
  const path = process.env.LIBBPF_PATH || 'libbpf.so.1';
  try {
    return koffi.load(path);
  } catch (e) {
    throw new NativeLoadError(`load ${path}: ${(e as Error).message.split('\n')[0]}; ${LIBBPF_HINT}`);
  }
}

/** The loaded libbpf. */
export const libbpf = loadLibbpf();
/** The loaded libc. */
export const libc = koffi.load('libc.so.6');

const major = libbpf.func('uint32_t libbpf_major_version(void)') as () => number;
const minor = libbpf.func('uint32_t libbpf_minor_version(void)') as () => number;

/** libbpf's version, as reported by the library itself. */
export const libbpfVersion: { major: number; minor: number; text: string } = (() => {
  const v = { major: major(), minor: minor(), text: '' };
  v.text = `${v.major}.${v.minor}`;
  return v;
})();

if (libbpfVersion.major < 1) {
  throw new NativeLoadError(`libbpf ${libbpfVersion.text} is too old: libbpf-ts needs libbpf >= 1.0; ${LIBBPF_HINT}`);
}

/** Declares a native function that must exist. */
export function func<F>(lib: LibraryHandle, proto: string): F {
  return lib.func(proto) as unknown as F;
}

/** Loads another shared library (by path or soname), e.g. a benchmark's C baseline. Throws koffi's Error when it can't. */
export function loadLibrary(path: string): LibraryHandle {
  return koffi.load(path);
}

/** errno as left by the last native call on this thread. */
export function lastErrno(): number {
  return koffi.errno();
}

export { koffi };
export type { TypeObject };
