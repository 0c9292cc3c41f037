/**
 * Small system helpers over libc: interface lookup, memory mapping, mounts,
 * watching an fd on Node's event loop, and a process's lifetime (parent-death
 * signal, pidfds).
 */
import { statfsSync } from 'node:fs';
import { func, koffi, lastErrno, libc } from './native.js';
import { c, MAP_FAILED, viewOf } from './libbpf.js';
import { IfNameIndex } from './structs.js';

/** ifindex of an interface in this network namespace, or 0 when there is none. */
export function ifNameToIndex(name: string): number {
  return c.if_nametoindex(name);
}

/** Name of an interface by ifindex, or undefined. */
export function ifIndexToName(index: number): string | undefined {
  const buf = Buffer.alloc(16);
  return c.if_indextoname(index, buf) ?? undefined;
}

/**
 * The interfaces of the calling thread's network namespace, as the kernel
 * lists them (libc's if_nameindex(), over netlink): right under `nsenter
 * --net`, where /sys/class/net still shows the namespace sysfs was mounted
 * in. Returns the errno when the kernel refuses.
 */
export function listInterfaces(): Array<{ index: number; name: string }> | { errno: number } {
  const p = c.if_nameindex();
  if (!p) return { errno: lastErrno() };
  try {
    const out: Array<{ index: number; name: string }> = [];
    const size = koffi.sizeof(IfNameIndex);
    for (let i = 0; ; i++) {
      const e = koffi.decode(p, i * size, IfNameIndex) as { if_index: number; if_name: string | null };
      if (!e.if_index || e.if_name === null) break;
      out.push({ index: e.if_index, name: e.if_name });
    }
    return out;
  } finally {
    c.if_freenameindex(p);
  }
}

/** Closes a file descriptor, ignoring errors. */
export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

/** The page size. */
export const pageSize: number = c.getpagesize();

/** True when running as root (effective uid 0). */
export function isRoot(): boolean {
  return c.geteuid() === 0;
}

/** A memory mapping of an fd, viewed as an ArrayBuffer; unmap() is idempotent. */
export interface Mapping {
  readonly buffer: ArrayBuffer;
  readonly length: number;
  unmap(): void;
}

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;

/**
 * mmap()s `length` bytes of `fd` at `offset`, shared. Returns undefined and
 * the errno when the kernel refuses.
 */
export function mapFd(fd: number, length: number, offset: number, writable: boolean): Mapping | { errno: number } {
  const addr = c.mmap(null, length, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, offset);
  if (addr === MAP_FAILED || addr === 0n) return { errno: lastErrno() };
  let mapped = true;
  return {
    buffer: viewOf(addr, length),
    length,
    unmap() {
      if (mapped) { mapped = false; c.munmap(addr, length); }
    },
  };
}

const BPF_FS_MAGIC = 0xcafe4a11;
const TRACEFS_MAGIC = 0x74726163;
const DEBUGFS_MAGIC = 0x64626720;

function fsType(path: string): number | undefined {
  try {
    return Number(statfsSync(path).type);
  } catch {
    return undefined;
  }
}

/** True when `path` is the root of a mounted bpffs. */
export function isBpffs(path: string): boolean {
  return fsType(path) === BPF_FS_MAGIC;
}

/** True when `path` is a mounted tracefs (or debugfs's tracing directory). */
export function isTracefs(path: string): boolean {
  const t = fsType(path);
  return t === TRACEFS_MAGIC || t === DEBUGFS_MAGIC;
}

/** mount(2). Returns 0, or the errno. */
export function mountFs(fstype: string, target: string): number {
  return c.mount(fstype, target, fstype, 0, null) === 0 ? 0 : lastErrno();
}

/** Native (malloc'd) memory with a Buffer view of it; free() is idempotent. */
export interface NativeBuffer {
  /** The address, to pass to native calls (cheaper than passing a Buffer). */
  readonly addr: bigint;
  /** The same address as a number (user-space addresses fit in 53 bits), for intptr_t parameters. */
  readonly at: number;
  /** A view of the same bytes. */
  readonly buf: Buffer;
  free(): void;
}

/** Allocates `size` zeroed bytes of native memory (at least 8). */
export function allocNative(size: number): NativeBuffer {
  const n = Math.max(8, size);
  const mem = koffi.alloc('uint8_t', n);
  const addr = koffi.address(mem);
  const buf = Buffer.from(koffi.view(mem, n), 0, size);
  buf.fill(0);
  let live = true;
  return { addr, at: Number(addr), buf, free() { if (live) { live = false; koffi.free(mem); } } };
}

/** Events reported when a watched fd becomes ready. */
export interface FdEvents { readable: boolean; writable: boolean }
/** A watch on an fd; close() is idempotent. */
export interface FdWatch {
  close(): void;
  unref(): void;
  ref(): void;
  /** Stops watching until resume() (the fd stays registered with this watch). */
  pause(): void;
  /** Watches again after pause(). */
  resume(): void;
}

/**
 * Calls `onReadable` from Node's event loop each time `fd` becomes readable
 * (level-triggered). Wraps koffi.node.poll, which is undocumented: this is the
 * only place that uses it.
 */
export function watchReadable(fd: number, onReadable: () => void): FdWatch {
  const events = { readable: true, writable: false, disconnect: false };
  // koffi calls back with (status, events), not with (events) as its typings say.
  const cb = ((status: number | FdEvents, ev?: FdEvents) => {
    const e = typeof status === 'object' ? status : ev;
    if (e?.readable) onReadable();
  }) as unknown as (ev: FdEvents) => void;
  const handle = koffi.node.poll(fd, events, cb);
  let open = true;
  let running = true;
  return {
    close() { if (open) { open = false; handle.stop(); handle.close(); } },
    unref() { if (open) handle.unref(); },
    ref() { if (open) handle.ref(); },
    pause() { if (open && running) { running = false; handle.stop(); } },
    resume() { if (open && !running) { running = true; handle.start(events, cb); } },
  };
}

// ---- process lifetime: parent-death signal, parent pid, pidfds ----

const prctl = func<(option: number, ...args: unknown[]) => number>(libc, 'int prctl(int option, ...)');
const syscall = func<(nr: number, ...args: unknown[]) => number>(libc, 'long syscall(long number, ...)');
const getppid = func<() => number>(libc, 'int getppid(void)');
const PR_SET_PDEATHSIG = 1;
const SYS_pidfd_open = 434; // the same number on every architecture (new syscalls share one table)

/**
 * prctl(PR_SET_PDEATHSIG): the kernel sends `signal` to this process when
 * the thread that created it exits. Returns 0, or the errno.
 */
export function setParentDeathSignal(signal: number): number {
  return prctl(PR_SET_PDEATHSIG, 'unsigned long', signal) === 0 ? 0 : lastErrno();
}

/** getppid(): the pid of the parent now (the reaper's, once the parent has died). */
export function parentPid(): number {
  return getppid();
}

/**
 * pidfd_open(2): an fd that becomes readable when process `pid` exits
 * (Linux 5.3). Returns the fd, or the errno (ESRCH: no such process).
 */
export function pidfdOpen(pid: number): { fd: number } | { errno: number } {
  const fd = syscall(SYS_pidfd_open, 'int', pid, 'unsigned int', 0);
  return fd >= 0 ? { fd } : { errno: lastErrno() };
}
