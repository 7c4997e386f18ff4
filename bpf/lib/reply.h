/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Reply entries (struct xlb_reply in maps/xlb_abi.h): what happens to a
 * backend's answer. REVNAT entries are written with a flow's conntrack entry
 * on the node that balanced it; TUNNEL entries when a flow is decapsulated for
 * a backend on this node.
 */
#ifndef XLB_REPLY_H
#define XLB_REPLY_H

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
						const struct xlb_backend *be, __u64 now)
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

#endif /* XLB_REPLY_H */
