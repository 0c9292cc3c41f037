/**
 * libbpf's calls for configuring an object before load (open options with a
 * pin root, per-program type and autoload, map pin paths), iterators and
 * USDT probes. Kept apart from libbpf.ts, same conventions: raw libbpf
 * values (-errno, or NULL with errno set), never throws.
 */
import { koffi, libbpf, func } from './native.js';
import type { LinkPtr, MapPtr, ObjPtr, ProgPtr } from './libbpf.js';

/** struct bpf_object_open_opts (libbpf.h, 1.1 layout; newer libbpf appends fields that `sz` leaves at their defaults) */
export const ObjectOpenOpts = koffi.struct('bpf_object_open_opts', {
  sz: 'size_t',
  object_name: 'const char *',
  relaxed_maps: 'bool',
  _pad0: koffi.array('uint8_t', 7),
  pin_root_path: 'const char *',
  _attach_prog_fd: 'uint32_t',
  _pad1: 'uint32_t',
  kconfig: 'const char *',
  btf_custom_path: 'const char *',
  kernel_log_buf: 'void *',
  kernel_log_size: 'size_t',
  kernel_log_level: 'uint32_t',
  _pad2: 'uint32_t',
});

/** JS mirror of ObjectOpenOpts. */
export interface ObjectOpenOptsIn {
  sz: number; object_name: string | null; relaxed_maps: boolean; _pad0: number[]; pin_root_path: string | null;
  _attach_prog_fd: number; _pad1: number; kconfig: string | null; btf_custom_path: string | null;
  kernel_log_buf: null; kernel_log_size: number; kernel_log_level: number; _pad2: number;
}

/** Open options carrying only a pin root (null: libbpf's default, /sys/fs/bpf). */
export function objectOpenOpts(pinRoot: string | null): ObjectOpenOptsIn {
  return {
    sz: koffi.sizeof(ObjectOpenOpts), object_name: null, relaxed_maps: false, _pad0: new Array(7).fill(0), pin_root_path: pinRoot,
    _attach_prog_fd: 0, _pad1: 0, kconfig: null, btf_custom_path: null, kernel_log_buf: null, kernel_log_size: 0, kernel_log_level: 0, _pad2: 0,
  };
}

/** struct bpf_usdt_opts (libbpf.h, >= 0.8) */
export const UsdtOpts = koffi.struct('bpf_usdt_opts', {
  sz: 'size_t',
  usdt_cookie: 'uint64_t',
});

/** struct bpf_iter_attach_opts (libbpf.h) */
export const IterAttachOpts = koffi.struct('bpf_iter_attach_opts', {
  sz: 'size_t',
  link_info: 'void *',
  link_info_len: 'uint32_t',
  _pad: 'uint32_t',
});

/** The libbpf calls of this module, by libbpf name without the prefix. */
export const bpfl = {
  object_open_file: func<(path: string, opts: ObjectOpenOptsIn) => ObjPtr | null>(
    libbpf, 'void *bpf_object__open_file(const char *path, const bpf_object_open_opts *opts)'),
  object_open_mem: func<(buf: Buffer, size: number, opts: ObjectOpenOptsIn) => ObjPtr | null>(
    libbpf, 'void *bpf_object__open_mem(const void *buf, size_t size, const bpf_object_open_opts *opts)'),

  program_autoload: func<(p: ProgPtr) => boolean>(libbpf, 'bool bpf_program__autoload(void *prog)'),
  program_set_autoload: func<(p: ProgPtr, on: boolean) => number>(libbpf, 'int bpf_program__set_autoload(void *prog, bool autoload)'),
  program_set_type: func<(p: ProgPtr, type: number) => number>(libbpf, 'int bpf_program__set_type(void *prog, int type)'),
  program_expected_attach_type: func<(p: ProgPtr) => number>(libbpf, 'int bpf_program__expected_attach_type(void *prog)'),
  program_set_expected_attach_type: func<(p: ProgPtr, type: number) => number>(
    libbpf, 'int bpf_program__set_expected_attach_type(void *prog, int type)'),

  map_set_pin_path: func<(m: MapPtr, path: string | null) => number>(libbpf, 'int bpf_map__set_pin_path(void *map, const char *path)'),
  map_pin_path: func<(m: MapPtr) => string | null>(libbpf, 'const char *bpf_map__pin_path(void *map)'),
  map_is_pinned: func<(m: MapPtr) => boolean>(libbpf, 'bool bpf_map__is_pinned(void *map)'),
  map_unpin: func<(m: MapPtr, path: string | null) => number>(libbpf, 'int bpf_map__unpin(void *map, const char *path)'),
  map_is_internal: func<(m: MapPtr) => boolean>(libbpf, 'bool bpf_map__is_internal(void *map)'),

  // iterators
  program_attach_iter: func<(p: ProgPtr, opts: { sz: number; link_info: Buffer | null; link_info_len: number; _pad: number } | null) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_iter(void *prog, const bpf_iter_attach_opts *opts)'),
  iter_create: func<(linkFd: number) => number>(libbpf, 'int bpf_iter_create(int link_fd)'),

  // USDT (libbpf >= 0.8)
  program_attach_usdt: func<(p: ProgPtr, pid: number, binaryPath: string, provider: string, name: string, opts: { sz: number; usdt_cookie: bigint } | null) => LinkPtr | null>(
    libbpf, 'void *bpf_program__attach_usdt(void *prog, int pid, const char *binary_path, const char *usdt_provider, const char *usdt_name, const bpf_usdt_opts *opts)'),

  // libbpf's names of kernel enums (what bpftool prints), NULL for a number it does not know
  prog_type_str: func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_prog_type_str(int t)'),
  map_type_str: func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_map_type_str(int t)'),
  attach_type_str: func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_attach_type_str(int t)'),
  link_type_str: func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_link_type_str(int t)'),
} as const;
