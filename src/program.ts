/** BPF programs of an object: identity, attach, and test runs. */
import { unlinkSync } from 'node:fs';
import { bpf, type ProgPtr } from './ffi/libbpf.js';
import { TestRunOpts, sizeOf } from './ffi/structs.js';
import { bpfl } from './ffi/loading.js';
import { BpfError, Errno } from './errors.js';
import { ProgType, attachTypeName, attachTypeOf, progTypeName, progTypeOf, type AttachTypeName, type ProgTypeName } from './kinds.js';
import { attachXdp, type XdpAttachOptions } from './xdp.js';
import { attachTc, type TcAttachOptions, type TcDirection } from './tc.js';
import type { Attachment, Link } from './link.js';
import {
  attachAuto, attachKprobe, attachRawTracepoint, attachTracepoint, attachTracing, attachUprobe,
  type KprobeOptions, type TracedProgram, type UprobeOptions,
} from './attach/tracing.js';
import { attachPerfEvent, attachPerfEventAll, type PerfEventOptions } from './attach/perf_event.js';
import { attachSocketFilter } from './attach/socket.js';
import { attachCgroup } from './attach/cgroup.js';
import { attachIter, type IterLink, type IterOptions } from './attach/iter.js';
import { attachUsdt, type UsdtOptions } from './attach/usdt.js';

/** Program types by kernel number (every one linux/bpf.h names; see kinds.ts). */
export { ProgType };

const CGROUP = 'a cgroup (attachCgroup)';
/** What each program type attaches to, and with which call. */
const HOOKS: Record<number, string> = {
  [ProgType.SOCKET_FILTER]: 'a socket (attachSocketFilter)',
  [ProgType.KPROBE]: 'a kernel function (attachKprobe), a user function (attachUprobe) or a USDT probe (attachUsdt)',
  [ProgType.SCHED_CLS]: "an interface's tc ingress or egress (attachTc)",
  [ProgType.SCHED_ACT]: 'a tc action (tc filter ... action bpf)',
  [ProgType.TRACEPOINT]: 'a tracepoint (attachTracepoint)',
  [ProgType.XDP]: "an interface's XDP hook (attachXdp), or a devmap/cpumap entry",
  [ProgType.PERF_EVENT]: 'a perf event (attachPerfEvent)',
  [ProgType.CGROUP_SKB]: CGROUP, [ProgType.CGROUP_SOCK]: CGROUP, [ProgType.CGROUP_DEVICE]: CGROUP,
  [ProgType.CGROUP_SOCK_ADDR]: CGROUP, [ProgType.CGROUP_SYSCTL]: CGROUP, [ProgType.CGROUP_SOCKOPT]: CGROUP, [ProgType.SOCK_OPS]: CGROUP,
  [ProgType.LWT_IN]: 'a route (ip route ... encap bpf in)', [ProgType.LWT_OUT]: 'a route (ip route ... encap bpf out)',
  [ProgType.LWT_XMIT]: 'a route (ip route ... encap bpf xmit)', [ProgType.LWT_SEG6LOCAL]: 'a seg6local route',
  [ProgType.SK_SKB]: 'a sockmap or sockhash', [ProgType.SK_MSG]: 'a sockmap or sockhash',
  [ProgType.RAW_TRACEPOINT]: 'a raw tracepoint (attachRawTracepoint)', [ProgType.RAW_TRACEPOINT_WRITABLE]: 'a raw tracepoint (attachRawTracepoint)',
  [ProgType.LIRC_MODE2]: 'a lirc device', [ProgType.SK_REUSEPORT]: 'a SO_REUSEPORT socket group',
  [ProgType.FLOW_DISSECTOR]: 'a network namespace', [ProgType.SK_LOOKUP]: 'a network namespace',
  [ProgType.TRACING]: 'a kernel function through the BPF trampoline (attachTracing), or an iterator for iter/ sections (attachIter)',
  [ProgType.STRUCT_OPS]: 'a struct_ops map', [ProgType.EXT]: 'another BPF program (freplace)',
  [ProgType.LSM]: 'an LSM hook (attach)', [ProgType.SYSCALL]: 'nothing: it runs with testRun()',
  [ProgType.NETFILTER]: 'a netfilter hook',
};

/** What a program of `type` attaches to, in words ("a tracepoint (attachTracepoint)"). */
export function hookOf(type: number): string {
  return HOOKS[type] ?? 'an unknown hook';
}

/**
 * Throws a one-line BpfError (EINVAL) when `prog`'s type is not one of
 * `expected`, saying what the program is and what it can attach to, instead
 * of the kernel's bare EINVAL: "attach program x to xdp on veth0: x is a
 * tracepoint program (section tp/...), it attaches to a tracepoint
 * (attachTracepoint)". `hook` names the hook being attached to. Every attach
 * call checks with it first. No kernel needed.
 */
export function assertProgType(prog: { name: string; section: string; type: number }, expected: readonly number[], hook: string): void {
  const t = prog.type;
  if (expected.includes(t)) return;
  const want = expected.map(progTypeName).join(' or ');
  throw new BpfError(`attach program ${prog.name} to ${hook}`, Errno.EINVAL,
    `${prog.name} is ${/^([aeiou]|xdp|lsm|lwt|ext|sk_)/.test(progTypeName(t)) ? 'an' : 'a'} ${progTypeName(t)} program (section ${prog.section}), not ${want}: it attaches to ${hookOf(t)}`);
}

/** Flag of testRun: run XDP on live frames (kernel >= 5.18), each repetition on a fresh copy of the input. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;

/** Input of a BPF_PROG_TEST_RUN. */
export interface TestRunInput {
  /** The packet (or other input data). */
  data?: Uint8Array;
  /** Run this many times (the kernel reuses one buffer: a program that rewrites the packet sees its own output from the second run on). */
  repeat?: number;
  /** Room for the output data; defaults to the input size plus 256 bytes (none without input data: syscall programs refuse any). */
  dataOutSize?: number;
  /** Context in (e.g. struct xdp_md, struct __sk_buff). */
  ctx?: Uint8Array;
  /** Room for the output context. */
  ctxOutSize?: number;
  flags?: number;
  cpu?: number;
  /** With BPF_F_TEST_XDP_LIVE_FRAMES: frames per batch. */
  batchSize?: number;
}

/** Output of a BPF_PROG_TEST_RUN. */
export interface TestRunResult {
  /** The program's return value (for XDP, an XdpAction). */
  retval: number;
  /** Average duration of one run, in ns, measured by the kernel. */
  duration: number;
  /** The output data (the rewritten packet). */
  data: Buffer;
  /** The output context, when ctxOutSize was given. */
  ctx?: Buffer;
}

/** A program of a loaded (or about to be loaded) BpfObject. */
export class Program {
  /** @internal created by BpfObject. */
  constructor(private readonly ptr: ProgPtr, private readonly alive: () => boolean, private readonly loaded: () => boolean = () => false) {
    this.name = bpf.program_name(ptr);
    this.section = bpf.program_section_name(ptr);
  }

  /** The program's (function) name. */
  readonly name: string;
  /** Its ELF section, e.g. "xdp" or "tc". */
  readonly section: string;

  /** @internal */
  get _ptr(): ProgPtr {
    if (!this.alive()) throw new BpfError(`use program ${this.name}`, Errno.EBADF, 'its object is closed');
    return this.ptr;
  }

  /** Program type number (see ProgType): from the section name, or setType(). */
  get type(): number {
    return bpf.program_type(this._ptr);
  }

  /** The program type's name as bpftool prints it ("xdp", "sched_cls"). */
  get typeName(): string {
    return progTypeName(this.type);
  }

  /** The expected attach type (see AttachType) the kernel loads it for (0 for most types: cgroup_inet_ingress). */
  get expectedAttachType(): number {
    return bpfl.program_expected_attach_type(this._ptr);
  }

  /**
   * Sets the program type (and optionally the expected attach type) before
   * load, by number (ProgType.XDP) or name ('xdp', 'XDP'), for a section
   * name libbpf does not know (an old-style "xdp_prog") or to load it as
   * another type. Throws a RangeError for an unknown name, a BpfError
   * (EBUSY) once the object is loaded. libbpf >= 0.8.
   */
  setType(type: number | ProgTypeName | Lowercase<ProgTypeName>, expectedAttachType?: number | AttachTypeName | Lowercase<AttachTypeName>): this {
    const t = progTypeOf(type);
    this.#notLoaded(`set type of program ${this.name} to ${progTypeName(t)}`);
    const r = bpfl.program_set_type(this._ptr, t);
    if (r < 0) throw new BpfError(`set type of program ${this.name} to ${progTypeName(t)}`, -r, -r === Errno.EBUSY ? 'object is already loaded' : undefined);
    if (expectedAttachType !== undefined) {
      const a = attachTypeOf(expectedAttachType);
      const r2 = bpfl.program_set_expected_attach_type(this._ptr, a);
      if (r2 < 0) throw new BpfError(`set expected attach type of program ${this.name} to ${attachTypeName(a)}`, -r2, -r2 === Errno.EBUSY ? 'object is already loaded' : undefined);
    }
    return this;
  }

  #notLoaded(op: string): void {
    if (this.loaded()) throw new BpfError(op, Errno.EBUSY, 'object is already loaded');
  }

  /** True when load() loads this program (the default); see setAutoload. */
  get autoload(): boolean {
    return bpfl.program_autoload(this._ptr);
  }

  /**
   * Whether load() loads this program: false leaves it out (a program this
   * kernel refuses, a type it lacks) so the rest of the object still loads.
   * Throws a BpfError (EBUSY) once the object is loaded.
   */
  setAutoload(on: boolean): this {
    this.#notLoaded(`set autoload of program ${this.name}`);
    const r = bpfl.program_set_autoload(this._ptr, on);
    if (r < 0) throw new BpfError(`set autoload of program ${this.name}`, -r, -r === Errno.EBUSY ? 'object is already loaded' : undefined);
    return this;
  }

  /** The program's fd once loaded. Throws a BpfError before load, or when autoload was off. */
  get fd(): number {
    const fd = bpf.program_fd(this._ptr);
    if (fd < 0) throw new BpfError(`get fd of program ${this.name}`, -fd || Errno.EINVAL, this.autoload ? 'program is not loaded' : 'program is not loaded (its autoload is off)');
    return fd;
  }

  #pinned: string | undefined;

  /**
   * Pins the loaded program on bpffs at `path` (it then stays loaded, though
   * not attached, until the pin is removed: unpin()). Throws a BpfError
   * (ENOENT: no such directory; EEXIST: something is pinned there).
   */
  pin(path: string): void {
    const r = bpf.obj_pin(this.fd, path);
    if (r < 0) throw new BpfError(`pin program ${this.name} at ${path}`, -r);
    this.#pinned = path;
  }

  /** Removes the pin made by pin(); safe to call when not pinned, and twice. */
  unpin(): void {
    if (this.#pinned === undefined) return;
    try { unlinkSync(this.#pinned); } catch { /* already gone */ }
    this.#pinned = undefined;
  }

  /**
   * Attaches to an interface's XDP hook through a bpf_link. Throws a BpfError
   * (unknown interface, another program attached, mode unsupported).
   */
  attachXdp(iface: string | number, opts?: XdpAttachOptions): Link | Attachment {
    assertProgType(this, [ProgType.XDP], `xdp on ${iface}`);
    return attachXdp(this.fd, this.name, iface, opts);
  }

  /**
   * Attaches this (tc/SCHED_CLS) program to an interface's ingress or
   * egress: a TCX link when the kernel has them, else a clsact filter (see
   * attachTc). Throws a BpfError (unknown interface, netlink failure).
   */
  attachTc(iface: string | number, direction: TcDirection, opts?: TcAttachOptions): Link | Attachment {
    assertProgType(this, [ProgType.SCHED_CLS], `tc ${direction} on ${iface}`);
    return attachTc(this.fd, this.name, iface, direction, opts);
  }

  /**
   * Attaches this socket_filter program (SEC("socket")) to socket `sockFd`
   * (SO_ATTACH_BPF): the socket then receives only what the program keeps.
   * Throws a BpfError (EINVAL for another program type). See attachSocketFilter.
   */
  attachSocketFilter(sockFd: number): Attachment {
    return attachSocketFilter(this, sockFd);
  }

  /**
   * Attaches this cgroup program (cgroup/connect4, cgroup/sock_create,
   * cgroup_skb/ingress, sockops...) to the cgroup v2 directory `path`
   * through a bpf_link, for the processes of that cgroup and its
   * descendants. Throws a BpfError (EINVAL for another program type,
   * ENOTDIR outside cgroup2). See attachCgroup.
   */
  attachCgroup(path: string): Link {
    return attachCgroup({ ptr: this._ptr, name: this.name, type: this.type }, path);
  }

  get #traced(): TracedProgram {
    return { ptr: this._ptr, name: this.name, section: this.section };
  }

  /**
   * Attaches this tracepoint program (tp/ or tracepoint/ section) to
   * tracepoint `category:name` (e.g. 'syscalls', 'sys_enter_openat') through
   * a bpf_link, mounting tracefs if needed. Throws a BpfError (one line: no
   * such tracepoint, tracefs missing). See attachTracepoint.
   */
  attachTracepoint(category: string, name: string): Link {
    assertProgType(this, [ProgType.TRACEPOINT], `tracepoint ${category}:${name}`);
    return attachTracepoint(this.#traced, category, name);
  }

  /**
   * Attaches this raw tracepoint program (raw_tp/ or tp_btf/) to raw
   * tracepoint `name` (e.g. 'sched_switch') through a bpf_link. Throws a BpfError.
   */
  attachRawTracepoint(name: string): Link {
    assertProgType(this, [ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE, ProgType.TRACING], `raw tracepoint ${name}`);
    return attachRawTracepoint(this.#traced, name);
  }

  /**
   * Attaches this kprobe program to kernel function `func` (its entry,
   * `offset` bytes into it, or its return with `retprobe`) through a
   * bpf_link. Throws a BpfError whose cause says whether the kernel has no
   * kprobes (CONFIG_KPROBES off) or no such function. See attachKprobe.
   */
  attachKprobe(func: string, opts?: KprobeOptions): Link {
    assertProgType(this, [ProgType.KPROBE], `kprobe ${func}`);
    return attachKprobe(this.#traced, func, opts);
  }

  /**
   * Attaches this uprobe program to a function of `binaryPath` (by `func`
   * name and/or file `offset`; `pid` to trace one process; `retprobe` for
   * its return) through a bpf_link. Throws a BpfError (no such file, no
   * such function). See attachUprobe.
   */
  attachUprobe(binaryPath: string, opts: UprobeOptions): Link {
    assertProgType(this, [ProgType.KPROBE], `uprobe ${binaryPath}`);
    return attachUprobe(this.#traced, binaryPath, opts);
  }

  /**
   * Attaches this fentry/fexit/fmod_ret/tp_btf program to the kernel
   * function its section names through a bpf_link (needs BTF and the BPF
   * trampoline: probeFentry). Throws a BpfError (the kernel refuses
   * fentry/fexit, no BTF). See attachTracing.
   */
  attachTracing(): Link {
    assertProgType(this, [ProgType.TRACING], `trampoline ${this.section}`);
    return attachTracing(this.#traced);
  }

  /**
   * Attaches this perf_event program (SEC("perf_event")) to a sampling perf
   * event it opens on `cpu`: by default the CPU clock at 99 Hz for every
   * process (`frequency`, `period`, `event`, `pid` change that), through a
   * bpf_link that owns the perf event. Throws a BpfError (not a perf_event
   * program, no such event, privilege). See attachPerfEvent.
   */
  attachPerfEvent(opts: PerfEventOptions & { cpu: number }): Link {
    const { cpu, ...rest } = opts;
    return attachPerfEvent(this.#traced, cpu, rest);
  }

  /**
   * attachPerfEvent() on every online CPU, as a profiler does: one link per
   * CPU. Throws a BpfError (nothing stays attached).
   */
  attachPerfEventAll(opts: PerfEventOptions = {}): Link[] {
    return attachPerfEventAll(this.#traced, opts);
  }

  /**
   * Attaches this USDT program (SEC("usdt"), BPF_USDT) to probe
   * `provider:name` in the notes of the binary or library `binaryPath`,
   * in `opts.pid` or every process, through a bpf_link. Needs uprobes.
   * Throws a BpfError (no such file, no such probe in the binary). See attachUsdt.
   */
  attachUsdt(binaryPath: string, provider: string, name: string, opts?: UsdtOptions): Link {
    assertProgType(this, [ProgType.KPROBE], `usdt ${provider}:${name}`);
    return attachUsdt({ ptr: this._ptr, name: this.name }, binaryPath, provider, name, opts);
  }

  /**
   * Attaches this iterator program (an iter/ section: iter/task,
   * iter/bpf_map_elem with opts.mapFd, iter/tcp, ...) as an iterator link
   * whose read()/text()/lines() run it and return what it printed. Linux
   * >= 5.8. Throws a BpfError (not an iterator program; no such iterator).
   * See attachIter.
   */
  attachIter(opts?: IterOptions): IterLink {
    const hook = `iterator ${this.section.replace(/^iter(\.s)?\//, '')}`;
    assertProgType(this, [ProgType.TRACING], hook);
    if (!/^iter(\.s)?\//.test(this.section)) {
      throw new BpfError(`attach program ${this.name} to ${hook}`, Errno.EINVAL, `${this.name} is a tracing program of section ${this.section}, not an iterator (iter/...): it attaches with attachTracing()`);
    }
    return attachIter({ ptr: this._ptr, name: this.name, section: this.section }, opts);
  }

  /**
   * Attaches this program as libbpf's auto-attach does, from its section
   * name (tp/syscalls/sys_enter_openat, kprobe/tcp_connect, fentry/...),
   * through a bpf_link. Throws a BpfError (EOPNOTSUPP for a section that
   * names no target). See attachAuto.
   */
  attach(): Link {
    return attachAuto(this.#traced);
  }

  /**
   * Runs the program on `input` with BPF_PROG_TEST_RUN and returns its
   * result, the kernel-measured duration and the output data. Throws a BpfError.
   */
  testRun(input: TestRunInput = {}): TestRunResult {
    const data = input.data ?? new Uint8Array(0);
    const outSize = input.dataOutSize ?? (data.length ? data.length + 256 : 0);
    const out = Buffer.alloc(outSize);
    const ctxOut = input.ctxOutSize ? Buffer.alloc(input.ctxOutSize) : null;
    const opts = {
      sz: sizeOf(TestRunOpts),
      data_in: data.length ? data : null,
      data_out: outSize ? out : null,
      data_size_in: data.length,
      data_size_out: outSize,
      ctx_in: input.ctx ?? null,
      ctx_out: ctxOut,
      ctx_size_in: input.ctx?.length ?? 0,
      ctx_size_out: ctxOut?.length ?? 0,
      retval: 0,
      repeat: input.repeat ?? 0, // the kernel runs 0 as once; syscall programs refuse any other value
      duration: 0,
      flags: input.flags ?? 0,
      cpu: input.cpu ?? 0,
      batch_size: input.batchSize ?? 0,
    };
    const r = bpf.prog_test_run_opts(this.fd, opts);
    if (r < 0) throw new BpfError(`test run program ${this.name}`, -r);
    const res: TestRunResult = { retval: opts.retval, duration: opts.duration, data: out.subarray(0, Math.min(opts.data_size_out, outSize)) };
    if (ctxOut) res.ctx = ctxOut.subarray(0, opts.ctx_size_out);
    return res;
  }
}
