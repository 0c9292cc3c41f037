/**
 * TC attachment: a SCHED_CLS program ("tc" section) on an interface's
 * ingress or egress. Two ways, picked at run time:
 *
 * - a TCX link (kernel >= 6.6): a bpf_link, so the kernel detaches the
 *   program when the process dies, even by SIGKILL; no qdisc involved.
 * - a clsact qdisc with a BPF filter (netlink, bpf_tc_*; any kernel since
 *   4.5): the clsact qdisc is created only when the interface has none and
 *   removed on detach only if this process created it (and no other
 *   attachment of this process still uses it); otherwise only our filter
 *   goes. Filters survive the process if it is killed with SIGKILL.
 *
 * A program that gives `slot` (a clsact handle and priority of its own) has
 * a filter that a SIGKILLed run left there removed first, in every mode
 * (such a filter would go on running beside a new TCX link): see
 * TcAttachOptions.slot.
 *
 * Where to see them: TCX links are bpf_links (`bpftool link show`, or
 * `bpftool net show` from bpftool 7.3 on; Debian 12's bpftool and
 * `tc filter show` do not list them); clsact filters show in
 * `tc filter show dev IFACE egress` and `bpftool net show`.
 */
import { bpf, type TcHookIn, type TcOptsIn } from './ffi/libbpf.js';
import { TcHook, TcOpts, sizeOf } from './ffi/structs.js';
import { BpfError, Errno } from './errors.js';
import { Link, type Attachment } from './link.js';
import { resolveInterface, type Interface } from './netif.js';
import { probeTcx } from './features.js';
import { programNameById } from './xdp.js';
import { fdHolders, formatHolders, type FdHolder } from './procfs.js';

/** Which way the packets go. */
export type TcDirection = 'ingress' | 'egress';
/** How to attach: 'auto' is a TCX link when the kernel has them (probeTcx()), else clsact. */
export type TcMode = 'auto' | 'tcx' | 'clsact';
/** Every TcMode, for option parsers. */
export const TC_MODES: readonly TcMode[] = ['auto', 'tcx', 'clsact'];

/** Options of attachTc. */
export interface TcAttachOptions {
  /** 'auto' (the default): a TCX link when the kernel has them, else clsact. */
  mode?: TcMode;
  /** clsact only: the filter's priority (1-65535; default: the kernel picks). */
  priority?: number;
  /** clsact only: the filter's handle (default: the kernel picks). */
  handle?: number;
  /**
   * The clsact handle and priority this program's filters always use (in
   * clsact mode, instead of handle/priority). Before attaching, in every
   * mode, a filter found there is checked: one of a program with the same
   * name that no process holds any more (its loader died, e.g. by SIGKILL)
   * is removed, and the attachment's description says so; one a live
   * process holds fails with EBUSY naming the process; one of another
   * program fails with EEXIST naming it.
   */
  slot?: { handle: number; priority: number };
}

const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
const BPF_TC_INGRESS = 1;
const BPF_TC_EGRESS = 2;

/** clsact qdiscs this process uses, by ifindex: whether it created each, and how many of its filters are on it. */
const clsact = new Map<number, { created: boolean; refs: number }>();

function hookOf(ifindex: number, direction: TcDirection): TcHookIn {
  return { sz: sizeOf(TcHook), ifindex, attach_point: direction === 'ingress' ? BPF_TC_INGRESS : BPF_TC_EGRESS, parent: 0 };
}

/**
 * Attaches program `progFd` (named `progName`, type SCHED_CLS) to the
 * ingress or egress of an interface and returns the attachment; detach() is
 * idempotent. 'auto' mode probes the kernel once (probeTcx). Throws a
 * BpfError: ENODEV for an unknown interface, EINVAL for mode 'tcx' on a
 * kernel without TCX links (< 6.6) or for a program of another type,
 * what netlink reports for clsact (e.g. EEXIST when `handle`/`priority` are
 * taken).
 */
export function attachTc(progFd: number, progName: string, iface: string | number, direction: TcDirection, opts: TcAttachOptions = {}): Link | Attachment {
  const ifc: Interface = resolveInterface(iface);
  const mode = opts.mode ?? 'auto';
  if (!TC_MODES.includes(mode)) throw new BpfError(`attach tc ${progName}`, Errno.EINVAL, `unknown mode '${String(mode)}' (use ${TC_MODES.join(', ')})`);
  if (direction !== 'ingress' && direction !== 'egress') throw new BpfError(`attach tc ${progName}`, Errno.EINVAL, `unknown direction '${String(direction)}' (use ingress or egress)`);
  const what = `attach tc ${progName} to ${ifc.name} ${direction}`;
  const stale = opts.slot ? removeStaleFilter(progName, ifc, direction, opts.slot, what) : '';
  if (mode === 'tcx' || (mode === 'auto' && probeTcx())) {
    const fd = bpf.link_create(progFd, ifc.index, direction === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS, null);
    if (fd >= 0) return new Link(fd, `tc ${direction} ${progName} on ${ifc.name} (tcx link${stale})`);
    const e = -fd;
    const cause = e !== Errno.EINVAL ? undefined : probeTcx() ? 'the program is not a tc (SCHED_CLS) program' : 'the kernel has no TCX links (needs 6.6); use clsact';
    throw new BpfError(what, e, cause);
  }
  return attachClsact(progFd, progName, ifc, direction, opts.slot ? { ...opts, ...opts.slot } : opts, what, stale);
}

/** Slots of clsact filters this process attached and still has ("ifindex/direction/handle/priority"). */
const ownSlots = new Set<string>();

/** Processes with an fd of the program `progId` open (from /proc/PID/fdinfo). */
function progHolders(progId: number): FdHolder[] {
  const idLine = new RegExp(`^prog_id:\\s+${progId}$`, 'm');
  return fdHolders((target, fdinfo) => target === 'anon_inode:bpf-prog' && idLine.test(fdinfo()));
}

/**
 * Removes the clsact filter at `slot` when it runs a program named
 * `progName` that no process holds (left by a run that died); returns the
 * text for the attachment's description ('' when the slot was free).
 * Throws a BpfError: EBUSY when a live process holds that program, EEXIST
 * when another program is there.
 */
function removeStaleFilter(progName: string, ifc: Interface, direction: TcDirection, slot: { handle: number; priority: number }, what: string): string {
  if (ownSlots.has(`${ifc.index}/${direction}/${slot.handle}/${slot.priority}`)) {
    throw new BpfError(what, Errno.EEXIST, `this process already has a filter at handle ${slot.handle}, priority ${slot.priority}`);
  }
  const hook = hookOf(ifc.index, direction);
  const q: TcOptsIn = { sz: sizeOf(TcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle: slot.handle, priority: slot.priority };
  if (bpf.tc_query(hook, q) < 0 || !q.prog_id) return ''; // no clsact qdisc, or nothing in the slot
  const id = Number(q.prog_id);
  const name = programNameById(id);
  const at = `clsact ${direction} of ${ifc.name}, handle ${slot.handle}, priority ${slot.priority}`;
  if (name !== progName) throw new BpfError(what, Errno.EEXIST, `another program (${name || '?'}, id ${id}) has a filter at ${at}`);
  const holders = progHolders(id);
  if (holders.length) throw new BpfError(what, Errno.EBUSY, `${progName} (id ${id}) at ${at} belongs to a running process: ${formatHolders(holders)}`);
  const d = bpf.tc_detach(hook, { sz: sizeOf(TcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle: slot.handle, priority: slot.priority });
  if (d < 0 && -d !== Errno.ENOENT) throw new BpfError(`${what}: remove the stale filter of ${progName} (id ${id})`, -d);
  return `; removed a stale clsact filter of ${progName} (id ${id}) that a process which died had left`;
}

function attachClsact(progFd: number, progName: string, ifc: Interface, direction: TcDirection, opts: TcAttachOptions, what: string, stale = ''): Attachment {
  const hook = hookOf(ifc.index, direction);
  let q = clsact.get(ifc.index);
  if (!q) {
    const r = bpf.tc_hook_create(hook);
    if (r < 0 && -r !== Errno.EEXIST) throw new BpfError(`${what}: create clsact qdisc`, -r);
    q = { created: r === 0, refs: 0 };
    clsact.set(ifc.index, q);
  }
  const tcOpts: TcOptsIn = { sz: sizeOf(TcOpts), prog_fd: progFd, flags: 0, prog_id: 0, handle: opts.handle ?? 0, priority: opts.priority ?? 0 };
  const r = bpf.tc_attach(hook, tcOpts);
  if (r < 0) {
    release(ifc.index);
    throw new BpfError(what, -r, -r === Errno.EEXIST ? `a filter with handle ${opts.handle ?? 0} and priority ${opts.priority ?? 0} exists` : undefined);
  }
  q.refs++;
  const { handle, priority } = tcOpts;
  const slotKey = `${ifc.index}/${direction}/${handle}/${priority}`;
  ownSlots.add(slotKey);
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    ownSlots.delete(slotKey);
    const d = bpf.tc_detach(hook, { sz: sizeOf(TcOpts), prog_fd: 0, flags: 0, prog_id: 0, handle, priority });
    q!.refs--;
    release(ifc.index);
    // Gone already (the interface, or someone removed the qdisc): nothing left to detach.
    if (d < 0 && -d !== Errno.ENOENT && -d !== Errno.ENODEV && -d !== Errno.EINVAL) throw new BpfError(`detach tc ${progName} from ${ifc.name} ${direction}`, -d);
  };
  const created = q.created ? ', qdisc created' : '';
  return { description: `tc ${direction} ${progName} on ${ifc.name} (clsact, handle ${handle}, priority ${priority}${created}${stale})`, detach, [Symbol.dispose]: detach };
}

/** Drops the clsact qdisc of `ifindex` when no filter of ours is left on it, if we created it. */
function release(ifindex: number): void {
  const q = clsact.get(ifindex);
  if (!q || q.refs > 0) return;
  clsact.delete(ifindex);
  if (q.created) bpf.tc_hook_destroy({ sz: sizeOf(TcHook), ifindex, attach_point: BPF_TC_INGRESS | BPF_TC_EGRESS, parent: 0 });
}
