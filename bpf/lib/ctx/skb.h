/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The context layer for TC (clsact, direct-action): see ctx.h. */
#ifndef XLB_CTX_SKB_H
#define XLB_CTX_SKB_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define XLB_CTX_SKB 1
#define __ctx_buff __sk_buff

#define CTX_ACT_OK TC_ACT_OK
#define CTX_ACT_DROP TC_ACT_SHOT

static __always_inline void *ctx_data(const struct __sk_buff *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *ctx_data_end(const struct __sk_buff *ctx)
{
	return (void *)(long)ctx->data_end;
}

static __always_inline __u32 ctx_full_len(const struct __sk_buff *ctx)
{
	return ctx->len;
}

/*
 * The end of the whole packet, past the linear part when the skb has frags:
 * for length checks only, never dereferenced. Bounded (an IP packet is at
 * most 64 KiB + its IPv6 header) so that the verifier accepts the arithmetic.
 */
static __always_inline void *ctx_pkt_end(const struct __sk_buff *ctx)
{
	__u32 len = ctx->len;

	if (len > 0x20000)
		len = 0x20000;
	return ctx_data(ctx) + len;
}

/* On clsact ingress skb->ifindex is the device the packet arrived on. */
static __always_inline __u32 ctx_ifindex(const struct __sk_buff *ctx)
{
	return ctx->ifindex;
}

/*
 * skb->ip_summed is in no UAPI context: read it from the kernel's sk_buff
 * (bpf_cast_to_kern_ctx, which the verifier turns into a plain move; the
 * bitfield's place comes from the kernel's BTF through CO-RE).
 */
struct sk_buff {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

#define XLB_CHECKSUM_PARTIAL 3 /* include/linux/skbuff.h */

/*
 * A pod's send with TX checksum offload: its L4 checksum field holds only the
 * pseudo-header sum, completed by the NIC or the stack after xlb is done.
 */
static __always_inline __u8 ctx_csum_partial(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);

	return BPF_CORE_READ_BITFIELD(skb, ip_summed) == XLB_CHECKSUM_PARTIAL;
}

/*
 * A GSO aggregate (a pod's TSO/GSO send on its veth): its IP length is not
 * what goes on the wire; the segments are gso_size long, and adding the outer
 * headers with bpf_skb_adjust_room lowers gso_size by their length.
 */
static __always_inline int ctx_is_gso(const struct __sk_buff *ctx)
{
	return ctx->gso_size != 0;
}

/*
 * Makes the first `len` bytes (or the whole packet, if shorter) linear, so
 * direct packet access reaches every header the core reads or rewrites.
 * Cheap when they already are, which is the common case.
 */
static __always_inline int ctx_pull(struct __sk_buff *ctx, __u32 len)
{
	if (len > ctx->len)
		len = ctx->len;
	if (ctx_data(ctx) + len <= ctx_data_end(ctx))
		return 0;
	return bpf_skb_pull_data(ctx, len);
}

/*
 * Makes room for `len` bytes of outer headers after the Ethernet header
 * (see ctx/xdp.h). bpf_skb_adjust_room with the encapsulation flags also sets
 * the skb's inner header offsets and GSO type, so a GSO packet is segmented
 * as a UDP tunnel packet. In-band VLAN tags are not expected on a pod's veth.
 */
static __always_inline int ctx_push_outer(struct __sk_buff *ctx, __u32 l3_off, __u32 len,
					  __u64 flags)
{
	if (l3_off != ETH_HLEN)
		return -1;
	return bpf_skb_adjust_room(ctx, len, BPF_ADJ_ROOM_MAC, flags);
}

/* The inverse (see ctx/xdp.h). */
static __always_inline int ctx_pop_outer(struct __sk_buff *ctx, __u32 inner_off)
{
	if (inner_off < ETH_HLEN)
		return -1;
	return bpf_skb_adjust_room(ctx, -(__s32)(inner_off - ETH_HLEN), BPF_ADJ_ROOM_MAC, 0);
}

/*
 * Turns the packet into a frame of `len` bytes that starts `grow` bytes before
 * the current start (see ctx/xdp.h): an answer to the pod, redirected to the
 * egress of the veth it came from. A GSO aggregate is not turned into one
 * frame; the caller drops it. An skb the pod sent with checksum offload keeps
 * CHECKSUM_PARTIAL, which its receive path takes as verified; the answer's
 * checksums are computed in full all the same.
 */
static __always_inline int ctx_reframe(struct __sk_buff *ctx, __u32 grow, __u32 len)
{
	if (ctx_is_gso(ctx))
		return -1;
	if (bpf_skb_change_head(ctx, grow, 0))
		return -1;
	if (bpf_skb_change_tail(ctx, len, 0))
		return -1;
	return bpf_skb_pull_data(ctx, len);
}

static __always_inline int ctx_redirect(struct __sk_buff *ctx, __u32 ifindex)
{
	return bpf_redirect(ifindex, 0);
}

/*
 * The next hop's neighbour is unresolved: bpf_redirect_neigh has the kernel
 * route the (outer) packet, resolve the neighbour and fill in the Ethernet
 * header. Handing it to the stack instead would make it a received packet with
 * one of this node's addresses as its source, which the stack drops as martian.
 */
static __always_inline int ctx_send_kernel(struct __sk_buff *ctx, __u32 ifindex)
{
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

#endif /* XLB_CTX_SKB_H */
