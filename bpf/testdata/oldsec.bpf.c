// SPDX-License-Identifier: GPL-2.0
/* Test fixture: an old-style section name libbpf 1.x no longer knows
 * ("xdp_prog", from before SEC("xdp") was required), and a program the
 * verifier refuses next to a good one: usable with setType() and
 * setAutoload(false). Globals in .data and .bss, and an array in .rodata,
 * for the before-load setters. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u16 ports[4] = { 1, 2, 3, 4 };
const volatile __s8 small = -1;
const volatile _Bool enabled = 0;
const volatile char label[8] = "none";
__u32 data_verdict = XDP_PASS;
__u64 bss_count;

SEC("xdp_prog")
int old_style(struct xdp_md *ctx)
{
	bss_count += ports[3] + small + enabled + label[0];
	return data_verdict;
}

SEC("xdp")
int refused(struct xdp_md *ctx)
{
	unsigned char *data = (void *)(long)ctx->data;

	/* No check against data_end: the verifier refuses it. */
	return data[12] == 0x08 ? XDP_PASS : XDP_DROP;
}

SEC("xdp")
int good(struct xdp_md *ctx)
{
	return enabled ? data_verdict : XDP_ABORTED;
}

char LICENSE[] SEC("license") = "GPL";
