/**
 * Probes of kernel features, by trying them (not by the kernel version,
 * which backports and configs make unreliable). Each probe loads a trivial
 * two-instruction program, tries to create the link on loopback (every
 * network namespace has one), removes it at once, and caches the answer
 * for the process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { bpf } from './ffi/libbpf.js';
import { withBtfFile } from './ffi/btf.js';
import { linkCreateOpts } from './ffi/structs.js';
import { closeFd, ifNameToIndex } from './ffi/sys.js';
import { Errno, bpfCallError } from './errors.js';

const PROG_TYPE_SCHED_CLS = 3;
const PROG_TYPE_XDP = 6;
const BPF_XDP = 37;
const BPF_TCX_INGRESS = 46;
const XDP_FLAGS_SKB_MODE = 1 << 1;

/** `r0 = imm; exit`: a program that only returns `imm`. */
function returning(imm: number): Buffer {
  const insns = Buffer.alloc(16);
  insns[0] = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K, dst r0
  insns.writeInt32LE(imm, 4);
  insns[8] = 0x95; // BPF_JMP | BPF_EXIT
  return insns;
}

/**
 * True when a link of `attachType` to loopback can be created for a trivial
 * program of `progType`. A kernel without that kind of link answers EINVAL;
 * EBUSY (something else holds the hook exclusively) still means it has them.
 * Throws a BpfError when even the trivial program cannot be loaded (EPERM
 * without root/CAP_BPF).
 */
function probeLink(what: string, progType: number, ret: number, attachType: number, opts: Record<string, unknown> | null): boolean {
  const insns = returning(ret);
  const prog = bpf.prog_load(progType, 'probe', 'GPL', insns, insns.length / 8, null);
  if (prog < 0) throw bpfCallError(`probe ${what}: load a trivial program`, -prog);
  try {
    const link = bpf.link_create(prog, ifNameToIndex('lo') || 1, attachType, opts);
    if (link >= 0) {
      bpf.link_detach(link);
      closeFd(link);
      return true;
    }
    if (-link === Errno.EINVAL || -link === Errno.EOPNOTSUPP) return false;
    if (-link === Errno.EBUSY || -link === Errno.EEXIST) return true;
    throw bpfCallError(`probe ${what}`, -link);
  } finally {
    closeFd(prog);
  }
}

let tcx: boolean | undefined;
/**
 * True when the kernel has TCX links (tc programs attached through a
 * bpf_link, Linux >= 6.6), by creating one on loopback's ingress for an
 * instant (its program returns TCX_NEXT: traffic is not touched). Cached.
 * Throws a BpfError without the privileges to load a program.
 */
export function probeTcx(): boolean {
  tcx ??= probeLink('tcx links', PROG_TYPE_SCHED_CLS, -1 /* TCX_NEXT */, BPF_TCX_INGRESS, null);
  return tcx;
}

let xdpLink: boolean | undefined;
/**
 * True when the kernel has XDP links (Linux >= 5.9), by attaching an
 * XDP_PASS program to loopback in skb mode through a link for an instant.
 * Cached. Throws a BpfError without the privileges to load a program.
 */
export function probeXdpLink(): boolean {
  xdpLink ??= probeLink('xdp links', PROG_TYPE_XDP, 2 /* XDP_PASS */, BPF_XDP, linkCreateOpts(XDP_FLAGS_SKB_MODE));
  return xdpLink;
}

/** Where the kernel's own BTF is (CONFIG_DEBUG_INFO_BTF). */
export const VMLINUX_BTF = '/sys/kernel/btf/vmlinux';

/**
 * True when the kernel describes its types in BTF (/sys/kernel/btf/vmlinux,
 * CONFIG_DEBUG_INFO_BTF, Linux >= 5.4): CO-RE programs, fentry/fexit and
 * BTF-typed raw tracepoints need it. Never throws.
 */
export function probeBtf(): boolean {
  return existsSync(VMLINUX_BTF);
}

let kprobes: boolean | undefined;
/**
 * True when the kernel has kprobes (CONFIG_KPROBES): the kprobe PMU
 * (/sys/bus/event_source/devices/kprobe, Linux >= 4.17) or tracefs's
 * kprobe_events. Without them kprobe programs load but attaching them fails
 * with ENOENT. Cached; never throws.
 */
export function probeKprobes(): boolean {
  kprobes ??= existsSync('/sys/bus/event_source/devices/kprobe') ||
    existsSync('/sys/kernel/tracing/kprobe_events') || existsSync('/sys/kernel/debug/tracing/kprobe_events');
  return kprobes;
}

/**
 * True when `func` is a kernel function kprobes could attach to (it is in
 * /proc/kallsyms as a text symbol). Never throws (false when kallsyms
 * cannot be read).
 */
export function kernelHasFunction(func: string): boolean {
  try {
    const re = new RegExp(`^[0-9a-f]+ [tT] ${func.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\s|$)`, 'm');
    return re.test(readFileSync('/proc/kallsyms', 'utf8'));
  } catch {
    return false;
  }
}

const PROG_TYPE_TRACING = 26;
const BPF_TRACE_FENTRY = 24;
const BTF_KIND_FUNC = 12;

let fentry: boolean | undefined;
/**
 * True when the kernel lets fentry programs attach (BTF, the BPF trampoline,
 * Linux >= 5.5 on x86_64, 6.0 on arm64), by loading a trivial fentry
 * program for a kernel function and attaching it for an instant. False
 * without BTF, or when the kernel refuses (EPERM, EINVAL, ENOTSUPP: some
 * kernels, like this VM's, refuse fentry/fexit even to root). Cached.
 * Throws a BpfError only when even an ordinary trivial program cannot be
 * loaded (no privileges).
 */
export function probeFentry(): boolean {
  if (fentry !== undefined) return fentry;
  if (!probeBtf()) return (fentry = false);
  let btfId = -1;
  try {
    btfId = withBtfFile(VMLINUX_BTF, (btf) => {
      for (const f of ['bpf_fentry_test1', 'do_nanosleep', 'ksys_read']) {
        const id = bpf.btf_find_by_name_kind(btf, f, BTF_KIND_FUNC);
        if (id > 0) return id;
      }
      return -1;
    });
  } catch { /* unreadable BTF: no fentry */ }
  if (btfId <= 0) return (fentry = false);
  // struct bpf_prog_load_opts up to attach_btf_obj_fd (sz 48: the rest is zero).
  const opts = Buffer.alloc(48);
  opts.writeBigUInt64LE(48n, 0);
  opts.writeUInt32LE(BPF_TRACE_FENTRY, 12);
  opts.writeUInt32LE(btfId, 32);
  const insns = returning(0);
  const prog = bpf.prog_load(PROG_TYPE_TRACING, 'probe', 'GPL', insns, insns.length / 8, opts);
  if (prog < 0) {
    // Make sure it is fentry that is refused, not BPF as a whole.
    probeXdpLink();
    return (fentry = false);
  }
  try {
    const link = bpf.link_create(prog, 0, BPF_TRACE_FENTRY, null);
    if (link < 0) return (fentry = false);
    closeFd(link);
    return (fentry = true);
  } finally {
    closeFd(prog);
  }
}

let bpfLsm: boolean | undefined;
/**
 * True when the kernel runs the BPF LSM (CONFIG_BPF_LSM and "bpf" in the
 * active LSMs, which /sys/kernel/security/lsm lists; Linux >= 5.7): lsm/
 * programs need it. False when securityfs is not mounted (nothing says
 * it is there). Cached.
 */
export function probeBpfLsm(): boolean {
  if (bpfLsm !== undefined) return bpfLsm;
  try {
    bpfLsm = readFileSync('/sys/kernel/security/lsm', 'utf8').trim().split(',').includes('bpf');
  } catch {
    bpfLsm = false;
  }
  return bpfLsm;
}
