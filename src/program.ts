/** BPF programs of an object: identity, attach, and test runs. */
import { unlinkSync } from 'node:fs';
import { bpf, type ProgPtr } from './ffi/libbpf.js';
import { TestRunOpts, sizeOf } from './ffi/structs.js';
import { BpfError, Errno } from './errors.js';
import { attachXdp, type XdpAttachOptions } from './xdp.js';
import { attachTc, type TcAttachOptions, type TcDirection } from './tc.js';
import type { Attachment, Link } from './link.js';
import {
  attachAuto, attachKprobe, attachRawTracepoint, attachTracepoint, attachTracing, attachUprobe,
  type KprobeOptions, type TracedProgram, type UprobeOptions,
} from './attach/tracing.js';

/** Program types by kernel number (the ones used here). */
export const ProgType = { SOCKET_FILTER: 1, KPROBE: 2, SCHED_CLS: 3, SCHED_ACT: 4, TRACEPOINT: 5, XDP: 6 } as const;

/** Flag of testRun: run XDP on live frames (kernel >= 5.18), each repetition on a fresh copy of the input. */
export const BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1;

/** Input of a BPF_PROG_TEST_RUN. */
export interface TestRunInput {
  /** The packet (or other input data). */
  data?: Uint8Array;
  /** Run this many times (the kernel reuses one buffer: a program that rewrites the packet sees its own output from the second run on). */
  repeat?: number;
  /** Room for the output data; defaults to the input size plus 256 bytes. */
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
  constructor(private readonly ptr: ProgPtr, private readonly alive: () => boolean) {
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

  /** Program type number (see ProgType). */
  get type(): number {
    return bpf.program_type(this._ptr);
  }

  /** The program's fd once loaded. Throws a BpfError before load. */
  get fd(): number {
    const fd = bpf.program_fd(this._ptr);
    if (fd < 0) throw new BpfError(`get fd of program ${this.name}`, -fd || 22, 'program is not loaded');
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
    return attachXdp(this.fd, this.name, iface, opts);
  }

  /**
   * Attaches this (tc/SCHED_CLS) program to an interface's ingress or
   * egress: a TCX link when the kernel has them, else a clsact filter (see
   * attachTc). Throws a BpfError (unknown interface, netlink failure).
   */
  attachTc(iface: string | number, direction: TcDirection, opts?: TcAttachOptions): Link | Attachment {
    return attachTc(this.fd, this.name, iface, direction, opts);
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
    return attachTracepoint(this.#traced, category, name);
  }

  /**
   * Attaches this raw tracepoint program (raw_tp/ or tp_btf/) to raw
   * tracepoint `name` (e.g. 'sched_switch') through a bpf_link. Throws a BpfError.
   */
  attachRawTracepoint(name: string): Link {
    return attachRawTracepoint(this.#traced, name);
  }

  /**
   * Attaches this kprobe program to kernel function `func` (its entry,
   * `offset` bytes into it, or its return with `retprobe`) through a
   * bpf_link. Throws a BpfError whose cause says whether the kernel has no
   * kprobes (CONFIG_KPROBES off) or no such function. See attachKprobe.
   */
  attachKprobe(func: string, opts?: KprobeOptions): Link {
    return attachKprobe(this.#traced, func, opts);
  }

  /**
   * Attaches this uprobe program to a function of `binaryPath` (by `func`
   * name and/or file `offset`; `pid` to trace one process; `retprobe` for
   * its return) through a bpf_link. Throws a BpfError (no such file, no
   * such function). See attachUprobe.
   */
  attachUprobe(binaryPath: string, opts: UprobeOptions): Link {
    return attachUprobe(this.#traced, binaryPath, opts);
  }

  /**
   * Attaches this fentry/fexit/fmod_ret/tp_btf program to the kernel
   * function its section names through a bpf_link (needs BTF and the BPF
   * trampoline: probeFentry). Throws a BpfError (the kernel refuses
   * fentry/fexit, no BTF). See attachTracing.
   */
  attachTracing(): Link {
    return attachTracing(this.#traced);
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
    const outSize = input.dataOutSize ?? data.length + 256;
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
      repeat: input.repeat ?? 1,
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
