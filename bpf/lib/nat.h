/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * NAT of a tracked flow's packets, in both directions (toward the backend,
 * back toward the client), with incremental checksum updates, and the same
 * rewrite of ICMP errors that belong to such a flow.
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

/*
 * L4 checksum after a change summed in diff (pseudo-header and/or port). A zero
 * UDP checksum stays zero in both families: over IPv4 it means "none"; over
 * IPv6 it is invalid (validate_l4 drops such packets) and only reaches here
 * quoted inside an ICMP error, where no update could make it right.
 */
static __always_inline void l4_csum_update(__sum16 *check, __u8 proto, __u32 diff)
{
	if (proto == IPPROTO_UDP)
		*check = csum_apply_udp(*check, diff);
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
static __always_inline void l4_csum_update_split(__sum16 *check, __u8 proto, __u32 pseudo_diff,
						 __u32 data_diff, __u8 partial)
{
	if (partial)
		*check = (__sum16)csum_fold(csum_add((__u16)*check, pseudo_diff));
	else
		l4_csum_update(check, proto, csum_add(pseudo_diff, data_diff));
}

/*
 * Which way a rewrite goes (Cilium's enum nat_dir). A constant at every call
 * site: each inlined copy keeps one side only, and the verifier never walks the
 * other. A flow's packet toward its backend changes its destination; the
 * backend's answer changes its source. An ICMP error travels against the
 * packet it quotes, so the quote changes the other address of the two.
 */
enum nat_dir {
	NAT_DIR_TO_BACKEND, /* client -> VIP:port becomes client -> backend:port */
	NAT_DIR_TO_CLIENT,  /* backend:port -> client becomes VIP:port -> client */
};

/*
 * Rewrites a validated TCP/UDP packet's destination (to the backend) or source
 * (to the client) address and port. Bounds are checked again here, where the
 * headers are written: the verifier does not carry "family is IPv6" from the
 * parser to this point. A zero port keeps the packet's.
 */
static __always_inline int nat_rewrite(struct xlb_pkt *pkt, void *data_end,
				       const enum nat_dir dir, const __be32 *addr, __be16 port)
{
	const int src = dir == NAT_DIR_TO_CLIENT;
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
	l4_csum_update_split(check, pkt->flow.proto, diff, port_diff, pkt->csum_partial);
	return XLB_OK;
}

/* Destination NAT to the backend. */
static __always_inline int nat_dnat(struct xlb_pkt *pkt, const struct xlb_backend *be,
				    void *data_end)
{
	if (be->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	return nat_rewrite(pkt, data_end, NAT_DIR_TO_BACKEND, be->addr, be->port);
}

static __always_inline int icmp_is_error(__u8 family, __u8 type)
{
	if (family == XLB_FAMILY_IPV4)
		return type == XLB_ICMP_DEST_UNREACH || type == XLB_ICMP_TIME_EXCEEDED ||
		       type == XLB_ICMP_PARAMETERPROB;
	return type == XLB_ICMPV6_DEST_UNREACH || type == XLB_ICMPV6_PKT_TOOBIG ||
	       type == XLB_ICMPV6_TIME_EXCEED || type == XLB_ICMPV6_PARAMPROB;
}

/* The packet an ICMP error quotes, and the tracked flow it belongs to. */
struct nat_icmp_quote {
	__be16 *ports;		/* the quoted L4 header: [0] source, [1] destination port */
	struct xlb_ct_key flow; /* the quote reversed: an error reports the other end's packet */
};

/*
 * Reads the quote of an ICMP error that a rewrite in direction dir may change:
 * a TCP or UDP packet, not a later fragment, with at least the 8 bytes of its
 * transport header RFC 792 asks for, and whose address on the rewritten side
 * is the error's own (the two become the same new address). Toward the
 * backend, that is an error sent to the VIP about VIP:port -> client; toward
 * the client, a backend's own error about client -> backend:port.
 */
static __always_inline int nat_icmp_quote(const struct xlb_pkt *pkt, void *data_end,
					  const enum nat_dir dir, struct nat_icmp_quote *qt)
{
	const int to_backend = dir == NAT_DIR_TO_BACKEND;
	const __be32 *outer = to_backend ? pkt->flow.daddr : pkt->flow.saddr;
	struct xlb_icmp_hdr *icmp = pkt->l4;
	void *quoted = pkt->l4 + 8;
	void *ql4;

	__builtin_memset(&qt->flow, 0, sizeof(qt->flow));
	qt->flow.family = pkt->flow.family;
	if ((void *)(icmp + 1) > data_end || !icmp_is_error(pkt->flow.family, icmp->type))
		return XLB_PASS_ICMP;
	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *q = quoted;

		if ((void *)(q + 1) > data_end || q->version != 4 || q->ihl < 5)
			return XLB_PASS_ICMP;
		if ((to_backend ? q->saddr : q->daddr) != outer[0] ||
		    (q->frag_off & bpf_htons(XLB_IP_OFFSET)))
			return XLB_PASS_ICMP;
		qt->flow.proto = q->protocol;
		qt->flow.saddr[0] = q->daddr;
		qt->flow.daddr[0] = q->saddr;
		ql4 = quoted + q->ihl * 4;
	} else {
		struct ipv6hdr *q = quoted;
		const __be32 *qside = to_backend ? qt->flow.daddr : qt->flow.saddr;

		if ((void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		__builtin_memcpy(qt->flow.saddr, &q->daddr, 16);
		__builtin_memcpy(qt->flow.daddr, &q->saddr, 16);
		if (qside[0] != outer[0] || qside[1] != outer[1] || qside[2] != outer[2] ||
		    qside[3] != outer[3])
			return XLB_PASS_ICMP;
		qt->flow.proto = q->nexthdr;
		ql4 = q + 1;
	}
	if (qt->flow.proto != IPPROTO_TCP && qt->flow.proto != IPPROTO_UDP)
		return XLB_PASS_ICMP;
	if (ql4 + 8 > data_end || ql4 + 8 > pkt->end)
		return XLB_PASS_ICMP;
	qt->ports = ql4;
	qt->flow.sport = qt->ports[1];
	qt->flow.dport = qt->ports[0];
	return XLB_OK;
}

/*
 * Rewrites an ICMP error of a tracked flow in direction dir, so that the stack
 * at the other end matches it to its socket: the outer address and the same
 * address in the quote become addr, the quoted port on that side becomes port
 * (zero keeps it), with the outer IPv4, quoted IPv4, quoted L4 (when quoted)
 * and ICMP checksums. Only the ICMP checksum has to follow every quoted
 * change; ICMPv6's also covers the outer pseudo-header. Returns `verdict`.
 */
static __always_inline int nat_icmp_rewrite(struct xlb_pkt *pkt, void *data_end,
					    const enum nat_dir dir, struct nat_icmp_quote *qt,
					    const __be32 *addr, __be16 port, int verdict)
{
	const int to_backend = dir == NAT_DIR_TO_BACKEND;
	struct xlb_icmp_hdr *icmp = pkt->l4;
	void *quoted = pkt->l4 + 8;
	__be16 *qport = &qt->ports[to_backend ? 0 : 1];
	__u32 addr_diff, icmp_diff, l4_diff;
	__sum16 *qcheck;

	if (qt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *outer = pkt->l3;
		struct iphdr *q = quoted;
		__be32 *oaddr, *qaddr;
		__sum16 old;

		/* checked before; again for the verifier, which lost the family */
		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		oaddr = to_backend ? &outer->daddr : &outer->saddr;
		qaddr = to_backend ? &q->saddr : &q->daddr;
		addr_diff = csum_diff32(0, *oaddr, addr[0]);
		outer->check = csum_apply(outer->check, addr_diff);
		*oaddr = addr[0];
		old = q->check;
		q->check = csum_apply(q->check, addr_diff);
		*qaddr = addr[0];
		icmp_diff = csum_diff16(addr_diff, old, q->check);
	} else {
		struct ipv6hdr *outer = pkt->l3;
		struct ipv6hdr *q = quoted;
		struct in6_addr *oaddr, *qaddr;

		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		oaddr = to_backend ? &outer->daddr : &outer->saddr;
		qaddr = to_backend ? &q->saddr : &q->daddr;
		addr_diff = csum_diff128(0, (__be32 *)oaddr, addr);
		__builtin_memcpy(oaddr, addr, 16);
		__builtin_memcpy(qaddr, addr, 16);
		/* ICMPv6 sums the outer pseudo-header and the quoted header. */
		icmp_diff = csum_add(addr_diff, addr_diff);
	}
	l4_diff = addr_diff;
	if (port && port != *qport) {
		l4_diff = csum_diff16(l4_diff, *qport, port);
		icmp_diff = csum_diff16(icmp_diff, *qport, port);
		*qport = port;
	}
	/* The quoted L4 checksum, when the quote reaches it. */
	qcheck = l4_csum_ptr(qt->ports, qt->flow.proto);
	if ((void *)(qcheck + 1) <= data_end && (void *)(qcheck + 1) <= pkt->end) {
		__sum16 old = *qcheck;

		l4_csum_update(qcheck, qt->flow.proto, l4_diff);
		icmp_diff = csum_diff16(icmp_diff, old, *qcheck);
	}
	icmp->checksum = csum_apply(icmp->checksum, icmp_diff);
	return verdict;
}

/*
 * An ICMP error about a packet a service sent (VIP:port -> client) reaches the
 * VIP: it goes on to that flow's backend.
 */
static __always_inline int nat_icmp_error(struct xlb_pkt *pkt, void *data_end)
{
	struct nat_icmp_quote qt;
	struct xlb_ct_value ct;
	struct xlb_backend *be;
	int ret;

	ret = nat_icmp_quote(pkt, data_end, NAT_DIR_TO_BACKEND, &qt);
	if (ret != XLB_OK)
		return ret;
	be = ct_lookup(&qt.flow, 0, bpf_ktime_get_coarse_ns(), &ct);
	/* a SNATed flow's backend would not know the quote's addresses */
	if (!be || (be->flags & XLB_BE_F_SNAT))
		return XLB_PASS_ICMP;
	if (be->family != qt.flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	return nat_icmp_rewrite(pkt, data_end, NAT_DIR_TO_BACKEND, &qt, be->addr, be->port,
				XLB_FWD_ICMP_ERROR);
}

#endif /* XLB_NAT_H */
