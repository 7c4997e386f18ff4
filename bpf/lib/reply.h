/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reply entries (struct xlb_reply in maps/xlb_abi.h): what happens to a
 * backend's answer. REVNAT entries are written with a flow's conntrack entry
 * on the node that balanced it; TUNNEL entries when a flow is decapsulated for
 * a backend on this node.
 */
#ifndef XLB_REPLY_H
#define XLB_REPLY_H

#include <linux/if_ether.h>
#include "fib.h"
#include "lb.h"
#include "nat.h"

/* A flow's tuple seen from the other end: what the answer carries. */
static __always_inline void reply_key(struct xlb_ct_key *key, const struct xlb_ct_key *flow)
{
	__builtin_memcpy(key->saddr, flow->daddr, sizeof(key->saddr));
	__builtin_memcpy(key->daddr, flow->saddr, sizeof(key->daddr));
	key->sport = flow->dport;
	key->dport = flow->sport;
	key->proto = flow->proto;
	key->family = flow->family;
	key->pad[0] = 0;
	key->pad[1] = 0;
}

/*
 * With a new flow's conntrack entry: the backend's answer (backend:port ->
 * client) gets its source turned back into VIP:port.
 */
static __always_inline void reply_create_revnat(const struct xlb_ct_key *flow,
						const struct xlb_backend *be, __u32 svc_flags,
						__u64 now)
{
	struct xlb_ct_key key = {
		.sport = be->port ?: flow->dport,
		.dport = flow->sport,
		.proto = flow->proto,
		.family = flow->family,
	};
	struct xlb_reply r = {
		.last_seen = now,
		.port = flow->dport,
		.kind = XLB_REPLY_REVNAT,
		.family = flow->family,
		.flags = (svc_flags & XLB_SVC_F_NODE_PORT) ? XLB_REPLY_F_ROUTE : 0,
	};

	__builtin_memcpy(key.saddr, be->addr, sizeof(key.saddr));
	__builtin_memcpy(key.daddr, flow->saddr, sizeof(key.daddr));
	__builtin_memcpy(r.addr, flow->daddr, sizeof(r.addr));
	bpf_map_update_elem(&xlb_reply_v1, &key, &r, BPF_ANY);
}

/* The entry for a packet's own tuple, its last_seen refreshed coarsely. */
static __always_inline struct xlb_reply *reply_lookup(const struct xlb_ct_key *tuple, __u64 now)
{
	struct xlb_reply *r = bpf_map_lookup_elem(&xlb_reply_v1, tuple);

	if (r && now - r->last_seen > XLB_CT_TOUCH_NS)
		r->last_seen = now;
	return r;
}

/*
 * A flow decapsulated for a backend here: its answer (the reverse tuple) goes
 * back through the tunnel to the node it came from, in the format it came in.
 * The entry is rewritten only when it is new or its origin changed.
 */
static __always_inline void reply_note_tunnel(const struct xlb_ct_key *flow, const __be32 *origin,
					      __u8 origin_family, __u8 encap, __u64 now)
{
	struct xlb_ct_key key;
	struct xlb_reply *cur;
	struct xlb_reply r = {
		.last_seen = now,
		.kind = XLB_REPLY_TUNNEL,
		.family = origin_family,
		.encap = encap,
	};

	reply_key(&key, flow);
	cur = bpf_map_lookup_elem(&xlb_reply_v1, &key);
	if (cur && cur->kind == XLB_REPLY_TUNNEL && cur->family == origin_family &&
	    cur->encap == encap && cur->addr[0] == origin[0] && cur->addr[1] == origin[1] &&
	    cur->addr[2] == origin[2] && cur->addr[3] == origin[3]) {
		if (now - cur->last_seen > XLB_CT_TOUCH_NS)
			cur->last_seen = now;
		return;
	}
	__builtin_memcpy(r.addr, origin, sizeof(r.addr));
	bpf_map_update_elem(&xlb_reply_v1, &key, &r, BPF_ANY);
}

/* REVNAT: the answer's source becomes the VIP and its port again. */
static __always_inline int reply_revnat(struct xlb_pkt *pkt, const struct xlb_reply *r,
					void *data_end)
{
	if (r->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	return nat_rewrite(pkt, data_end, 1, r->addr, r->port);
}

/*
 * A reverse-NATed answer whose source is now this node's own address (a
 * NodePort, XLB_REPLY_F_ROUTE): the stack would drop it as martian, so it is
 * routed here, toward the client, with the kernel's fib and neighbour tables.
 * An unresolved neighbour: TC has the kernel resolve it (bpf_redirect_neigh);
 * XDP can only pass it (the client's first packets came through that next
 * hop, so it is resolved in practice).
 */
static __always_inline int reply_route(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
				       const struct xlb_reply *r, __u32 *ifindex)
{
	struct bpf_fib_lookup p = {
		.l4_protocol = pkt->flow.proto,
		.ifindex = ctx_ifindex(ctx),
	};
	struct ethhdr *eth;
	int rc;

	if (r->family == XLB_FAMILY_IPV4) {
		p.family = AF_INET;
		p.ipv4_src = r->addr[0];
		p.ipv4_dst = pkt->flow.daddr[0]; /* the client */
	} else {
		p.family = AF_INET6;
		__builtin_memcpy(p.ipv6_src, r->addr, 16);
		__builtin_memcpy(p.ipv6_dst, pkt->flow.daddr, 16);
	}
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	*ifindex = p.ifindex;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return XLB_PASS_REPLY_KERNEL;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return XLB_DROP_FIB;
	eth = ctx_data(ctx);
	if ((void *)(eth + 1) > ctx_data_end(ctx))
		return XLB_DROP_FIB;
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	return XLB_FWD_REPLY_ROUTED;
}

/*
 * An ICMP error a backend sends about a packet of a flow balanced here (it
 * quotes client -> backend:port) is the flow's answer too: its source and the
 * quoted destination (address and port) become the VIP again, with the outer
 * IPv4, quoted IPv4, quoted L4 (when quoted) and ICMP checksums (the inverse of
 * nat_icmp_error). Only the backend's own errors: the quoted destination must
 * be the error's source.
 */
static __always_inline int reply_revnat_icmp(struct xlb_pkt *pkt, void *data_end, __u64 now)
{
	struct xlb_icmp_hdr *icmp = pkt->l4;
	struct xlb_ct_key key = {.family = pkt->flow.family};
	struct xlb_reply *r;
	__be16 *qports;
	__sum16 *qcheck;
	__u32 addr_diff, icmp_diff, l4_diff;
	void *quoted = pkt->l4 + 8;
	void *ql4;

	if ((void *)(icmp + 1) > data_end || !icmp_is_error(pkt->flow.family, icmp->type))
		return XLB_PASS_ICMP;
	if (pkt->flow.family == XLB_FAMILY_IPV4) {
		struct iphdr *q = quoted;

		if ((void *)(q + 1) > data_end || q->version != 4 || q->ihl < 5)
			return XLB_PASS_ICMP;
		if (q->daddr != pkt->flow.saddr[0] || (q->frag_off & bpf_htons(XLB_IP_OFFSET)))
			return XLB_PASS_ICMP;
		key.proto = q->protocol;
		key.saddr[0] = q->daddr;
		key.daddr[0] = q->saddr;
		ql4 = quoted + q->ihl * 4;
	} else {
		struct ipv6hdr *q = quoted;

		if ((void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		__builtin_memcpy(key.saddr, &q->daddr, 16);
		__builtin_memcpy(key.daddr, &q->saddr, 16);
		if (key.saddr[0] != pkt->flow.saddr[0] || key.saddr[1] != pkt->flow.saddr[1] ||
		    key.saddr[2] != pkt->flow.saddr[2] || key.saddr[3] != pkt->flow.saddr[3])
			return XLB_PASS_ICMP;
		key.proto = q->nexthdr;
		ql4 = q + 1;
	}
	if (key.proto != IPPROTO_TCP && key.proto != IPPROTO_UDP)
		return XLB_PASS_ICMP;
	if (ql4 + 8 > data_end || ql4 + 8 > pkt->end)
		return XLB_PASS_ICMP;
	qports = ql4;
	key.sport = qports[1];
	key.dport = qports[0];
	r = reply_lookup(&key, now);
	if (!r || r->kind != XLB_REPLY_REVNAT || r->family != key.family)
		return XLB_PASS_ICMP;

	/* The outer source and the quoted destination both go backend -> VIP. */
	if (key.family == XLB_FAMILY_IPV4) {
		struct iphdr *outer = pkt->l3;
		struct iphdr *q = quoted;
		__sum16 old;

		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		addr_diff = csum_diff32(0, outer->saddr, r->addr[0]);
		outer->check = csum_apply(outer->check, addr_diff);
		outer->saddr = r->addr[0];
		old = q->check;
		q->check = csum_apply(q->check, addr_diff);
		q->daddr = r->addr[0];
		icmp_diff = csum_diff16(addr_diff, old, q->check);
	} else {
		struct ipv6hdr *outer = pkt->l3;
		struct ipv6hdr *q = quoted;

		if ((void *)(outer + 1) > data_end || (void *)(q + 1) > data_end)
			return XLB_PASS_ICMP;
		addr_diff = csum_diff128(0, (__be32 *)&outer->saddr, r->addr);
		__builtin_memcpy(&outer->saddr, r->addr, 16);
		__builtin_memcpy(&q->daddr, r->addr, 16);
		/* ICMPv6 sums the outer pseudo-header and the quoted header. */
		icmp_diff = csum_add(addr_diff, addr_diff);
	}
	l4_diff = addr_diff;
	if (r->port && r->port != qports[1]) {
		l4_diff = csum_diff16(l4_diff, qports[1], r->port);
		icmp_diff = csum_diff16(icmp_diff, qports[1], r->port);
		qports[1] = r->port;
	}
	qcheck = l4_csum_ptr(ql4, key.proto);
	if ((void *)(qcheck + 1) <= data_end && (void *)(qcheck + 1) <= pkt->end) {
		__sum16 old = *qcheck;

		l4_csum_update(qcheck, key.proto, key.family, l4_diff);
		icmp_diff = csum_diff16(icmp_diff, old, *qcheck);
	}
	icmp->checksum = csum_apply(icmp->checksum, icmp_diff);
	return XLB_FWD_REPLY_REVNAT;
}

#endif /* XLB_REPLY_H */
