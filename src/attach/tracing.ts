/**
 * Tracing attachments: tracepoints, raw tracepoints, kprobes/kretprobes,
 * uprobes/uretprobes, fentry/fexit, and libbpf's auto-attach by section
 * name. Every one is a bpf_link made by libbpf (a perf-event link for
 * tracepoints, kprobes and uprobes), returned as a Link: a process that dies,
 * even by SIGKILL, leaves nothing attached.
 *
 * Where the kernel lacks what the attach needs, the error is one line that
 * says which: no kprobes in this kernel, no such kernel function, no such
 * tracepoint, tracefs not mounted, fentry/fexit refused, no BTF.
 */
import { existsSync } from 'node:fs';
import { bpf, type LinkPtr, type ProgPtr } from '../ffi/libbpf.js';
import { KprobeOpts, UprobeOpts, sizeOf } from '../ffi/structs.js';
import { lastErrno } from '../ffi/native.js';
import { takeLibbpfWarnings } from '../ffi/log.js';
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import { Link } from '../link.js';
import { kernelHasFunction, probeBtf, probeKprobes } from '../features.js';
import { tracefsDir } from '../trace.js';

/** Options of attachKprobe. */
export interface KprobeOptions {
  /** Attach to the function's return (a kretprobe) instead of its entry. */
  retprobe?: boolean;
  /** Byte offset into the function (entry probes only). */
  offset?: number;
  /** A value the program reads with bpf_get_attach_cookie(). */
  cookie?: bigint;
}

/** Options of attachUprobe: the function by name (func) or by file offset (offset), or both (offset into func). */
export interface UprobeOptions {
  /** The function's symbol in the binary (e.g. "main", "malloc"). */
  func?: string;
  /** Byte offset: into `func` when given, else from the start of the file. */
  offset?: number;
  /** Attach to the function's return (a uretprobe). */
  retprobe?: boolean;
  /** Only in this process (default: every process that maps the binary). */
  pid?: number;
  /** A value the program reads with bpf_get_attach_cookie(). */
  cookie?: bigint;
}

/** The program an attach function works on (a Program's internals). */
export interface TracedProgram {
  readonly ptr: ProgPtr;
  readonly name: string;
  readonly section: string;
}

/** Wraps a libbpf bpf_link (or throws the error of its NULL return). */
function linkOf(ptr: LinkPtr | null, description: string, fail: (errno: number) => BpfError): Link {
  const errno = lastErrno();
  if (!ptr) {
    takeLibbpfWarnings(); // libbpf's own lines about it: the error says it in one
    throw fail(errno || Errno.EINVAL);
  }
  const fd = bpf.link_fd(ptr);
  let destroyed = false;
  return new Link(fd, description, undefined, () => {
    if (destroyed) return;
    destroyed = true;
    bpf.link_destroy(ptr);
  });
}

/** The cause shown for errnos every tracing attach can meet. */
function commonCause(e: number): string | undefined {
  if (e === Errno.EPERM) return NEEDS_PRIVILEGE;
  return undefined;
}

/** Mounts tracefs when needed (libbpf reads tracepoint ids from it). Throws a BpfError saying it is missing. */
function needTracefs(op: string): void {
  try {
    tracefsDir();
  } catch (e) {
    const errno = e instanceof BpfError ? e.errno : Errno.ENOENT;
    throw new BpfError(op, errno, `tracefs is not mounted at /sys/kernel/tracing and cannot be mounted (${e instanceof Error ? e.message : String(e)})`);
  }
}

/**
 * Attaches a tracepoint program to tracepoint `category:name` (e.g.
 * syscalls:sys_enter_openat; the list is in tracefs's available_events),
 * mounting tracefs first when it is not mounted. Needs Linux >= 4.17 for
 * the perf-event link (older kernels: libbpf falls back to an ioctl
 * attachment, still closed with the process). Throws a BpfError: ENOENT
 * "no tracepoint category:name" when the kernel has none by that name.
 */
export function attachTracepoint(prog: TracedProgram, category: string, name: string): Link {
  const op = `attach tracepoint ${category}:${name}`;
  needTracefs(op);
  return linkOf(bpf.program_attach_tracepoint(prog.ptr, category, name), `tracepoint ${prog.name} on ${category}:${name}`, (e) => {
    if (e === Errno.ENOENT) {
      const dir = tracefsDir();
      const cause = existsSync(`${dir}/events/${category}`)
        ? `the kernel has no tracepoint ${category}:${name} (see ${dir}/events/${category}/)`
        : `the kernel has no tracepoint category ${category} (see ${dir}/available_events)`;
      return new BpfError(op, e, cause);
    }
    return new BpfError(op, e, commonCause(e));
  });
}

/**
 * Attaches a raw tracepoint program (raw_tp/ or tp_btf/ section) to the
 * raw tracepoint `name` (e.g. sched_switch, sys_enter). Linux >= 4.17;
 * tp_btf programs need BTF (probeBtf). Throws a BpfError: ENOENT when the
 * kernel has no such tracepoint.
 */
export function attachRawTracepoint(prog: TracedProgram, name: string): Link {
  const op = `attach raw_tracepoint ${name}`;
  return linkOf(bpf.program_attach_raw_tracepoint(prog.ptr, name), `raw_tracepoint ${prog.name} on ${name}`, (e) =>
    new BpfError(op, e, e === Errno.ENOENT ? `the kernel has no tracepoint ${name}` : commonCause(e)));
}

/** The one-line error of a failed kprobe attach. */
function kprobeError(op: string, func: string, e: number): BpfError {
  if (!probeKprobes()) return new BpfError(op, e, 'this kernel has no kprobes (CONFIG_KPROBES off)');
  if ((e === Errno.ENOENT || e === Errno.EINVAL) && !kernelHasFunction(func)) {
    return new BpfError(op, e, `the kernel has no function ${func} to probe (not in /proc/kallsyms: inlined, static, or another kernel version)`);
  }
  if (e === Errno.EINVAL) return new BpfError(op, e, `the kernel refuses a kprobe there (a function kprobes cannot probe, e.g. in the kprobes blacklist, or a bad offset)`);
  return new BpfError(op, e, commonCause(e));
}

/**
 * Attaches a kprobe program to kernel function `func`'s entry (at `offset`
 * bytes into it), or with `retprobe` to its return (a kretprobe). Needs a
 * kernel with kprobes (CONFIG_KPROBES; probeKprobes()). Throws a BpfError
 * whose cause says which: "this kernel has no kprobes (CONFIG_KPROBES off)",
 * "the kernel has no function X to probe", or the kernel's refusal.
 */
export function attachKprobe(prog: TracedProgram, func: string, opts: KprobeOptions = {}): Link {
  const kind = opts.retprobe ? 'kretprobe' : 'kprobe';
  const where = opts.offset ? `${func}+${opts.offset}` : func;
  const op = `attach ${kind} ${where}`;
  const o = { sz: sizeOf(KprobeOpts), bpf_cookie: opts.cookie ?? 0n, offset: opts.offset ?? 0, retprobe: !!opts.retprobe, _pad: new Array(7).fill(0) };
  return linkOf(bpf.program_attach_kprobe_opts(prog.ptr, func, o), `${kind} ${prog.name} on ${where}`, (e) => kprobeError(op, func, e));
}

/**
 * Attaches a uprobe program to a function of a binary or shared library
 * (by symbol `func`, by file `offset`, or at `offset` into `func`), in
 * process `pid` or in every process (the default); with `retprobe`, to the
 * function's return. Needs CONFIG_UPROBES (Linux >= 4.17 for the perf-event
 * link). Throws a BpfError: ENOENT "no such file" for a missing binary,
 * ENOENT "no function X in <binary>" for an unknown symbol, EINVAL without
 * func or offset.
 */
export function attachUprobe(prog: TracedProgram, binaryPath: string, opts: UprobeOptions = {}): Link {
  const kind = opts.retprobe ? 'uretprobe' : 'uprobe';
  const sym = opts.func !== undefined ? (opts.offset ? `${opts.func}+${opts.offset}` : opts.func) : `0x${(opts.offset ?? 0).toString(16)}`;
  const op = `attach ${kind} ${binaryPath}:${sym}`;
  if (opts.func === undefined && opts.offset === undefined) throw new BpfError(op, Errno.EINVAL, 'give the function (func) or a file offset (offset)');
  if (!existsSync(binaryPath)) throw new BpfError(op, Errno.ENOENT, `no such file ${binaryPath}`);
  const o = {
    sz: sizeOf(UprobeOpts), ref_ctr_offset: 0, bpf_cookie: opts.cookie ?? 0n, retprobe: !!opts.retprobe,
    _pad: new Array(7).fill(0), func_name: opts.func ?? null,
  };
  const pid = opts.pid ?? -1;
  const desc = `${kind} ${prog.name} on ${binaryPath}:${sym} (${pid === -1 ? 'every process' : `pid ${pid}`})`;
  return linkOf(bpf.program_attach_uprobe_opts(prog.ptr, pid, binaryPath, opts.offset ?? 0, o), desc, (e) => {
    if (e === Errno.ENOENT && opts.func !== undefined) return new BpfError(op, e, `no function ${opts.func} in ${binaryPath} (not in its symbol tables)`);
    if (e === Errno.ESRCH) return new BpfError(op, e, `no process ${pid}`);
    return new BpfError(op, e, commonCause(e));
  });
}

/** The target of a fentry/fexit/fmod_ret/tp_btf section ("fentry/tcp_connect" -> "tcp_connect"). */
function tracingTarget(section: string): string {
  const i = section.indexOf('/');
  return i < 0 ? section : section.slice(i + 1);
}

/**
 * Attaches a BTF-enabled tracing program (fentry/, fexit/, fmod_ret/,
 * tp_btf/ sections) to the kernel function its section names (resolved by
 * libbpf at load through the kernel's BTF). Needs BTF (probeBtf) and the
 * BPF trampoline (probeFentry: Linux >= 5.5 on x86_64). Throws a BpfError:
 * EPERM/ENOTSUPP "the kernel refuses fentry/fexit", ENOENT without BTF.
 * (A kernel that refuses fentry usually refuses the load already: load()
 * throws then.)
 */
export function attachTracing(prog: TracedProgram): Link {
  const target = tracingTarget(prog.section);
  const kind = prog.section.split('/')[0].replace(/\.s$/, '');
  const op = `attach ${kind} ${target}`;
  return linkOf(bpf.program_attach_trace(prog.ptr), `${kind} ${prog.name} on ${target}`, (e) => {
    if (!probeBtf()) return new BpfError(op, e, 'the kernel has no BTF (/sys/kernel/btf/vmlinux: CONFIG_DEBUG_INFO_BTF off)');
    if (e === Errno.EPERM || e === Errno.ENOTSUPP || e === Errno.EOPNOTSUPP) return new BpfError(op, e, 'the kernel refuses fentry/fexit programs (no BPF trampoline here, or lockdown)');
    if (e === Errno.ENOENT || e === Errno.ESRCH) return new BpfError(op, e, `the kernel has no function ${target} to trace`);
    return new BpfError(op, e);
  });
}

/**
 * Attaches a program the way libbpf's auto-attach does, by its section name
 * (tp/cat/name, raw_tp/name, kprobe/func, kretprobe/func, uprobe/path:func,
 * fentry/func, ...). Throws a BpfError: EOPNOTSUPP when the section says
 * nothing libbpf can attach by itself (e.g. plain "kprobe" or "xdp"), or
 * the error of the attach it tried (for kprobes, the one-line causes of
 * attachKprobe).
 */
export function attachAuto(prog: TracedProgram): Link {
  const sec = prog.section;
  const op = `attach ${sec} ${prog.name}`;
  if (/^(tp|tracepoint)\//.test(sec)) needTracefs(op);
  return linkOf(bpf.program_attach(prog.ptr), `${sec} ${prog.name}`, (e) => {
    if (e === Errno.EOPNOTSUPP) {
      return new BpfError(op, e, `libbpf cannot attach section ${sec} by itself: attach it with the attach call of its kind`);
    }
    const k = /^k(ret)?probe\/([^+]+)/.exec(sec);
    if (k) return kprobeError(op, k[2], e);
    if (/^(fentry|fexit|fmod_ret)/.test(sec)) {
      if (e === Errno.EPERM || e === Errno.ENOTSUPP) return new BpfError(op, e, 'the kernel refuses fentry/fexit programs');
    }
    return new BpfError(op, e, commonCause(e));
  });
}
