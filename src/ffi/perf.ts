/**
 * perf_event_open(2) and the perf ioctls, over libc's syscall(): opening
 * software perf events (BPF output rings, CPU-clock sampling), enabling
 * them, and the CPUs they can be opened on. The perf_event_attr is built
 * here byte by byte (the 112-byte PERF_ATTR_SIZE_VER5 layout, Linux 4.17;
 * newer kernels accept it unchanged).
 */
import { readFileSync } from 'node:fs';
import { func, lastErrno, libc } from './native.js';

const syscall = func<(nr: number, ...args: unknown[]) => number>(libc, 'long syscall(long number, ...)');
const ioctl = func<(fd: number, req: number, ...args: unknown[]) => number>(libc, 'int ioctl(int fd, unsigned long request, ...)');

/** __NR_perf_event_open per architecture (it differs: an old syscall). */
const NR_PERF_EVENT_OPEN: Record<string, number> = {
  x64: 298, arm64: 241, riscv64: 241, loong64: 241, ia32: 336, arm: 364, ppc64: 319, s390x: 331,
};

/** perf_event_attr.type values used here. */
export const PerfType = { HARDWARE: 0, SOFTWARE: 1, TRACEPOINT: 2 } as const;
/** perf_event_attr.config of PERF_TYPE_SOFTWARE events used here. */
export const PerfSwConfig = { CPU_CLOCK: 0, TASK_CLOCK: 1, BPF_OUTPUT: 10 } as const;
/** perf_event_attr.sample_type bit: the sample carries raw data (what bpf_perf_event_output writes). */
export const PERF_SAMPLE_RAW = 1 << 10;
/** perf_event_open flag: the new fd is close-on-exec. */
export const PERF_FLAG_FD_CLOEXEC = 1 << 3;
/** The size of the perf_event_attr this module builds (PERF_ATTR_SIZE_VER5). */
export const PERF_ATTR_SIZE = 112;

/** perf_event_attr flag bits (the bitfield at byte 40) used here. */
const ATTR_DISABLED = 1n << 0n;
const ATTR_FREQ = 1n << 10n;
const ATTR_WATERMARK = 1n << 14n;

/** What perf_event_open gets, in the kernel's terms. */
export interface PerfEventAttr {
  type: number;
  config: number;
  /** sample_period, or sample_freq (Hz) when `freq`. */
  sample: number;
  freq?: boolean;
  sampleType?: number;
  /** Open disabled (enable with perfEventEnable). */
  disabled?: boolean;
  /** Wake a poller every this many samples; with `watermark`, every this many bytes. */
  wakeup?: number;
  watermark?: boolean;
}

/** The struct perf_event_attr bytes for `a` (exported for the unit tests). */
export function encodePerfEventAttr(a: PerfEventAttr): Buffer {
  const b = Buffer.alloc(PERF_ATTR_SIZE);
  b.writeUInt32LE(a.type, 0);
  b.writeUInt32LE(PERF_ATTR_SIZE, 4);
  b.writeBigUInt64LE(BigInt(a.config), 8);
  b.writeBigUInt64LE(BigInt(a.sample), 16);
  b.writeBigUInt64LE(BigInt(a.sampleType ?? 0), 24);
  let flags = 0n;
  if (a.disabled) flags |= ATTR_DISABLED;
  if (a.freq) flags |= ATTR_FREQ;
  if (a.watermark) flags |= ATTR_WATERMARK;
  b.writeBigUInt64LE(flags, 40);
  b.writeUInt32LE(a.wakeup ?? 0, 48);
  // Host order: the kernel reads the struct as the CPU does.
  return hostOrder(b);
}

/** Converts the little-endian encoding above to host order on big-endian CPUs. */
function hostOrder(b: Buffer): Buffer {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] === 1) return b;
  const out = Buffer.alloc(b.length);
  out.writeUInt32BE(b.readUInt32LE(0), 0);
  out.writeUInt32BE(b.readUInt32LE(4), 4);
  for (const off of [8, 16, 24, 32, 40]) out.writeBigUInt64BE(b.readBigUInt64LE(off), off);
  out.writeUInt32BE(b.readUInt32LE(48), 48);
  return out;
}

/**
 * perf_event_open(attr, pid, cpu, -1, PERF_FLAG_FD_CLOEXEC): pid -1 and a
 * CPU for every process on that CPU. Returns the fd, or the errno (ENOENT or
 * EOPNOTSUPP: no such event here; EACCES/EPERM: perf_event_paranoid;
 * ENODEV/EINVAL: the CPU is offline or does not exist; ENOSYS: an
 * architecture this module does not know).
 */
export function perfEventOpen(attr: PerfEventAttr, pid: number, cpu: number): { fd: number } | { errno: number } {
  const nr = NR_PERF_EVENT_OPEN[process.arch];
  if (nr === undefined) return { errno: 38 /* ENOSYS */ };
  const fd = syscall(nr, 'void *', encodePerfEventAttr(attr), 'int', pid, 'int', cpu, 'int', -1, 'unsigned long', PERF_FLAG_FD_CLOEXEC);
  return fd >= 0 ? { fd } : { errno: lastErrno() };
}

const PERF_EVENT_IOC_ENABLE = 0x2400; // _IO('$', 0)
const PERF_EVENT_IOC_DISABLE = 0x2401; // _IO('$', 1)

/** ioctl(PERF_EVENT_IOC_ENABLE). Returns 0, or the errno. */
export function perfEventEnable(fd: number): number {
  return ioctl(fd, PERF_EVENT_IOC_ENABLE, 'int', 0) === 0 ? 0 : lastErrno();
}

/** ioctl(PERF_EVENT_IOC_DISABLE). Returns 0, or the errno. */
export function perfEventDisable(fd: number): number {
  return ioctl(fd, PERF_EVENT_IOC_DISABLE, 'int', 0) === 0 ? 0 : lastErrno();
}

/**
 * Parses a kernel CPU list ("0-3,6,8-9") into CPU numbers. Throws a
 * RangeError for anything else.
 */
export function parseCpuList(text: string): number[] {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    if (part === '') continue;
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new RangeError(`'${text.trim()}' is not a CPU list`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let c = lo; c <= hi; c++) out.push(c);
  }
  return out;
}

/** The online CPUs (/sys/devices/system/cpu/online). Throws an Error when it cannot be read. */
export function onlineCpus(): number[] {
  return parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
}
