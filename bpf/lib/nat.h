/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Destination NAT toward a backend, with incremental checksum updates, and the
 * matching rewrite of ICMP errors that belong to a tracked flow.
 */
#ifndef XLB_NAT_H
#define XLB_NAT_H

#include "csum.h"
#include "lb.h"

/*
 * ICMP and ICMPv6 share these first 8 bytes. (linux/icmp.h pulls in libc
 * headers through linux/if.h, so the few constants needed live here.)
 */
struct xlb_icmp_hdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* unused, MTU, pointer: nothing xlb changes */
};

#define XLB_ICMP_DEST_UNREACH 3
#define XLB_ICMP_TIME_EXCEEDED 11
#define XLB_ICMP_PARAMETERPROB 12
#define XLB_ICMPV6_DEST_UNREACH 1
#define XLB_ICMPV6_PKT_TOOBIG 2
#define XLB_ICMPV6_TIME_EXCEED 3
#define XLB_ICMPV6_PARAMPROB 4

/* The checksum field of a TCP or UDP header. */
static __always_inline __sum16 *l4_csum_ptr(void *l4, __u8 proto)
{
	if (proto == IPPROTO_TCP)
		return &((struct tcphdr *)l4)->check;
	return &((struct udphdr *)l4)->check;
}

/* L4 checksum after a change summed in diff (pseudo-header and/or port). */
static __always_inline void l4_csum_update(__sum16 *check, __u8 proto, __u8 family, __u32 diff)
{
	if (proto == IPPROTO_UDP && family == XLB_FAMILY_IPV4)
		*check = csum_apply_udp(*check, diff);
	else if (proto == IPPROTO_UDP)
		*check = csum_apply(*check, diff) ?: (__sum16)0xffff;
	else
		*check = csum_apply(*check, diff);
}

/*
 * The same for a change split into what the pseudo-header sums (addresses) and
 * what the segment itself sums (ports, options). A CHECKSUM_PARTIAL skb's field
 * holds the folded pseudo-header sum, not complemented, and the segment is
 * summed later by the NIC or the stack: only the pseudo part applies, as the
 * kernel's inet_proto_csum_replace*() do it.
 */
static __always_inline void l4_csum_update_split(__sum16 *check, __u8 proto, __u8 family,
						 __u32 pseudo_diff, __u32 data_diff, __u8 partial)
{
	if (partial)
		*check = (__sum16)csum_fold(csum_add((__u16)*check, pseudo_diff));
	else
		l4_csum_update(check, proto, family, csum_add(pseudo_diff, data_diff));
}

/*
 * Rewrites a validated TCP/UDP packet's source (src != 0, a constant after
 * inlining) or destination address and port. Bounds are checked again here,
 * where the headers are written: the verifier does not carry "family is IPv6"
 * from the parser to this point. A zero port keeps the packet's.
 */
static __always_inline int nat_rewrite(struct xlb_pkt *pkt, void *data_end, const int src,
				       const __be32 *addr, __be16 port)
{
	__be16 *pport = pkt->l4 + (src ? 0 : 2);
	__sum16 *check;
	__u32 diff, port_diff = 0;

	if (pkt->flow.proto == IPPROTO_TCP) {
		struct tcphdr *th = pkt->l4;

		if ((void *)(th + 1) > data_end)
			return XLB_DROP_MALFORMED_L4;
		check = &th->check;
	} else {
		struct udphdr *uh = pkt->l4;

		if ((void *)(uh + 1) > data_end)
			return XLB_DROP_MALFORMED_L4;
		check = &uh->check;
	}
	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *iph = pkt->l3;
		__be32 *a;

		if ((void *)(iph + 1) > data_end)
			return XLB_PASS_MALFORMED_L3;
		a = src ? &iph->saddr : &iph->daddr;
		diff = csum_diff32(0, *a, addr[0]);
		iph->check = csum_apply(iph->check, diff);
		*a = addr[0];
	} else {
		struct ipv6hdr *ip6h = pkt->l3;
		__be32 *a;

		if ((void *)(ip6h + 1) > data_end)
			return XLB_PASS_MALFORMED_L3;
		a = src ? (__be32 *)&ip6h->saddr : (__be32 *)&ip6h->daddr;
		diff = csum_diff128(0, a, addr);
		__builtin_memcpy(a, addr, 16);
	}
	if (port && port != *pport) {
		port_diff = csum_diff16(0, *pport, port);
		*pport = port;
	}
	l4_csum_update_split(check, pkt->flow.proto, pkt->flow.family, diff, port_diff,
			     pkt->csum_partial);
	return XLB_OK;
}

/* Destination NAT to the backend. */
static __always_inline int nat_dnat(struct xlb_pkt *pkt, const struct xlb_backend *be,
				    void *data_end)
{
	if (be->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	return nat_rewrite(pkt, data_end, 0, be->addr, be->port);
}

static __always_inline int icmp_is_error(__u8 family, __u8 type)
{
	if (family == XLB_FAMILY_IPV4)
		return type == XLB_ICMP_DEST_UNREACH || type == XLB_ICMP_TIME_EXCEEDED ||
		       type == XLB_ICMP_PARAMETERPROB;
	return type == XLB_ICMPV6_DEST_UNREACH || type == XLB_ICMPV6_PKT_TOOBIG ||
	       type == XLB_ICMPV6_TIME_EXCEED || type == XLB_ICMPV6_PARAMPROB;
}

/*
 * An ICMP error about a packet a service sent (VIP:port -> client) reaches the
 * VIP. Its quoted packet names the flow: look the flow up in conntrack and send
 * the error to that flow's backend, rewriting the outer destination and the
 * quoted source (address, port, IPv4 header checksum, L4 checksum when quoted)
 * so the backend's stack matches it to its socket. Only the ICMP checksum has
 * to follow every quoted change; ICMPv6's also covers the outer pseudo-header.
 */
static __always_inline int nat_icmp_error(struct xlb_pkt *pkt, void *data_end)
{
	struct xlb_icmp_hdr *icmp = pkt->l4;
	struct xlb_ct_key flow = {.family = pkt->flow.family};
	struct xlb_backend *be;
	__be16 *qports;
	__sum16 *qcheck;
	__u32 addr_diff, icmp_diff, l4_diff, backend_id, service_id;
	void *quoted = pkt->l4 + 8;
	void *ql4;

	if ((void *)(icmp + 1) > data_end || !icmp_is_error(pkt->flow.family, icmp->type))
		return XLB_PASS_ICMP;

	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *q = quoted;

		if ((void *)(q + 1) > data_end || q->version != 4 || q->ihl < 5)
			return XLB_PASS_ICMP;
		if (q->saddr != pkt->flow.daddr[0] || (q->frag_off & bpf_htons(XLB_IP_OFFSET)))
			return XLB_PASS_ICMP;
		flow.proto = q->protocol;
		flow.saddr[0] = q->daddr;
		flow.daddr[0] = q->saddr;
		ql4 = quoted + q->ihl * 4;
	} else {
		struct ipv6hdr *q = quoted;

		if ((void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		__builtin_memcpy(flow.saddr, &q->daddr, 16);
		__builtin_memcpy(flow.daddr, &q->saddr, 16);
		if (flow.daddr[0] != pkt->flow.daddr[0] || flow.daddr[1] != pkt->flow.daddr[1] ||
		    flow.daddr[2] != pkt->flow.daddr[2] || flow.daddr[3] != pkt->flow.daddr[3])
			return XLB_PASS_ICMP;
		flow.proto = q->nexthdr;
		ql4 = q + 1;
	}
	if (flow.proto != IPPROTO_TCP && flow.proto != IPPROTO_UDP)
		return XLB_PASS_ICMP;
	/* RFC 792 quotes at least 8 bytes of the transport header. */
	if (ql4 + 8 > data_end || ql4 + 8 > pkt->end)
		return XLB_PASS_ICMP;
	qports = ql4;
	flow.sport = qports[1];
	flow.dport = qports[0];

	be = ct_lookup(&flow, 0, bpf_ktime_get_coarse_ns(), &backend_id, &service_id);
	if (!be)
		return XLB_PASS_ICMP;
	if (be->family != flow.family)
		return XLB_DROP_BACKEND_FAMILY;

	/* The quoted source and the outer destination both go VIP -> backend. */
	if (flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *outer = pkt->l3;
		struct iphdr *q = quoted;
		__sum16 old;

		/* checked before; again for the verifier, which lost the family */
		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		addr_diff = csum_diff32(0, outer->daddr, be->addr[0]);
		outer->check = csum_apply(outer->check, addr_diff);
		outer->daddr = be->addr[0];
		old = q->check;
		q->check = csum_apply(q->check, addr_diff);
		q->saddr = be->addr[0];
		icmp_diff = csum_diff16(addr_diff, old, q->check);
	} else {
		struct ipv6hdr *outer = pkt->l3;
		struct ipv6hdr *q = quoted;

		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		addr_diff = csum_diff128(0, (__be32 *)&outer->daddr, be->addr);
		__builtin_memcpy(&outer->daddr, be->addr, 16);
		__builtin_memcpy(&q->saddr, be->addr, 16);
		/* ICMPv6 sums the outer pseudo-header and the quoted header. */
		icmp_diff = csum_add(addr_diff, addr_diff);
	}
	l4_diff = addr_diff;
	if (be->port && be->port != qports[0]) {
		l4_diff = csum_diff16(l4_diff, qports[0], be->port);
		icmp_diff = csum_diff16(icmp_diff, qports[0], be->port);
		qports[0] = be->port;
	}
	/* The quoted L4 checksum, when the quote reaches it. */
	qcheck = l4_csum_ptr(ql4, flow.proto);
	if ((void *)(qcheck + 1) <= data_end && (void *)(qcheck + 1) <= pkt->end) {
		__sum16 old = *qcheck;

		l4_csum_update(qcheck, flow.proto, flow.family, l4_diff);
		icmp_diff = csum_diff16(icmp_diff, old, *qcheck);
	}
	icmp->checksum = csum_apply(icmp->checksum, icmp_diff);
	return XLB_FWD_ICMP_ERROR;
}

#endif /* XLB_NAT_H */
