/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Decapsulation of what xlb's own encapsulation sends (VXLAN with our VNI, GUE
 * variant 1) to this node's tunnel address: the remote-receive half of a
 * tunnelled flow, and the reply half of one balanced here.
 */
#ifndef XLB_DECAP_H
#define XLB_DECAP_H

#include "encap.h"
#include "mss.h"
#include "reply.h"

/*
 * A couple of compares on the parsed outer headers: UDP to our tunnel address
 * and port. Everything else skips decapsulation entirely.
 */
static __always_inline int tunnel_match(const struct xlb_pkt *pkt, void *data_end)
{
	struct udphdr *uh = pkt->l4;

	if (pkt->flow.proto != IPPROTO_UDP || pkt->fragment)
		return 0;
	if (!tunnel_addr_is_ours(pkt->flow.daddr, pkt->flow.family))
		return 0;
	if ((void *)(uh + 1) > data_end)
		return 0;
	return uh->dest == xlb_cfg.vxlan_port || uh->dest == xlb_cfg.gue_port;
}

/*
 * Whether an outer source is a node xlb decapsulates from (xlb_peers_v1, filled
 * by the agent before XDP is attached). The outer source of a tunnel packet is
 * the sending node's tunnel address, which is its node address.
 */
static __always_inline int tunnel_peer_known(const struct xlb_pkt *outer)
{
	struct xlb_peer_key key = {.family = outer->flow.family};

	__builtin_memcpy(key.addr, outer->flow.saddr, sizeof(key.addr));
	return bpf_map_lookup_elem(&xlb_peers_v1, &key) != NULL;
}

/*
 * Parses the inner IP header at nh (IPv4 or IPv6 by `family`) and, for TCP and
 * UDP, validates the L4 header. What xlb encapsulates has no IPv6 extension
 * headers; an inner packet with some is still delivered, but not tracked (its
 * proto is the extension header's, not TCP/UDP). Kept loop-free: it runs on
 * unknown offsets, where the outer parser's unrolled loops cost the verifier
 * dearly.
 */
static __always_inline int decap_parse_inner(struct hdr_cursor *nh, void *data_end, __u8 family,
					     struct xlb_pkt *pkt)
{
	int ret;

	if (family == XLB_FAMILY_IPV4) {
		ret = parse_ipv4(nh, data_end, data_end, pkt);
		if (ret != XLB_OK)
			return ret;
	} else {
		struct ipv6hdr *ip6h = nh->pos;

		if ((void *)(ip6h + 1) > data_end || ip6h->version != 6)
			return XLB_PASS_MALFORMED_L3;
		pkt->end = (void *)(ip6h + 1) + bpf_ntohs(ip6h->payload_len);
		if (pkt->end > data_end)
			return XLB_PASS_MALFORMED_L3;
		pkt->l3 = ip6h;
		pkt->flow.family = XLB_FAMILY_IPV6;
		pkt->flow.proto = ip6h->nexthdr;
		__builtin_memcpy(pkt->flow.saddr, &ip6h->saddr, 16);
		__builtin_memcpy(pkt->flow.daddr, &ip6h->daddr, 16);
		nh->pos = ip6h + 1;
	}
	pkt->l4 = nh->pos;
	if (pkt->fragment || (pkt->flow.proto != IPPROTO_TCP && pkt->flow.proto != IPPROTO_UDP))
		return XLB_OK;
	ret = parse_ports(pkt, data_end);
	if (ret != XLB_OK)
		return ret;
	return validate_l4(pkt, data_end);
}

/*
 * Validates the whole tunnel packet first (a malformed one passes untouched),
 * drops it when its outer source is no known node, then strips the outer headers, keeping the outer frame's MAC addresses (the
 * inner VXLAN Ethernet header names the VTEP MAC, which the stack would not
 * take as its own), and then either reverses the NAT of a reply to a flow
 * balanced here, or remembers where a flow for a local backend came from so
 * that its answer goes back the same way.
 */
static __always_inline int tunnel_decap(struct __ctx_buff *ctx, const struct xlb_pkt *outer,
					__u32 *ifindex)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	struct udphdr *uh = outer->l4;
	struct xlb_pkt inner = {};
	struct hdr_cursor nh;
	struct xlb_reply *r;
	struct ethhdr *eth;
	__be32 origin[4];
	__u8 origin_family = outer->flow.family, encap, family;
	__u32 inner_off;
	void *udp_end;
	__u64 now;
	__u8 tcp_flags;
	int ret;

	if ((void *)(uh + 1) > data_end)
		return XLB_PASS_TUNNEL_MALFORMED;
	udp_end = (void *)uh + bpf_ntohs(uh->len);
	if (udp_end > outer->end || udp_end < (void *)(uh + 1))
		return XLB_PASS_TUNNEL_MALFORMED;
	if (uh->dest == xlb_cfg.vxlan_port) {
		struct xlb_vxlan_hdr *vx = (void *)(uh + 1);
		struct ethhdr *ieth = (void *)(vx + 1);

		if ((void *)(vx + 1) > data_end || (void *)(vx + 1) > udp_end)
			return XLB_PASS_TUNNEL_MALFORMED;
		/* reserved bits are ignored on receipt (RFC 7348) */
		if (!(vx->flags & bpf_htonl(XLB_VXLAN_F_VNI)) ||
		    (vx->vni & bpf_htonl(0xffffff00)) != bpf_htonl(xlb_cfg.vni << 8))
			return XLB_PASS_TUNNEL_FOREIGN;
		if ((void *)(ieth + 1) > data_end || (void *)(ieth + 1) > udp_end)
			return XLB_PASS_TUNNEL_MALFORMED;
		if (ieth->h_proto == bpf_htons(ETH_P_IP))
			family = XLB_FAMILY_IPV4;
		else if (ieth->h_proto == bpf_htons(ETH_P_IPV6))
			family = XLB_FAMILY_IPV6;
		else
			return XLB_PASS_TUNNEL_FOREIGN;
		nh.pos = ieth + 1;
		encap = XLB_ENCAP_VXLAN;
	} else {
		__u8 *v = (void *)(uh + 1);

		if ((void *)(v + 1) > data_end || (void *)(v + 1) > udp_end)
			return XLB_PASS_TUNNEL_MALFORMED;
		/* GUE variant 1: the inner IP header's version nibble says which */
		if ((*v >> 4) == 4)
			family = XLB_FAMILY_IPV4;
		else if ((*v >> 4) == 6)
			family = XLB_FAMILY_IPV6;
		else
			return XLB_PASS_TUNNEL_FOREIGN;
		nh.pos = v;
		encap = XLB_ENCAP_GUE;
	}
	inner_off = nh.pos - data;
	ret = decap_parse_inner(&nh, data_end, family, &inner);
	if (ret != XLB_OK || inner.end > udp_end)
		return XLB_PASS_TUNNEL_MALFORMED;
	/*
	 * xlb's own tunnel packet, whole: decapsulated only from a known node.
	 * Checked last, so that another tunnel on the same port (a foreign VNI)
	 * still reaches the stack whatever its source.
	 */
	if ((xlb_cfg.flags & XLB_CFG_F_TUNNEL_PEERS) && !tunnel_peer_known(outer))
		return XLB_DROP_TUNNEL_PEER;

	__builtin_memcpy(origin, outer->flow.saddr, sizeof(origin));
	if (inner_off > XLB_HDR_OFF_MAX || ctx_pop_outer(ctx, inner_off))
		return XLB_DROP_ENCAP;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XLB_DROP_ENCAP;
	eth->h_proto = bpf_htons(family == XLB_FAMILY_IPV4 ? ETH_P_IP : ETH_P_IPV6);
	/* the same checks again, on the moved packet, for the verifier */
	nh.pos = eth + 1;
	__builtin_memset(&inner, 0, sizeof(inner));
	ret = decap_parse_inner(&nh, data_end, family, &inner);
	if (ret != XLB_OK)
		return XLB_DROP_ENCAP;
	if (inner.fragment || (inner.flow.proto != IPPROTO_TCP && inner.flow.proto != IPPROTO_UDP))
		return XLB_FWD_DECAP;

	mss_clamp(&inner, data_end, mss_for_tunnel(origin_family, encap, family));
	now = bpf_ktime_get_coarse_ns();
	tcp_flags = reply_tcp_flags(&inner, data_end);
	r = reply_find(&inner, tcp_flags, now);
	if (r && r->kind == XLB_REPLY_REVNAT)
		return reply_apply_revnat(ctx, &inner, r, ifindex);
	reply_note_tunnel(&inner.flow, origin, origin_family, encap, now, tcp_flags);
	return XLB_FWD_DECAP;
}

#endif /* XLB_DECAP_H */
