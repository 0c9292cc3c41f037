/**
 * BPF iterators (SEC("iter/task"), "iter/bpf_map_elem", "iter/tcp", ...):
 * attach the program as an iterator link, then each open() of it runs the
 * program over the kernel objects it walks and hands back what the program
 * printed (BPF_SEQ_PRINTF / bpf_seq_write), read from TS as bytes or text.
 */
import { readSync } from 'node:fs';
import { bpf, type LinkPtr, type ProgPtr } from '../ffi/libbpf.js';
import { bpfl, IterAttachOpts } from '../ffi/loading.js';
import { sizeOf } from '../ffi/structs.js';
import { lastErrno } from '../ffi/native.js';
import { closeFd } from '../ffi/sys.js';
import { takeLibbpfWarnings } from '../ffi/log.js';
import { BpfError, Errno, NEEDS_PRIVILEGE } from '../errors.js';
import { Link } from '../link.js';

/** The program an iterator attach works on (a Program's internals). */
export interface IterProgram { readonly ptr: ProgPtr; readonly name: string; readonly section: string }

/** Options of attachIter. */
export interface IterOptions {
  /** For iter/bpf_map_elem (and other per-map iterators): the fd of the map to walk. */
  mapFd?: number;
}

/** An iterator link: each read() runs the program over what it iterates. */
export class IterLink extends Link {
  /** @internal made by attachIter. */
  constructor(fd: number, description: string, release: () => void) {
    super(fd, description, undefined, release);
  }

  /**
   * Runs the iterator once (a new iterator fd from bpf_iter_create) and
   * yields its output in chunks as the kernel produces them; the fd is
   * closed when the loop ends, even early. Throws a BpfError (the link was
   * detached, or the program's read failed, e.g. E2BIG for one record over
   * a page).
   */
  *read(chunkSize = 64 * 1024): Generator<Buffer, void, undefined> {
    const op = `read iterator ${this.description}`;
    if (!this.attached) throw new BpfError(op, Errno.EBADF, 'the iterator link is detached');
    const fd = bpfl.iter_create(this.fd);
    if (fd < 0) throw new BpfError(op, -fd);
    try {
      for (;;) {
        const buf = Buffer.alloc(chunkSize);
        let n: number;
        try {
          n = readSync(fd, buf, 0, buf.length, null);
        } catch (e) {
          const errno = (e as NodeJS.ErrnoException).errno;
          throw new BpfError(op, errno !== undefined ? -errno : Errno.EIO);
        }
        if (n === 0) return;
        yield buf.subarray(0, n);
      }
    } finally {
      closeFd(fd);
    }
  }

  /** Runs the iterator once and returns all of its output as text. Throws as read() does. */
  text(): string {
    return Buffer.concat([...this.read()]).toString('utf8');
  }

  /** Runs the iterator once and yields its output line by line (without the newlines). Throws as read() does. */
  *lines(): Generator<string, void, undefined> {
    let rest = '';
    for (const chunk of this.read()) {
      const parts = (rest + chunk.toString('utf8')).split('\n');
      rest = parts.pop()!;
      yield* parts;
    }
    if (rest) yield rest;
  }
}

/**
 * Attaches an iterator program (an iter/ section, e.g. iter/task) as an
 * iterator link; read its output with the link's read(), text() or
 * lines(). Per-map iterators (iter/bpf_map_elem) need `mapFd`. Needs Linux
 * >= 5.8 (task, bpf_map: 5.8; bpf_map_elem: 5.9; tcp/udp: 5.9) and BTF.
 * Throws a BpfError: EINVAL when the program is not an iterator (or a map
 * iterator lacks its map), ENOENT when the kernel has no such iterator.
 */
export function attachIter(prog: IterProgram, opts: IterOptions = {}): IterLink {
  const target = prog.section.replace(/^iter(\.s)?\//, '');
  const op = `attach iterator ${target}`;
  let info: Buffer | null = null;
  if (opts.mapFd !== undefined) {
    info = Buffer.alloc(16); // union bpf_iter_link_info: .map.map_fd first
    info.writeUInt32LE(opts.mapFd, 0);
  }
  const o = { sz: sizeOf(IterAttachOpts), link_info: info, link_info_len: info ? info.length : 0, _pad: 0 };
  const ptr: LinkPtr | null = bpfl.program_attach_iter(prog.ptr, o);
  const errno = lastErrno();
  if (!ptr) {
    const warn = takeLibbpfWarnings();
    const e = errno || Errno.EINVAL;
    if (e === Errno.EPERM) throw new BpfError(op, e, NEEDS_PRIVILEGE);
    if (e === Errno.EINVAL && /^bpf_map/.test(target) && opts.mapFd === undefined) throw new BpfError(op, e, `a ${target} iterator walks one map: pass its fd (mapFd)`);
    throw new BpfError(op, e, warn.length ? warn[warn.length - 1].replace(/^prog '[^']+': /, '') : undefined);
  }
  let destroyed = false;
  return new IterLink(bpf.link_fd(ptr), `iter ${prog.name} on ${target}`, () => {
    if (destroyed) return;
    destroyed = true;
    bpf.link_destroy(ptr);
  });
}
