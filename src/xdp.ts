/**
 * XDP attachment: through a bpf_link by default, in skb (generic), native
 * (driver) or hw mode, refusing to replace another tool's program unless
 * forced.
 */
import { bpf } from './ffi/libbpf.js';
import { XdpQueryOpts, ProgInfo, sizeOf } from './ffi/structs.js';
import { closeFd } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';
import { Link, type Attachment } from './link.js';
import { resolveInterface, type Interface } from './netif.js';

/** XDP attach modes. */
export type XdpMode = 'skb' | 'native' | 'hw';
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

/**
 * Attaches program `progFd` named `progName` to an interface's XDP hook
 * through a bpf_link. Throws a BpfError: ENODEV for an unknown interface,
 * EBUSY when another program is attached and `force` is not set (the message
 * names it), EOPNOTSUPP when the mode is unsupported by the driver.
 */
export function attachXdp(progFd: number, progName: string, iface: string | number, opts: XdpAttachOptions = {}): Link | Attachment {
  const ifc: Interface = resolveInterface(iface);
  const mode = opts.mode ?? 'skb';
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
  const fd = bpf.link_create(progFd, ifc.index, BPF_XDP, { sz: 64, flags, iter_info: null, iter_info_len: 0, target_btf_id: 0, _pad0: 0, _union: new Array(40).fill(0) });
  if (fd >= 0) return new Link(fd, description);
  const e = -fd;
  if (e !== Errno.EINVAL && e !== Errno.EOPNOTSUPP) throw new BpfError(what, e, e === Errno.EOPNOTSUPP ? `${mode} mode is not supported by ${ifc.name}'s driver` : undefined);
  // Kernels before 5.9 have no XDP links: fall back to a netlink attach that we detach ourselves.
  const r = bpf.xdp_attach(ifc.index, progFd, flags | XDP_FLAGS_UPDATE_IF_NOEXIST, null);
  if (r < 0) throw new BpfError(what, -r, -r === Errno.EOPNOTSUPP ? `${mode} mode is not supported by ${ifc.name}'s driver` : undefined);
  let attached = true;
  const detach = () => {
    if (!attached) return;
    attached = false;
    bpf.xdp_detach(ifc.index, flags, null);
  };
  return { description: `${description} [netlink]`, detach, [Symbol.dispose]: detach };
}
