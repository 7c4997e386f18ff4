/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Encapsulation toward a tunnel endpoint (VXLAN or GUE variant 1, over IPv4
 * or IPv6, see maps/xlb_abi.h) and the checks before it: a local tunnel
 * address of the endpoint's family, the tunnel MTU, and a route.
 */
#ifndef XLB_ENCAP_H
#define XLB_ENCAP_H

#include <linux/if_ether.h>
#include "csum.h"
#include "lb.h"
#include "fib.h"
#include "mss.h"
#include "route.h"

#define XLB_VXLAN_F_VNI 0x08000000 /* the I flag: the VNI is valid (RFC 7348) */
/* Outer UDP source ports: from the flow hash, in the dynamic range (RFC 6335). */
#define XLB_TUNNEL_SPORT_BASE 0xc000
#define XLB_TUNNEL_SPORT_MASK 0x3fff

struct xlb_vxlan_hdr {
	__be32 flags; /* XLB_VXLAN_F_VNI, the rest reserved */
	__be32 vni;   /* VNI << 8, the low byte reserved */
};

/* Where and how a packet is tunnelled. */
struct xlb_tunnel {
	__be32 addr[4]; /* the far endpoint (outer destination) */
	__u8 family;    /* of addr */
	__u8 encap;     /* XLB_ENCAP_* */
};

static __always_inline void cfg_vtep_mac(__u8 *dst)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		dst[i] = xlb_cfg.vtep_mac[i];
}

static __always_inline int tunnel_has_source(__u8 family)
{
	if (family == XLB_FAMILY_IPV4)
		return xlb_cfg.tunnel_addr4 != 0;
	return (xlb_cfg.tunnel_addr6[0] | xlb_cfg.tunnel_addr6[1] | xlb_cfg.tunnel_addr6[2] |
		xlb_cfg.tunnel_addr6[3]) != 0;
}

/* Whether addr (of family) is this node's tunnel address: decapsulation's and SNAT's match. */
static __always_inline int tunnel_addr_is_ours(const __be32 *addr, __u8 family)
{
	if (!tunnel_has_source(family))
		return 0;
	if (family == XLB_FAMILY_IPV4)
		return addr[0] == xlb_cfg.tunnel_addr4;
	return addr[0] == xlb_cfg.tunnel_addr6[0] && addr[1] == xlb_cfg.tunnel_addr6[1] &&
	       addr[2] == xlb_cfg.tunnel_addr6[2] && addr[3] == xlb_cfg.tunnel_addr6[3];
}

/*
 * Routes the outer packet (tot_len bytes; 0 for a GSO aggregate, segmented
 * later) toward t, from this node's tunnel address (route_cached).
 */
static __always_inline int tunnel_route(struct __ctx_buff *ctx, const struct xlb_tunnel *t,
					__u32 tot_len, struct xlb_route *rt)
{
	switch (route_cached(ctx, t->family, IPPROTO_UDP, NULL, t->addr, tot_len, rt)) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		return XLB_OK;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		/* routable; only the next hop's MAC is unknown yet */
		return XLB_OK;
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return XLB_DROP_TOO_BIG;
	default:
		/* blackhole, unreachable, prohibit, local, forwarding off, or an error */
		return XLB_DROP_FIB;
	}
}

/*
 * Everything that can refuse a packet, checked before it is rewritten: a
 * source address of the endpoint's family, the tunnel MTU, a route.
 */
static __always_inline int tunnel_prepare(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
					  const struct xlb_tunnel *t, struct xlb_route *rt)
{
	__u32 inner_len = pkt->end - pkt->l3;
	__u32 outer_len = inner_len + encap_overhead(t->family, t->encap);

	if ((t->family != XLB_FAMILY_IPV4 && t->family != XLB_FAMILY_IPV6) ||
	    !tunnel_has_source(t->family))
		return XLB_DROP_NO_TUNNEL_ADDR;
	/*
	 * A SYN is clamped below, so a full-sized segment never comes to this.
	 * A GSO aggregate is segmented later, to fit (see ctx_is_gso); the fib
	 * then checks no MTU either (tot_len 0).
	 */
	if (ctx_is_gso(ctx))
		outer_len = 0;
	else if (outer_len > xlb_cfg.tunnel_mtu)
		return XLB_DROP_TOO_BIG;
	return tunnel_route(ctx, t, outer_len, rt);
}

/* The IPv4 header checksum, computed in full over the 20-byte header. */
static __always_inline __sum16 ipv4_hdr_csum(const struct iphdr *iph)
{
	const __u16 *w = (const __u16 *)iph;
	__u32 sum = 0;

#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	return (__sum16)~csum_fold(sum);
}

/*
 * The one's-complement sum of the whole inner packet, without reading its
 * payload (local checksum offload, as Linux's lco_csum): a valid IPv4 header
 * sums to zero, and a TCP/UDP segment whose checksum is valid (or will be, when
 * CHECKSUM_PARTIAL) sums to the complement of its pseudo-header. Not possible
 * for IPv4 UDP without a checksum, or past IPv6 extension headers: then 0.
 */
static __always_inline int inner_sum_lco(const struct xlb_pkt *pkt, void *data_end, __u32 *sum)
{
	__u32 l4_len = pkt->end - pkt->l4;
	__u32 pseudo = bpf_htons(pkt->flow.proto) + bpf_htons(l4_len);
	__u32 hdr = 0;

	if (pkt->flow.proto != IPPROTO_TCP && pkt->flow.proto != IPPROTO_UDP)
		return 0;
	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = pkt->l3;
		struct udphdr *uh = pkt->l4;

		if ((void *)(iph + 1) > data_end || (void *)(uh + 1) > data_end)
			return 0;
		if (pkt->flow.proto == IPPROTO_UDP && !uh->check)
			return 0;
		pseudo = csum_add(pseudo, iph->saddr);
		pseudo = csum_add(pseudo, iph->daddr);
	} else {
		const __u16 *w = pkt->l3;

		if (pkt->l4 != pkt->l3 + sizeof(struct ipv6hdr) || (void *)(w + 20) > data_end)
			return 0;
		/* the IPv6 header has no checksum of its own: sum it; its addresses are the pseudo's */
#pragma unroll
		for (int i = 0; i < 20; i++)
			hdr += w[i];
#pragma unroll
		for (int i = 4; i < 20; i++)
			pseudo += w[i];
	}
	*sum = csum_add(hdr, (__u16)~csum_fold(pseudo));
	return 1;
}

/*
 * The outer UDP checksum over IPv6: zero is allowed for tunnels (RFC 6935/6936),
 * but a stock Linux receiver refuses it unless told (udp6zerocsumrx), so it is
 * computed: pseudo-header and outer headers from the packet, the inner packet
 * from inner_sum_lco.
 */
static __always_inline void udp6_csum_lco(struct ipv6hdr *ip6h, struct udphdr *uh, __u32 hdrs_len,
					  __u32 inner_sum, void *data_end)
{
	const __u16 *a = (const __u16 *)&ip6h->saddr;
	const __u16 *u = (const __u16 *)uh;
	__u32 sum = bpf_htons(IPPROTO_UDP) + uh->len;
	__sum16 c;

#pragma unroll
	for (int i = 0; i < 16; i++)
		sum += a[i];
	/* UDP (4 words), then for VXLAN its header and the inner Ethernet (11 more) */
	if ((void *)(u + 15) > data_end)
		return;
#pragma unroll
	for (int i = 0; i < 4; i++)
		sum += u[i];
	if (hdrs_len > sizeof(*uh)) {
#pragma unroll
		for (int i = 4; i < 15; i++)
			sum += u[i];
	}
	c = (__sum16)~csum_fold(csum_add(sum, inner_sum));
	uh->check = c ? c : (__sum16)0xffff;
}

/*
 * Writes the outer headers into the room ctx_push_outer made: outer Ethernet
 * (type), IP, UDP, and for VXLAN the VXLAN header and the inner Ethernet
 * header. The outer UDP checksum is zero over IPv4 (the inner packet carries
 * its own checksums). Over IPv6 it is computed without reading the payload
 * (udp6_csum_lco); where that is impossible (an inner IPv4 UDP datagram without
 * a checksum) it stays zero, which RFC 6935/6936 allow for tunnels but which a
 * Linux vxlan device accepts only with `udp6zerocsumrx`.
 */
static __always_inline int tunnel_write(struct __ctx_buff *ctx, const struct xlb_tunnel *t,
					const struct xlb_route *rt, __u32 inner_len,
					__u8 inner_family, __u32 hash, int lco, __u32 inner_sum)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	__u32 udp_len = sizeof(struct udphdr) + inner_len;
	struct udphdr *uh;

	if (t->encap == XLB_ENCAP_VXLAN)
		udp_len += sizeof(struct xlb_vxlan_hdr) + ETH_HLEN;
	if ((void *)(eth + 1) > data_end)
		return XLB_DROP_ENCAP;
	if (rt->resolved) {
		__builtin_memcpy(eth->h_dest, rt->dmac, ETH_ALEN);
		__builtin_memcpy(eth->h_source, rt->smac, ETH_ALEN);
	}
	if (t->family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = (void *)(eth + 1);

		if ((void *)(iph + 1) > data_end)
			return XLB_DROP_ENCAP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		*(__u8 *)iph = 0x45; /* version 4, IHL 5 */
		iph->tos = 0;
		iph->tot_len = bpf_htons(sizeof(*iph) + udp_len);
		iph->id = 0;
		iph->frag_off = bpf_htons(0x4000); /* DF: the tunnel MTU is enforced here */
		iph->ttl = 64;
		iph->protocol = IPPROTO_UDP;
		iph->check = 0;
		iph->saddr = xlb_cfg.tunnel_addr4;
		iph->daddr = t->addr[0];
		iph->check = ipv4_hdr_csum(iph);
		uh = (void *)(iph + 1);
	} else {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		__be32 *w = (__be32 *)ip6h;

		if ((void *)(ip6h + 1) > data_end)
			return XLB_DROP_ENCAP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		/* version 6, traffic class 0, flow label from the flow hash (RFC 6438) */
		w[0] = bpf_htonl(0x60000000 | (hash & 0xfffff));
		ip6h->payload_len = bpf_htons(udp_len);
		ip6h->nexthdr = IPPROTO_UDP;
		ip6h->hop_limit = 64;
		cfg_addr6((__be32 *)&ip6h->saddr);
		__builtin_memcpy(&ip6h->daddr, t->addr, 16);
		uh = (void *)(ip6h + 1);
	}
	if ((void *)(uh + 1) > data_end)
		return XLB_DROP_ENCAP;
	/* the flow's hash spreads flows over RSS queues and ECMP paths */
	uh->source = bpf_htons(XLB_TUNNEL_SPORT_BASE | (hash & XLB_TUNNEL_SPORT_MASK));
	uh->dest = t->encap == XLB_ENCAP_VXLAN ? xlb_cfg.vxlan_port : xlb_cfg.gue_port;
	uh->len = bpf_htons(udp_len);
	uh->check = 0;
	if (t->encap == XLB_ENCAP_VXLAN) {
		struct xlb_vxlan_hdr *vx = (void *)(uh + 1);
		struct ethhdr *ieth = (void *)(vx + 1);

		if ((void *)(ieth + 1) > data_end)
			return XLB_DROP_ENCAP;
		vx->flags = bpf_htonl(XLB_VXLAN_F_VNI);
		vx->vni = bpf_htonl(xlb_cfg.vni << 8);
		/* the far vxlan device's MAC: a stock Linux VTEP delivers it locally */
		cfg_vtep_mac(ieth->h_dest);
		/* this node's MAC toward the endpoint, or on the way in when unresolved */
		if (rt->resolved)
			__builtin_memcpy(ieth->h_source, rt->smac, ETH_ALEN);
		else
			__builtin_memcpy(ieth->h_source, eth->h_dest, ETH_ALEN);
		ieth->h_proto = bpf_htons(inner_family == XLB_FAMILY_IPV4 ? ETH_P_IP : ETH_P_IPV6);
	}
	if (t->family == XLB_FAMILY_IPV6 && lco) {
		struct ipv6hdr *ip6h = (void *)(eth + 1);

		if ((void *)(ip6h + 1) > data_end)
			return XLB_DROP_ENCAP;
		udp6_csum_lco(ip6h, uh, udp_len - inner_len, inner_sum, data_end);
	}
	return XLB_OK;
}

/*
 * Encapsulates the (already rewritten) packet toward t, routed as rt says.
 * pkt's pointers are invalid afterwards. The verdict: sent (fwd_reason) when
 * the route was resolved, else handed to the kernel to send.
 */
static __always_inline int tunnel_push(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
				       const struct xlb_tunnel *t, const struct xlb_route *rt,
				       int fwd_reason)
{
	__u32 inner_len = pkt->end - pkt->l3;
	/* 64-bit: clang would otherwise spill a pointer's low half, which the verifier refuses */
	__u64 l3_off = (__u64)((long)pkt->l3 - (long)ctx_data(ctx));
	__u8 inner_family = pkt->flow.family;
	__u32 hash = xlb_hash_flow(&pkt->flow, xlb_cfg.hash_seed);
	__u32 room = encap_overhead(t->family, t->encap);
	__u64 flags = BPF_F_ADJ_ROOM_ENCAP_L4_UDP;
	int ret;

	flags |= t->family == XLB_FAMILY_IPV4 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 :
						BPF_F_ADJ_ROOM_ENCAP_L3_IPV6;
	if (t->encap == XLB_ENCAP_VXLAN)
		flags |= BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN) | BPF_F_ADJ_ROOM_ENCAP_L2_ETH;
	__u32 inner_sum = 0;
	/*
	 * Not for a GSO aggregate: its segments get their own lengths, and a sum
	 * over the whole aggregate would be wrong for each; zero is legal.
	 */
	int lco = t->family == XLB_FAMILY_IPV6 && !ctx_is_gso(ctx) &&
		  inner_sum_lco(pkt, ctx_data_end(ctx), &inner_sum);

	if (l3_off > XLB_HDR_OFF_MAX || ctx_push_outer(ctx, l3_off, room, flags))
		return XLB_DROP_ENCAP;
	ret = tunnel_write(ctx, t, rt, inner_len, inner_family, hash, lco, inner_sum);
	if (ret != XLB_OK)
		return ret;
	return rt->resolved ? fwd_reason : XLB_PASS_ENCAP_KERNEL;
}

#endif /* XLB_ENCAP_H */
