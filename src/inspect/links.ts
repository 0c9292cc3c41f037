/**
 * The bpf_links in the kernel, whoever made them (as `bpftool link` lists
 * them): type, program, and what each attaches to: an interface (xdp, tcx,
 * netkit), a tracepoint, a kernel or user function, a cgroup, a netns.
 * Needs root.
 */
import { bpfFdKind, closeFd, fdById, fdOfPin, nextId, objInfo } from '../ffi/inspect.js';
import { ifIndexToName } from '../ffi/sys.js';
import { BpfError, Errno, bpfCallError } from '../errors.js';
import { attachTypeName, linkTypeName, perfEventTypeName } from './names.js';

/** What a link attaches to, as the kernel reports it (fields present per link type). */
export interface LinkDetails {
  id: number;
  /** bpftool's name of the link type: "xdp", "tcx", "perf_event", "raw_tracepoint", "tracing", "cgroup"... */
  type: string;
  progId: number;
  /** The attach type (tcx_ingress, cgroup_inet_ingress, trace_fentry...), where the link has one. */
  attachType?: string;
  /** xdp, tcx, netkit: the interface's index (in the namespace the link was made in). */
  ifindex?: number;
  /** ...and its name when this network namespace has that index. */
  ifname?: string;
  /** perf_event links: tracepoint, kprobe, kretprobe, uprobe, uretprobe, event. */
  perfEvent?: string;
  /** raw_tracepoint and perf_event tracepoint links: the tracepoint's name. */
  tracepoint?: string;
  /** kprobe links: the function; uprobe links: the file. */
  func?: string;
  file?: string;
  /** kprobe/uprobe links: the offset into the function or file. */
  offset?: number;
  /** cgroup links: the cgroup's id (its cgroup2 directory's inode number). */
  cgroupId?: number;
  /** netns links: the namespace's inode number. */
  netnsIno?: number;
  /** tracing links: BTF object and type ids of the target. */
  targetObjId?: number;
  targetBtfId?: number;
  /** iter links: the iterator's target. */
  iter?: string;
  /** One line: where it is attached, e.g. "veth0 (ifindex 12)", "tracepoint sys_enter_openat". */
  target: string;
}

const INFO_SIZE = 96; // struct bpf_link_info (64 bytes in 6.x) and zeroed room beyond
const NAME_MAX = 512;

const cstr = (b: Buffer) => { const z = b.indexOf(0); return b.toString('utf8', 0, z < 0 ? b.length : z); };

/**
 * Reads a link's info through an fd of it, with the names the kernel can
 * give (tracepoint, function, file). Throws a BpfError (EINVAL: not a link).
 */
export function linkInfoByFd(fd: number, what = `fd ${fd}`): LinkDetails {
  if (bpfFdKind(fd) !== 'link') throw new BpfError(`get info of link ${what}`, Errno.EINVAL, 'not a link');
  const head = Buffer.alloc(INFO_SIZE);
  const first = objInfo(fd, head);
  if (first.r < 0) throw bpfCallError(`get info of link ${what}`, -first.r);
  const typeNum = head.readUInt32LE(0);
  const type = linkTypeName(typeNum);
  const d: LinkDetails = { id: head.readUInt32LE(4), type, progId: head.readUInt32LE(8), target: '' };
  const u = 16; // the union, 8-aligned after type, id, prog_id
  // A second call with a buffer for the name the link carries (raw_tp, iter, perf_event).
  const named = (ptrOff: number, lenOff: number): { info: Buffer; name: string } => {
    const info = Buffer.alloc(INFO_SIZE);
    if (type === 'perf_event') info.writeUInt32LE(head.readUInt32LE(u), u); // keep the perf type (ignored on input)
    const { r, scratch } = objInfo(fd, info, [NAME_MAX], ([p]) => {
      info.writeBigUInt64LE(p, ptrOff);
      info.writeUInt32LE(NAME_MAX, lenOff);
    });
    if (r < 0) return { info: head, name: '' };
    return { info, name: cstr(scratch[0]) };
  };
  switch (type) {
    case 'xdp':
    case 'tcx':
    case 'netkit': {
      d.ifindex = head.readUInt32LE(u);
      if (type !== 'xdp') d.attachType = attachTypeName(head.readUInt32LE(u + 4));
      d.ifname = d.ifindex ? ifIndexToName(d.ifindex) : undefined;
      const where = d.ifindex === 0 ? 'detached (interface gone)' : d.ifname ? `${d.ifname} (ifindex ${d.ifindex})` : `ifindex ${d.ifindex} (another network namespace)`;
      d.target = type === 'xdp' ? where : `${where} ${d.attachType}`;
      break;
    }
    case 'raw_tracepoint': {
      d.tracepoint = named(u, u + 8).name;
      d.target = `raw_tracepoint ${d.tracepoint}`;
      break;
    }
    case 'iter': {
      d.iter = named(u, u + 8).name;
      d.target = `iter ${d.iter}`;
      break;
    }
    case 'perf_event': {
      const kind = perfEventTypeName(head.readUInt32LE(u));
      d.perfEvent = kind;
      const { info, name } = kind === 'event' || kind === 'unspec' ? { info: head, name: '' } : named(u + 8, u + 16);
      if (kind === 'tracepoint') { d.tracepoint = name; d.target = `tracepoint ${name}`; }
      else if (kind === 'kprobe' || kind === 'kretprobe') { d.func = name; d.offset = info.readUInt32LE(u + 20); d.target = `${kind} ${name}${d.offset ? `+${d.offset}` : ''}`; }
      else if (kind === 'uprobe' || kind === 'uretprobe') { d.file = name; d.offset = info.readUInt32LE(u + 20); d.target = `${kind} ${name}:0x${d.offset.toString(16)}`; }
      else d.target = `perf event (${kind})`;
      break;
    }
    case 'cgroup': {
      d.cgroupId = Number(head.readBigUInt64LE(u));
      d.attachType = attachTypeName(head.readUInt32LE(u + 8));
      d.target = `cgroup id ${d.cgroupId} ${d.attachType}`;
      break;
    }
    case 'netns': {
      d.netnsIno = head.readUInt32LE(u);
      d.attachType = attachTypeName(head.readUInt32LE(u + 4));
      d.target = `netns ino ${d.netnsIno} ${d.attachType}`;
      break;
    }
    case 'tracing': {
      d.attachType = attachTypeName(head.readUInt32LE(u));
      d.targetObjId = head.readUInt32LE(u + 4);
      d.targetBtfId = head.readUInt32LE(u + 8);
      d.target = `${d.attachType} btf obj ${d.targetObjId} type ${d.targetBtfId}`;
      break;
    }
    default:
      d.target = type;
  }
  return d;
}

/** The link with this id. Throws a BpfError: ENOENT when there is none, EPERM when not root. */
export function linkById(id: number): LinkDetails {
  const fd = fdById('link', id);
  if (fd < 0) throw bpfCallError(`show link id ${id}`, -fd, -fd === Errno.ENOENT ? `no link with id ${id}` : undefined);
  try {
    return linkInfoByFd(fd, `id ${id}`);
  } finally {
    closeFd(fd);
  }
}

/** The link pinned at `path`. Throws a BpfError (ENOENT: nothing pinned; EINVAL: not a link). */
export function linkByPin(path: string): LinkDetails {
  const fd = fdOfPin(path);
  if (fd < 0) throw bpfCallError(`show link ${path}`, -fd, -fd === Errno.ENOENT ? 'nothing pinned there' : undefined);
  try {
    return linkInfoByFd(fd, path);
  } catch (e) {
    if (e instanceof BpfError && e.errno === Errno.EINVAL) throw new BpfError(`show link ${path}`, Errno.EINVAL, 'what is pinned there is not a link');
    throw e;
  } finally {
    closeFd(fd);
  }
}

/**
 * Every bpf_link in the kernel, by id (links that go away while it walks
 * are skipped). Throws a BpfError (EPERM) when not root.
 */
export function listLinks(): LinkDetails[] {
  const out: LinkDetails[] = [];
  for (let id = 0; ;) {
    const n = nextId('link', id);
    if (n === -Errno.ENOENT) break;
    if (n < 0) throw bpfCallError('list links', -n);
    id = n;
    const fd = fdById('link', id);
    if (fd === -Errno.ENOENT) continue;
    if (fd < 0) throw bpfCallError('list links', -fd);
    try {
      out.push(linkInfoByFd(fd, `id ${id}`));
    } finally {
      closeFd(fd);
    }
  }
  return out;
}
