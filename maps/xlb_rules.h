/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The rules by which the datapath places a packet, as plain functions over
 * plain values. Compiled into the BPF programs (bpf/lib/lb.h, bpf/xlb_*.bpf.c)
 * and into userspace (xlbctl explain, tests), so that what xlbctl predicts for
 * a flow is what the program does with it. Each side does its own map lookups;
 * what is decided between them is decided here, in this order:
 *
 *   1. VIP filter: a clear bit for the destination means "not a service", and
 *      the packet passes before anything else is looked up.
 *   2. Conntrack: an entry keeps its backend unless it was idle past the
 *      timeout of its protocol and state, or the packet is a new SYN on a
 *      closing tuple (the client reused the port), or the backend is no longer
 *      valid. Otherwise the flow is selected again. A TCP flow that missed
 *      xlb_ct_v1 may be half-open (xlb_cthalf_v2, under the client's side of
 *      the tuple, if it names the VIP and port); a SYN does not look there.
 *   3. Service: the exact (VIP, port, proto) entry, then the all-ports form.
 *   4. Source ranges: a key with XLB_SVC_F_SOURCE_RANGES drops a source that
 *      is in none of its service's prefixes (xlb_srcrange_v1).
 *   5. No endpoint: backend_count 0 drops, or with XLB_SVC_F_REJECT is
 *      answered with ICMP port unreachable.
 *   6. ClientIP affinity: the client's entry in xlb_affinity_v1, while younger
 *      than the service's timeout and its backend still in xlb_affmatch_v1 and
 *      valid, names the backend.
 *   7. Maglev: the flow hash (xlb_hash.h) picks a slot of the service's table;
 *      an empty slot or an invalid backend drops the packet.
 */
#ifndef XLB_RULES_H
#define XLB_RULES_H

#include "xlb_abi.h"
#include "xlb_hash.h"

#define XLB_IPPROTO_TCP 6 /* netinet/in.h and linux/in.h do not mix in userspace */
#define XLB_NSEC_PER_SEC 1000000000ULL

#define XLB_TCP_FIN 0x01
#define XLB_TCP_SYN 0x02
#define XLB_TCP_RST 0x04
#define XLB_TCP_ACK 0x10

/* 1. Whether the VIP filter may hold daddr; false means certainly not a VIP. */
XLB_INLINE int xlb_vip_filter_has(const __u64 *word_bits, __u64 bit)
{
	return word_bits && (*word_bits & bit);
}

/* 2. Seconds a conntrack entry of this protocol and state may stay idle. */
XLB_INLINE __u32 xlb_ct_timeout_s(const volatile struct xlb_config *cfg, __u8 proto, __u8 state)
{
	if (proto != XLB_IPPROTO_TCP)
		return cfg->ct_udp_timeout_s;
	if (state == XLB_CT_ESTABLISHED)
		return cfg->ct_tcp_timeout_s;
	if (state == XLB_CT_SYN_SENT)
		return cfg->ct_syn_timeout_s;
	return cfg->ct_close_timeout_s;
}

/* What a conntrack entry does for a packet of its flow, before its backend is checked. */
enum xlb_ct_fate {
	XLB_CT_KEEP = 0,  /* the entry's backend carries the packet, if still valid */
	XLB_CT_EXPIRED,   /* idle past its timeout: select again */
	XLB_CT_REOPENED,  /* a SYN without ACK on a closing tuple: select again */
};

/*
 * `now` and `last_seen` are bpf_ktime_get_coarse_ns() values (CLOCK_MONOTONIC
 * in userspace). The difference is unsigned, as the datapath computes it: a
 * last_seen ahead of now counts as expired.
 */
XLB_INLINE enum xlb_ct_fate xlb_ct_check(const volatile struct xlb_config *cfg, __u8 proto,
					  __u8 state, __u64 last_seen, __u8 tcp_flags, __u64 now)
{
	if (now - last_seen > xlb_ct_timeout_s(cfg, proto, state) * XLB_NSEC_PER_SEC)
		return XLB_CT_EXPIRED;
	if (state == XLB_CT_CLOSING && (tcp_flags & (XLB_TCP_SYN | XLB_TCP_ACK)) == XLB_TCP_SYN)
		return XLB_CT_REOPENED;
	return XLB_CT_KEEP;
}

/* 2. A half-open flow's key (xlb_cthalf_v2): the client's side of a client -> VIP flow. */
XLB_INLINE void xlb_half_key_of(const struct xlb_ct_key *flow, struct xlb_half_key *key)
{
	key->client[0] = flow->saddr[0];
	key->client[1] = flow->saddr[1];
	key->client[2] = flow->saddr[2];
	key->client[3] = flow->saddr[3];
	key->port = flow->sport;
	key->proto = flow->proto;
	key->family = flow->family;
}

/*
 * 2. Whether a packet of a flow that missed xlb_ct_v1 looks among the half-open
 * flows: a TCP packet other than a bare SYN (a SYN opens a flow, or renews its own).
 */
XLB_INLINE int xlb_ct_seeks_half_open(__u8 proto, __u8 tcp_flags)
{
	return proto == XLB_IPPROTO_TCP &&
	       (tcp_flags & (XLB_TCP_SYN | XLB_TCP_ACK)) != XLB_TCP_SYN;
}

/* 2. The flow a half-open entry holds (client -> VIP:port): xlb_half_key_of() undone. */
XLB_INLINE void xlb_half_flow_of(const struct xlb_half_key *key, const struct xlb_half_open *h,
				 struct xlb_ct_key *flow)
{
	int i;

	for (i = 0; i < 4; i++) {
		flow->saddr[i] = key->client[i];
		flow->daddr[i] = h->revnat.addr[i];
	}
	flow->sport = key->port;
	flow->dport = h->revnat.port;
	flow->proto = key->proto;
	flow->family = key->family;
	flow->pad[0] = 0;
	flow->pad[1] = 0;
}

/*
 * 2. The tuple of backend be's answer to flow (backend:port -> client), under
 * which its REVNAT entry is found in xlb_reply_v1.
 */
XLB_INLINE void xlb_revnat_key(const struct xlb_ct_key *flow, const struct xlb_backend *be,
			       struct xlb_ct_key *key)
{
	int i;

	for (i = 0; i < 4; i++) {
		key->saddr[i] = be->addr[i];
		key->daddr[i] = flow->saddr[i];
	}
	key->sport = be->port ? be->port : flow->dport;
	key->dport = flow->sport;
	key->proto = flow->proto;
	key->family = flow->family;
	key->pad[0] = 0;
	key->pad[1] = 0;
}

/* 2. Whether a half-open entry under the client's key is the flow to this VIP and port. */
XLB_INLINE int xlb_half_is_flow(const struct xlb_half_open *h, const struct xlb_ct_key *flow)
{
	return h->revnat.addr[0] == flow->daddr[0] && h->revnat.addr[1] == flow->daddr[1] &&
	       h->revnat.addr[2] == flow->daddr[2] && h->revnat.addr[3] == flow->daddr[3] &&
	       h->revnat.port == flow->dport;
}

/* A backend carries new and tracked flows only while it is valid. */
XLB_INLINE int xlb_backend_usable(const struct xlb_backend *be)
{
	return be && (be->flags & XLB_BE_F_VALID);
}

/* The state of a new entry after its first packet. */
XLB_INLINE __u8 xlb_ct_new_state(__u8 proto, __u8 tcp_flags)
{
	if (proto != XLB_IPPROTO_TCP)
		return XLB_CT_ESTABLISHED;
	if (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST))
		return XLB_CT_CLOSING;
	if (tcp_flags & XLB_TCP_SYN)
		return XLB_CT_SYN_SENT;
	return XLB_CT_ESTABLISHED;
}

/* The state of a kept entry after one more packet of its flow. */
XLB_INLINE __u8 xlb_ct_next_state(__u8 state, __u8 proto, __u8 tcp_flags)
{
	if (proto != XLB_IPPROTO_TCP)
		return XLB_CT_ESTABLISHED;
	if (tcp_flags & (XLB_TCP_FIN | XLB_TCP_RST))
		return XLB_CT_CLOSING;
	if (state == XLB_CT_SYN_SENT && (tcp_flags & XLB_TCP_ACK))
		return XLB_CT_ESTABLISHED;
	return state;
}

/*
 * 3. The service entry of a flow: look up the exact key first; on a miss,
 * turn it into the all-ports form and look up once more.
 */
XLB_INLINE void xlb_service_key_exact(const struct xlb_ct_key *flow, struct xlb_service_key *key)
{
	__builtin_memcpy(key->addr, flow->daddr, sizeof(key->addr));
	key->port = flow->dport;
	key->proto = flow->proto;
	key->family = flow->family;
}

XLB_INLINE void xlb_service_key_all_ports(struct xlb_service_key *key)
{
	key->port = 0;
}

/* 4. The xlb_srcrange_v1 key that finds a source's ranges: the whole address is the prefix. */
XLB_INLINE void xlb_src_range_lookup_key(const struct xlb_ct_key *flow, __u32 service_id,
					 struct xlb_src_range_key *key)
{
	key->prefixlen = XLB_SRC_RANGE_PREFIX_BASE + (flow->family == XLB_FAMILY_IPV4 ? 32 : 128);
	key->service_id = service_id;
	key->family = flow->family;
	key->pad[0] = key->pad[1] = key->pad[2] = 0;
	__builtin_memcpy(key->addr, flow->saddr, sizeof(key->addr));
}

/* 5. A new flow to a key without backends is answered instead of dropped. */
XLB_INLINE int xlb_svc_rejects(const struct xlb_service *svc)
{
	return !svc->backend_count && (svc->flags & XLB_SVC_F_REJECT);
}

/* 6. The client's entry in xlb_affinity_v1. */
XLB_INLINE void xlb_affinity_key_of(const struct xlb_ct_key *flow, __u32 service_id,
				    struct xlb_affinity_key *key)
{
	__builtin_memcpy(key->client, flow->saddr, sizeof(key->client));
	key->service_id = service_id;
	key->family = flow->family;
	key->pad[0] = key->pad[1] = key->pad[2] = 0;
}

/*
 * Whether the client's last new flow is recent enough to bind this one (same
 * clock and unsigned difference as xlb_ct_check).
 */
XLB_INLINE int xlb_affinity_fresh(const struct xlb_service *svc, __u64 last_seen, __u64 now)
{
	return now - last_seen < (__u64)svc->affinity_timeout * XLB_NSEC_PER_SEC;
}

/* 7. The hash that places a new flow: the client address alone under ClientIP affinity. */
XLB_INLINE __u32 xlb_select_hash(const struct xlb_ct_key *flow, __u32 svc_flags, __u32 seed)
{
	if (svc_flags & XLB_SVC_F_AFFINITY)
		return xlb_hash_client(flow, seed);
	return xlb_hash_flow(flow, seed);
}

/* The table slot of that hash; maglev_size is the size of every table. */
XLB_INLINE __u32 xlb_select_slot(__u32 hash, __u32 maglev_size)
{
	return hash % maglev_size;
}

#endif /* XLB_RULES_H */
