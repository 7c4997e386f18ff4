/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The load-balancing core, the same for XDP (north-south) and TC (east-west):
 * conntrack or Maglev picks the backend; a routed backend is DNATed and handed
 * to the stack, a tunnelled one is DNATed and encapsulated toward the node
 * that hosts it. And the one exit every verdict leaves through.
 */
#ifndef XLB_BALANCE_H
#define XLB_BALANCE_H

#include "ctx.h"
#include "maps.h"
#include "parse.h"
#include "lb.h"
#include "nat.h"
#include "reply.h"
#include "snat.h"
#include "encap.h"
#include "mss.h"
#include "icmp.h"
#include "stats.h"

/*
 * The one exit: count the reason, turn it into a verdict. ifindex is the
 * egress interface of a packet xlb sends itself.
 */
static __always_inline int xlb_exit(struct __ctx_buff *ctx, int reason, __u32 ifindex)
{
	stats_reason(reason, ctx_full_len(ctx));
	if (reason >= XLB_DROP_FIRST)
		return CTX_ACT_DROP;
	if (reason == XLB_FWD_ENCAP || reason == XLB_FWD_REPLY_TUNNEL ||
	    reason == XLB_FWD_REPLY_ROUTED || reason == XLB_FWD_SNAT || reason == XLB_FWD_ROUTED ||
	    reason == XLB_FWD_DECAP_ROUTED)
		return ctx_redirect(ctx, ifindex);
	/* back to the sender, out of the interface it came in on */
	if (reason == XLB_FWD_ICMP_TOO_BIG || reason == XLB_FWD_REJECT)
		return ctx_redirect(ctx, ctx_ifindex(ctx));
	if (reason == XLB_PASS_ENCAP_KERNEL || reason == XLB_PASS_REPLY_KERNEL ||
	    reason == XLB_PASS_SNAT_KERNEL)
		return ctx_send_kernel(ctx, ifindex);
	return CTX_ACT_OK;
}

/*
 * Rebuilds the parser's view from offsets, inside a global function (whose
 * pointer argument the verifier takes as possibly NULL).
 */
static __always_inline int pkt_from_meta(struct __ctx_buff *ctx, const struct xlb_pkt_meta *meta,
					 struct xlb_pkt *pkt)
{
	void *data = ctx_data(ctx);

	if (!meta)
		return XLB_PASS_UNSUPPORTED;
	/* bounded, or the verifier grants no packet range past them */
	if (meta->l3_off > XLB_HDR_OFF_MAX || meta->l4_off > XLB_HDR_OFF_MAX)
		return XLB_PASS_UNSUPPORTED;
	pkt->l3 = data + meta->l3_off;
	pkt->l4 = data + meta->l4_off;
	pkt->end = data + meta->end_off;
	pkt->flow = meta->flow;
	pkt->fragment = meta->fragment;
	pkt->csum_partial = ctx_csum_partial(ctx);
	return XLB_OK;
}

static __always_inline void pkt_to_meta(struct __ctx_buff *ctx, const struct xlb_pkt *pkt,
					struct xlb_pkt_meta *meta)
{
	void *data = ctx_data(ctx);

	meta->flow = pkt->flow;
	meta->l3_off = pkt->l3 - data;
	meta->l4_off = pkt->l4 - data;
	meta->end_off = pkt->end - data;
	meta->fragment = pkt->fragment;
	meta->ifindex = 0;
}

/* A tunnelled backend: checks, DNAT, MSS clamp, encapsulation. */
static __always_inline int balance_tunnel(struct __ctx_buff *ctx, struct xlb_pkt *pkt,
					  const struct xlb_backend *be, __u32 *ifindex)
{
	struct xlb_tunnel t = {.family = be->tunnel_family, .encap = xlb_cfg.encap};
	struct xlb_route rt = {};
	void *data_end = ctx_data_end(ctx);
	int ret;

	if (be->family != pkt->flow.family)
		return XLB_DROP_BACKEND_FAMILY;
	__builtin_memcpy(t.addr, be->tunnel, sizeof(t.addr));
	ret = tunnel_prepare(ctx, pkt, &t, &rt);
	if (ret == XLB_DROP_TOO_BIG)
		return icmp_too_big(ctx, pkt, xlb_cfg.tunnel_mtu - encap_overhead(t.family, t.encap));
	if (ret != XLB_OK)
		return ret;
	ret = nat_dnat(pkt, be, data_end);
	if (ret != XLB_OK)
		return ret;
	mss_clamp(pkt, data_end, mss_for_tunnel(t.family, t.encap, pkt->flow.family));
	*ifindex = rt.ifindex;
	return tunnel_push(ctx, pkt, &t, &rt, XLB_FWD_ENCAP);
}

/*
 * Whether a flow to backend be is SNATed: the backend's path says so, or the
 * client is the backend itself (hairpin, here or through another node: the
 * pod would otherwise get a packet from its own address, a martian, and its
 * answer would never leave it). A hairpin through another node is routed to
 * the pod, not tunnelled: the pod network reaches it from every node.
 */
static __always_inline int balance_snats(const struct xlb_backend *be, const struct xlb_ct_key *flow)
{
	if (be->flags & XLB_BE_F_SNAT)
		return 1;
	return be->addr[0] == flow->saddr[0] && be->addr[1] == flow->saddr[1] &&
	       be->addr[2] == flow->saddr[2] && be->addr[3] == flow->saddr[3];
}

/*
 * A flow that began under loadBalancerSourceRanges (XLB_CT_F_SOURCE_RANGES):
 * its key is looked up again, so ranges narrowed since cut it too.
 */
static __always_inline int balance_source_still_allowed(const struct xlb_ct_key *flow)
{
	struct xlb_service *svc = lb_lookup_service(flow);

	return !svc || lb_source_allowed(svc, flow);
}

/* Conntrack or Maglev, then DNAT (and encapsulation for a tunnelled backend). */
static __always_inline int xlb_balance(struct __ctx_buff *ctx, struct xlb_pkt *pkt, __u32 *ifindex)
{
	void *data_end = ctx_data_end(ctx);
	struct xlb_ct_value ct = {};
	struct xlb_service *svc;
	struct xlb_backend *be;
	__u32 backend_id, service_id, bytes = ctx_full_len(ctx);
	__be16 snat_port;
	__u8 tcp_flags = 0;
	__u64 now;
	int ret, new_flow = 0, snat, half_open;

	/* A later fragment's next header names a protocol whose header it lacks. */
	if (pkt->fragment)
		return XLB_PASS_FRAGMENT;
	if (pkt_is_icmp(pkt))
		return nat_icmp_error(pkt, data_end);
	if (pkt->flow.proto != IPPROTO_TCP && pkt->flow.proto != IPPROTO_UDP)
		return XLB_PASS_NOT_L4;
	ret = parse_ports(pkt, data_end);
	if (ret != XLB_OK)
		return ret;
	ret = validate_l4(pkt, data_end);
	if (ret != XLB_OK)
		/* a bad header to a service is ours to drop; anything else is not ours */
		return lb_lookup_service(&pkt->flow) ? ret : XLB_PASS_NO_SERVICE;
	if (pkt->flow.proto == IPPROTO_TCP)
		tcp_flags = ((__u8 *)pkt->l4)[13];

	/*
	 * Conntrack before the service: an established flow needs only its entry,
	 * which names the service too. Only a miss looks the service up.
	 */
	now = bpf_ktime_get_coarse_ns();
	be = ct_lookup(&pkt->flow, tcp_flags, now, &ct);
	backend_id = ct.backend_id;
	service_id = ct.service_id;
	snat_port = ct.snat_port;
	snat = be && balance_snats(be, &pkt->flow);
	/* a backend that became a SNAT one under a live flow: the flow moves to a port */
	if (snat && !snat_port)
		be = NULL;
	if (be && (ct.flags & XLB_CT_F_SOURCE_RANGES) && !balance_source_still_allowed(&pkt->flow))
		return XLB_DROP_SOURCE_RANGE;
	if (!be) {
		svc = lb_lookup_service(&pkt->flow);
		if (!svc)
			return XLB_PASS_NO_SERVICE;
		if (!lb_source_allowed(svc, &pkt->flow))
			return XLB_DROP_SOURCE_RANGE;
		if (xlb_svc_rejects(svc))
			return icmp_port_unreach(ctx, pkt);
		ret = lb_select_backend(svc, &pkt->flow, now, &backend_id);
		if (ret != XLB_OK)
			return ret;
		be = lb_lookup_backend(backend_id);
		if (!be)
			return XLB_DROP_NO_BACKEND;
		service_id = svc->id;
		snat = balance_snats(be, &pkt->flow);
		if (snat) {
			/* the answer comes to this node's address and the port */
			ret = snat_claim(&pkt->flow, be, svc->flags, now, &snat_port);
			if (ret != XLB_OK)
				return ret;
		}
		/*
		 * A SYN opens a half-open flow, apart from the established ones
		 * (maps/xlb_abi.h), unless the client's key is another VIP's for
		 * now; a SNAT port belongs to an entry of xlb_ct_v1. A SNATed
		 * flow's answer is found through the SNAT entry, not a REVNAT one.
		 */
		half_open = !snat && xlb_ct_new_state(pkt->flow.proto, tcp_flags) == XLB_CT_SYN_SENT;
		new_flow = ct_create(&pkt->flow, be, tcp_flags, now, service_id, backend_id,
				     snat_port,
				     (svc->flags & XLB_SVC_F_SOURCE_RANGES ? XLB_CT_F_SOURCE_RANGES : 0) |
					     (svc->flags & XLB_SVC_F_NODE_PORT ? XLB_CT_F_NODE_PORT : 0),
				     !snat, half_open);
	}
	if (snat && !new_flow)
		snat_keep(&pkt->flow, be, snat_port, now);
	if (snat) {
		ret = snat_forward(ctx, pkt, be, snat_port, ifindex);
	} else if (be->flags & XLB_BE_F_TUNNEL) {
		ret = balance_tunnel(ctx, pkt, be, ifindex);
	} else {
		ret = nat_dnat(pkt, be, data_end);
		if (ret == XLB_OK)
			ret = new_flow ? XLB_FWD_NEW_FLOW : XLB_FWD_ESTABLISHED;
	}
	if (ret >= XLB_DROP_FIRST)
		return ret;
	stats_flow(&xlb_svcstat_v1, service_id, bytes, new_flow);
	stats_flow(&xlb_bestat_v1, backend_id, bytes, new_flow);
	return ret;
}

#endif /* XLB_BALANCE_H */
