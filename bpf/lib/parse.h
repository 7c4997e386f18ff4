/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Header parsing as cursors (xdp-tools' hdr_cursor): each step checks its
 * bounds against data_end, validates the fields it relies on, and advances the
 * cursor. Steps return XLB_OK or the reason the packet is not xlb's to touch.
 */
#ifndef XLB_PARSE_H
#define XLB_PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "ctx.h"
#include "maps/xlb_abi.h"

/* Steps return this to go on; anything else is an enum xlb_reason. */
#define XLB_OK (-1)

#define XLB_VLAN_MAX 2     /* 802.1Q and 802.1ad (QinQ) */
#define XLB_IPV6_EXT_MAX 6 /* extension headers followed before giving up */
#define XLB_HDR_OFF_MAX 1024 /* headers that end deeper in the frame are not xlb's */

/* From the kernel's net/ip.h, which is not UAPI. */
#define XLB_IP_MF 0x2000
#define XLB_IP_OFFSET 0x1fff

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

struct xlb_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

struct xlb_ipv6_frag_hdr {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off; /* offset (13 bits) << 3 | M flag */
	__be32 id;
};

struct hdr_cursor {
	void *pos;
};

/* What the parser learned about a packet. */
struct xlb_pkt {
	void *l3;               /* IPv4 or IPv6 header */
	void *l4;               /* first byte past the IP header chain */
	void *end;              /* end of the IP packet (the frame may carry padding) */
	struct xlb_ct_key flow; /* addresses, proto and family; ports once read */
	__u8 fragment;          /* an IPv4 or IPv6 fragment */
	__u8 csum_partial;      /* TC: CHECKSUM_PARTIAL, the L4 checksum field holds the pseudo-header sum */
};

/* The same, as offsets from the frame start: what crosses a BPF function call. */
struct xlb_pkt_meta {
	struct xlb_ct_key flow;
	__u16 l3_off;
	__u16 l4_off;
	__u16 end_off;
	__u8 fragment;
	__u8 pad;
	__u32 ifindex; /* out: egress interface of an encapsulated packet */
};

/* Ethernet and up to XLB_VLAN_MAX VLAN tags; *proto gets the L3 ethertype. */
static __always_inline int parse_eth(struct hdr_cursor *nh, void *data_end, __be16 *proto)
{
	struct ethhdr *eth = nh->pos;
	__be16 type;

	if ((void *)(eth + 1) > data_end)
		return XLB_PASS_MALFORMED_L2;
	nh->pos = eth + 1;
	type = eth->h_proto;

#pragma unroll
	for (int i = 0; i < XLB_VLAN_MAX; i++) {
		struct xlb_vlan_hdr *vh = nh->pos;

		if (type != bpf_htons(ETH_P_8021Q) && type != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > data_end)
			return XLB_PASS_MALFORMED_L2;
		type = vh->proto;
		nh->pos = vh + 1;
	}
	if (type == bpf_htons(ETH_P_8021Q) || type == bpf_htons(ETH_P_8021AD))
		return XLB_PASS_UNSUPPORTED;
	*proto = type;
	return XLB_OK;
}

/*
 * The IP parsers read headers up to data_end, and check the packet's own
 * length against pkt_end: the end of the whole packet, which for an skb may
 * lie beyond its linear part (data_end). XDP passes data_end for both.
 */
static __always_inline int parse_ipv4(struct hdr_cursor *nh, void *data_end, void *pkt_end,
				      struct xlb_pkt *pkt)
{
	struct iphdr *iph = nh->pos;
	__u32 hlen, tot_len;

	if ((void *)(iph + 1) > data_end)
		return XLB_PASS_MALFORMED_L3;
	if (iph->version != 4 || iph->ihl < 5)
		return XLB_PASS_MALFORMED_L3;
	hlen = iph->ihl * 4;
	tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hlen || nh->pos + tot_len > pkt_end)
		return XLB_PASS_MALFORMED_L3;

	pkt->l3 = iph;
	pkt->end = nh->pos + tot_len;
	pkt->fragment = (iph->frag_off & bpf_htons(XLB_IP_MF | XLB_IP_OFFSET)) != 0;
	pkt->flow.family = XLB_FAMILY_IPV4;
	pkt->flow.proto = iph->protocol;
	pkt->flow.saddr[0] = iph->saddr;
	pkt->flow.daddr[0] = iph->daddr;
	nh->pos += hlen;
	return XLB_OK;
}

static __always_inline int parse_ipv6(struct hdr_cursor *nh, void *data_end, void *pkt_end,
				      struct xlb_pkt *pkt)
{
	struct ipv6hdr *ip6h = nh->pos;
	__u8 nexthdr;

	if ((void *)(ip6h + 1) > data_end)
		return XLB_PASS_MALFORMED_L3;
	if (ip6h->version != 6)
		return XLB_PASS_MALFORMED_L3;
	pkt->end = (void *)(ip6h + 1) + bpf_ntohs(ip6h->payload_len);
	if (pkt->end > pkt_end)
		return XLB_PASS_MALFORMED_L3;

	pkt->l3 = ip6h;
	pkt->flow.family = XLB_FAMILY_IPV6;
	__builtin_memcpy(pkt->flow.saddr, &ip6h->saddr, 16);
	__builtin_memcpy(pkt->flow.daddr, &ip6h->daddr, 16);
	nexthdr = ip6h->nexthdr;
	nh->pos = ip6h + 1;

#pragma unroll
	for (int i = 0; i < XLB_IPV6_EXT_MAX; i++) {
		struct ipv6_opt_hdr *oh = nh->pos;
		struct xlb_ipv6_frag_hdr *fh = nh->pos;

		switch (nexthdr) {
		case IPPROTO_ROUTING:
			/*
			 * With segments left, daddr is a waypoint and the L4
			 * pseudo-header holds the final address: not a packet to a VIP.
			 */
			if ((void *)(oh + 1) + 2 > data_end)
				return XLB_PASS_MALFORMED_L3;
			if (((__u8 *)oh)[3])
				return XLB_PASS_UNSUPPORTED;
			/* fall through */
		case IPPROTO_HOPOPTS:
		case IPPROTO_DSTOPTS:
			if ((void *)(oh + 1) > data_end)
				return XLB_PASS_MALFORMED_L3;
			nexthdr = oh->nexthdr;
			nh->pos += (oh->hdrlen + 1) * 8;
			break;
		case IPPROTO_AH:
			if ((void *)(oh + 1) > data_end)
				return XLB_PASS_MALFORMED_L3;
			nexthdr = oh->nexthdr;
			nh->pos += (oh->hdrlen + 2) * 4;
			break;
		case IPPROTO_FRAGMENT:
			if ((void *)(fh + 1) > data_end)
				return XLB_PASS_MALFORMED_L3;
			/* a fragment unless offset 0 with M clear (an atomic fragment) */
			if (fh->frag_off & bpf_htons(0xfff9))
				pkt->fragment = 1;
			nexthdr = fh->nexthdr;
			nh->pos = fh + 1;
			break;
		default:
			goto done;
		}
	}
	switch (nexthdr) {
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_DSTOPTS:
	case IPPROTO_AH:
	case IPPROTO_FRAGMENT:
		return XLB_PASS_UNSUPPORTED;
	}
done:
	if (nh->pos > pkt->end)
		return XLB_PASS_MALFORMED_L3;
	pkt->flow.proto = nexthdr;
	return XLB_OK;
}

/* L2 and L3; leaves pkt->l4 at the transport header. */
static __always_inline int parse_packet(struct __ctx_buff *ctx, struct xlb_pkt *pkt)
{
	void *data_end = ctx_data_end(ctx);
	void *pkt_end = ctx_pkt_end(ctx);
	struct hdr_cursor nh = {.pos = ctx_data(ctx)};
	__be16 proto;
	int ret;

	ret = parse_eth(&nh, data_end, &proto);
	if (ret != XLB_OK)
		return ret;
	if (proto == bpf_htons(ETH_P_IP))
		ret = parse_ipv4(&nh, data_end, pkt_end, pkt);
	else if (proto == bpf_htons(ETH_P_IPV6))
		ret = parse_ipv6(&nh, data_end, pkt_end, pkt);
	else
		return XLB_PASS_NOT_IP;
	pkt->l4 = nh.pos;
	return ret;
}

/* Reads the ports of a TCP or UDP header; both keep them in the first 4 bytes. */
static __always_inline int parse_ports(struct xlb_pkt *pkt, void *data_end)
{
	__be16 *ports = pkt->l4;

	if ((void *)(ports + 2) > data_end || (void *)(ports + 2) > pkt->end)
		return XLB_PASS_MALFORMED_L4;
	pkt->flow.sport = ports[0];
	pkt->flow.dport = ports[1];
	return XLB_OK;
}

/*
 * Full TCP/UDP header check, made only for packets to a service: xlb never
 * rewrites a header it has not validated.
 */
static __always_inline int validate_l4(struct xlb_pkt *pkt, void *data_end)
{
	if (pkt->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = pkt->l4;

		if ((void *)(th + 1) > data_end || (void *)(th + 1) > pkt->end)
			return XLB_DROP_MALFORMED_L4;
		if (th->doff < 5 || pkt->l4 + th->doff * 4 > pkt->end)
			return XLB_DROP_MALFORMED_L4;
	} else {
		struct udphdr *uh = pkt->l4;
		__u32 len;

		if ((void *)(uh + 1) > data_end || (void *)(uh + 1) > pkt->end)
			return XLB_DROP_MALFORMED_L4;
		len = bpf_ntohs(uh->len);
		if (len < sizeof(*uh) || pkt->l4 + len > pkt->end)
			return XLB_DROP_MALFORMED_L4;
		/*
		 * Zero means "no checksum" only over IPv4; over IPv6 the receiver
		 * discards it (RFC 8200 8.1), and no incremental update can make it
		 * right. A CHECKSUM_PARTIAL field holds the pseudo-header sum, never 0.
		 */
		if (!uh->check && pkt->flow.family == XLB_FAMILY_IPV6 && !pkt->csum_partial)
			return XLB_DROP_UDP6_ZERO_CSUM;
	}
	return XLB_OK;
}

/*
 * ICMP of the packet's own family: ICMP in IPv4, ICMPv6 in IPv6. The other
 * one (ICMPv6 inside IPv4, ICMP inside IPv6) is no error xlb may rewrite: its
 * checksum rules are the other family's (ICMPv6 sums a pseudo-header, ICMP
 * does not), so it is an IP protocol xlb does not handle, like any other.
 */
static __always_inline int pkt_is_icmp(const struct xlb_pkt *pkt)
{
	return pkt->flow.proto ==
	       (pkt->flow.family == XLB_FAMILY_IPV4 ? IPPROTO_ICMP : IPPROTO_ICMPV6);
}

#endif /* XLB_PARSE_H */
