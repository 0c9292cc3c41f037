/**
 * Perf event attachments: a perf_event program (SEC("perf_event"),
 * BPF_PROG_TYPE_PERF_EVENT) run on every sample of a perf event the
 * library opens, as a sampling profiler (libbpf-bootstrap's profile) does:
 * a CPU clock sampled at some frequency on each CPU, every process.
 *
 * Each attachment is a bpf_link made by libbpf over the perf event fd
 * (Linux >= 5.15 for a perf-event BPF link; older kernels get libbpf's
 * ioctl attachment, still closed with the process); the link owns the
 * perf event and closes it when detached.
 */
import { bpf } from '../ffi/libbpf.js';
import { closeFd } from '../ffi/sys.js';
import { lastErrno } from '../ffi/native.js';
import { takeLibbpfWarnings } from '../ffi/log.js';
import { onlineCpus, perfEventOpen, PerfSwConfig, PerfType, type PerfEventAttr } from '../ffi/perf.js';
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import { Link } from '../link.js';
import type { TracedProgram } from './tracing.js';

/** BPF_PROG_TYPE_PERF_EVENT. */
const PROG_TYPE_PERF_EVENT = 7;

/** The events a perf_event program can sample here. */
export type PerfEventKind = 'cpu-clock' | 'task-clock' | 'cpu-cycles' | 'instructions';

const EVENTS: Record<PerfEventKind, { type: number; config: number }> = {
  'cpu-clock': { type: PerfType.SOFTWARE, config: PerfSwConfig.CPU_CLOCK },
  'task-clock': { type: PerfType.SOFTWARE, config: PerfSwConfig.TASK_CLOCK },
  'cpu-cycles': { type: PerfType.HARDWARE, config: 0 },
  instructions: { type: PerfType.HARDWARE, config: 1 },
};

/** Options of attachPerfEvent: one of frequency and period (default: 99 Hz). */
export interface PerfEventOptions {
  /** The event sampled (default 'cpu-clock', a software timer every kernel has). */
  event?: PerfEventKind;
  /** Samples per second (perf's -F). */
  frequency?: number;
  /** A sample every this many events (ns of CPU clock, cycles...) instead of a frequency. */
  period?: number;
  /** Only this process (default: every process on the CPU). */
  pid?: number;
}

function attrOf(opts: PerfEventOptions, op: string): PerfEventAttr {
  const kind = opts.event ?? 'cpu-clock';
  const ev = EVENTS[kind];
  if (!ev) throw new BpfError(op, Errno.EINVAL, `unknown event ${String(kind)} (have: ${Object.keys(EVENTS).join(', ')})`);
  if (opts.frequency !== undefined && opts.period !== undefined) throw new BpfError(op, Errno.EINVAL, 'give frequency or period, not both');
  const n = opts.period ?? opts.frequency ?? 99;
  if (!Number.isSafeInteger(n) || n < 1) throw new BpfError(op, Errno.EINVAL, `${opts.period !== undefined ? 'period' : 'frequency'} ${n} is not a positive integer`);
  return { ...ev, sample: n, freq: opts.period === undefined };
}

function perfOpenCause(e: number, kind: string, cpu: number): string | undefined {
  if (e === Errno.EACCES || e === Errno.EPERM) return `${NEEDS_PRIVILEGE} (or CAP_PERFMON; see /proc/sys/kernel/perf_event_paranoid)`;
  if (e === Errno.ENOENT || e === Errno.EOPNOTSUPP) return `the kernel has no ${kind} event here (hardware counters are often missing in VMs: use cpu-clock)`;
  if (e === Errno.ENODEV) return `CPU ${cpu} is offline or does not exist`;
  if (e === Errno.EINVAL) return `the kernel refuses this sampling setup (a frequency above /proc/sys/kernel/perf_event_max_sample_rate?)`;
  return undefined;
}

/**
 * Opens a sampling perf event on `cpu` (every process, or `opts.pid`) and
 * attaches the perf_event program to it through a bpf_link. Throws a
 * BpfError: EINVAL when the program is not a perf_event program (saying
 * what it is), or the perf_event_open errno with its cause (privilege, no
 * such event here, CPU offline, rate too high).
 */
export function attachPerfEvent(prog: TracedProgram, cpu: number, opts: PerfEventOptions = {}): Link {
  const kind = opts.event ?? 'cpu-clock';
  const rate = opts.period !== undefined ? `every ${opts.period}` : `at ${opts.frequency ?? 99} Hz`;
  const op = `attach perf_event ${prog.name} to ${kind} on CPU ${cpu}`;
  const type = bpf.program_type(prog.ptr);
  if (type !== PROG_TYPE_PERF_EVENT) {
    throw new BpfError(op, Errno.EINVAL, `${prog.name} is not a perf_event program (its section is ${prog.section}): a perf event runs only SEC("perf_event") programs`);
  }
  const attr = attrOf(opts, op);
  const r = perfEventOpen(attr, opts.pid ?? -1, cpu);
  if ('errno' in r) throw new BpfError(op, r.errno, perfOpenCause(r.errno, kind, cpu));
  const ptr = bpf.program_attach_perf_event(prog.ptr, r.fd);
  if (!ptr) {
    const e = lastErrno() || Errno.EINVAL;
    takeLibbpfWarnings();
    closeFd(r.fd);
    throw new BpfError(op, e, e === Errno.EPERM ? NEEDS_PRIVILEGE : undefined);
  }
  let destroyed = false;
  // libbpf's link owns the perf event fd: bpf_link__destroy disables and closes it.
  return new Link(bpf.link_fd(ptr), `perf_event ${prog.name} on ${kind} ${rate}, CPU ${cpu}`, undefined, () => {
    if (destroyed) return;
    destroyed = true;
    bpf.link_destroy(ptr);
  });
}

/**
 * attachPerfEvent on every online CPU; returns one link per CPU. On a
 * failure, detaches the ones made and throws its BpfError.
 */
export function attachPerfEventAll(prog: TracedProgram, opts: PerfEventOptions = {}): Link[] {
  const links: Link[] = [];
  try {
    for (const cpu of onlineCpus()) links.push(attachPerfEvent(prog, cpu, opts));
    return links;
  } catch (e) {
    for (const l of links) l.detach();
    throw e;
  }
}
