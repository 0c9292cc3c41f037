// SPDX-License-Identifier: GPL-2.0
/* Test fixture of fentry attach (test/tracing.test.ts): kernels that refuse
 * fentry/fexit refuse its load, so it is an object of its own. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

const volatile __u32 target_tgid = 0;
__u64 calls = 0;

SEC("fentry/__do_sys_getppid")
int BPF_PROG(on_getppid_fentry)
{
	if ((bpf_get_current_pid_tgid() >> 32) == target_tgid)
		__sync_fetch_and_add(&calls, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
