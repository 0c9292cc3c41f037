/**
 * Attachments of programs to hooks. A Link is a kernel bpf_link: the kernel
 * detaches the program when the last fd to it closes, so a process that dies,
 * even by SIGKILL, leaves nothing attached (unless the link is pinned).
 */
import { unlinkSync } from 'node:fs';
import { bpf } from './ffi/libbpf.js';
import { closeFd } from './ffi/sys.js';
import { lastErrno } from './ffi/native.js';
import { LinkInfoHead, sizeOf } from './ffi/structs.js';
import { BpfError, Errno } from './errors.js';
import { linkTypeName } from './kinds.js';

/** Anything attached that can be detached. detach() is safe to call twice. */
export interface Attachment {
  /** What is attached where, e.g. "xdp hello on veth0 (skb mode)". */
  readonly description: string;
  /** Detaches; safe to call more than once. */
  detach(): void;
  [Symbol.dispose](): void;
}


/** What the kernel says of a link (as `bpftool link show` lists it). */
export interface LinkInfo {
  /** The link's id (bpftool link show id N). */
  id: number;
  /** The attached program's id. */
  progId: number;
  /** The link type, e.g. "perf_event" (tracepoints, kprobes, uprobes), "raw_tracepoint", "tracing", "xdp", "tcx". */
  type: string;
}

/** A bpf_link, owned through its fd. */
export class Link implements Attachment {
  #fd: number;
  #pinned: string | undefined;

  #release: (fd: number) => void;

  /**
   * @internal created by the attach functions. `release` closes the link's
   * fd (default: close(2)); links libbpf made are released by libbpf, which
   * also frees what it allocated for them.
   */
  constructor(fd: number, public description: string, private readonly onDetach?: () => void, release?: (fd: number) => void) {
    this.#fd = fd;
    this.#release = release ?? closeFd;
  }

  /** The link's fd, or -1 once detached. */
  get fd(): number {
    return this.#fd;
  }

  /** True until detach(). */
  get attached(): boolean {
    return this.#fd >= 0;
  }

  /**
   * The kernel's view of the link: its id, program id and type, as `bpftool
   * link show` lists them. Throws a BpfError once detached (EBADF).
   */
  info(): LinkInfo {
    if (this.#fd < 0) throw new BpfError(`get info of link ${this.description}`, Errno.EBADF, 'link is detached');
    const info: Record<string, unknown> = {};
    const r = bpf.link_get_info_by_fd(this.#fd, info, [sizeOf(LinkInfoHead)]);
    if (r < 0) throw new BpfError(`get info of link ${this.description}`, -r);
    const t = Number(info.type);
    return { id: Number(info.id), progId: Number(info.prog_id), type: linkTypeName(t) };
  }

  /**
   * Pins the link on bpffs so it outlives this process (the program stays
   * attached until unpin()). Throws a BpfError.
   */
  pin(path: string): void {
    if (this.#fd < 0) throw new BpfError(`pin link ${this.description}`, Errno.EBADF, 'link is detached');
    const r = bpf.obj_pin(this.#fd, path);
    if (r < 0) throw new BpfError(`pin link ${this.description} at ${path}`, -r);
    this.#pinned = path;
  }

  /**
   * Opens a link pinned at `path` (by this or an earlier process): the
   * program stays attached however this Link ends unless detach() is
   * called. Returns undefined when nothing is pinned there. Throws a
   * BpfError for any other failure (EINVAL: not a link).
   */
  static openPinned(path: string, description: string): Link | undefined {
    const fd = bpf.obj_get(path);
    if (fd < 0) {
      const e = lastErrno();
      if (e === Errno.ENOENT) return undefined;
      throw new BpfError(`open link pinned at ${path}`, e);
    }
    const l = new Link(fd, description);
    l.#pinned = path;
    try {
      l.info();
    } catch (e) {
      l.#pinned = undefined;
      closeFd(fd);
      l.#fd = -1;
      throw new BpfError(`open link pinned at ${path}`, Errno.EINVAL, 'not a bpf_link');
    }
    return l;
  }

  /** Where this link is pinned, or undefined. */
  get pinnedAt(): string | undefined {
    return this.#pinned;
  }

  /**
   * Replaces the attached program in place, atomically (BPF_LINK_UPDATE,
   * kernel >= 5.7; XDP links 5.9, TCX 6.6): no packet sees the hook empty.
   * The new program must be of the same type and attach type. Throws a
   * BpfError (EBADF once detached, EINVAL for another program type).
   */
  update(progFd: number, description?: string): void {
    if (this.#fd < 0) throw new BpfError(`update link ${this.description}`, Errno.EBADF, 'link is detached');
    const r = bpf.link_update(this.#fd, progFd, null);
    if (r < 0) throw new BpfError(`update link ${this.description}`, -r);
    if (description !== undefined) this.description = description;
  }

  /**
   * Closes this process's fd without detaching: a pinned link stays
   * attached (an unpinned one is detached by the kernel when its last fd
   * closes). Safe to call twice, and after detach().
   */
  release(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.#pinned = undefined;
    this.#release(fd);
  }

  /** Removes the pin made by pin(); safe to call when not pinned. */
  unpin(): void {
    if (this.#pinned === undefined) return;
    try { unlinkSync(this.#pinned); } catch { /* already gone */ }
    this.#pinned = undefined;
  }

  /** Detaches the program (even if pinned elsewhere) and closes the link. Safe to call twice. */
  detach(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    this.unpin();
    bpf.link_detach(fd); // fails harmlessly on kernels without LINK_DETACH (and on perf-event fds); close() then detaches
    this.#release(fd);
    this.onDetach?.();
  }

  [Symbol.dispose](): void {
    this.detach();
  }
}
