/**
 * XDP attachment: through a bpf_link by default, in skb (generic), native
 * (driver) or hw mode, refusing to replace another tool's program unless
 * forced.
 */
import { bpf } from './ffi/libbpf.js';
import { XdpQueryOpts, ProgInfo, linkCreateOpts, sizeOf } from './ffi/structs.js';
import { closeFd } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';
import { Link, type Attachment } from './link.js';
import { resolveInterface, type Interface } from './netif.js';
import { probeXdpLink } from './features.js';

/** XDP attach modes. */
export type XdpMode = 'skb' | 'native' | 'hw';
/** Every XdpMode, for option parsers. */
export const XDP_MODES: readonly XdpMode[] = ['skb', 'native', 'hw'];
const MODE_FLAGS: Record<XdpMode, number> = { skb: 1 << 1, native: 1 << 2, hw: 1 << 3 };
const XDP_FLAGS_UPDATE_IF_NOEXIST = 1;
const BPF_XDP = 37;

/** XDP return codes by name. */
export const XdpAction = { ABORTED: 0, DROP: 1, PASS: 2, TX: 3, REDIRECT: 4 } as const;
const ACTION_NAMES = ['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS', 'XDP_TX', 'XDP_REDIRECT'];
/** "XDP_PASS" for 2, and so on. */
export function xdpActionName(code: number): string {
  return ACTION_NAMES[code] ?? `XDP action ${code}`;
}

/** A program attached to an interface's XDP hook, as the kernel reports it. */
export interface XdpAttached { id: number; name: string; mode: XdpMode }

/** The name of a loaded program by id ('' when it cannot be read). */
export function programNameById(id: number): string {
  const fd = bpf.prog_get_fd_by_id(id);
  if (fd < 0) return '';
  try {
    const info: Record<string, unknown> = {};
    if (bpf.prog_get_info_by_fd(fd, info, [sizeOf(ProgInfo)]) < 0) return '';
    return String(info.name ?? '');
  } finally {
    closeFd(fd);
  }
}

/** The XDP programs attached to an interface, per mode. Throws a BpfError. */
export function queryXdp(iface: string | number): XdpAttached[] {
  const ifc = resolveInterface(iface);
  const opts = { sz: sizeOf(XdpQueryOpts), prog_id: 0, drv_prog_id: 0, hw_prog_id: 0, skb_prog_id: 0, attach_mode: 0 };
  const r = bpf.xdp_query(ifc.index, 0, opts);
  if (r < 0) throw new BpfError(`query xdp on ${ifc.name}`, -r);
  const out: XdpAttached[] = [];
  const add = (id: number, mode: XdpMode) => { if (id) out.push({ id, name: programNameById(id), mode }); };
  add(opts.skb_prog_id, 'skb');
  add(opts.drv_prog_id, 'native');
  add(opts.hw_prog_id, 'hw');
  return out;
}

/** Options of attachXdp. */
export interface XdpAttachOptions {
  /** skb (generic, works on any interface; the default), native (driver) or hw. */
  mode?: XdpMode;
  /** Replace a program someone else attached (netlink-attached only). */
  force?: boolean;
}

/** The cause to show when the kernel refuses mode `mode` on an interface, or undefined to show libc's message. */
function modeCause(e: number, mode: XdpMode, ifname: string): string | undefined {
  if (mode === 'hw' && (e === Errno.EINVAL || e === Errno.EOPNOTSUPP)) {
    return `hw (offload) mode is not supported by ${ifname}'s driver: it needs a NIC that offloads XDP (e.g. Netronome nfp) and a program loaded for that device; use native or skb mode`;
  }
  if (e === Errno.EOPNOTSUPP) return `${mode} mode is not supported by ${ifname}'s driver${mode === 'native' ? '; use skb mode' : ''}`;
  return undefined;
}

/**
 * Attaches program `progFd` named `progName` to an interface's XDP hook
 * through a bpf_link (kernel >= 5.9; on older kernels, which have no XDP
 * links, through netlink, said in the attachment's description, detached by
 * detach() but not by the kernel when the process dies). Throws a BpfError:
 * ENODEV for an unknown interface, EBUSY when another program is attached
 * and `force` is not set (the message names it), EOPNOTSUPP/EINVAL when the
 * driver does not support the mode (hw needs an XDP-offload NIC).
 */
export function attachXdp(progFd: number, progName: string, iface: string | number, opts: XdpAttachOptions = {}): Link | Attachment {
  const ifc: Interface = resolveInterface(iface);
  const mode = opts.mode ?? 'skb';
  if (!XDP_MODES.includes(mode)) throw new BpfError(`attach xdp ${progName}`, Errno.EINVAL, `unknown mode '${String(mode)}' (use ${XDP_MODES.join(', ')})`);
  const flags = MODE_FLAGS[mode];
  const what = `attach xdp ${progName} to ${ifc.name}`;
  const existing = queryXdp(ifc.index);
  if (existing.length > 0) {
    const names = existing.map((p) => `'${p.name || '?'}' (id ${p.id}, ${p.mode} mode)`).join(', ');
    if (!opts.force) throw new BpfError(what, Errno.EBUSY, `interface already has XDP program ${names}; use --force to replace it`);
    for (const p of existing) {
      const r = bpf.xdp_detach(ifc.index, MODE_FLAGS[p.mode], null);
      if (r < 0) throw new BpfError(`${what}: remove ${names}`, -r, -r === Errno.EBUSY ? `${names} is held by another process's bpf_link and cannot be forced off` : undefined);
    }
  }
  const description = `xdp ${progName} on ${ifc.name} (${mode} mode)`;
  const fd = bpf.link_create(progFd, ifc.index, BPF_XDP, linkCreateOpts(flags));
  if (fd >= 0) return new Link(fd, description);
  const e = -fd;
  // EINVAL is also what a kernel without XDP links (< 5.9) answers: only there is netlink the way.
  if (e !== Errno.EINVAL || probeXdpLink()) throw new BpfError(what, e, modeCause(e, mode, ifc.name));
  const r = bpf.xdp_attach(ifc.index, progFd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST, null);
  if (r < 0) throw new BpfError(what, -r, modeCause(-r, mode, ifc.name));
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    bpf.xdp_detach(ifc.index, flags, null);
  };
  return { description: `${description} [netlink: this kernel has no XDP links; a killed process leaves it attached]`, detach, [Symbol.dispose]: detach };
}
