/**
 * The kernel's numbering of program, map, attach and link types (enum
 * bpf_prog_type, bpf_map_type, bpf_attach_type, bpf_link_type of
 * linux/bpf.h, up to Linux 6.18), and their names as bpftool prints them.
 * Pure tables: no kernel needed.
 */

/** Program types by kernel number (enum bpf_prog_type). */
export const ProgType = {
  UNSPEC: 0, SOCKET_FILTER: 1, KPROBE: 2, SCHED_CLS: 3, SCHED_ACT: 4, TRACEPOINT: 5, XDP: 6, PERF_EVENT: 7,
  CGROUP_SKB: 8, CGROUP_SOCK: 9, LWT_IN: 10, LWT_OUT: 11, LWT_XMIT: 12, SOCK_OPS: 13, SK_SKB: 14,
  CGROUP_DEVICE: 15, SK_MSG: 16, RAW_TRACEPOINT: 17, CGROUP_SOCK_ADDR: 18, LWT_SEG6LOCAL: 19, LIRC_MODE2: 20,
  SK_REUSEPORT: 21, FLOW_DISSECTOR: 22, CGROUP_SYSCTL: 23, RAW_TRACEPOINT_WRITABLE: 24, CGROUP_SOCKOPT: 25,
  TRACING: 26, STRUCT_OPS: 27, EXT: 28, LSM: 29, SK_LOOKUP: 30, SYSCALL: 31, NETFILTER: 32,
} as const;
/** A program type's name, as in ProgType ("XDP", "SCHED_CLS"). */
export type ProgTypeName = keyof typeof ProgType;

/** Map types by kernel number (enum bpf_map_type). */
export const MapType = {
  UNSPEC: 0, HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERF_EVENT_ARRAY: 4, PERCPU_HASH: 5, PERCPU_ARRAY: 6,
  STACK_TRACE: 7, CGROUP_ARRAY: 8, LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13, DEVMAP: 14, SOCKMAP: 15, CPUMAP: 16, XSKMAP: 17, SOCKHASH: 18, CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20, PERCPU_CGROUP_STORAGE: 21, QUEUE: 22, STACK: 23, SK_STORAGE: 24, DEVMAP_HASH: 25,
  STRUCT_OPS: 26, RINGBUF: 27, INODE_STORAGE: 28, TASK_STORAGE: 29, BLOOM_FILTER: 30, USER_RINGBUF: 31,
  CGRP_STORAGE: 32, ARENA: 33,
} as const;
/** A map type's name, as in MapType ("HASH", "RINGBUF"). */
export type MapTypeName = keyof typeof MapType;

/** Attach types by kernel number (enum bpf_attach_type). */
export const AttachType = {
  CGROUP_INET_INGRESS: 0, CGROUP_INET_EGRESS: 1, CGROUP_INET_SOCK_CREATE: 2, CGROUP_SOCK_OPS: 3,
  SK_SKB_STREAM_PARSER: 4, SK_SKB_STREAM_VERDICT: 5, CGROUP_DEVICE: 6, SK_MSG_VERDICT: 7, CGROUP_INET4_BIND: 8,
  CGROUP_INET6_BIND: 9, CGROUP_INET4_CONNECT: 10, CGROUP_INET6_CONNECT: 11, CGROUP_INET4_POST_BIND: 12,
  CGROUP_INET6_POST_BIND: 13, CGROUP_UDP4_SENDMSG: 14, CGROUP_UDP6_SENDMSG: 15, LIRC_MODE2: 16, FLOW_DISSECTOR: 17,
  CGROUP_SYSCTL: 18, CGROUP_UDP4_RECVMSG: 19, CGROUP_UDP6_RECVMSG: 20, CGROUP_GETSOCKOPT: 21, CGROUP_SETSOCKOPT: 22,
  TRACE_RAW_TP: 23, TRACE_FENTRY: 24, TRACE_FEXIT: 25, MODIFY_RETURN: 26, LSM_MAC: 27, TRACE_ITER: 28,
  CGROUP_INET4_GETPEERNAME: 29, CGROUP_INET6_GETPEERNAME: 30, CGROUP_INET4_GETSOCKNAME: 31, CGROUP_INET6_GETSOCKNAME: 32,
  XDP_DEVMAP: 33, CGROUP_INET_SOCK_RELEASE: 34, XDP_CPUMAP: 35, SK_LOOKUP: 36, XDP: 37, SK_SKB_VERDICT: 38,
  SK_REUSEPORT_SELECT: 39, SK_REUSEPORT_SELECT_OR_MIGRATE: 40, PERF_EVENT: 41, TRACE_KPROBE_MULTI: 42, LSM_CGROUP: 43,
  STRUCT_OPS: 44, NETFILTER: 45, TCX_INGRESS: 46, TCX_EGRESS: 47, TRACE_UPROBE_MULTI: 48, CGROUP_UNIX_CONNECT: 49,
  CGROUP_UNIX_SENDMSG: 50, CGROUP_UNIX_RECVMSG: 51, CGROUP_UNIX_GETPEERNAME: 52, CGROUP_UNIX_GETSOCKNAME: 53,
  NETKIT_PRIMARY: 54, NETKIT_PEER: 55, TRACE_KPROBE_SESSION: 56, TRACE_UPROBE_SESSION: 57,
} as const;
/** An attach type's name, as in AttachType ("CGROUP_INET4_CONNECT"). */
export type AttachTypeName = keyof typeof AttachType;

/** Link types by kernel number (enum bpf_link_type). */
export const LinkType = {
  UNSPEC: 0, RAW_TRACEPOINT: 1, TRACING: 2, CGROUP: 3, ITER: 4, NETNS: 5, XDP: 6, PERF_EVENT: 7,
  KPROBE_MULTI: 8, STRUCT_OPS: 9, NETFILTER: 10, TCX: 11, UPROBE_MULTI: 12, NETKIT: 13, SOCKMAP: 14,
} as const;

function namesOf(table: Record<string, number>): Map<number, string> {
  return new Map(Object.entries(table).map(([k, v]) => [v, k.toLowerCase()]));
}
const PROG_NAMES = namesOf(ProgType);
const MAP_NAMES = namesOf(MapType);
const ATTACH_NAMES = namesOf(AttachType);
const LINK_NAMES = namesOf(LinkType);

/** A program type's name as bpftool prints it ("sched_cls"), or "type N" for a number this table lacks. */
export function progTypeName(type: number): string {
  return PROG_NAMES.get(type) ?? `type ${type}`;
}
/** A map type's name as bpftool prints it ("percpu_array"), or "type N". */
export function mapTypeName(type: number): string {
  return MAP_NAMES.get(type) ?? `type ${type}`;
}
/** An attach type's name as bpftool prints it ("cgroup_inet4_connect"), or "attach type N". */
export function attachTypeName(type: number): string {
  return ATTACH_NAMES.get(type) ?? `attach type ${type}`;
}
/** A link type's name as bpftool prints it ("perf_event"), or "type N". */
export function linkTypeName(type: number): string {
  return LINK_NAMES.get(type) ?? `type ${type}`;
}

/** The number of a program type given by number or by name (either case). Throws a RangeError for an unknown name. */
export function progTypeOf(type: number | string): number {
  if (typeof type === 'number') return type;
  const n = (ProgType as Record<string, number>)[type.toUpperCase()];
  if (n === undefined) throw new RangeError(`unknown program type ${type} (known: ${[...PROG_NAMES.values()].join(', ')})`);
  return n;
}
/** The number of an attach type given by number or by name (either case). Throws a RangeError for an unknown name. */
export function attachTypeOf(type: number | string): number {
  if (typeof type === 'number') return type;
  const n = (AttachType as Record<string, number>)[type.toUpperCase()];
  if (n === undefined) throw new RangeError(`unknown attach type ${type}`);
  return n;
}
