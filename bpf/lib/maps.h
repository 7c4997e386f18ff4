/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The maps every xlb program shares. Layouts live in maps/xlb_abi.h. */
#ifndef XLB_BPF_MAPS_H
#define XLB_BPF_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps/xlb_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_MAX_SERVICES * 4);
	__type(key, struct xlb_service_key);
	__type(value, struct xlb_service);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_services_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct xlb_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_backends_v1 SEC(".maps");

/*
 * Template of one service's table; the loader sets max_entries =
 * XLB_MAGLEV_ELEMS(maglev_size) (XLB_MAGLEV_CHUNK slots per element, see
 * xlb_abi.h). Mmapable, so userspace rewrites a table in place through a
 * mapping; the kernel compares map_flags when a table is put into the outer
 * map, so every table has them too.
 */
struct xlb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, XLB_MAGLEV_ELEMS(XLB_MAGLEV_DEFAULT_SIZE));
	__type(key, __u32);
	/* struct xlb_maglev_chunk. Not named here: clang 14 gives a struct first met
	 * in an inner map's definition only a forward declaration in BTF, which
	 * libbpf cannot size. */
	__type(value, __u32[XLB_MAGLEV_CHUNK]);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, XLB_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct xlb_maglev_inner);
} xlb_maglev_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_CT_MAX);
	__type(key, struct xlb_ct_key);
	__type(value, struct xlb_ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_ct_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_REASON_SLOTS);
	__type(key, __u32);
	__type(value, struct xlb_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_reasons_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct xlb_flow_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_svcstat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XLB_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct xlb_flow_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_bestat_v1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XLB_VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_vipfilt_v1 SEC(".maps");

/*
 * Replies (struct xlb_reply): the reply-direction tuple of a flow -> reverse NAT
 * (on the node that balanced it) or encapsulate back (on the node that
 * decapsulated it). An LRU like conntrack: an idle entry is reclaimed with its
 * flow's.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_CT_MAX);
	__type(key, struct xlb_ct_key);
	__type(value, struct xlb_reply);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_reply_v1 SEC(".maps");

/*
 * Half-open TCP flows, one entry each under the client's side of the tuple
 * (maps/xlb_abi.h: Half-open), and the TUNNEL entries of SYNs decapsulated
 * here, under the answer's tuple.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_CT_HALF_OPEN_MAX);
	__type(key, struct xlb_half_key);
	__type(value, struct xlb_half_open);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_cthalf_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_CT_HALF_OPEN_MAX);
	__type(key, struct xlb_ct_key);
	__type(value, struct xlb_reply);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_rplhalf_v1 SEC(".maps");

/* SNAT (struct xlb_snat): an answer's tuple at this node -> the flow it answers. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_CT_MAX);
	__type(key, struct xlb_ct_key);
	__type(value, struct xlb_snat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_snat_v1 SEC(".maps");

/* Tunnel peers (struct xlb_peer_key): the only outer sources decapsulated. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_PEERS_MAX);
	__type(key, struct xlb_peer_key);
	__type(value, struct xlb_peer);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_peers_v1 SEC(".maps");

/* Next hops toward tunnel peers (struct xlb_nexthop): bpf_fib_lookup's answers, cached. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_NEXTHOP_MAX);
	__type(key, struct xlb_nexthop_key);
	__type(value, struct xlb_nexthop);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_nexthop_v2 SEC(".maps");

/* The interfaces XDP may forward onto (XLB_MAP_FWD_DEV), agent-written. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, XLB_FWD_DEV_MAX);
	__type(key, __u32);
	__type(value, __u32);
} xlb_fwddev SEC(".maps");

/*
 * Per-CPU room for what does not fit on xlb_balance's stack: the fib lookup's
 * parameters and a next hop being written (a program runs to its end on its
 * CPU before another starts there). Not pinned: nothing outlives a packet.
 */
struct xlb_scratch {
	struct bpf_fib_lookup fib;
	struct xlb_nexthop nexthop;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_scratch);
} xlb_scratch SEC(".maps");

/* ClientIP affinity (struct xlb_affinity): (service, client) -> its last backend. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_AFFINITY_MAX);
	__type(key, struct xlb_affinity_key);
	__type(value, struct xlb_affinity);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_affinity_v1 SEC(".maps");

/* The backends that take new flows of each ClientIP-affine service (agent-written). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XLB_AFFINITY_MATCH_MAX);
	__type(key, struct xlb_affinity_match_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_affmatch_v1 SEC(".maps");

/* loadBalancerSourceRanges (struct xlb_src_range_key), agent-written. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, XLB_SRC_RANGES_MAX);
	__type(key, struct xlb_src_range_key);
	__type(value, __u8);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_srcrange_v1 SEC(".maps");

/* Runtime knobs: rodata, set through the skeleton before load. */
const volatile struct xlb_config xlb_cfg = XLB_CONFIG_DEFAULTS;

#endif /* XLB_BPF_MAPS_H */
