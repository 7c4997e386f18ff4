/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ICMP errors xlb sends itself, from the address the offending packet was sent
 * to (the VIP), back to its sender, out of the interface it came in on (XDP:
 * XDP_TX; TC on a pod's veth: redirected to that veth's egress, into the pod):
 *
 * - Path MTU discovery across the tunnel: a packet that would not fit the
 *   tunnel once encapsulated is answered with ICMP "fragmentation needed"
 *   (IPv4 with DF) or ICMPv6 "packet too big", so the client's stack lowers
 *   its path MTU toward the service. The MSS clamp keeps TCP from ever getting
 *   here; this is for the rest.
 * - A new flow to a service port without endpoints (XLB_SVC_F_REJECT) is
 *   answered with port unreachable, so the client fails at once instead of
 *   retrying into a drop (kube-proxy's REJECT, Cilium's "no service" answer).
 *
 * One generator builds both: [Ethernet, addresses swapped][IP from the VIP]
 * [ICMP][the offending IP packet, cut to the quote].
 */
#ifndef XLB_ICMP_H
#define XLB_ICMP_H

#include "csum.h"
#include "encap.h"
#include "nat.h"

/* Bytes a too-big answer quotes: the headers with room to spare. */
#define XLB_ICMP_QUOTE 512
/*
 * Most bytes a port unreachable quotes (as Linux's own): an IPv4 answer stays
 * within 576 bytes (RFC 1812 4.3.2.3), an IPv6 one within the minimum MTU
 * (RFC 4443 2.4 c). Offending packets shorter than that are quoted whole.
 */
#define XLB_ICMP_QUOTE_MAX4 (576 - 20 - 8)
#define XLB_ICMP_QUOTE_MAX6 (1280 - 40 - 8)
#define XLB_ICMP_FRAG_NEEDED 4  /* code of XLB_ICMP_DEST_UNREACH */
#define XLB_ICMP_PORT_UNREACH 3 /* code of XLB_ICMP_DEST_UNREACH */
#define XLB_ICMPV6_PORT_UNREACH 4 /* code of XLB_ICMPV6_DEST_UNREACH */
#define XLB_IP_DF 0x4000
#define XLB_IPV6_MIN_MTU 1280

/* What to answer with; the generator adds the headers and the checksum. */
struct icmp_answer {
	__u8 type;
	__u8 code;
	__be32 rest;       /* the ICMP header's second word (the MTU of a too-big answer) */
	__u32 quote_len;   /* bytes of the offending IP packet quoted, at most XLB_ICMP_QUOTE_MAX6 */
	int sent;          /* reason when the answer is built */
	int failed;        /* reason when it cannot be: the packet is dropped */
};

/*
 * Adds one chunk of `n` bytes (a power of two, 4 to 512: what bpf_csum_diff
 * sums in a call) at quote + (len & ~(2n - 1)) when bit n of len is set. The
 * chunks of len's bits, largest first, tile [quote, quote + (len & ~3)) at
 * offsets that are multiples of 4, so the 32-bit sums fold to the right
 * 16-bit one. The offset depends on len alone, not on the chunks before: the
 * verifier's states after each step differ only in the sum, and are pruned.
 */
#define ICMP_CSUM_CHUNK(n)                                                          \
	if (len & (n)) {                                                            \
		void *chunk = quote + (len & ~(2 * (n) - 1));                        \
		if (chunk + (n) > data_end)                                          \
			return -1;                                                   \
		sum = bpf_csum_diff(NULL, 0, chunk, (n), sum);                      \
	}

/* The one's-complement sum of the quote (len <= 2047 bytes, up to data_end), added to sum. */
static __always_inline __s64 icmp_csum_quote(void *quote, void *data_end, __u32 len, __s64 sum)
{
	__u8 tail[4] = {};
	__u8 *rest;

	if (len & 1024) {
		void *chunk = quote;

		if (chunk + 1024 > data_end)
			return -1;
		sum = bpf_csum_diff(NULL, 0, chunk, 512, sum);
		sum = bpf_csum_diff(NULL, 0, chunk + 512, 512, sum);
	}
	ICMP_CSUM_CHUNK(512)
	ICMP_CSUM_CHUNK(256)
	ICMP_CSUM_CHUNK(128)
	ICMP_CSUM_CHUNK(64)
	ICMP_CSUM_CHUNK(32)
	ICMP_CSUM_CHUNK(16)
	ICMP_CSUM_CHUNK(8)
	ICMP_CSUM_CHUNK(4)
	if (!(len & 3))
		return sum;
	/* the last 1-3 bytes, padded with zeros to a word */
	rest = quote + (len & ~3);
	if ((void *)(rest + 1) > data_end)
		return -1;
	tail[0] = rest[0];
	if (len & 2) {
		if ((void *)(rest + 2) > data_end)
			return -1;
		tail[1] = rest[1];
		if (len & 1) {
			if ((void *)(rest + 3) > data_end)
				return -1;
			tail[2] = rest[2];
		}
	}
	return bpf_csum_diff(NULL, 0, (__be32 *)tail, sizeof(tail), sum);
}

/*
 * Whether the sender names one host an error may go to (RFC 1122 3.2.2, RFC
 * 4443 2.4 e): not an unspecified, multicast or (IPv4) limited-broadcast
 * source, which only a spoofed packet to a VIP carries.
 */
static __always_inline int icmp_source_answerable(const struct xlb_ct_key *flow)
{
	__u32 first = bpf_ntohl(flow->saddr[0]);

	if (flow->family == XLB_FAMILY_IPV4)
		return first && (first >> 28) != 0xe && first != 0xffffffff;
	return (first >> 24) != 0xff &&
	       (flow->saddr[0] | flow->saddr[1] | flow->saddr[2] | flow->saddr[3]);
}

/*
 * Turns the packet into the answer `a` describes. Where the hook cannot answer
 * (ctx_reframe: a VLAN-tagged frame, a GSO aggregate) or the sender is no one
 * to answer, it ends in a->failed before the packet is touched.
 */
static __always_inline int icmp_answer(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
				       const struct icmp_answer *a)
{
	void *data = ctx_data(ctx);
	void *data_end = ctx_data_end(ctx);
	__u64 l3_off = (__u64)((long)pkt->l3 - (long)data);
	__u32 quote_len = a->quote_len;
	__u8 family = pkt->flow.family;
	__u32 hdr_len = family == XLB_FAMILY_IPV4 ? sizeof(struct iphdr) + 8 :
						   sizeof(struct ipv6hdr) + 8;
	__u32 frame_len;
	struct xlb_icmp_hdr *icmp;
	struct ethhdr *eth;
	__be32 saddr[4], daddr[4];
	__u8 macs[2 * ETH_ALEN];
	void *quote;
	__s64 sum;

	/* bounded here, where the verifier can see it, for the checksum's chunks */
	if (quote_len > XLB_ICMP_QUOTE_MAX6)
		return a->failed;
	frame_len = ETH_HLEN + hdr_len + quote_len;
	if (l3_off != ETH_HLEN || data + ETH_HLEN > data_end || !icmp_source_answerable(&pkt->flow))
		return a->failed;
	__builtin_memcpy(macs, data, sizeof(macs));
	__builtin_memcpy(saddr, pkt->flow.saddr, sizeof(saddr));
	__builtin_memcpy(daddr, pkt->flow.daddr, sizeof(daddr));

	/* [Ethernet][new IP][ICMP] in front of the offending IP packet, cut to the quote */
	if (ctx_reframe(ctx, hdr_len, frame_len))
		return a->failed;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return a->failed;
	__builtin_memcpy(eth->h_dest, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(eth->h_source, macs, ETH_ALEN);
	if (family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = (void *)(eth + 1);

		icmp = (void *)(iph + 1);
		if ((void *)(icmp + 1) > data_end)
			return a->failed;
		quote = icmp + 1;
		eth->h_proto = bpf_htons(ETH_P_IP);
		*(__u8 *)iph = 0x45;
		iph->tos = 0xc0; /* internetwork control, as the kernel sends ICMP errors */
		iph->tot_len = bpf_htons(sizeof(*iph) + 8 + quote_len);
		iph->id = 0;
		iph->frag_off = 0;
		iph->ttl = 64;
		iph->protocol = IPPROTO_ICMP;
		iph->check = 0;
		iph->saddr = daddr[0];
		iph->daddr = saddr[0];
		iph->check = ipv4_hdr_csum(iph);
		sum = 0;
	} else {
		struct ipv6hdr *ip6h = (void *)(eth + 1);
		__u32 pseudo = bpf_htons(8 + quote_len) + bpf_htons(IPPROTO_ICMPV6);

		icmp = (void *)(ip6h + 1);
		if ((void *)(icmp + 1) > data_end)
			return a->failed;
		quote = icmp + 1;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__be32 *)ip6h = bpf_htonl(0x60000000);
		ip6h->payload_len = bpf_htons(8 + quote_len);
		ip6h->nexthdr = IPPROTO_ICMPV6;
		ip6h->hop_limit = 64;
		__builtin_memcpy(&ip6h->saddr, daddr, 16);
		__builtin_memcpy(&ip6h->daddr, saddr, 16);
#pragma unroll
		for (int i = 0; i < 4; i++) {
			pseudo = csum_add(pseudo, saddr[i]);
			pseudo = csum_add(pseudo, daddr[i]);
		}
		sum = pseudo;
	}
	icmp->type = a->type;
	icmp->code = a->code;
	icmp->checksum = 0;
	icmp->rest = a->rest;
	sum = bpf_csum_diff(NULL, 0, (__be32 *)icmp, sizeof(*icmp), sum);
	if (sum < 0)
		return a->failed;
	sum = icmp_csum_quote(quote, data_end, quote_len, sum);
	if (sum < 0)
		return a->failed;
	icmp->checksum = (__sum16)~csum_fold((__u32)sum);
	return a->sent;
}

/* Too big for the tunnel: frag needed (IPv4 with DF) or packet too big, quoting 512 bytes. */
static __always_inline int icmp_too_big(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
					__u32 mtu)
{
	struct icmp_answer a = {
		.quote_len = XLB_ICMP_QUOTE,
		.sent = XLB_FWD_ICMP_TOO_BIG,
		.failed = XLB_DROP_TOO_BIG,
	};
	void *data_end = ctx_data_end(ctx);

	/* packets shorter than the quote are just dropped */
	if (pkt->end - pkt->l3 < XLB_ICMP_QUOTE)
		return XLB_DROP_TOO_BIG;
	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = pkt->l3;

		/* without DF the sender expects the path to fragment, which XDP cannot */
		if ((void *)(iph + 1) > data_end || !(iph->frag_off & bpf_htons(XLB_IP_DF)))
			return XLB_DROP_TOO_BIG;
		a.type = XLB_ICMP_DEST_UNREACH;
		a.code = XLB_ICMP_FRAG_NEEDED;
		a.rest = bpf_htonl(mtu & 0xffff); /* unused (16 bits), next-hop MTU (16 bits) */
	} else {
		a.type = XLB_ICMPV6_PKT_TOOBIG;
		a.rest = bpf_htonl(mtu < XLB_IPV6_MIN_MTU ? XLB_IPV6_MIN_MTU : mtu);
	}
	return icmp_answer(ctx, pkt, &a);
}

/* A new flow to a service port without endpoints: port unreachable, quoting what fits. */
static __always_inline int icmp_port_unreach(struct __ctx_buff *ctx, const struct xlb_pkt *pkt)
{
	__u32 ip_len = pkt->end - pkt->l3;
	struct icmp_answer a = {
		.sent = XLB_FWD_REJECT,
		.failed = XLB_DROP_REJECT,
	};

	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		a.type = XLB_ICMP_DEST_UNREACH;
		a.code = XLB_ICMP_PORT_UNREACH;
		a.quote_len = ip_len < XLB_ICMP_QUOTE_MAX4 ? ip_len : XLB_ICMP_QUOTE_MAX4;
	} else {
		a.type = XLB_ICMPV6_DEST_UNREACH;
		a.code = XLB_ICMPV6_PORT_UNREACH;
		a.quote_len = ip_len < XLB_ICMP_QUOTE_MAX6 ? ip_len : XLB_ICMP_QUOTE_MAX6;
	}
	return icmp_answer(ctx, pkt, &a);
}

#endif /* XLB_ICMP_H */
