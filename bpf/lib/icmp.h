/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Path MTU discovery across the tunnel: a packet that would not fit the tunnel
 * once encapsulated is answered, from XDP, with ICMP "fragmentation needed"
 * (IPv4 with DF) or ICMPv6 "packet too big", from the address it was sent to
 * (the VIP), so the client's stack lowers its path MTU toward the service. The
 * MSS clamp keeps TCP from ever getting here; this is for the rest.
 */
#ifndef XLB_ICMP_H
#define XLB_ICMP_H

#include "csum.h"
#include "encap.h"
#include "nat.h"

/* Bytes of the offending packet quoted: its headers with room to spare, and what
 * bpf_csum_diff sums in one call. */
#define XLB_ICMP_QUOTE 512
#define XLB_ICMP_FRAG_NEEDED 4 /* code of XLB_ICMP_DEST_UNREACH */
#define XLB_IP_DF 0x4000
#define XLB_IPV6_MIN_MTU 1280

/*
 * Where the hook cannot answer (TC: ctx_reframe in ctx/skb.h), every path here
 * ends in XLB_DROP_TOO_BIG before the packet is touched.
 */
static __always_inline int icmp_too_big(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
					__u32 mtu)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	__u64 l3_off = (__u64)((long)pkt->l3 - (long)data);
	__u32 ip_len = pkt->end - pkt->l3;
	__u8 family = pkt->flow.family;
	__u32 hdr_len = family == XLB_FAMILY_IPV4 ? sizeof(struct iphdr) + 8 :
						   sizeof(struct ipv6hdr) + 8;
	__u32 frame_len = ETH_HLEN + hdr_len + XLB_ICMP_QUOTE;
	struct xlb_icmp_hdr *icmp;
	struct ethhdr *eth;
	__be32 saddr[4], daddr[4];
	__u8 macs[2 * ETH_ALEN];
	__s64 sum;

	/* VLAN-tagged frames and packets shorter than the quote are just dropped */
	if (l3_off != ETH_HLEN || ip_len < XLB_ICMP_QUOTE || data + ETH_HLEN > data_end)
		return XLB_DROP_TOO_BIG;
	if (family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = pkt->l3;

		/* without DF the sender expects the path to fragment, which XDP cannot */
		if ((void *)(iph + 1) > data_end || !(iph->frag_off & bpf_htons(XLB_IP_DF)))
			return XLB_DROP_TOO_BIG;
	} else if (mtu < XLB_IPV6_MIN_MTU) {
		mtu = XLB_IPV6_MIN_MTU;
	}
	__builtin_memcpy(macs, data, sizeof(macs));
	__builtin_memcpy(saddr, pkt->flow.saddr, sizeof(saddr));
	__builtin_memcpy(daddr, pkt->flow.daddr, sizeof(daddr));

	/* [Ethernet][new IP][ICMP] in front of the offending IP packet, cut to the quote */
	if (ctx_reframe(ctx, hdr_len, frame_len))
		return XLB_DROP_TOO_BIG;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return XLB_DROP_TOO_BIG;
	__builtin_memcpy(eth->h_dest, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth->h_source, macs, ETH_ALEN);
	if (family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = (void *)(eth + 1);
		void *quote;

		icmp = (void *)(iph + 1);
		quote = icmp + 1;
		if (quote + XLB_ICMP_QUOTE > data_end)
			return XLB_DROP_TOO_BIG;
		eth->h_proto = bpf_htons(ETH_P_IP);
		*(__u8 *)iph = 0x45;
		iph->tos = 0xc0; /* internetwork control, as the kernel sends ICMP errors */
		iph->tot_len = bpf_htons(sizeof(*iph) + 8 + XLB_ICMP_QUOTE);
		iph->id = 0;
		iph->frag_off = 0;
		iph->ttl = 64;
		iph->protocol = IPPROTO_ICMP;
		iph->check = 0;
		iph->saddr = daddr[0];
		iph->daddr = saddr[0];
		iph->check = ipv4_hdr_csum(iph);
		icmp->type = XLB_ICMP_DEST_UNREACH;
		icmp->code = XLB_ICMP_FRAG_NEEDED;
		icmp->checksum = 0;
		icmp->rest = bpf_htonl(mtu & 0xffff); /* unused (16 bits), next-hop MTU (16 bits) */
		sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, sizeof(*icmp), 0);
		if (sum < 0)
			return XLB_DROP_TOO_BIG;
		sum = bpf_csum_diff(NULL, 0, quote, XLB_ICMP_QUOTE, sum);
	} else {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		__u32 pseudo = bpf_htons(8 + XLB_ICMP_QUOTE) + bpf_htons(IPPROTO_ICMPV6);
		void *quote;

		icmp = (void *)(ip6h + 1);
		quote = icmp + 1;
		if (quote + XLB_ICMP_QUOTE > data_end)
			return XLB_DROP_TOO_BIG;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6h = bpf_htonl(0x60000000);
		ip6h->payload_len = bpf_htons(8 + XLB_ICMP_QUOTE);
		ip6h->nexthdr = IPPROTO_ICMPV6;
		ip6h->hop_limit = 64;
		__builtin_memcpy(&ip6h->saddr, daddr, 16);
		__builtin_memcpy(&ip6h->daddr, saddr, 16);
		icmp->type = XLB_ICMPV6_PKT_TOOBIG;
		icmp->code = 0;
		icmp->checksum = 0;
		icmp->rest = bpf_htonl(mtu);
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pseudo = csum_add(pseudo, saddr[i]);
			pseudo = csum_add(pseudo, daddr[i]);
		}
		sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, sizeof(*icmp), pseudo);
		if (sum < 0)
			return XLB_DROP_TOO_BIG;
		sum = bpf_csum_diff(NULL, 0, quote, XLB_ICMP_QUOTE, sum);
	}
	if (sum < 0)
		return XLB_DROP_TOO_BIG;
	icmp->checksum = (__sum16)~csum_fold((__u32)sum);
	return XLB_FWD_ICMP_TOO_BIG;
}

#endif /* XLB_ICMP_H */
