/**
 * Where each program is attached, from the kernel's links (every hook with
 * a bpf_link: xdp, tcx, tracepoints, kprobes, cgroups...) and from the
 * network hooks that hold programs without a link (netlink XDP, clsact
 * filters) in the current network namespace.
 */
import type { LinkDetails } from './links.js';
import type { NetListing } from './net.js';

/** One place a program is attached. */
export interface ProgramAttachment {
  /** The hook family: the link type (xdp, tcx, perf_event, raw_tracepoint, cgroup, tracing...), or 'tc' for a clsact filter. */
  type: string;
  /** One line: "veth0 (ifindex 12) skb mode", "tracepoint sys_enter_openat", "veth0 egress clsact handle 1 priority 1". */
  target: string;
  /** The bpf_link holding it, when there is one. */
  linkId?: number;
  ifindex?: number;
  ifname?: string;
  /** xdp: the mode the kernel reports. */
  mode?: string;
  /** tc: ingress or egress. */
  hook?: string;
}

/** Attachments per program id. */
export function attachmentsByProgram(links: readonly LinkDetails[], net: NetListing): Map<number, ProgramAttachment[]> {
  const out = new Map<number, ProgramAttachment[]>();
  const add = (id: number, a: ProgramAttachment) => {
    const l = out.get(id);
    if (l) l.push(a); else out.set(id, [a]);
  };
  const xdpMode = (progId: number, ifindex?: number) =>
    net.interfaces.find((i) => i.ifindex === ifindex)?.xdp.find((x) => x.id === progId)?.mode;
  for (const l of links) {
    const a: ProgramAttachment = { type: l.type, target: l.target, linkId: l.id };
    if (l.ifindex !== undefined) a.ifindex = l.ifindex;
    if (l.ifname !== undefined) a.ifname = l.ifname;
    if (l.type === 'xdp') {
      const mode = xdpMode(l.progId, l.ifindex);
      if (mode) { a.mode = mode; a.target = `${l.target} ${mode} mode`; }
    }
    if (l.type === 'tcx' && l.attachType) a.hook = l.attachType.replace('tcx_', '');
    add(l.progId, a);
  }
  const linked = new Set(links.map((l) => `${l.type}/${l.progId}/${l.ifindex}`));
  for (const i of net.interfaces) {
    const where = `${i.ifname} (ifindex ${i.ifindex})`;
    for (const x of i.xdp) {
      if (x.linkId || linked.has(`xdp/${x.id}/${i.ifindex}`)) continue;
      add(x.id, { type: 'xdp', target: `${where} ${x.mode} mode (netlink, no link)`, ifindex: i.ifindex, ifname: i.ifname, mode: x.mode });
    }
    for (const t of i.tc) {
      if (t.kind === 'tcx' && (t.linkId || linked.has(`tcx/${t.id}/${i.ifindex}`))) continue;
      const detail = t.kind === 'clsact' ? `clsact handle ${t.handle} priority ${t.priority}` : 'tcx (no link)';
      add(t.id, { type: t.kind === 'clsact' ? 'tc' : 'tcx', target: `${where} ${t.hook} ${detail}`, ifindex: i.ifindex, ifname: i.ifname, hook: t.hook });
    }
  }
  return out;
}
