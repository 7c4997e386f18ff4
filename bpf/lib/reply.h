/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reply entries (struct xlb_reply in maps/xlb_abi.h): what happens to a
 * backend's answer. REVNAT entries are written with a flow's conntrack entry
 * on the node that balanced it; TUNNEL entries when a flow is decapsulated for
 * a backend on this node.
 */
#ifndef XLB_REPLY_H
#define XLB_REPLY_H

#include "encap.h"
#include "lb.h"
#include "mss.h"
#include "nat.h"
#include "route.h"

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

/* The entry for a packet's own tuple, its last_seen refreshed coarsely. */
static __always_inline struct xlb_reply *reply_lookup(const struct xlb_ct_key *tuple, __u64 now)
{
	struct xlb_reply *r = bpf_map_lookup_elem(&xlb_reply_v1, tuple);

	if (r && now - r->last_seen > XLB_CT_TOUCH_NS)
		r->last_seen = now;
	return r;
}

/* The TCP flags of pkt (its ports parsed, the rest unchecked); 0 when not TCP or cut short. */
static __always_inline __u8 reply_tcp_flags(const struct xlb_pkt *pkt, void *data_end)
{
	__u8 *flags = (__u8 *)pkt->l4 + 13;

	if (pkt->flow.proto != IPPROTO_TCP || (void *)(flags + 1) > data_end)
		return 0;
	return *flags;
}

/*
 * Whether half-open flow h is the one a backend's packet (backend:port ->
 * client:port) answers: the client's key found it, so its backend must be the
 * packet's source (xlb_revnat_key's tuple).
 */
static __always_inline int reply_half_answered(const struct xlb_half_open *h,
					       const struct xlb_ct_key *answer)
{
	__u32 id = h->ct.backend_id;
	struct xlb_backend *be = bpf_map_lookup_elem(&xlb_backends_v1, &id);

	return be && be->family == answer->family && be->addr[0] == answer->saddr[0] &&
	       be->addr[1] == answer->saddr[1] && be->addr[2] == answer->saddr[2] &&
	       be->addr[3] == answer->saddr[3] && (be->port ?: h->revnat.port) == answer->sport;
}

/*
 * The entry a backend's packet answers. A SYN-ACK or an RST (the only packets
 * that answer a half-open flow) looks among the half-open flows first (the
 * REVNAT entry inside a half-open flow of this node's, then a decapsulated
 * SYN's TUNNEL entry): the established map may still hold an older flow's
 * entry under the same tuple (the client reused its port toward another VIP or
 * NodePort that chose the same backend), and that one must not turn the new
 * flow's answer back into the old flow's address. Everything else costs one
 * lookup. flags: the packet's TCP flags (reply_tcp_flags).
 */
static __always_inline struct xlb_reply *reply_find(const struct xlb_pkt *pkt, __u8 flags,
						    __u64 now)
{
	struct xlb_half_key hkey;
	struct xlb_half_open *h;
	struct xlb_reply *r;

	if ((flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == (XLB_TCP_SYN | XLB_TCP_ACK) ||
	    (flags & XLB_TCP_RST)) {
		/* the client's side: the answer's destination */
		__builtin_memcpy(hkey.client, pkt->flow.daddr, sizeof(hkey.client));
		hkey.port = pkt->flow.dport;
		hkey.proto = pkt->flow.proto;
		hkey.family = pkt->flow.family;
		h = bpf_map_lookup_elem(&xlb_cthalf_v2, &hkey);
		if (h && reply_half_answered(h, &pkt->flow))
			return &h->revnat;
		r = bpf_map_lookup_elem(&xlb_rplhalf_v1, &pkt->flow);
		if (r)
			return r;
	}
	return reply_lookup(&pkt->flow, now);
}

/*
 * A flow decapsulated for a backend here: its answer (the reverse tuple) goes
 * back through the tunnel to the node it came from, in the format it came in.
 * A SYN's entry is half-open (a flood through the tunnel evicts only those);
 * the flow's next packet moves it. The entry is rewritten only when it is new
 * or its origin changed.
 */
static __always_inline void reply_note_tunnel(const struct xlb_ct_key *flow, const __be32 *origin,
					      __u8 origin_family, __u8 encap, __u64 now,
					      __u8 tcp_flags)
{
	int half_open = (tcp_flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == XLB_TCP_SYN;
	struct xlb_ct_key key;
	struct xlb_reply *cur;
	struct xlb_reply r = {
		.last_seen = now,
		.kind = XLB_REPLY_TUNNEL,
		.family = origin_family,
		.encap = encap,
	};

	reply_key(&key, flow);
	if (half_open)
		cur = bpf_map_lookup_elem(&xlb_rplhalf_v1, &key);
	else
		cur = bpf_map_lookup_elem(&xlb_reply_v1, &key);
	if (cur && cur->kind == XLB_REPLY_TUNNEL && cur->family == origin_family &&
	    cur->encap == encap && cur->addr[0] == origin[0] && cur->addr[1] == origin[1] &&
	    cur->addr[2] == origin[2] && cur->addr[3] == origin[3]) {
		if (now - cur->last_seen > XLB_CT_TOUCH_NS)
			cur->last_seen = now;
		return;
	}
	__builtin_memcpy(r.addr, origin, sizeof(r.addr));
	reply_store(&key, &r, half_open);
}

/* REVNAT: the answer's source becomes the VIP and its port again. */
static __always_inline int reply_revnat(struct xlb_pkt *pkt, const struct xlb_reply *r,
					void *data_end)
{
	if (r->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	return nat_rewrite(pkt, data_end, NAT_DIR_TO_CLIENT, r->addr, r->port);
}

/*
 * A reverse-NATed answer whose source is now this node's own address (a
 * NodePort, XLB_REPLY_F_ROUTE): the stack would drop it as martian, so it is
 * routed here, toward the client. An unresolved neighbour: TC has the kernel
 * resolve it (bpf_redirect_neigh); XDP can only pass it (the client's first
 * packets came through that next hop, so it is resolved in practice).
 */
static __always_inline int reply_route(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
				       const struct xlb_reply *r, __u32 *ifindex)
{
	/* the client: the answer's destination */
	return route_verdict(route_lookup(ctx, r->family, pkt->flow.proto, r->addr,
					  pkt->flow.daddr, ifindex),
			     XLB_FWD_REPLY_ROUTED, XLB_PASS_REPLY_KERNEL);
}

/*
 * A REVNAT entry's answer, from a local pod (TC) or decapsulated (XDP): back
 * to VIP:port, and routed from here when the VIP is this node's (NodePort).
 */
static __always_inline int reply_apply_revnat(struct __ctx_buff *ctx, struct xlb_pkt *pkt,
					      const struct xlb_reply *r, __u32 *ifindex)
{
	int ret;

	ret = reply_revnat(pkt, r, ctx_data_end(ctx));
	if (ret != XLB_OK)
		return ret;
	if (r->flags & XLB_REPLY_F_ROUTE)
		return reply_route(ctx, pkt, r, ifindex);
	return XLB_FWD_REPLY_REVNAT;
}

/* A TUNNEL entry's answer: back through the tunnel its flow came in by. */
static __always_inline int reply_apply_tunnel(struct __ctx_buff *ctx, struct xlb_pkt *pkt,
					      const struct xlb_reply *r, __u32 *ifindex)
{
	struct xlb_route rt = {};
	struct xlb_tunnel t;
	int ret;

	__builtin_memcpy(t.addr, r->addr, sizeof(t.addr));
	t.family = r->family;
	t.encap = r->encap;
	ret = tunnel_prepare(ctx, pkt, &t, &rt);
	if (ret != XLB_OK)
		return ret;
	/* the SYN-ACK: the client's segments must fit the tunnel too */
	mss_clamp(pkt, ctx_data_end(ctx), mss_for_tunnel(t.family, t.encap, pkt->flow.family));
	*ifindex = rt.ifindex;
	return tunnel_push(ctx, pkt, &t, &rt, XLB_FWD_REPLY_TUNNEL);
}

/*
 * A pod's TCP/UDP packet that matches reply entry r (its ports parsed, its L4
 * header not yet validated): a backend answering a flow.
 */
static __always_inline int reply_apply(struct __ctx_buff *ctx, struct xlb_pkt *pkt,
				       const struct xlb_reply *r, __u32 *ifindex)
{
	int ret;

	ret = validate_l4(pkt, ctx_data_end(ctx));
	if (ret != XLB_OK)
		return ret;
	if (r->kind == XLB_REPLY_REVNAT)
		return reply_apply_revnat(ctx, pkt, r, ifindex);
	if (r->kind == XLB_REPLY_TUNNEL)
		return reply_apply_tunnel(ctx, pkt, r, ifindex);
	return XLB_PASS_NO_SERVICE;
}

/*
 * An ICMP error a backend sends about a packet of a flow balanced here (it
 * quotes client -> backend:port) is the flow's answer too: it goes to the
 * client from VIP:port again, the way nat_icmp_error sends the client's
 * errors to the backend.
 */
static __always_inline int reply_revnat_icmp(struct xlb_pkt *pkt, void *data_end, __u64 now)
{
	struct nat_icmp_quote qt;
	struct xlb_reply *r;
	int ret;

	ret = nat_icmp_quote(pkt, data_end, NAT_DIR_TO_CLIENT, &qt);
	if (ret != XLB_OK)
		return ret;
	r = reply_lookup(&qt.flow, now);
	if (!r || r->kind != XLB_REPLY_REVNAT || r->family != qt.flow.family)
		return XLB_PASS_ICMP;
	return nat_icmp_rewrite(pkt, data_end, NAT_DIR_TO_CLIENT, &qt, r->addr, r->port,
				XLB_FWD_REPLY_REVNAT);
}

#endif /* XLB_REPLY_H */
