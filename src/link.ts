/**
 * Attachments of programs to hooks. A Link is a kernel bpf_link: the kernel
 * detaches the program when the last fd to it closes, so a process that dies,
 * even by SIGKILL, leaves nothing attached (unless the link is pinned).
 */
import { unlinkSync } from 'node:fs';
import { bpf } from './ffi/libbpf.js';
import { closeFd } from './ffi/sys.js';
import { BpfError, Errno } from './errors.js';

/** Anything attached that can be detached. detach() is safe to call twice. */
export interface Attachment {
  /** What is attached where, e.g. "xdp hello on veth0 (skb mode)". */
  readonly description: string;
  /** Detaches; safe to call more than once. */
  detach(): void;
  [Symbol.dispose](): void;
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
  constructor(fd: number, readonly description: string, private readonly onDetach?: () => void, release?: (fd: number) => void) {
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
   * Pins the link on bpffs so it outlives this process (the program stays
   * attached until unpin()). Throws a BpfError.
   */
  pin(path: string): void {
    if (this.#fd < 0) throw new BpfError(`pin link ${this.description}`, Errno.EBADF, 'link is detached');
    const r = bpf.obj_pin(this.#fd, path);
    if (r < 0) throw new BpfError(`pin link ${this.description} at ${path}`, -r);
    this.#pinned = path;
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
