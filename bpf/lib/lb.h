/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load-balancing core shared by every hook: service lookup, conntrack and
 * Maglev selection. It sees only struct xlb_pkt and the maps, never the ctx.
 */
#ifndef XLB_LB_H
#define XLB_LB_H

#include "maps.h"
#include "parse.h"
#include "maps/xlb_rules.h"

/* A conntrack entry's last_seen is rewritten at most this often per flow. */
#define XLB_CT_TOUCH_NS XLB_NSEC_PER_SEC

/* False means "certainly no VIP": the VIP filter's bit for daddr is clear. */
static __always_inline int lb_maybe_vip(const __be32 *daddr)
{
	__u32 word;
	__u64 bit = xlb_vip_filter_pos(daddr, &word);

	return xlb_vip_filter_has(bpf_map_lookup_elem(&xlb_vipfilt_v1, &word), bit);
}

/* Exact (VIP, port, proto) first, then the all-ports form (port 0). */
static __always_inline struct xlb_service *lb_lookup_service(const struct xlb_ct_key *flow)
{
	struct xlb_service_key key;
	struct xlb_service *svc;

	xlb_service_key_exact(flow, &key);
	svc = bpf_map_lookup_elem(&xlb_services_v1, &key);
	if (svc)
		return svc;
	xlb_service_key_all_ports(&key);
	return bpf_map_lookup_elem(&xlb_services_v1, &key);
}

static __always_inline struct xlb_backend *lb_lookup_backend(__u32 id)
{
	struct xlb_backend *be = bpf_map_lookup_elem(&xlb_backends_v1, &id);

	return xlb_backend_usable(be) ? be : NULL;
}

/*
 * The backend of a tracked flow, or NULL when the flow must be (re)selected:
 * no entry, idle past its timeout, its backend gone, or a new SYN on a closing
 * tuple (the client reused the port).
 */
static __always_inline struct xlb_backend *ct_lookup(const struct xlb_ct_key *flow, __u8 tcp_flags,
						     __u64 now, __u32 *backend_id, __u32 *service_id,
						     __be16 *snat_port)
{
	struct xlb_ct_value *ct = bpf_map_lookup_elem(&xlb_ct_v1, flow);
	struct xlb_backend *be;
	__u8 state;

	if (!ct)
		return NULL;
	if (xlb_ct_check(&xlb_cfg, flow->proto, ct->state, ct->last_seen, tcp_flags, now) !=
	    XLB_CT_KEEP)
		return NULL;
	be = lb_lookup_backend(ct->backend_id);
	if (!be)
		return NULL;
	state = xlb_ct_next_state(ct->state, flow->proto, tcp_flags);
	if (state != ct->state || now - ct->last_seen > XLB_CT_TOUCH_NS) {
		ct->state = state;
		ct->last_seen = now;
	}
	*backend_id = ct->backend_id;
	*service_id = ct->service_id;
	*snat_port = ct->snat_port;
	return be;
}

static __always_inline void ct_create(const struct xlb_ct_key *flow, __u8 tcp_flags, __u64 now,
				      __u32 service_id, __u32 backend_id, __be16 snat_port)
{
	struct xlb_ct_value ct = {
		.last_seen = now,
		.backend_id = backend_id,
		.service_id = service_id,
		.snat_port = snat_port,
	};

	/* assigned after the initializer: clang then emits two fewer instructions */
	ct.state = xlb_ct_new_state(flow->proto, tcp_flags);
	bpf_map_update_elem(&xlb_ct_v1, flow, &ct, BPF_ANY);
}

/* Maglev: the flow's hash picks a slot of the service's table. */
static __always_inline int lb_select(const struct xlb_service *svc, const struct xlb_ct_key *flow,
				     __u32 *backend_id)
{
	__u32 slot;
	__u32 *id;
	void *table;

	if (!svc->backend_count)
		return XLB_DROP_NO_BACKEND;
	table = bpf_map_lookup_elem(&xlb_maglev_v1, &svc->id);
	if (!table)
		return XLB_DROP_NO_TABLE;
	slot = xlb_select_slot(xlb_select_hash(flow, svc->flags, xlb_cfg.hash_seed),
			       xlb_cfg.maglev_size);
	id = bpf_map_lookup_elem(table, &slot);
	if (!id || *id == XLB_ID_NONE)
		return XLB_DROP_NO_BACKEND;
	*backend_id = *id;
	return XLB_OK;
}

#endif /* XLB_LB_H */
