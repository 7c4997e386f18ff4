/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef XLB_CTX_XDP_H
#define XLB_CTX_XDP_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XLB_CTX_XDP 1
#define __ctx_buff xdp_md

#define CTX_ACT_OK XDP_PASS
#define CTX_ACT_DROP XDP_DROP

static __always_inline void *ctx_data(const struct xdp_md *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *ctx_data_end(const struct xdp_md *ctx)
{
	return (void *)(long)ctx->data_end;
}

static __always_inline __u32 ctx_full_len(const struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}

#endif /* XLB_CTX_XDP_H */
