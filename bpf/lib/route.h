/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Sending a rewritten packet on from here with the kernel's fib and neighbour
 * tables, their answers cached per destination for a second (xlb_nexthop_v2):
 * where handing it to the stack would lose it (its new source is this node's
 * own address, a martian to the stack, or it goes back out of the pod veth it
 * came in by), where it leaves encapsulated, and where the stack's forwarding
 * would only cost time (forward.h).
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

/* The outcome of a cached route lookup (route_cached). */
struct xlb_route {
	__u8 dmac[ETH_ALEN];
	__u8 smac[ETH_ALEN];
	__u32 ifindex;
	int resolved; /* the MACs are valid; else the kernel must send it */
};

/*
 * Copies from the rodata config one element at a time: casting the volatile
 * away for a memcpy lets clang fold the compiled-in defaults instead of the
 * values the loader wrote.
 */
static __always_inline void cfg_addr6(__be32 *dst)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		dst[i] = xlb_cfg.tunnel_addr6[i];
}

/*
 * Fills p for a lookup src -> dst of a packet of tot_len bytes (0: no MTU
 * check), from the interface the packet came in on. src NULL: this node's
 * tunnel address of the family (the outer source of an encapsulated packet).
 */
static __always_inline int route_fib(struct __ctx_buff *ctx, __u8 family, __u8 proto,
				     const __be32 *src, const __be32 *dst, __u32 tot_len,
				     struct bpf_fib_lookup *p)
{
	__builtin_memset(p, 0, sizeof(*p));
	p->l4_protocol = proto;
	p->tot_len = tot_len;
	p->ifindex = ctx_ifindex(ctx);
	if (family == XLB_FAMILY_IPV4) {
		p->family = AF_INET;
		p->ipv4_src = src ? src[0] : xlb_cfg.tunnel_addr4;
		p->ipv4_dst = dst[0];
	} else {
		p->family = AF_INET6;
		if (src)
			__builtin_memcpy(p->ipv6_src, src, 16);
		else
			cfg_addr6(p->ipv6_src);
		__builtin_memcpy(p->ipv6_dst, dst, 16);
	}
	return bpf_fib_lookup(ctx, p, sizeof(*p), 0);
}

/*
 * The next hop toward dst for a packet of tot_len bytes (0: a GSO aggregate,
 * segmented later: no MTU check), with bpf_fib_lookup's return code. It comes
 * from xlb_nexthop_v2 while its entry is fresh (maps/xlb_abi.h), else from the
 * fib. An entry is written for a resolved neighbour with the MTU of its route:
 * tunnel_mtu, or the route's own where it is narrower (a pod veth at 1450), so
 * a hit stands for any packet up to that size; a larger one (a jumbo frame
 * forwarded as it is, a packet the route must fragment) asks the fib at its
 * own size. The cache is keyed by destination and incoming interface: routes
 * chosen by source (policy routing) are not told apart within
 * XLB_NEXTHOP_TTL_NS. A destination without a route xlb can use (local,
 * unreachable, blackhole, forwarding off) is cached too, as NOT_FWDED; an
 * unresolved neighbour is not (the stack is about to resolve it).
 * SUCCESS: rt is complete. NO_NEIGH: rt->ifindex only. Else rt is unset.
 */
static __always_inline int route_cached(struct __ctx_buff *ctx, __u8 family, __u8 proto,
					const __be32 *src, const __be32 *dst, __u32 tot_len,
					struct xlb_route *rt)
{
	struct xlb_nexthop_key key = {.ifindex = ctx_ifindex(ctx), .family = family};
	__u64 now = bpf_ktime_get_coarse_ns();
	struct xlb_scratch *scratch;
	struct bpf_fib_lookup *p;
	struct xlb_nexthop *nh;
	__u32 zero = 0, mtu;
	int rc;

	__builtin_memcpy(key.addr, dst, sizeof(key.addr));
	nh = bpf_map_lookup_elem(&xlb_nexthop_v2, &key);
	if (nh && now < nh->expires && tot_len <= nh->mtu) {
		/* no route xlb can use: the stack's (a local address, unreachable, ...) */
		if (!nh->ifindex)
			return BPF_FIB_LKUP_RET_NOT_FWDED;
		rt->ifindex = nh->ifindex;
		__builtin_memcpy(rt->dmac, nh->dmac, ETH_ALEN);
		__builtin_memcpy(rt->smac, nh->smac, ETH_ALEN);
		rt->resolved = 1;
		return BPF_FIB_LKUP_RET_SUCCESS;
	}
	scratch = bpf_map_lookup_elem(&xlb_scratch, &zero);
	if (!scratch)
		return -1; /* never: the array has its one element on every CPU */
	p = &scratch->fib;
	/* the largest packet first: its answer is the one worth keeping */
	mtu = xlb_cfg.tunnel_mtu;
	rc = route_fib(ctx, family, proto, src, dst, mtu, p);
	if (rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && p->mtu_result && p->mtu_result < mtu) {
		/* a narrower route: its next hop, kept for packets up to its MTU */
		mtu = p->mtu_result;
		rc = route_fib(ctx, family, proto, src, dst, mtu, p);
	}
	nh = &scratch->nexthop;
	__builtin_memset(nh, 0, sizeof(*nh));
	nh->expires = now + XLB_NEXTHOP_TTL_NS;
	nh->mtu = mtu;
	if (rc == BPF_FIB_LKUP_RET_SUCCESS) {
		nh->ifindex = p->ifindex;
		__builtin_memcpy(nh->dmac, p->dmac, ETH_ALEN);
		__builtin_memcpy(nh->smac, p->smac, ETH_ALEN);
		bpf_map_update_elem(&xlb_nexthop_v2, &key, nh, BPF_ANY);
	} else if (rc > BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH &&
		   rc != BPF_FIB_LKUP_RET_FRAG_NEEDED) {
		/* remembered too (ifindex 0): a local backend would otherwise ask the fib per packet */
		bpf_map_update_elem(&xlb_nexthop_v2, &key, nh, BPF_ANY);
	}
	/* a packet larger than the route carries: asked for its own size */
	if ((rc == BPF_FIB_LKUP_RET_FRAG_NEEDED && tot_len < mtu) ||
	    (rc == BPF_FIB_LKUP_RET_SUCCESS && tot_len > mtu))
		rc = route_fib(ctx, family, proto, src, dst, tot_len, p);
	rt->ifindex = p->ifindex;
	rt->resolved = rc == BPF_FIB_LKUP_RET_SUCCESS;
	if (rt->resolved) {
		__builtin_memcpy(rt->dmac, p->dmac, ETH_ALEN);
		__builtin_memcpy(rt->smac, p->smac, ETH_ALEN);
	}
	return rc;
}

/*
 * Routes a packet src -> dst (addresses of `family`) through the next-hop
 * cache (route_cached, no MTU check) and writes the next hop's Ethernet
 * addresses. XDP cannot resolve a neighbour; TC can have the kernel do it
 * (ctx_send_kernel).
 */
static __always_inline enum route_result route_lookup(struct __ctx_buff *ctx, __u8 family,
						      __u8 proto, const __be32 *src,
						      const __be32 *dst, __u32 *ifindex)
{
	struct xlb_route rt = {};
	struct ethhdr *eth;
	int rc;

	rc = route_cached(ctx, family, proto, src, dst, 0, &rt);
	*ifindex = rt.ifindex;
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH)
		return ROUTE_NO_NEIGH;
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return ROUTE_NONE;
	eth = ctx_data(ctx);
	if ((void *)(eth + 1) > ctx_data_end(ctx))
		return ROUTE_NONE;
	__builtin_memcpy(eth->h_dest, rt.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, rt.smac, ETH_ALEN);
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
