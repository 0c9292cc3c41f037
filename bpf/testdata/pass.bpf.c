// SPDX-License-Identifier: GPL-2.0
/* Test fixture: "someone else's" XDP program, attached with iproute2
 * (ip link set dev X xdpgeneric obj pass.bpf.o sec xdp) to check that the
 * loaders refuse to replace it unless --force is given. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
