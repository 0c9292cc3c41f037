/**
 * libbpf's names of program and attach types (libbpf >= 1.0), for messages
 * that say what a program is: "socket_filter", "xdp", "cgroup_sock_addr".
 */
import { func, libbpf } from './native.js';

const progTypeStr = func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_prog_type_str(int t)');
const attachTypeStr = func<(t: number) => string | null>(libbpf, 'const char *libbpf_bpf_attach_type_str(int t)');

/** libbpf's name of a program type number ("xdp"), or "type N" when this libbpf has none. */
export function progTypeName(type: number): string {
  return progTypeStr(type) ?? `type ${type}`;
}

/** libbpf's name of an attach type number ("cgroup_inet4_connect"), or "attach type N". */
export function attachTypeName(type: number): string {
  return attachTypeStr(type) ?? `attach type ${type}`;
}

const expectedAttachType = func<(p: bigint) => number>(libbpf, 'int bpf_program__expected_attach_type(void *prog)');

/** The attach type libbpf set for a program from its section (e.g. cgroup/connect4 -> BPF_CGROUP_INET4_CONNECT). */
export function programAttachType(prog: bigint): number {
  return expectedAttachType(prog);
}
