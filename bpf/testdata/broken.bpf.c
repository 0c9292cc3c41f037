// SPDX-License-Identifier: GPL-2.0
/* Test fixture: compiles, but the verifier rejects it. The program is named
 * like the hello lesson (and has its trace_tag) so the hello loader can be
 * pointed at it with --object: it reads the packet without checking it
 * against data_end. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 trace_tag = 0;

SEC("xdp")
int hello(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	/* No "if (data + 13 > data_end)": invalid access to packet. */
	if (data[12] == 0x08 && data[13] == 0x00)
		return XDP_PASS;
	return trace_tag ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
