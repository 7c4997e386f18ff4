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
 * Writes reply entry r under key: among the half-open ones for a SYN, else
 * among the established ones, where a TCP flow that began half-open leaves
 * its half-open entry spent. (The TUNNEL entries of flows decapsulated here.)
 */
static __always_inline void reply_store(const struct xlb_ct_key *key, const struct xlb_reply *r,
					int half_open)
{
	if (half_open) {
		bpf_map_update_elem(&xlb_rplhalf_v1, key, r, BPF_ANY);
		return;
	}
	bpf_map_update_elem(&xlb_reply_v1, key, r, BPF_ANY);
	if (key->proto == IPPROTO_TCP)
		bpf_map_delete_elem(&xlb_rplhalf_v1, key);
}

/*
 * The client's ACK completed a half-open flow's handshake: its conntrack
 * entry (updated in place) moves into xlb_ct_v1 and its answers' REVNAT entry
 * into xlb_reply_v1, both written straight from the map value, which is
 * deleted last. hkey: the entry's key.
 */
static __always_inline void ct_promote(const struct xlb_ct_key *flow, const struct xlb_backend *be,
				       struct xlb_half_open *h, const struct xlb_half_key *hkey,
				       __u64 now)
{
	struct xlb_ct_key key;

	bpf_map_update_elem(&xlb_ct_v1, flow, &h->ct, BPF_ANY);
	h->revnat.last_seen = now;
	xlb_revnat_key(flow, be, &key);
	bpf_map_update_elem(&xlb_reply_v1, &key, &h->revnat, BPF_ANY);
	bpf_map_delete_elem(&xlb_cthalf_v2, hkey);
}

/*
 * The backend of a tracked flow, or NULL when the flow must be (re)selected:
 * no entry, idle past its timeout, its backend gone, or a new SYN on a closing
 * tuple (the client reused the port). *ct gets the entry as it stands.
 * Established flows are found in xlb_ct_v1 with one lookup; only a miss there
 * looks at the half-open flows, and the ACK that completes a handshake moves
 * its flow over (maps/xlb_abi.h says why). A SYN does not look: it opens a
 * half-open flow, or renews its own (ct_create).
 */
static __always_inline struct xlb_backend *ct_lookup(const struct xlb_ct_key *flow, __u8 tcp_flags,
						     __u64 now, struct xlb_ct_value *ct)
{
	struct xlb_ct_value *entry = bpf_map_lookup_elem(&xlb_ct_v1, flow);
	struct xlb_half_open *h = NULL;
	struct xlb_backend *be = NULL;
	struct xlb_half_key hkey;
	__u8 state;

	if (!entry && xlb_ct_seeks_half_open(flow->proto, tcp_flags)) {
		xlb_half_key_of(flow, &hkey);
		h = bpf_map_lookup_elem(&xlb_cthalf_v2, &hkey);
		/* another VIP's handshake from this client port */
		if (h && !xlb_half_is_flow(h, flow))
			h = NULL;
		if (h)
			entry = &h->ct;
	}
	if (!entry)
		return NULL;
	if (xlb_ct_check(&xlb_cfg, flow->proto, entry->state, entry->last_seen, tcp_flags, now) ==
	    XLB_CT_KEEP)
		be = lb_lookup_backend(entry->backend_id);
	if (!be) {
		/*
		 * A SYN that replaces an established flow's entry starts half-open:
		 * the old entry would be found before the new one.
		 */
		if (!h && xlb_ct_new_state(flow->proto, tcp_flags) == XLB_CT_SYN_SENT)
			bpf_map_delete_elem(&xlb_ct_v1, flow);
		return NULL;
	}
	state = xlb_ct_next_state(entry->state, flow->proto, tcp_flags);
	if (state != entry->state || now - entry->last_seen > XLB_CT_TOUCH_NS) {
		entry->state = state;
		entry->last_seen = now;
	}
	*ct = *entry;
	if (h && state == XLB_CT_ESTABLISHED)
		ct_promote(flow, be, h, &hkey, now);
	return be;
}

/* What writing a SYN's half-open flow did (ct_create_half_open). */
enum ct_half_write {
	CT_HALF_TAKEN = 0, /* the key holds another VIP's live handshake: nothing written */
	CT_HALF_NEW,       /* a new half-open flow */
	CT_HALF_RENEWED,   /* the flow's own entry rewritten: its SYN again */
};

/*
 * Writes a SYN's half-open flow h under the client's key, unless that key
 * holds another VIP's handshake that is still unanswered and fresh. The
 * flow's own live entry (its SYN retransmitted) is rewritten with the backend
 * chosen now, which the backend's SYN-ACK must come from; a closed (RST) or
 * stale one makes this SYN a new flow. The common case, a free key, costs the
 * one insert.
 */
static __always_inline enum ct_half_write ct_create_half_open(const struct xlb_ct_key *flow,
							      const struct xlb_half_open *h,
							      __u64 now)
{
	struct xlb_half_key hkey;
	struct xlb_half_open *cur;
	int live;

	xlb_half_key_of(flow, &hkey);
	if (!bpf_map_update_elem(&xlb_cthalf_v2, &hkey, h, BPF_NOEXIST))
		return CT_HALF_NEW;
	/* a handshake still waiting for its answer; a closed or stale one is replaced */
	cur = bpf_map_lookup_elem(&xlb_cthalf_v2, &hkey);
	live = cur && cur->ct.state == XLB_CT_SYN_SENT &&
	       xlb_ct_check(&xlb_cfg, flow->proto, cur->ct.state, cur->ct.last_seen, 0, now) ==
		       XLB_CT_KEEP;
	if (live && !xlb_half_is_flow(cur, flow))
		return CT_HALF_TAKEN;
	bpf_map_update_elem(&xlb_cthalf_v2, &hkey, h, BPF_ANY);
	return live ? CT_HALF_RENEWED : CT_HALF_NEW;
}

/*
 * A new flow's entries: its conntrack entry and, with revnat, its answer's
 * REVNAT entry (backend:port -> client gets its source turned back into
 * VIP:port; XLB_CT_F_NODE_PORT: the VIP is this node's address, xlb routes the
 * answer). A SYN's (half_open) are one entry of xlb_cthalf_v2 when the
 * client's key is free for it; the others go into xlb_reply_v1 and xlb_ct_v1.
 * Returns 0 when the packet renewed its own half-open flow (a retransmitted
 * SYN, not a new flow), else 1.
 */
static __always_inline int ct_create(const struct xlb_ct_key *flow, const struct xlb_backend *be,
				     __u8 tcp_flags, __u64 now, __u32 service_id, __u32 backend_id,
				     __be16 snat_port, __u8 flags, int revnat, int half_open)
{
	struct xlb_half_open h = {
		.ct = {
			.last_seen = now,
			.backend_id = backend_id,
			.service_id = service_id,
			.flags = flags,
			.snat_port = snat_port,
		},
		.revnat = {
			.last_seen = now,
			.port = flow->dport,
			.kind = XLB_REPLY_REVNAT,
			.family = flow->family,
			.flags = flags & XLB_CT_F_NODE_PORT ? XLB_REPLY_F_ROUTE : 0,
		},
	};
	enum ct_half_write written;
	struct xlb_ct_key key;

	/* assigned after the initializer: clang then emits two fewer instructions */
	h.ct.state = xlb_ct_new_state(flow->proto, tcp_flags);
	__builtin_memcpy(h.revnat.addr, flow->daddr, sizeof(h.revnat.addr));
	if (half_open) {
		written = ct_create_half_open(flow, &h, now);
		if (written != CT_HALF_TAKEN)
			return written == CT_HALF_NEW;
	}
	if (revnat) {
		xlb_revnat_key(flow, be, &key);
		bpf_map_update_elem(&xlb_reply_v1, &key, &h.revnat, BPF_ANY);
	}
	bpf_map_update_elem(&xlb_ct_v1, flow, &h.ct, BPF_ANY);
	return 1;
}

/*
 * loadBalancerSourceRanges: whether the flow's source may use the key svc was
 * found under. Keys without XLB_SVC_F_SOURCE_RANGES take every source.
 */
static __always_inline int lb_source_allowed(const struct xlb_service *svc,
					     const struct xlb_ct_key *flow)
{
	struct xlb_src_range_key key;

	if (!(svc->flags & XLB_SVC_F_SOURCE_RANGES))
		return 1;
	xlb_src_range_lookup_key(flow, svc->id, &key);
	return bpf_map_lookup_elem(&xlb_srcrange_v1, &key) != NULL;
}

/* Maglev: the flow's hash picks a slot of the service's table. */
static __always_inline int lb_select(const struct xlb_service *svc, const struct xlb_ct_key *flow,
				     __u32 *backend_id)
{
	const struct xlb_maglev_chunk *chunk;
	__u32 slot, elem, id;
	void *table;

	if (!svc->backend_count)
		return XLB_DROP_NO_BACKEND;
	table = bpf_map_lookup_elem(&xlb_maglev_v3, &svc->id);
	if (!table)
		return XLB_DROP_NO_TABLE;
	slot = xlb_select_slot(xlb_select_hash(flow, svc->flags, xlb_cfg.hash_seed),
			       xlb_cfg.maglev_size);
	elem = slot / XLB_MAGLEV_CHUNK;
	chunk = bpf_map_lookup_elem(table, &elem);
	if (!chunk)
		return XLB_DROP_NO_BACKEND;
	id = chunk->id[slot & (XLB_MAGLEV_CHUNK - 1)];
	if (id == XLB_ID_NONE)
		return XLB_DROP_NO_BACKEND;
	*backend_id = id;
	return XLB_OK;
}


/*
 * ClientIP affinity: whether the client's entry still binds a new flow. It is
 * younger than the service's timeout, and its backend still takes the
 * service's new flows (the agent's xlb_affmatch_v1: a backend that left the
 * service, or that is draining, is no longer there) and is valid.
 */
static __always_inline int lb_affinity_binds(const struct xlb_service *svc,
					     const struct xlb_affinity *aff, __u64 now)
{
	struct xlb_affinity_match_key match = {.service_id = svc->id,
					       .backend_id = aff->backend_id};

	return xlb_affinity_fresh(svc, aff->last_seen, now) &&
	       bpf_map_lookup_elem(&xlb_affmatch_v1, &match) && lb_lookup_backend(aff->backend_id);
}

/*
 * The backend of a new flow, for the packet hooks and the socket hooks alike.
 * Under ClientIP affinity the client's last backend while its entry binds
 * (lb_affinity_binds), else Maglev; either way the entry then names this
 * backend, seen now: every new flow refreshes it (kube-proxy's `recent` match
 * with --update, Cilium's affinity map), so a client moves only after it has
 * been idle for the timeout.
 */
static __always_inline int lb_select_backend(const struct xlb_service *svc,
					     const struct xlb_ct_key *flow, __u64 now,
					     __u32 *backend_id)
{
	struct xlb_affinity_key key;
	struct xlb_affinity *aff;
	struct xlb_affinity fresh = {.last_seen = now};
	int ret;

	if (!(svc->flags & XLB_SVC_F_AFFINITY) || !svc->backend_count)
		return lb_select(svc, flow, backend_id);
	xlb_affinity_key_of(flow, svc->id, &key);
	aff = bpf_map_lookup_elem(&xlb_affinity_v1, &key);
	if (aff && lb_affinity_binds(svc, aff, now)) {
		*backend_id = aff->backend_id;
		aff->last_seen = now;
		return XLB_OK;
	}
	ret = lb_select(svc, flow, backend_id);
	if (ret != XLB_OK)
		return ret;
	fresh.backend_id = *backend_id;
	bpf_map_update_elem(&xlb_affinity_v1, &key, &fresh, BPF_ANY);
	return XLB_OK;
}

#endif /* XLB_LB_H */
