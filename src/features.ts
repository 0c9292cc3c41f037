/**
 * Probes of kernel features, by trying them (not by the kernel version,
 * which backports and configs make unreliable). Each probe loads a trivial
 * two-instruction program, tries to create the link on loopback (every
 * network namespace has one), removes it at once, and caches the answer
 * for the process.
 */
import { bpf } from './ffi/libbpf.js';
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
