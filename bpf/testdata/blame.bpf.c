// SPDX-License-Identifier: GPL-2.0
/* Test fixture: three XDP programs, the middle one rejected by the verifier
 * (it reads the packet without checking it against data_end). With a log
 * level set, the first one keeps a verifier log too: the error must still
 * name the one that failed. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int first_ok(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int rejected(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	/* No "if (data + 1 > data_end)": invalid access to packet. */
	return data[0] == 0xff ? XDP_DROP : XDP_PASS;
}

SEC("xdp")
int last_ok(struct xdp_md *ctx)
{
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
