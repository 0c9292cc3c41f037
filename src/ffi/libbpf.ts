/**
 * libbpf's prototypes, declared for koffi. Handles are opaque pointers,
 * represented as branded bigints that only src/ffi and the typed API's
 * private fields ever hold. Functions return libbpf's raw values: the sign
 * of -errno returns is normalised by callers through errno.ts.
 */
import { libbpf, libc, func, koffi } from './native.js';
import './structs.js'; // declares the struct types named in the prototypes below

/** An opaque native pointer of a given C type. Never exported past the typed API. */
export type Ptr<T extends string> = bigint & { readonly __ptr: T };
export type ObjPtr = Ptr<'bpf_object'>;
export type ProgPtr = Ptr<'bpf_program'>;
export type MapPtr = Ptr<'bpf_map'>;
export type BtfPtr = Ptr<'btf'>;
export type LinkPtr = Ptr<'bpf_link'>;
/** Memory passed in or out of native calls. */
type Mem = Buffer | Uint8Array | bigint | null;

type OutSize = [number | bigint];

/** JS mirrors of the opts structs of structs.ts (koffi marshals them). */
export interface TestRunOptsIn {
  sz: number; data_in: Mem; data_out: Mem; data_size_in: number; data_size_out: number;
  ctx_in: Mem; ctx_out: Mem; ctx_size_in: number; ctx_size_out: number;
  retval: number; repeat: number; duration: number; flags: number; cpu: number; batch_size: number;
}
export interface XdpQueryOptsIn {
  sz: number; prog_id: number; drv_prog_id: number; hw_prog_id: number; skb_prog_id: number; attach_mode: number;
}
export interface TcHookIn { sz: number; ifindex: number; attach_point: number; parent: number }
export interface TcOptsIn { sz: number; prog_fd: number; flags: number; prog_id: number; handle: number; priority: number }
export interface KprobeOptsIn { sz: number; bpf_cookie: number | bigint; offset: number; retprobe: boolean; _pad: number[] }
export interface UprobeOptsIn { sz: number; ref_ctr_offset: number; bpf_cookie: number | bigint; retprobe: boolean; _pad: number[]; func_name: string | null }
export interface BatchOpts { sz: number; elem_flags: number; flags: number }

/**
 * libbpf's functions used by the typed API, by libbpf name without the
 * prefix (bpf_object__load -> object_load). They return libbpf's raw values
 * (-errno, or NULL with errno set) and never throw.
 */
export const bpf = {
  // object
  object_open_file: func<(path: string, opts: Buffer | null) => ObjPtr | null>(
    libbpf, 'void *bpf_object__open_file(const char *path, const void *opts)'),
  object_open_mem: func<(buf: Buffer, size: number, opts: Buffer | null) => ObjPtr | null>(
    libbpf, 'void *bpf_object__open_mem(const void *buf, size_t size, const void *opts)'),
  object_load: func<(obj: ObjPtr) => number>(libbpf, 'int bpf_object__load(void *obj)'),
  object_close: func<(obj: ObjPtr) => void>(libbpf, 'void bpf_object__close(void *obj)'),
  object_name: func<(obj: ObjPtr) => string>(libbpf, 'const char *bpf_object__name(void *obj)'),
  object_btf: func<(obj: ObjPtr) => BtfPtr | null>(libbpf, 'void *bpf_object__btf(void *obj)'),
  object_next_program: func<(obj: ObjPtr, prev: ProgPtr | null) => ProgPtr | null>(
    libbpf, 'void *bpf_object__next_program(void *obj, void *prev)'),
  object_next_map: func<(obj: ObjPtr, prev: MapPtr | null) => MapPtr | null>(
    libbpf, 'void *bpf_object__next_map(void *obj, void *prev)'),

  // program
  program_name: func<(p: ProgPtr) => string>(libbpf, 'const char *bpf_program__name(void *prog)'),
  program_section_name: func<(p: ProgPtr) => string>(libbpf, 'const char *bpf_program__section_name(void *prog)'),
  program_type: func<(p: ProgPtr) => number>(libbpf, 'int bpf_program__type(void *prog)'),
  program_fd: func<(p: ProgPtr) => number>(libbpf, 'int bpf_program__fd(void *prog)'),
  program_set_log_buf: func<(p: ProgPtr, buf: Buffer, size: number) => number>(
    libbpf, 'int bpf_program__set_log_buf(void *prog, char *buf, size_t size)'),
  program_set_log_level: func<(p: ProgPtr, level: number) => number>(
    libbpf, 'int bpf_program__set_log_level(void *prog, uint32_t level)'),

  // attach through libbpf's bpf_link objects (NULL + errno on failure)
  program_attach: func<(p: ProgPtr) => LinkPtr | null>(libbpf, 'void *bpf_program__attach(void *prog)'),
  program_attach_tracepoint: func<(p: ProgPtr, category: string, name: string) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_tracepoint(void *prog, const char *tp_category, const char *tp_name)'),
  program_attach_raw_tracepoint: func<(p: ProgPtr, name: string) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_raw_tracepoint(void *prog, const char *tp_name)'),
  program_attach_kprobe_opts: func<(p: ProgPtr, funcName: string | null, opts: KprobeOptsIn) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_kprobe_opts(void *prog, const char *func_name, const bpf_kprobe_opts *opts)'),
  program_attach_uprobe_opts: func<(p: ProgPtr, pid: number, binaryPath: string, funcOffset: number, opts: UprobeOptsIn) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_uprobe_opts(void *prog, int pid, const char *binary_path, size_t func_offset, const bpf_uprobe_opts *opts)'),
  program_attach_trace: func<(p: ProgPtr) => LinkPtr | null>(libbpf, 'void *bpf_program__attach_trace(void *prog)'),
  program_attach_perf_event: func<(p: ProgPtr, pfd: number) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_perf_event(void *prog, int pfd)'),
  link_fd: func<(l: LinkPtr) => number>(libbpf, 'int bpf_link__fd(void *link)'),
  link_destroy: func<(l: LinkPtr) => number>(libbpf, 'int bpf_link__destroy(void *link)'),

  // map (object side)
  map_name: func<(m: MapPtr) => string>(libbpf, 'const char *bpf_map__name(void *map)'),
  map_type: func<(m: MapPtr) => number>(libbpf, 'int bpf_map__type(void *map)'),
  map_fd: func<(m: MapPtr) => number>(libbpf, 'int bpf_map__fd(void *map)'),
  map_key_size: func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__key_size(void *map)'),
  map_value_size: func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__value_size(void *map)'),
  map_max_entries: func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__max_entries(void *map)'),
  map_flags: func<(m: MapPtr) => number>(libbpf, 'uint32_t bpf_map__map_flags(void *map)'),
  map_set_max_entries: func<(m: MapPtr, n: number) => number>(
    libbpf, 'int bpf_map__set_max_entries(void *map, uint32_t n)'),
  map_initial_value: func<(m: MapPtr, size: OutSize) => bigint | null>(
    libbpf, 'void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
  map_reuse_fd: func<(m: MapPtr, fd: number) => number>(libbpf, 'int bpf_map__reuse_fd(void *map, int fd)'),
  map_set_initial_value: func<(m: MapPtr, data: Buffer, size: number) => number>(
    libbpf, 'int bpf_map__set_initial_value(void *map, const void *data, size_t size)'),

  // low level, on fds (bpf.h)
  // The same three calls taking addresses as plain numbers (intptr_t): the
  // cheapest argument conversion koffi has, for single-element hot paths.
  map_lookup_elem_at: func<(fd: number, key: number, value: number) => number>(
    libbpf, 'int bpf_map_lookup_elem(int fd, intptr_t key, intptr_t value)'),
  map_update_elem_at: func<(fd: number, key: number, value: number, flags: number) => number>(
    libbpf, 'int bpf_map_update_elem(int fd, intptr_t key, intptr_t value, uint64_t flags)'),
  map_delete_elem_at: func<(fd: number, key: number) => number>(
    libbpf, 'int bpf_map_delete_elem(int fd, intptr_t key)'),
  map_get_next_key: func<(fd: number, key: Mem, next: Mem) => number>(
    libbpf, 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  map_lookup_batch: func<(fd: number, inBatch: Mem, outBatch: Mem, keys: Mem, values: Mem, count: Uint32Array, opts: BatchOpts | null) => number>(
    libbpf, 'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, uint32_t *count, const bpf_map_batch_opts *opts)'),
  map_update_batch: func<(fd: number, keys: Mem, values: Mem, count: Uint32Array, opts: BatchOpts | null) => number>(
    libbpf, 'int bpf_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count, const bpf_map_batch_opts *opts)'),
  map_delete_batch: func<(fd: number, keys: Mem, count: Uint32Array, opts: BatchOpts | null) => number>(
    libbpf, 'int bpf_map_delete_batch(int fd, const void *keys, uint32_t *count, const bpf_map_batch_opts *opts)'),
  map_create: func<(type: number, name: string | null, keySize: number, valueSize: number, maxEntries: number, opts: Buffer | null) => number>(
    libbpf, 'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)'),
  prog_get_info_by_fd: func<(fd: number, info: Record<string, unknown>, len: [number]) => number>(
    libbpf, 'int bpf_obj_get_info_by_fd(int fd, _Inout_ bpf_prog_info *info, _Inout_ uint32_t *info_len)'),
  map_get_info_by_fd: func<(fd: number, info: Record<string, unknown>, len: [number]) => number>(
    libbpf, 'int bpf_obj_get_info_by_fd(int fd, _Inout_ bpf_map_info *info, _Inout_ uint32_t *info_len)'),
  link_get_info_by_fd: func<(fd: number, info: Record<string, unknown>, len: [number]) => number>(
    libbpf, 'int bpf_obj_get_info_by_fd(int fd, _Inout_ bpf_link_info_head *info, _Inout_ uint32_t *info_len)'),
  obj_pin: func<(fd: number, path: string) => number>(libbpf, 'int bpf_obj_pin(int fd, const char *path)'),
  obj_get: func<(path: string) => number>(libbpf, 'int bpf_obj_get(const char *path)'),
  prog_get_fd_by_id: func<(id: number) => number>(libbpf, 'int bpf_prog_get_fd_by_id(uint32_t id)'),
  prog_get_next_id: func<(start: number, next: Uint32Array) => number>(
    libbpf, 'int bpf_prog_get_next_id(uint32_t start_id, uint32_t *next_id)'),
  prog_test_run_opts: func<(fd: number, opts: TestRunOptsIn) => number>(
    libbpf, 'int bpf_prog_test_run_opts(int prog_fd, _Inout_ bpf_test_run_opts *opts)'),
  prog_load: func<(type: number, name: string | null, license: string, insns: Buffer, insnCnt: number, opts: Buffer | null) => number>(
    libbpf, 'int bpf_prog_load(int prog_type, const char *prog_name, const char *license, const void *insns, size_t insn_cnt, const void *opts)'),
  link_create: func<(progFd: number, targetFd: number, attachType: number, opts: Record<string, unknown> | null) => number>(
    libbpf, 'int bpf_link_create(int prog_fd, int target_fd, int attach_type, const bpf_link_create_opts *opts)'),
  link_detach: func<(fd: number) => number>(libbpf, 'int bpf_link_detach(int link_fd)'),
  link_update: func<(fd: number, newProgFd: number, opts: null) => number>(
    libbpf, 'int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),

  // XDP (netlink) query and legacy attach
  xdp_query: func<(ifindex: number, flags: number, opts: XdpQueryOptsIn) => number>(
    libbpf, 'int bpf_xdp_query(int ifindex, int flags, _Inout_ bpf_xdp_query_opts *opts)'),
  xdp_attach: func<(ifindex: number, progFd: number, flags: number, opts: Buffer | null) => number>(
    libbpf, 'int bpf_xdp_attach(int ifindex, int prog_fd, uint32_t flags, const void *opts)'),
  xdp_detach: func<(ifindex: number, flags: number, opts: Buffer | null) => number>(
    libbpf, 'int bpf_xdp_detach(int ifindex, uint32_t flags, const void *opts)'),

  // TC (netlink)
  tc_hook_create: func<(hook: TcHookIn) => number>(libbpf, 'int bpf_tc_hook_create(bpf_tc_hook *hook)'),
  tc_hook_destroy: func<(hook: TcHookIn) => number>(libbpf, 'int bpf_tc_hook_destroy(bpf_tc_hook *hook)'),
  tc_attach: func<(hook: TcHookIn, opts: TcOptsIn) => number>(
    libbpf, 'int bpf_tc_attach(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),
  tc_detach: func<(hook: TcHookIn, opts: TcOptsIn) => number>(
    libbpf, 'int bpf_tc_detach(const bpf_tc_hook *hook, const bpf_tc_opts *opts)'),
  tc_query: func<(hook: TcHookIn, opts: TcOptsIn) => number>(
    libbpf, 'int bpf_tc_query(const bpf_tc_hook *hook, _Inout_ bpf_tc_opts *opts)'),

  // BTF
  btf_parse: func<(path: string, ext: null) => BtfPtr | null>(libbpf, 'void *btf__parse(const char *path, void *ext)'),
  btf_free: func<(btf: BtfPtr) => void>(libbpf, 'void btf__free(void *btf)'),
  btf_find_by_name_kind: func<(btf: BtfPtr, name: string, kind: number) => number>(
    libbpf, 'int32_t btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
  btf_type_by_id: func<(btf: BtfPtr, id: number) => bigint | null>(
    libbpf, 'void *btf__type_by_id(void *btf, uint32_t id)'),
  btf_name_by_offset: func<(btf: BtfPtr, off: number) => string | null>(
    libbpf, 'const char *btf__name_by_offset(void *btf, uint32_t offset)'),
  btf_resolve_size: func<(btf: BtfPtr, id: number) => number | bigint>(
    libbpf, 'int64_t btf__resolve_size(void *btf, uint32_t type_id)'),

  // misc
  num_possible_cpus: func<() => number>(libbpf, 'int libbpf_num_possible_cpus(void)'),
} as const;

/** libc functions the library needs. */
export const c = {
  close: func<(fd: number) => number>(libc, 'int close(int fd)'),
  if_nametoindex: func<(name: string) => number>(libc, 'unsigned int if_nametoindex(const char *name)'),
  if_indextoname: func<(index: number, buf: Buffer) => string | null>(
    libc, 'const char *if_indextoname(unsigned int index, char *buf)'),
  if_nameindex: func<() => bigint | null>(libc, 'void *if_nameindex(void)'),
  if_freenameindex: func<(p: bigint) => void>(libc, 'void if_freenameindex(void *ptr)'),
  mmap: func<(addr: null, len: number, prot: number, flags: number, fd: number, off: number) => bigint>(
    libc, 'void *mmap(void *addr, size_t len, int prot, int flags, int fd, intptr_t off)'),
  munmap: func<(addr: bigint, len: number) => number>(libc, 'int munmap(void *addr, size_t len)'),
  mount: func<(src: string, target: string, fstype: string, flags: number, data: null) => number>(
    libc, 'int mount(const char *src, const char *target, const char *fstype, unsigned long flags, const void *data)'),
  getpagesize: func<() => number>(libc, 'int getpagesize(void)'),
  geteuid: func<() => number>(libc, 'unsigned int geteuid(void)'),
};

/** mmap's MAP_FAILED. */
export const MAP_FAILED = 0xffffffffffffffffn;

/** An ArrayBuffer over native memory (the caller keeps the mapping alive). */
export function viewOf(ptr: bigint, len: number): ArrayBuffer {
  return koffi.view(ptr, len);
}
