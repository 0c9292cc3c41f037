// SPDX-License-Identifier: GPL-2.0
/* hello: the first lesson. bpf_printk on every packet, then XDP_PASS.
 * trace_tag is set by the loader before load so it can pick this program's
 * lines out of the shared trace_pipe. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 trace_tag = 0;

SEC("xdp")
int hello(struct xdp_md *ctx)
{
	bpf_printk("hello %u: packet on ifindex %u, %u bytes", trace_tag,
		   ctx->ingress_ifindex, ctx->data_end - ctx->data);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
