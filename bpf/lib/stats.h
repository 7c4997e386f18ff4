/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Per-CPU counters: every verdict has a reason, and every reason is counted. */
#ifndef XLB_STATS_H
#define XLB_STATS_H

#include "maps.h"

static __always_inline void stats_reason(__u32 reason, __u32 bytes)
{
	struct xlb_counter *c = bpf_map_lookup_elem(&xlb_reasons_v4, &reason);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline void stats_flow(void *map, __u32 id, __u32 bytes, int new_flow)
{
	struct xlb_flow_counter *c = bpf_map_lookup_elem(map, &id);

	if (c) {
		c->packets++;
		c->bytes += bytes;
		c->new_flows += new_flow;
	}
}

#endif /* XLB_STATS_H */
