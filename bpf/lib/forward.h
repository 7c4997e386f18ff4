/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The forwarding fast path. A packet DNATed to a backend this node reaches by
 * routing (a pod here, an address the network routes), or a local backend's
 * answer turned back to the VIP, would otherwise go through the stack's
 * forwarding (skb allocation in XDP, ip_rcv, netfilter, ip_forward, the fib,
 * the neighbour output): xlb does what a router does itself (fib lookup, TTL
 * or hop limit, Ethernet addresses) and redirects it to the egress
 * interface. The stack stays the fallback for everything a router does beyond
 * that: an unresolved neighbour, a route narrower than the packet, TTL
 * expiry, a local destination, forwarding turned off, VLAN-tagged frames.
 * What it bypasses is the node's netfilter FORWARD/POSTROUTING path
 * (XLB_CFG_F_STACK_FORWARD brings it back).
 */
#ifndef XLB_FORWARD_H
#define XLB_FORWARD_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include "ctx.h"
#include "csum.h"
#include "maps.h"
#include "route.h"

/*
 * Whether a redirect to ifindex can deliver: XDP frames go only to a driver
 * that takes them now (xlb_fwddev, agent-kept); an skb goes anywhere.
 */
static __always_inline int fwd_can_send(__u32 ifindex)
{
#ifdef XLB_CTX_XDP
	return bpf_map_lookup_elem(&xlb_fwddev, &ifindex) != NULL;
#else
	return 1;
#endif
}

/*
 * Forwards the frame (its IP packet already rewritten) by the kernel's routes;
 * `stack` is the reason to return when the stack must forward it, `sent` the
 * reason when xlb sends it (out of *ifindex).
 */
static __always_inline int fwd_packet(struct __ctx_buff *ctx, int stack, int sent, __u32 *ifindex)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct xlb_route rt;
	/* zero beyond an IPv4 address: dst is the next-hop cache's key */
	__be32 src[4] = {}, dst[4] = {};
	__u32 tot_len;
	__u8 family, proto;
	int rc;

	if (xlb_cfg.flags & XLB_CFG_F_STACK_FORWARD)
		return stack;
	if ((void *)(eth + 1) > data_end)
		return stack;
	/* a VLAN tag belongs to the incoming link; the stack knows what to do with it */
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		family = XLB_FAMILY_IPV4;
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		family = XLB_FAMILY_IPV6;
	else
		return stack;
	if (family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = data + ETH_HLEN;

		if ((void *)(iph + 1) > data_end || iph->ttl <= 1)
			return stack;
		src[0] = iph->saddr;
		dst[0] = iph->daddr;
		tot_len = bpf_ntohs(iph->tot_len);
		proto = iph->protocol;
	} else {
		struct ipv6hdr *ip6h = data + ETH_HLEN;

		if ((void *)(ip6h + 1) > data_end || ip6h->hop_limit <= 1)
			return stack;
		__builtin_memcpy(src, &ip6h->saddr, 16);
		__builtin_memcpy(dst, &ip6h->daddr, 16);
		tot_len = bpf_ntohs(ip6h->payload_len) + sizeof(*ip6h);
		proto = ip6h->nexthdr;
	}
	/* a GSO aggregate is segmented for the egress device: no MTU to check */
	if (ctx_is_gso(ctx))
		tot_len = 0;
	rc = route_cached(ctx, family, proto, src, dst, tot_len, &rt);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || !fwd_can_send(rt.ifindex))
		return stack;
	if (family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = data + ETH_HLEN;

		if ((void *)(iph + 1) > data_end)
			return stack;
		/* TTL is the high byte of its 16-bit word: the checksum gains 0x0100 */
		iph->check = csum_apply(iph->check, csum_diff16(0, bpf_htons(iph->ttl << 8),
								bpf_htons((iph->ttl - 1) << 8)));
		iph->ttl--;
	} else {
		struct ipv6hdr *ip6h = data + ETH_HLEN;

		if ((void *)(ip6h + 1) > data_end)
			return stack;
		ip6h->hop_limit--;
	}
	__builtin_memcpy(eth->h_dest, rt.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, rt.smac, ETH_ALEN);
	*ifindex = rt.ifindex;
	return sent;
}

/*
 * The reasons the stack would otherwise forward, and what each becomes when
 * xlb sends the packet itself (0: not the fast path's): a routed backend's
 * packet (new or established), an answer turned back to the VIP, a
 * decapsulated packet for a backend here.
 */
static __always_inline int fwd_sent_reason(int reason)
{
	switch (reason) {
	case XLB_FWD_NEW_FLOW:
	case XLB_FWD_ESTABLISHED:
		return XLB_FWD_ROUTED;
	case XLB_FWD_REPLY_REVNAT:
	case XLB_FWD_REPLY_SNAT:
		return XLB_FWD_REPLY_ROUTED;
	case XLB_FWD_DECAP:
		return XLB_FWD_DECAP_ROUTED;
	default:
		return 0;
	}
}

static __always_inline int fwd_wanted(int reason)
{
	return fwd_sent_reason(reason) != 0;
}

/* The step after balancing, reverse NAT or decapsulation (fwd_sent_reason). */
static __always_inline int fwd_after(struct __ctx_buff *ctx, int reason, __u32 *ifindex)
{
	int sent = fwd_sent_reason(reason);

	return sent ? fwd_packet(ctx, reason, sent, ifindex) : reason;
}

#endif /* XLB_FORWARD_H */
