/**
 * openat_snoop: the user side of the lesson. The kernel program
 * (bpf/openat_snoop, CO-RE) keeps each thread's openat file-name pointer at
 * sys_enter_openat, reads the name at sys_exit_openat and submits one
 * struct openat_event per call (pid, tid, uid, comm, name, flags, result)
 * to the `events` ring buffer; the pid and comm filters are `const
 * volatile` globals the loader sets before load. A name that could not be
 * read is sent marked (name_len < 0) and counted; ring-full drops are
 * counted too. This module mirrors those structs, sets the filters, opens
 * the reader, and renders events like bcc's opensnoop (or NDJSON).
 */
import { performance } from 'node:perf_hooks';
import { InvalidArgumentError, type Command } from 'commander';
import { struct, u32 } from '../codec.js';
import type { BpfObject } from '../object.js';
import type { PerCpuMap } from '../map.js';
import { RingBufReader } from '../ringbuf/reader.js';
import { errnoName } from '../ffi/errno.js';
import type { LessonContext } from '../cli/lesson.js';
import type { SharedLayout } from './shared.js';
import { MAX_RING_SIZE } from '../ringbuf/ring.js';
import { pageSize } from '../ffi/sys.js';

/** TASK_COMM_LEN: bytes of a command name, with its NUL. */
export const COMM_LEN = 16;
/** Bytes of the file name the kernel side reads (longer names are cut). */
export const NAME_LEN = 256;

/** struct openat_event (bpf/openat_snoop/openat_snoop.h): 304 bytes. */
export const OpenatEvent = struct('openat_event', {
  ts_ns: 'u64big',
  pid: 'u32',
  tid: 'u32',
  uid: 'u32',
  ret: 'i32',
  flags: 'i32',
  name_len: 'i32',
  comm: { bytes: COMM_LEN },
  name: { bytes: NAME_LEN },
});
/** A decoded event as the ring delivers it (comm and name still NUL-padded bytes). */
export type OpenatEventValue = ReturnType<typeof OpenatEvent.zero>;

/** struct openat_counters: one per CPU in counters[0]. */
export const Counters = struct('openat_counters', {
  events: 'u64',
  unreadable: 'u64',
  lost: 'u64',
  untracked: 'u64',
});
/** The counters, summed over CPUs. */
export type CountersValue = ReturnType<typeof Counters.zero>;

/** The structs shared with the kernel side, checked against the object's BTF by test/layouts.test.ts. */
export const sharedLayouts: SharedLayout[] = [
  { object: 'openat_snoop', cName: 'openat_event', codec: OpenatEvent },
  { object: 'openat_snoop', cName: 'openat_counters', codec: Counters },
];

/** The ring buffer map the events go through. */
export const EVENTS_MAP = 'events';
/** The per-CPU array whose entry 0 is the struct openat_counters. */
export const COUNTERS_MAP = 'counters';
/** Default ring: 16 MiB, about 53,000 events (a tenth of a second of openat flat out on both cores here). */
export const DEFAULT_RING_BYTES = 16 << 20;

// ---------------------------------------------------------------- options

/** The lesson's own options. */
export interface SnoopOptions {
  /** Only this process (tgid). */
  pid?: number;
  /** Only threads with this command name (exact, as in /proc/<pid>/comm). */
  comm?: string;
  /** Stop after this many events. */
  count?: number;
  /** Ring buffer size in bytes (a power of two). */
  ringSize: number;
}

/** Parses --count: a positive integer. Throws an InvalidArgumentError. */
export function parseCountOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`'${v}' is not a positive integer`);
  return n;
}

/**
 * Parses --ring-size: bytes, with an optional K, M or G suffix (powers of
 * 1024), rounded up to a power of two of at least a page. Throws an
 * InvalidArgumentError for anything else or above the reader's 1 GiB.
 */
export function parseRingSizeOption(v: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(v);
  const n = m ? Number(m[1]) * 1024 ** ' kmg'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  if (!m || !(n > 0)) throw new InvalidArgumentError(`'${v}' is not a size (bytes, or a number with K, M or G)`);
  let size = Math.max(4096, pageSize);
  while (size < n) size *= 2;
  if (size > MAX_RING_SIZE) throw new InvalidArgumentError(`a ring of ${v} is above the ${MAX_RING_SIZE >> 20} MiB limit`);
  return size;
}

/** "16 MiB", "4 KiB", "100 bytes". */
export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1024 && n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** Parses --pid: a positive integer up to 2^22 (PID_MAX_LIMIT). Throws an InvalidArgumentError. */
export function parsePidOption(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 4194304) throw new InvalidArgumentError(`'${v}' is not a process id`);
  return n;
}

/** Parses --comm: 1 to 15 bytes (the kernel keeps 15 and a NUL). Throws an InvalidArgumentError. */
export function parseCommOption(v: string): string {
  const len = Buffer.byteLength(v);
  if (len === 0 || len >= COMM_LEN || v.includes('\0')) {
    throw new InvalidArgumentError(`'${v}' is not a command name (1 to ${COMM_LEN - 1} bytes: the kernel keeps no more)`);
  }
  return v;
}

/** Adds --pid, --comm, --count and --ring-size to a loader's command. */
export function addSnoopOptions(cmd: Command): void {
  cmd
    .option('--pid <pid>', 'only this process (filtered in the kernel)', parsePidOption)
    .option('--comm <name>', 'only threads with this command name, exactly (filtered in the kernel)', parseCommOption)
    .option('--count <n>', 'stop after n events', parseCountOption)
    .option('--ring-size <bytes>', 'ring buffer size (K/M/G suffixes; rounded up to a power of two)', parseRingSizeOption, DEFAULT_RING_BYTES);
}

/** --comm as the kernel side's target_comm: the name and NUL padding, 16 bytes. */
export function commBytes(comm: string | undefined): Uint8Array {
  const b = new Uint8Array(COMM_LEN);
  if (comm !== undefined) b.set(Buffer.from(comm).subarray(0, COMM_LEN - 1));
  return b;
}

/** The filters in words: "pid 42 and comm cat", or "none". */
export function describeFilter(o: Pick<SnoopOptions, 'pid' | 'comm'>): string {
  const parts: string[] = [];
  if (o.pid !== undefined) parts.push(`pid ${o.pid}`);
  if (o.comm !== undefined) parts.push(`comm ${o.comm}`);
  return parts.length ? parts.join(' and ') : 'none';
}

/** Before load: the filters into .rodata, the ring's size. Throws a BpfError. */
export function configureSnoop(obj: BpfObject, o: SnoopOptions): void {
  obj.setConst('target_pid', o.pid ?? 0);
  obj.setConst('target_comm', commBytes(o.comm));
  obj.setMaxEntries(EVENTS_MAP, o.ringSize);
}

// ---------------------------------------------------------------- decoding

/** An event in user space's terms. */
export interface OpenatRecord {
  /** CLOCK_MONOTONIC ns at the syscall's exit. */
  tsNs: bigint;
  pid: number;
  tid: number;
  uid: number;
  comm: string;
  /** The file name; null when the kernel side could not read it (see nameError). */
  path: string | null;
  /** Why the name could not be read (an errno name such as EFAULT); undefined when it was. */
  nameError?: string;
  /** True when the name filled the buffer (NAME_LEN - 1 bytes shown; the rest cut). */
  truncated: boolean;
  flags: number;
  /** The new file descriptor, or -errno. */
  ret: number;
}

/** Bytes up to the first NUL, as UTF-8 (invalid sequences as U+FFFD). */
export function cString(b: Uint8Array): string {
  const end = b.indexOf(0);
  return Buffer.from(b.buffer, b.byteOffset, end < 0 ? b.length : end).toString('utf8');
}

/** Turns a raw event into a record. */
export function decodeEvent(e: OpenatEventValue): OpenatRecord {
  const r: OpenatRecord = {
    tsNs: e.ts_ns, pid: e.pid, tid: e.tid, uid: e.uid, comm: cString(e.comm),
    path: e.name_len < 0 ? null : cString(e.name), truncated: e.name_len >= NAME_LEN, flags: e.flags, ret: e.ret,
  };
  if (e.name_len < 0) r.nameError = errnoName(-e.name_len);
  return r;
}

// ---------------------------------------------------------------- output

/** The header of the text output (opensnoop's columns). */
export const HEADER = `${'TIME(s)'.padEnd(14)}${'PID'.padEnd(8)}${'COMM'.padEnd(17)}${'FD'.padEnd(4)}${'ERR'.padEnd(8)}PATH`;

/** What the PATH column shows for a record: the name, "<unreadable: EFAULT>", a trailing "..." when cut. */
export function pathText(r: OpenatRecord): string {
  if (r.path === null) return `<unreadable: ${r.nameError}>`;
  return r.truncated ? `${r.path}...` : r.path;
}

/**
 * One text line, opensnoop-style: seconds since `t0Ns` (the first event),
 * pid, comm, the fd (or -1 and the errno name), the path.
 *   "0.000123      4242    cat              3   0       /etc/hostname"
 *   "0.000200      4242    cat              -1  ENOENT  /nope"
 */
export function formatEvent(r: OpenatRecord, t0Ns: bigint): string {
  const t = (Number(r.tsNs - t0Ns) / 1e9).toFixed(6);
  const fd = r.ret >= 0 ? String(r.ret) : '-1';
  const err = r.ret >= 0 ? '0' : errnoName(-r.ret);
  return `${t.padEnd(14)}${String(r.pid).padEnd(8)}${r.comm.padEnd(17)}${fd.padEnd(4)}${err.padEnd(8)}${pathText(r)}`;
}

/**
 * One NDJSON line: {"ts_ns":"…","pid":…,"tid":…,"uid":…,"comm":"cat",
 * "path":"/etc/hostname","flags":0,"fd":3} — "fd" for a success, "error"
 * (an errno name) for a failure; "path": null with "name_error" when the
 * name could not be read; "truncated": true when it was cut.
 */
export function eventJson(r: OpenatRecord): string {
  const o: Record<string, string | number | boolean | null> = {
    ts_ns: String(r.tsNs), pid: r.pid, tid: r.tid, uid: r.uid, comm: r.comm, path: r.path,
  };
  if (r.nameError !== undefined) o.name_error = r.nameError;
  if (r.truncated) o.truncated = true;
  o.flags = r.flags;
  if (r.ret >= 0) o.fd = r.ret;
  else o.error = errnoName(-r.ret);
  return JSON.stringify(o);
}

// ---------------------------------------------------------------- snooping

/** The per-CPU counters map of a loaded object. Throws a BpfError. */
export function countersMap(obj: BpfObject): PerCpuMap<number, CountersValue> {
  return obj.perCpuMap(COUNTERS_MAP, u32, Counters);
}

/** The counters summed over CPUs. Throws a BpfError. */
export function readCounters(map: PerCpuMap<number, CountersValue>): CountersValue {
  return map.summed(0) ?? Counters.zero();
}

/** A snoop's reader: the events ring, decoded, with the kernel's counters. */
export interface Snoop {
  readonly reader: RingBufReader<OpenatEventValue>;
  /** The kernel's counters now (summed over CPUs). */
  counters(): CountersValue;
}

/** Opens the events ring of a loaded object. Throws a BpfError. */
export function openSnoop(obj: BpfObject): Snoop {
  const counters = countersMap(obj);
  const reader = RingBufReader.open(obj, EVENTS_MAP, { codec: OpenatEvent, lost: () => readCounters(counters).lost });
  return { reader, counters: () => readCounters(counters) };
}

/**
 * The loader's attach step: both tracepoints, then one line saying what is
 * traced. Throws a BpfError (e.g. tracefs missing).
 */
export function attachSnoop(ctx: LessonContext<SnoopOptions>): void {
  const enter = ctx.own(ctx.obj.program('openat_enter').attachTracepoint('syscalls', 'sys_enter_openat'));
  const exit = ctx.own(ctx.obj.program('openat_exit').attachTracepoint('syscalls', 'sys_exit_openat'));
  ctx.log(`attached ${enter.description} and ${exit.description}, filter: ${describeFilter(ctx.opts)}, ring ${formatBytes(ctx.opts.ringSize)}; Ctrl-C to stop`);
}

/** What the loader prints at exit. */
export interface SnoopSummary {
  /** Events read from the ring. */
  events: number;
  /** Of the kernel's events, those whose name could not be read. */
  unreadable: number;
  /** Events the kernel could not put in the ring. */
  lost: number;
  /** Calls not traced: the per-thread map was full at entry. */
  untracked: number;
  seconds: number;
}

/** The summary of a snoop that started at `startMs` (performance.now()). Throws a BpfError. */
export function snoopSummary(s: Snoop, startMs: number): SnoopSummary {
  const c = s.counters();
  return { events: s.reader.consumed, unreadable: c.unreadable, lost: c.lost, untracked: c.untracked, seconds: (performance.now() - startMs) / 1000 };
}

/** "12 events, 0 unreadable names, 0 lost; 2.4 events/s over 5.0 s" (", N untracked" only when some were). */
export function formatSummary(s: SnoopSummary): string {
  const rate = s.seconds > 0 ? s.events / s.seconds : 0;
  const untracked = s.untracked ? `, ${s.untracked} untracked` : '';
  return `${s.events} events, ${s.unreadable} unreadable names, ${s.lost} lost${untracked}; ${rate.toFixed(1)} events/s over ${s.seconds.toFixed(1)} s`;
}
