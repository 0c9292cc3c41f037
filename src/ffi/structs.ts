/**
 * C struct layouts of libbpf's opts structs and the kernel's info structs,
 * declared with koffi struct types with explicit padding. Every opts struct
 * carries its own size in `sz`, as libbpf's forward/backward compatibility
 * scheme requires: declaring the libbpf 1.0/1.1 layout works on newer libbpf.
 */
import { koffi, type TypeObject } from './native.js';

/** struct bpf_test_run_opts (bpf.h) */
export const TestRunOpts = koffi.struct('bpf_test_run_opts', {
  sz: 'size_t',
  data_in: 'void *',
  data_out: 'void *',
  data_size_in: 'uint32_t',
  data_size_out: 'uint32_t',
  ctx_in: 'void *',
  ctx_out: 'void *',
  ctx_size_in: 'uint32_t',
  ctx_size_out: 'uint32_t',
  retval: 'uint32_t',
  repeat: 'int',
  duration: 'uint32_t',
  flags: 'uint32_t',
  cpu: 'uint32_t',
  batch_size: 'uint32_t',
});

/** struct bpf_xdp_query_opts (libbpf.h, 1.1 layout) */
export const XdpQueryOpts = koffi.struct('bpf_xdp_query_opts', {
  sz: 'size_t',
  prog_id: 'uint32_t',
  drv_prog_id: 'uint32_t',
  hw_prog_id: 'uint32_t',
  skb_prog_id: 'uint32_t',
  attach_mode: 'uint8_t',
  _pad: koffi.array('uint8_t', 7),
});

/** struct bpf_tc_hook (libbpf.h) */
export const TcHook = koffi.struct('bpf_tc_hook', {
  sz: 'size_t',
  ifindex: 'int',
  attach_point: 'int',
  parent: 'uint32_t',
  _pad: 'uint32_t',
});

/** struct bpf_tc_opts (libbpf.h) */
export const TcOpts = koffi.struct('bpf_tc_opts', {
  sz: 'size_t',
  prog_fd: 'int',
  flags: 'uint32_t',
  prog_id: 'uint32_t',
  handle: 'uint32_t',
  priority: 'uint32_t',
  _pad: 'uint32_t',
});

/** struct bpf_link_create_opts (bpf.h), only the members XDP/TC links use. */
export const LinkCreateOpts = koffi.struct('bpf_link_create_opts', {
  sz: 'size_t',
  flags: 'uint32_t',
  _pad0: 'uint32_t',
  iter_info: 'void *',
  iter_info_len: 'uint32_t',
  target_btf_id: 'uint32_t',
  _union: koffi.array('uint8_t', 40),
});

/** A bpf_link_create_opts value carrying only `flags` (e.g. an XDP mode). */
export function linkCreateOpts(flags: number): Record<string, unknown> {
  return { sz: koffi.sizeof(LinkCreateOpts), flags, _pad0: 0, iter_info: null, iter_info_len: 0, target_btf_id: 0, _union: new Array(40).fill(0) };
}

/** struct bpf_kprobe_opts (libbpf.h, 1.1 layout; 1.2+ appends attach_mode, which `sz` leaves at its default) */
export const KprobeOpts = koffi.struct('bpf_kprobe_opts', {
  sz: 'size_t',
  bpf_cookie: 'uint64_t',
  offset: 'size_t',
  retprobe: 'bool',
  _pad: koffi.array('uint8_t', 7),
});

/** struct bpf_uprobe_opts (libbpf.h, 1.1 layout; 1.2+ appends attach_mode, which `sz` leaves at its default) */
export const UprobeOpts = koffi.struct('bpf_uprobe_opts', {
  sz: 'size_t',
  ref_ctr_offset: 'size_t',
  bpf_cookie: 'uint64_t',
  retprobe: 'bool',
  _pad: koffi.array('uint8_t', 7),
  func_name: 'const char *',
});

/** struct bpf_map_batch_opts (bpf.h) */
export const MapBatchOpts = koffi.struct('bpf_map_batch_opts', {
  sz: 'size_t',
  elem_flags: 'uint64_t',
  flags: 'uint64_t',
});

/** struct bpf_prog_info (linux/bpf.h), the prefix up to the name and ifindex. */
export const ProgInfo = koffi.struct('bpf_prog_info', {
  type: 'uint32_t',
  id: 'uint32_t',
  tag: koffi.array('uint8_t', 8),
  jited_prog_len: 'uint32_t',
  xlated_prog_len: 'uint32_t',
  jited_prog_insns: 'uint64_t',
  xlated_prog_insns: 'uint64_t',
  load_time: 'uint64_t',
  created_by_uid: 'uint32_t',
  nr_map_ids: 'uint32_t',
  map_ids: 'uint64_t',
  name: koffi.array('char', 16, 'String'),
  ifindex: 'uint32_t',
  flags: 'uint32_t',
});

/** struct bpf_link_info (linux/bpf.h), its head: type, id, prog_id (the kernel fills at most info_len bytes). */
export const LinkInfoHead = koffi.struct('bpf_link_info_head', {
  type: 'uint32_t',
  id: 'uint32_t',
  prog_id: 'uint32_t',
});

/** struct bpf_map_info (linux/bpf.h) */
export const MapInfo = koffi.struct('bpf_map_info', {
  type: 'uint32_t',
  id: 'uint32_t',
  key_size: 'uint32_t',
  value_size: 'uint32_t',
  max_entries: 'uint32_t',
  map_flags: 'uint32_t',
  name: koffi.array('char', 16, 'String'),
  ifindex: 'uint32_t',
  btf_vmlinux_value_type_id: 'uint32_t',
  netns_dev: 'uint64_t',
  netns_ino: 'uint64_t',
  btf_id: 'uint32_t',
  btf_key_type_id: 'uint32_t',
  btf_value_type_id: 'uint32_t',
  _pad: 'uint32_t',
  map_extra: 'uint64_t',
});

/** struct btf_type (linux/btf.h): name_off, info, size-or-type. */
export const BtfType = koffi.struct('btf_type', {
  name_off: 'uint32_t',
  info: 'uint32_t',
  size_or_type: 'uint32_t',
});

/** struct btf_member (linux/btf.h) */
export const BtfMember = koffi.struct('btf_member', {
  name_off: 'uint32_t',
  type: 'uint32_t',
  offset: 'uint32_t',
});

/** struct btf_var_secinfo (linux/btf.h) */
export const BtfVarSecinfo = koffi.struct('btf_var_secinfo', {
  type: 'uint32_t',
  offset: 'uint32_t',
  size: 'uint32_t',
});

/** Encodes a JS object as the given struct into a new Buffer. */
export function encodeStruct(type: TypeObject, value: Record<string, unknown>): Buffer {
  const buf = Buffer.alloc(koffi.sizeof(type));
  koffi.encode(buf, 0, type, value);
  return buf;
}

/** Decodes a struct from a Buffer. */
export function decodeStruct<T>(type: TypeObject, buf: Buffer | bigint, offset = 0): T {
  return (typeof buf === 'bigint' ? koffi.decode(buf, offset, type) : koffi.decode(buf, offset, type)) as T;
}

/** sizeof a struct type. */
export function sizeOf(type: TypeObject): number {
  return koffi.sizeof(type);
}

/** struct if_nameindex (net/if.h): one entry of if_nameindex()'s array, which ends with { 0, NULL }. */
export const IfNameIndex = koffi.struct('if_nameindex', {
  if_index: 'unsigned int',
  if_name: 'char *',
});
