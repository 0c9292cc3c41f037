/**
 * What inspecting the system's BPF state needs beyond loading: walking the
 * kernel's program and link ids, raw info structs (read into Buffers the
 * typed layer decodes), BPF_PROG_QUERY, netlink route sockets (for tc
 * filter dumps), setns(2) and CLOCK_BOOTTIME. Nothing here throws: every
 * function returns libbpf's/libc's raw result or an errno.
 */
import { readlinkSync } from 'node:fs';
import { func, lastErrno, libbpf, libc } from './native.js';

const raw = {
  link_get_next_id: func<(start: number, next: Uint32Array) => number>(
    libbpf, 'int bpf_link_get_next_id(uint32_t start_id, uint32_t *next_id)'),
  link_get_fd_by_id: func<(id: number) => number>(libbpf, 'int bpf_link_get_fd_by_id(uint32_t id)'),
  prog_get_next_id: func<(start: number, next: Uint32Array) => number>(
    libbpf, 'int bpf_prog_get_next_id(uint32_t start_id, uint32_t *next_id)'),
  prog_get_fd_by_id: func<(id: number) => number>(libbpf, 'int bpf_prog_get_fd_by_id(uint32_t id)'),
  map_get_next_id: func<(start: number, next: Uint32Array) => number>(
    libbpf, 'int bpf_map_get_next_id(uint32_t start_id, uint32_t *next_id)'),
  map_get_fd_by_id: func<(id: number) => number>(libbpf, 'int bpf_map_get_fd_by_id(uint32_t id)'),
  obj_get: func<(path: string) => number>(libbpf, 'int bpf_obj_get(const char *path)'),
  obj_get_info_by_fd: func<(fd: number, info: Buffer, len: Uint32Array) => number>(
    libbpf, 'int bpf_obj_get_info_by_fd(int fd, void *info, uint32_t *info_len)'),
  prog_query: func<(target: number, type: number, flags: number, attachFlags: Uint32Array, ids: Uint32Array, cnt: Uint32Array) => number>(
    libbpf, 'int bpf_prog_query(int target_fd, int type, uint32_t query_flags, uint32_t *attach_flags, uint32_t *prog_ids, uint32_t *prog_cnt)'),
  close: func<(fd: number) => number>(libc, 'int close(int fd)'),
  setns: func<(fd: number, nstype: number) => number>(libc, 'int setns(int fd, int nstype)'),
  clock_gettime: func<(clk: number, ts: Buffer) => number>(libc, 'int clock_gettime(int clk, void *ts)'),
  socket: func<(domain: number, type: number, proto: number) => number>(libc, 'int socket(int domain, int type, int protocol)'),
  send: func<(fd: number, buf: Buffer, len: number, flags: number) => number>(libc, 'intptr_t send(int fd, const void *buf, size_t len, int flags)'),
  recv: func<(fd: number, buf: Buffer, len: number, flags: number) => number>(libc, 'intptr_t recv(int fd, void *buf, size_t len, int flags)'),
  malloc: func<(n: number) => bigint | null>(libc, 'void *malloc(size_t n)'),
  free: func<(p: bigint) => void>(libc, 'void free(void *p)'),
  memcpy: func<(dst: Buffer, src: bigint, n: number) => bigint>(libc, 'void *memcpy(void *dst, const void *src, size_t n)'),
};

/**
 * The id after `start` of a kind of kernel object ('prog', 'map', 'link'), or
 * -errno: -ENOENT past the last one, -EPERM when not privileged.
 */
export function nextId(kind: 'prog' | 'link' | 'map', start: number): number {
  const next = new Uint32Array(1);
  const r = kind === 'prog' ? raw.prog_get_next_id(start, next) : kind === 'map' ? raw.map_get_next_id(start, next) : raw.link_get_next_id(start, next);
  return r === 0 ? next[0] : -(lastErrno() || -r);
}

/** An fd of the program, map or link with this id, or -errno (ENOENT: no such id; EPERM: not root). */
export function fdById(kind: 'prog' | 'link' | 'map', id: number): number {
  const fd = kind === 'prog' ? raw.prog_get_fd_by_id(id) : kind === 'map' ? raw.map_get_fd_by_id(id) : raw.link_get_fd_by_id(id);
  return fd >= 0 ? fd : -(lastErrno() || -fd);
}

/** bpf_obj_get: an fd of what is pinned at `path`, or -errno. */
export function fdOfPin(path: string): number {
  const fd = raw.obj_get(path);
  return fd >= 0 ? fd : -(lastErrno() || -fd);
}

/**
 * What kind of BPF object an fd refers to ('prog', 'map', 'link'), from its
 * anonymous inode's name (a link made by id is "bpf-link", one made by
 * its creator "bpf_link"), or undefined for anything else.
 */
export function bpfFdKind(fd: number): 'prog' | 'map' | 'link' | undefined {
  let target: string;
  try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { return undefined; }
  return target === 'anon_inode:bpf-prog' ? 'prog' : target === 'anon_inode:bpf-map' ? 'map' : target === 'anon_inode:bpf_link' || target === 'anon_inode:bpf-link' ? 'link' : undefined;
}

/** Closes an fd (ignoring errors). */
export function closeFd(fd: number): void {
  if (fd >= 0) raw.close(fd);
}

/**
 * Scratch native memory the kernel writes into during an info call (map id
 * arrays, name strings). `fill` gets the address to put in the info struct;
 * `read` copies the bytes out afterwards.
 */
export interface Scratch {
  readonly address: bigint;
  read(len: number): Buffer;
}

/**
 * BPF_OBJ_GET_INFO_BY_FD into `info` (zeroed by the caller, or filled with
 * the sizes and the addresses of `scratch` areas by `prepare`). `prepare`
 * gets one Scratch of `scratchSize` bytes per entry. Returns 0 or -errno,
 * and the scratch areas' contents (copied, `scratchSize` bytes each).
 */
export function objInfo(fd: number, info: Buffer, scratchSizes: number[] = [], prepare?: (addresses: bigint[]) => void): { r: number; scratch: Buffer[] } {
  const mems: bigint[] = [];
  try {
    for (const n of scratchSizes) {
      const p = raw.malloc(Math.max(8, n));
      if (!p) return { r: -12, scratch: [] };
      mems.push(p);
    }
    prepare?.(mems);
    const len = new Uint32Array([info.length]);
    const r = raw.obj_get_info_by_fd(fd, info, len);
    const e = r < 0 ? -(lastErrno() || -r) : 0;
    const scratch = mems.map((p, i) => { const b = Buffer.alloc(scratchSizes[i]); if (scratchSizes[i]) raw.memcpy(b, p, scratchSizes[i]); return b; });
    return { r: e, scratch };
  } finally {
    for (const p of mems) raw.free(p);
  }
}

/**
 * BPF_PROG_QUERY of `target` (an ifindex for TCX, a cgroup fd...) and
 * attach type: the attached program ids, or -errno.
 */
export function progQuery(target: number, attachType: number, max = 64): number[] | number {
  const ids = new Uint32Array(max);
  const cnt = new Uint32Array([max]);
  const flags = new Uint32Array(1);
  const r = raw.prog_query(target, attachType, 0, flags, ids, cnt);
  if (r < 0) return -(lastErrno() || -r);
  return Array.from(ids.subarray(0, Math.min(max, cnt[0])));
}

const CLONE_NEWNET = 0x40000000;

/** setns(fd, CLONE_NEWNET) for the calling thread: 0 or the errno. */
export function setNetns(fd: number): number {
  return raw.setns(fd, CLONE_NEWNET) === 0 ? 0 : lastErrno();
}

const CLOCK_BOOTTIME = 7;

/** CLOCK_BOOTTIME in ns (the clock of bpf_prog_info.load_time). */
export function boottimeNs(): bigint {
  const ts = Buffer.alloc(16);
  raw.clock_gettime(CLOCK_BOOTTIME, ts);
  return ts.readBigInt64LE(0) * 1_000_000_000n + ts.readBigInt64LE(8);
}

const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;

/**
 * Sends one netlink request on a fresh NETLINK_ROUTE socket and collects the
 * reply datagrams until `done` says the reply is complete (a dump's
 * NLMSG_DONE or an error). Returns the datagrams, or the errno.
 */
export function netlinkRoute(request: Buffer, done: (datagram: Buffer) => boolean): Buffer[] | { errno: number } {
  const fd = raw.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return { errno: lastErrno() };
  try {
    if (raw.send(fd, request, request.length, 0) < 0) return { errno: lastErrno() };
    const out: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    for (;;) {
      const n = raw.recv(fd, buf, buf.length, 0);
      if (n < 0) return { errno: lastErrno() };
      const d = Buffer.from(buf.subarray(0, n));
      out.push(d);
      if (n === 0 || done(d)) return out;
    }
  } finally {
    raw.close(fd);
  }
}
