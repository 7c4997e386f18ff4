/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sending a rewritten packet on from here with the kernel's fib and neighbour
 * tables, where handing it to the stack would lose it: its new source is this
 * node's own address (a received packet with it is a martian), or it goes
 * back out of the pod veth it came in by.
 */
#ifndef XLB_ROUTE_H
#define XLB_ROUTE_H

#include <linux/if_ether.h>
#include "ctx.h"
#include "fib.h"
#include "maps.h"

enum route_result {
	ROUTE_READY,    /* Ethernet header written; send it out of *ifindex */
	ROUTE_NO_NEIGH, /* next hop known, its neighbour not: the kernel must resolve it */
	ROUTE_NONE,     /* no usable route */
};

/*
 * Looks up src -> dst (addresses of `family`) and writes the next hop's
 * Ethernet addresses. XDP cannot resolve a neighbour; TC can have the kernel
 * do it (ctx_send_kernel).
 */
static __always_inline enum route_result route_lookup(struct __ctx_buff *ctx, __u8 family,
						      __u8 proto, const __be32 *src,
						      const __be32 *dst, __u32 *ifindex)
{
	struct bpf_fib_lookup p = {
		.l4_protocol = proto,
		.ifindex = ctx_ifindex(ctx),
	};
	struct ethhdr *eth;
	int rc;

	if (family == XLB_FAMILY_IPV4) {
		p.family = AF_INET;
		p.ipv4_src = src[0];
		p.ipv4_dst = dst[0];
	} else {
		p.family = AF_INET6;
		__builtin_memcpy(p.ipv6_src, src, 16);
		__builtin_memcpy(p.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &p, sizeof(p), 0);
	*ifindex = p.ifindex;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return ROUTE_NO_NEIGH;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ROUTE_NONE;
	eth = ctx_data(ctx);
	if ((void *)(eth + 1) > ctx_data_end(ctx))
		return ROUTE_NONE;
	__builtin_memcpy(eth->h_dest, p.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, p.smac, ETH_ALEN);
	return ROUTE_READY;
}

/* The reason for a route_lookup result: sent by xlb, by the kernel, or dropped. */
static __always_inline int route_verdict(enum route_result r, int sent, int kernel)
{
	if (r == ROUTE_READY)
		return sent;
	if (r == ROUTE_NO_NEIGH)
		return kernel;
	return XLB_DROP_FIB;
}

#endif /* XLB_ROUTE_H */
