/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * SNAT toward backends that cannot send their answer back through xlb (no xlb
 * on their node, a host address) and for hairpin (the client pod is its own
 * backend): the flow leaves this node from its own address and a port of the
 * SNAT range, so the answer comes back here, where struct xlb_snat turns it
 * into VIP:port -> client:port again (maps/xlb_abi.h). kube-proxy masquerades
 * these the same way; the backend sees the node, not the client.
 */
#ifndef XLB_SNAT_H
#define XLB_SNAT_H

#include "encap.h"
#include "lb.h"
#include "nat.h"
#include "route.h"

#define XLB_SNAT_PORTS (XLB_SNAT_PORT_MAX - XLB_SNAT_PORT_MIN + 1)

/*
 * This node's address of a family, the one SNATed flows leave with: its tunnel
 * endpoint, the address the cluster's network routes to this node.
 */
static __always_inline int snat_source(__u8 family, __be32 *addr)
{
	if (!tunnel_has_source(family))
		return 0;
	if (family == XLB_FAMILY_IPV4) {
		addr[0] = xlb_cfg.tunnel_addr4;
		addr[1] = 0;
		addr[2] = 0;
		addr[3] = 0;
	} else {
		cfg_addr6(addr);
	}
	return 1;
}

/* The answer's tuple as it reaches this node: backend:port -> node:snat port. */
static __always_inline void snat_answer_key(struct xlb_ct_key *key, const struct xlb_ct_key *flow,
					    const struct xlb_backend *be, const __be32 *node,
					    __be16 port)
{
	__builtin_memcpy(key->saddr, be->addr, sizeof(key->saddr));
	__builtin_memcpy(key->daddr, node, sizeof(key->daddr));
	key->sport = be->port ?: flow->dport;
	key->dport = port;
	key->proto = flow->proto;
	key->family = flow->family;
	key->pad[0] = 0;
	key->pad[1] = 0;
}

static __always_inline void snat_entry(struct xlb_snat *v, const struct xlb_ct_key *flow,
				       __u32 svc_flags, __u64 now)
{
	__builtin_memset(v, 0, sizeof(*v));
	v->last_seen = now;
	__builtin_memcpy(v->client, flow->saddr, sizeof(v->client));
	__builtin_memcpy(v->vip, flow->daddr, sizeof(v->vip));
	v->client_port = flow->sport;
	v->vip_port = flow->dport;
	v->family = flow->family;
	v->flags = (svc_flags & XLB_SVC_F_NODE_PORT) ? XLB_REPLY_F_ROUTE : 0;
}

/*
 * Whether an existing entry's port may be taken: the flow it was made for has
 * no live conntrack entry holding that port any more (closed and timed out, or
 * moved), and the port has been idle for XLB_SNAT_REUSE_S. The LRU reclaims
 * such entries only under pressure; without this a backend would run out of
 * ports after XLB_SNAT_PORTS flows.
 */
static __always_inline int snat_stale(const struct xlb_snat *cur, const struct xlb_ct_key *key,
				      __u64 now)
{
	struct xlb_ct_key owner = {
		.sport = cur->client_port,
		.dport = cur->vip_port,
		.proto = key->proto,
		.family = cur->family,
	};
	struct xlb_ct_value *ct;

	/* the cheap half first: a port in use recently is taken, whatever its flow's state */
	if (now - cur->last_seen <= (__u64)XLB_SNAT_REUSE_S * XLB_NSEC_PER_SEC)
		return 0;
	__builtin_memcpy(owner.saddr, cur->client, sizeof(owner.saddr));
	__builtin_memcpy(owner.daddr, cur->vip, sizeof(owner.daddr));
	ct = bpf_map_lookup_elem(&xlb_ct_v1, &owner);
	return !ct || ct->snat_port != key->dport ||
	       xlb_ct_check(&xlb_cfg, key->proto, ct->state, ct->last_seen, 0, now) != XLB_CT_KEEP;
}

/*
 * A new flow toward a SNAT backend: a port free toward this backend, recorded
 * for the answer. The flow's hash names the first port tried, random ones the
 * rest: probing the next ports instead clusters the ports in use into runs,
 * and with 45 % of the range taken, 6 flows in 1,000 found 8 taken in a row.
 */
static __always_inline int snat_claim(const struct xlb_ct_key *flow, const struct xlb_backend *be,
				      __u32 svc_flags, __u64 now, __be16 *port)
{
	struct xlb_ct_key key;
	struct xlb_snat v, *cur;
	__be32 node[4];
	__u32 start, i;

	if (be->family != flow->family)
		return XLB_DROP_BACKEND_FAMILY;
	if (!snat_source(flow->family, node))
		return XLB_DROP_NO_TUNNEL_ADDR;
	snat_entry(&v, flow, svc_flags, now);
	start = xlb_hash_flow(flow, xlb_cfg.hash_seed);
	for (i = 0; i < XLB_SNAT_TRIES; i++) {
		__be16 p = bpf_htons(XLB_SNAT_PORT_MIN + (i ? bpf_get_prandom_u32() : start) %
								  XLB_SNAT_PORTS);

		snat_answer_key(&key, flow, be, node, p);
		cur = bpf_map_lookup_elem(&xlb_snat_v1, &key);
		if (cur && !snat_stale(cur, &key, now))
			continue;
		/* NOEXIST: of two CPUs claiming the same free port, one gets it */
		if (bpf_map_update_elem(&xlb_snat_v1, &key, &v, cur ? BPF_EXIST : BPF_NOEXIST))
			continue;
		*port = p;
		return XLB_OK;
	}
	return XLB_DROP_SNAT_PORTS;
}

/*
 * A tracked flow's packet: its entry refreshed coarsely, or written again when
 * the LRU reclaimed it while the flow lived (rare: it is as large as conntrack).
 */
static __always_inline void snat_keep(const struct xlb_ct_key *flow, const struct xlb_backend *be,
				      __be16 port, __u64 now)
{
	struct xlb_ct_key key;
	struct xlb_snat v, *cur;
	struct xlb_service *svc;
	__be32 node[4];

	if (!snat_source(flow->family, node))
		return;
	snat_answer_key(&key, flow, be, node, port);
	cur = bpf_map_lookup_elem(&xlb_snat_v1, &key);
	if (cur) {
		if (now - cur->last_seen > XLB_CT_TOUCH_NS)
			cur->last_seen = now;
		return;
	}
	svc = lb_lookup_service(flow);
	snat_entry(&v, flow, svc ? svc->flags : 0, now);
	bpf_map_update_elem(&xlb_snat_v1, &key, &v, BPF_ANY);
}

/*
 * Toward the backend: DNAT, then the source becomes this node's address and
 * the flow's SNAT port; sent on from here, as the stack would drop a received
 * packet whose source is one of its own addresses (and a hairpin goes back out
 * of the veth it came in by).
 */
static __always_inline int snat_forward(struct __ctx_buff *ctx, struct xlb_pkt *pkt,
					const struct xlb_backend *be, __be16 port, __u32 *ifindex)
{
	void *data_end = ctx_data_end(ctx);
	__be32 node[4];
	int ret;

	if (!snat_source(pkt->flow.family, node))
		return XLB_DROP_NO_TUNNEL_ADDR;
	ret = nat_dnat(pkt, be, data_end);
	if (ret != XLB_OK)
		return ret;
	/* NAT_DIR_TO_CLIENT rewrites the source, as it does for an answer */
	ret = nat_rewrite(pkt, data_end, NAT_DIR_TO_CLIENT, node, port);
	if (ret != XLB_OK)
		return ret;
	return route_verdict(route_lookup(ctx, pkt->flow.family, pkt->flow.proto, node, be->addr,
					  ifindex),
			     XLB_FWD_SNAT, XLB_PASS_SNAT_KERNEL);
}

/* Whether a packet may be the answer of a SNATed flow: TCP/UDP to this node's address. */
static __always_inline int snat_maybe_answer(const struct xlb_pkt *pkt)
{
	if (pkt->fragment || (pkt->flow.proto != IPPROTO_TCP && pkt->flow.proto != IPPROTO_UDP))
		return 0;
	return tunnel_addr_is_ours(pkt->flow.daddr, pkt->flow.family);
}

/*
 * The answer of a SNATed flow (its ports parsed): destination back to the
 * client, source back to the VIP. `route`: always sent on from here (TC: a
 * hairpin answer goes back out of the veth it came in by); otherwise only when
 * the VIP is this node's own address, and handed to the stack else.
 * XLB_PASS_NO_SERVICE when the packet is no such answer.
 */
static __always_inline int snat_answer(struct __ctx_buff *ctx, struct xlb_pkt *pkt, int route,
				       __u32 *ifindex)
{
	void *data_end = ctx_data_end(ctx);
	struct xlb_snat *s;
	__u16 dport = bpf_ntohs(pkt->flow.dport);
	__u64 now;
	int ret;

	if (dport < XLB_SNAT_PORT_MIN || dport > XLB_SNAT_PORT_MAX)
		return XLB_PASS_NO_SERVICE;
	now = bpf_ktime_get_coarse_ns();
	s = bpf_map_lookup_elem(&xlb_snat_v1, &pkt->flow);
	if (!s)
		return XLB_PASS_NO_SERVICE;
	if (now - s->last_seen > XLB_CT_TOUCH_NS)
		s->last_seen = now;
	if (s->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	ret = validate_l4(pkt, data_end);
	if (ret != XLB_OK)
		return ret;
	/* NAT_DIR_TO_BACKEND rewrites the destination, NAT_DIR_TO_CLIENT the source */
	ret = nat_rewrite(pkt, data_end, NAT_DIR_TO_BACKEND, s->client, s->client_port);
	if (ret != XLB_OK)
		return ret;
	ret = nat_rewrite(pkt, data_end, NAT_DIR_TO_CLIENT, s->vip, s->vip_port);
	if (ret != XLB_OK)
		return ret;
	if (!route && !(s->flags & XLB_REPLY_F_ROUTE))
		return XLB_FWD_REPLY_SNAT;
	return route_verdict(route_lookup(ctx, s->family, pkt->flow.proto, s->vip, s->client,
					  ifindex),
			     XLB_FWD_REPLY_ROUTED, XLB_PASS_REPLY_KERNEL);
}

#endif /* XLB_SNAT_H */
