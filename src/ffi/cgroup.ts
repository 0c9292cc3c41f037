/**
 * libbpf's cgroup attach: bpf_program__attach_cgroup makes a bpf_link
 * (BPF_LINK_CREATE on the cgroup's fd, with the program's expected attach
 * type; Linux >= 5.7). Returns libbpf's raw values and never throws.
 */
import { func, libbpf } from './native.js';
import type { LinkPtr, ProgPtr } from './libbpf.js';

/** bpf_program__attach_cgroup(prog, cgroup_fd): a bpf_link, or NULL with errno set. */
export const programAttachCgroup = func<(p: ProgPtr, cgroupFd: number) => LinkPtr | null>(
  libbpf, 'void *bpf_program__attach_cgroup(void *prog, int cgroup_fd)');
