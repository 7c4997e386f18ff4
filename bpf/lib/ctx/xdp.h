/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The context layer for XDP: see ctx.h. */
#ifndef XLB_CTX_XDP_H
#define XLB_CTX_XDP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
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
	long len = (long)ctx_data_end(ctx) - (long)ctx_data(ctx);

	/*
	 * Kept a 64-bit difference of the two pointers: folded into the caller's
	 * 32-bit arithmetic, clang would do 32-bit math on packet pointers, which
	 * the verifier refuses.
	 */
	asm volatile("" : "+r"(len));
	return (__u32)len;
}

/* XDP frames (without frags) are linear: the packet ends where the data does. */
static __always_inline void *ctx_pkt_end(const struct xdp_md *ctx)
{
	return ctx_data_end(ctx);
}

/* The interface the packet arrived on: what a fib lookup starts from. */
static __always_inline __u32 ctx_ifindex(const struct xdp_md *ctx)
{
	return ctx->ingress_ifindex;
}

/* XDP sees wire frames, never GSO aggregates. */
static __always_inline int ctx_is_gso(const struct xdp_md *ctx)
{
	return 0;
}

/* XDP frames come from the wire: their checksums are complete. */
static __always_inline __u8 ctx_csum_partial(struct xdp_md *ctx)
{
	return 0;
}

/* XDP frames are linear: nothing to pull. */
static __always_inline int ctx_pull(struct xdp_md *ctx, __u32 len)
{
	return 0;
}

/*
 * Moves the frame's start by `delta` bytes (negative: room in front), keeping
 * the Ethernet addresses at the new front: a frame handed to the stack must
 * still be addressed to this node.
 */
static __always_inline int xdp_move_start(struct xdp_md *ctx, int delta)
{
	void *data = ctx_data(ctx);
	__u8 macs[2 * ETH_ALEN];

	if (data + sizeof(macs) > ctx_data_end(ctx))
		return -1;
	__builtin_memcpy(macs, data, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, delta))
		return -1;
	data = ctx_data(ctx);
	if (data + sizeof(macs) > ctx_data_end(ctx))
		return -1;
	__builtin_memcpy(data, macs, sizeof(macs));
	return 0;
}

/*
 * Makes room for `len` bytes of outer headers between the Ethernet header and
 * the L3 header at l3_off: the frame becomes [Ethernet][len bytes][L3 ...].
 * VLAN tags are dropped, since the outer packet is routed by the fib, not
 * bridged. The ethertype is the caller's to write. `flags` are TC's
 * encapsulation hints; XDP needs none.
 */
static __always_inline int ctx_push_outer(struct xdp_md *ctx, __u32 l3_off, __u32 len, __u64 flags)
{
	return xdp_move_start(ctx, (int)l3_off - (int)(ETH_HLEN + len));
}

/*
 * The inverse: removes everything between the Ethernet header and the inner
 * L3 header at inner_off, so the frame becomes [Ethernet][inner L3 ...] with
 * the outer frame's addresses (the frame was addressed to this node).
 */
static __always_inline int ctx_pop_outer(struct xdp_md *ctx, __u32 inner_off)
{
	if (inner_off < ETH_HLEN)
		return -1;
	return xdp_move_start(ctx, (int)inner_off - ETH_HLEN);
}

/*
 * Turns the frame into one of `len` bytes that starts `grow` bytes before the
 * current start: room in front for the headers of an answer sent back to the
 * packet's sender (icmp_answer), the rest cut off at the end.
 */
static __always_inline int ctx_reframe(struct xdp_md *ctx, __u32 grow, __u32 len)
{
	if (bpf_xdp_adjust_head(ctx, -(int)grow))
		return -1;
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)ctx_full_len(ctx));
}

/* Out of the interface the fib chose: back out where it came in, or another one. */
static __always_inline int ctx_redirect(struct xdp_md *ctx, __u32 ifindex)
{
	if (ifindex == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(ifindex, 0);
}

/*
 * The next hop's neighbour is unresolved: XDP cannot resolve it, so the
 * encapsulated packet goes to the stack, which forwards it and resolves the
 * neighbour (the next packets then find it in the fib lookup).
 */
static __always_inline int ctx_send_kernel(struct xdp_md *ctx, __u32 ifindex)
{
	return XDP_PASS;
}

#endif /* XLB_CTX_XDP_H */
