/**
 * The kernel's enum names as bpftool prints them: program types, attach
 * types, link types, perf-event link kinds.
 */

/** enum bpf_prog_type, in order, as bpftool names them. */
export const PROG_TYPES = [
  'unspec', 'socket_filter', 'kprobe', 'sched_cls', 'sched_act', 'tracepoint', 'xdp', 'perf_event', 'cgroup_skb',
  'cgroup_sock', 'lwt_in', 'lwt_out', 'lwt_xmit', 'sock_ops', 'sk_skb', 'cgroup_device', 'sk_msg', 'raw_tracepoint',
  'cgroup_sock_addr', 'lwt_seg6local', 'lirc_mode2', 'sk_reuseport', 'flow_dissector', 'cgroup_sysctl',
  'raw_tracepoint_writable', 'cgroup_sockopt', 'tracing', 'struct_ops', 'ext', 'lsm', 'sk_lookup', 'syscall', 'netfilter',
] as const;

/** enum bpf_attach_type, in order. */
export const ATTACH_TYPES = [
  'cgroup_inet_ingress', 'cgroup_inet_egress', 'cgroup_inet_sock_create', 'cgroup_sock_ops', 'sk_skb_stream_parser',
  'sk_skb_stream_verdict', 'cgroup_device', 'sk_msg_verdict', 'cgroup_inet4_bind', 'cgroup_inet6_bind',
  'cgroup_inet4_connect', 'cgroup_inet6_connect', 'cgroup_inet4_post_bind', 'cgroup_inet6_post_bind',
  'cgroup_udp4_sendmsg', 'cgroup_udp6_sendmsg', 'lirc_mode2', 'flow_dissector', 'cgroup_sysctl', 'cgroup_udp4_recvmsg',
  'cgroup_udp6_recvmsg', 'cgroup_getsockopt', 'cgroup_setsockopt', 'trace_raw_tp', 'trace_fentry', 'trace_fexit',
  'modify_return', 'lsm_mac', 'trace_iter', 'cgroup_inet4_getpeername', 'cgroup_inet6_getpeername',
  'cgroup_inet4_getsockname', 'cgroup_inet6_getsockname', 'xdp_devmap', 'cgroup_inet_sock_release', 'xdp_cpumap',
  'sk_lookup', 'xdp', 'sk_skb_verdict', 'sk_reuseport_select', 'sk_reuseport_select_or_migrate', 'perf_event',
  'trace_kprobe_multi', 'lsm_cgroup', 'struct_ops', 'netfilter', 'tcx_ingress', 'tcx_egress', 'trace_uprobe_multi',
  'cgroup_unix_connect', 'cgroup_unix_sendmsg', 'cgroup_unix_recvmsg', 'cgroup_unix_getpeername',
  'cgroup_unix_getsockname', 'netkit_primary', 'netkit_peer', 'trace_kprobe_session', 'trace_uprobe_session',
] as const;

/** enum bpf_link_type, in order. */
export const LINK_TYPES = [
  'unspec', 'raw_tracepoint', 'tracing', 'cgroup', 'iter', 'netns', 'xdp', 'perf_event', 'kprobe_multi', 'struct_ops',
  'netfilter', 'tcx', 'uprobe_multi', 'netkit', 'sockmap',
] as const;

/** enum bpf_perf_event_type: what a perf_event link is. */
export const PERF_EVENT_TYPES = ['unspec', 'uprobe', 'uretprobe', 'kprobe', 'kretprobe', 'tracepoint', 'event'] as const;

function nameOf(table: readonly string[], n: number, what: string): string {
  return table[n] ?? `${what} ${n}`;
}

/** "xdp" for 6; "type N" beyond the table. */
export function progTypeName(n: number): string { return nameOf(PROG_TYPES, n, 'type'); }
/** "tcx_ingress" for 46; "attach type N" beyond the table. */
export function attachTypeName(n: number): string { return nameOf(ATTACH_TYPES, n, 'attach type'); }
/** "perf_event" for 7; "type N" beyond the table. */
export function linkTypeName(n: number): string { return nameOf(LINK_TYPES, n, 'type'); }
/** "tracepoint" for 5. */
export function perfEventTypeName(n: number): string { return nameOf(PERF_EVENT_TYPES, n, 'perf event'); }

/** The number of an attach type by name. */
export function attachTypeNumber(name: (typeof ATTACH_TYPES)[number]): number {
  return ATTACH_TYPES.indexOf(name);
}
