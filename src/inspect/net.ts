/**
 * The programs attached to the network interfaces of a namespace (as
 * `bpftool net show` lists them): XDP per interface with its mode, TCX
 * programs per hook (BPF_PROG_QUERY), BPF filters of clsact qdiscs
 * (netlink dump). Needs root.
 */
import { netlinkRoute, progQuery } from '../ffi/inspect.js';
import { listInterfaces } from '../ffi/sys.js';
import { BpfError, Errno, bpfCallError } from '../errors.js';
import { queryXdp, programNameById, type XdpMode } from '../xdp.js';
import { AttachType } from '../kinds.js';
import { listLinks, type LinkDetails } from './links.js';
import { CLSACT_PARENT, dumpEnded, parseTfilterDump, tfilterDumpRequest } from './netlink.js';
import { inNetns } from './netns.js';

/** A program on an interface's XDP hook. */
export interface NetXdp { mode: XdpMode; id: number; name: string; /** The bpf_link holding it, when there is one. */ linkId?: number }
/** A program on an interface's tc ingress or egress: a TCX link's or a clsact filter's. */
export interface NetTc {
  hook: 'ingress' | 'egress';
  kind: 'tcx' | 'clsact';
  id: number;
  name: string;
  /** tcx: the bpf_link holding it (absent for a program attached without a link). */
  linkId?: number;
  /** clsact: the filter's handle, priority, tc's name and direct-action flag. */
  handle?: number;
  priority?: number;
  filterName?: string;
  directAction?: boolean;
}
/** An interface with programs attached. */
export interface NetInterface { ifindex: number; ifname: string; xdp: NetXdp[]; tc: NetTc[] }
/** What `bpfts net list` shows. */
export interface NetListing { netns: string | null; interfaces: NetInterface[] }

const TCX_TYPES = { ingress: AttachType.TCX_INGRESS, egress: AttachType.TCX_EGRESS } as const;

/** The BPF filters of the clsact hook `hook` of an interface ([] without a clsact qdisc). Throws a BpfError. */
export function clsactFilters(ifindex: number, ifname: string, hook: 'ingress' | 'egress') {
  const reply = netlinkRoute(tfilterDumpRequest(ifindex, CLSACT_PARENT[hook]), dumpEnded);
  if ('errno' in reply) throw new BpfError(`dump tc filters of ${ifname} ${hook}`, reply.errno);
  const parsed = parseTfilterDump(reply);
  if ('errno' in parsed) {
    // No clsact qdisc (or no such parent): nothing attached there.
    if (parsed.errno === Errno.EINVAL || parsed.errno === Errno.ENOENT) return [];
    throw new BpfError(`dump tc filters of ${ifname} ${hook}`, parsed.errno);
  }
  return parsed;
}

/** The XDP programs of an interface; none for an interface whose driver has no XDP to query (EOPNOTSUPP, EINVAL). */
function xdpOf(ifindex: number) {
  try {
    return queryXdp(ifindex);
  } catch (e) {
    if (e instanceof BpfError && (e.errno === Errno.EOPNOTSUPP || e.errno === Errno.EINVAL || e.errno === Errno.ENODEV)) return [];
    throw e;
  }
}

function interfaceAttachments(ifindex: number, ifname: string, links: LinkDetails[]): NetInterface {
  const linkOf = (type: string, progId: number, attachType?: string) =>
    links.find((l) => l.type === type && l.progId === progId && l.ifindex === ifindex && (attachType === undefined || l.attachType === attachType))?.id;
  const xdp: NetXdp[] = xdpOf(ifindex).map((p) => {
    const linkId = linkOf('xdp', p.id);
    return linkId ? { ...p, linkId } : p;
  });
  const tc: NetTc[] = [];
  for (const hook of ['ingress', 'egress'] as const) {
    const ids = progQuery(ifindex, TCX_TYPES[hook]);
    if (typeof ids === 'number') {
      // EINVAL: a kernel without TCX (< 6.6) knows no such attach type.
      if (ids !== -Errno.EINVAL) throw bpfCallError(`query tcx ${hook} of ${ifname}`, -ids);
    } else {
      for (const id of ids) {
        const linkId = linkOf('tcx', id, `tcx_${hook}`);
        tc.push({ hook, kind: 'tcx', id, name: programNameById(id), ...(linkId ? { linkId } : {}) });
      }
    }
    for (const f of clsactFilters(ifindex, ifname, hook)) {
      tc.push({ hook, kind: 'clsact', id: f.progId, name: programNameById(f.progId), handle: f.handle, priority: f.priority, filterName: f.name, directAction: f.directAction });
    }
  }
  return { ifindex, ifname, xdp, tc };
}

/**
 * The programs attached to the interfaces of this network namespace, or of
 * `netns` (a name under /run/netns): only interfaces with something
 * attached. Throws a BpfError (EPERM when not root, ENOENT for an unknown
 * namespace).
 */
export function listNet(netns?: string): NetListing {
  const links = listLinks(); // ids are global; the ifindexes are matched inside the namespace
  const collect = (): NetInterface[] => {
    const ifs = listInterfaces();
    if ('errno' in ifs) throw new BpfError('list interfaces', ifs.errno);
    return ifs.map((i) => interfaceAttachments(i.index, i.name, links)).filter((i) => i.xdp.length || i.tc.length);
  };
  return { netns: netns ?? null, interfaces: netns === undefined ? collect() : inNetns(netns, collect) };
}
