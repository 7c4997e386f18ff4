/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load-balancing core shared by every hook: service lookup, conntrack and
 * Maglev selection. It sees only struct xlb_pkt and the maps, never the ctx.
 */
#ifndef XLB_LB_H
#define XLB_LB_H

#include "maps.h"
#include "parse.h"
#include "maps/xlb_hash.h"

#define NSEC_PER_SEC 1000000000ULL
/* A conntrack entry's last_seen is rewritten at most this often per flow. */
#define XLB_CT_TOUCH_NS NSEC_PER_SEC

#define XLB_TCP_FIN 0x01
#define XLB_TCP_SYN 0x02
#define XLB_TCP_RST 0x04
#define XLB_TCP_ACK 0x10

/* False means "certainly no VIP": the VIP filter's bit for daddr is clear. */
static __always_inline int lb_maybe_vip(const __be32 *daddr)
{
	__u32 word;
	__u64 bit = xlb_vip_filter_pos(daddr, &word);
	__u64 *w = bpf_map_lookup_elem(&xlb_vipfilt_v1, &word);

	return w && (*w & bit);
}

/* Exact (VIP, port, proto) first, then the all-ports form (port 0). */
static __always_inline struct xlb_service *lb_lookup_service(const struct xlb_ct_key *flow)
{
	struct xlb_service_key key = {
		.port = flow->dport,
		.proto = flow->proto,
		.family = flow->family,
	};
	struct xlb_service *svc;

	__builtin_memcpy(key.addr, flow->daddr, sizeof(key.addr));
	svc = bpf_map_lookup_elem(&xlb_services_v1, &key);
	if (svc)
		return svc;
	key.port = 0;
	return bpf_map_lookup_elem(&xlb_services_v1, &key);
}

static __always_inline struct xlb_backend *lb_lookup_backend(__u32 id)
{
	struct xlb_backend *be = bpf_map_lookup_elem(&xlb_backends_v1, &id);

	if (!be || !(be->flags & XLB_BE_F_VALID))
		return NULL;
	return be;
}

static __always_inline __u64 ct_timeout_ns(const struct xlb_ct_value *ct, __u8 proto)
{
	__u32 s;

	if (proto != IPPROTO_TCP)
		s = xlb_cfg.ct_udp_timeout_s;
	else if (ct->state == XLB_CT_ESTABLISHED)
		s = xlb_cfg.ct_tcp_timeout_s;
	else if (ct->state == XLB_CT_SYN_SENT)
		s = xlb_cfg.ct_syn_timeout_s;
	else
		s = xlb_cfg.ct_close_timeout_s;
	return s * NSEC_PER_SEC;
}

static __always_inline __u8 ct_next_state(__u8 state, __u8 proto, __u8 tcp_flags)
{
	if (proto != IPPROTO_TCP)
		return XLB_CT_ESTABLISHED;
	if (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST))
		return XLB_CT_CLOSING;
	if (state == XLB_CT_SYN_SENT && (tcp_flags & XLB_TCP_ACK))
		return XLB_CT_ESTABLISHED;
	return state;
}

/*
 * The backend of a tracked flow, or NULL when the flow must be (re)selected:
 * no entry, idle past its timeout, its backend gone, or a new SYN on a closing
 * tuple (the client reused the port).
 */
static __always_inline struct xlb_backend *ct_lookup(const struct xlb_ct_key *flow, __u8 tcp_flags,
						     __u64 now, __u32 *backend_id, __u32 *service_id)
{
	struct xlb_ct_value *ct = bpf_map_lookup_elem(&xlb_ct_v1, flow);
	struct xlb_backend *be;
	__u8 state;

	if (!ct)
		return NULL;
	if (now - ct->last_seen > ct_timeout_ns(ct, flow->proto))
		return NULL;
	if (ct->state == XLB_CT_CLOSING && (tcp_flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == XLB_TCP_SYN)
		return NULL;
	be = lb_lookup_backend(ct->backend_id);
	if (!be)
		return NULL;
	state = ct_next_state(ct->state, flow->proto, tcp_flags);
	if (state != ct->state || now - ct->last_seen > XLB_CT_TOUCH_NS) {
		ct->state = state;
		ct->last_seen = now;
	}
	*backend_id = ct->backend_id;
	*service_id = ct->service_id;
	return be;
}

static __always_inline void ct_create(const struct xlb_ct_key *flow, __u8 tcp_flags, __u64 now,
				      __u32 service_id, __u32 backend_id)
{
	struct xlb_ct_value ct = {
		.last_seen = now,
		.backend_id = backend_id,
		.service_id = service_id,
		.state = XLB_CT_ESTABLISHED,
	};

	if (flow->proto == IPPROTO_TCP) {
		if (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST))
			ct.state = XLB_CT_CLOSING;
		else if (tcp_flags & XLB_TCP_SYN)
			ct.state = XLB_CT_SYN_SENT;
	}
	bpf_map_update_elem(&xlb_ct_v1, flow, &ct, BPF_ANY);
}

/* Maglev: the flow's hash picks a slot of the service's table. */
static __always_inline int lb_select(const struct xlb_service *svc, const struct xlb_ct_key *flow,
				     __u32 *backend_id)
{
	__u32 hash, slot;
	__u32 *id;
	void *table;

	if (!svc->backend_count)
		return XLB_DROP_NO_BACKEND;
	table = bpf_map_lookup_elem(&xlb_maglev_v1, &svc->id);
	if (!table)
		return XLB_DROP_NO_TABLE;
	if (svc->flags & XLB_SVC_F_AFFINITY)
		hash = xlb_hash_client(flow, xlb_cfg.hash_seed);
	else
		hash = xlb_hash_flow(flow, xlb_cfg.hash_seed);
	slot = hash % xlb_cfg.maglev_size;
	id = bpf_map_lookup_elem(table, &slot);
	if (!id || *id == XLB_ID_NONE)
		return XLB_DROP_NO_BACKEND;
	*backend_id = *id;
	return XLB_OK;
}

#endif /* XLB_LB_H */
