/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb's TC entries. xlb_tc, attached (clsact ingress) to the host side of
 * every pod's veth, sees what pods send: a backend's answer is reverse-NATed
 * back to the VIP, or encapsulated back to the node that balanced its flow; a
 * hairpin answer to a SNATed flow is turned back; a pod's packet to a service
 * is balanced by the same core as XDP's (east-west); anything else goes on
 * untouched. Every verdict is counted with its reason.
 *
 * xlb_tc_egress, on clsact egress of the pods' veths and of the uplinks, sees
 * what the node sends: the answers that no ingress hook of xlb met, because
 * they were routed here from elsewhere (a routed backend's answer to a client
 * pod) or made by this node's own stack (an endpoint that is a host address of
 * this node). It only reverse-NATs; it counts only what it rewrites.
 */
#include "lib/ctx/skb.h"
#include "lib/balance.h"
#include "lib/forward.h"

/* Linear bytes the core needs: Ethernet, IPv6 with extension headers, TCP with options. */
#define XLB_TC_PULL 192

/* A global function for the same reason as xlb_xdp's (see there). */
__noinline int xlb_tc_at(struct __sk_buff *ctx, struct xlb_pkt_meta *meta)
{
	struct xlb_reply *r;
	struct xlb_pkt pkt;
	int ret;

	ret = pkt_from_meta(ctx, meta, &pkt);
	if (ret != XLB_OK)
		return ret;
	if (!pkt.fragment && (pkt.flow.proto == IPPROTO_TCP || pkt.flow.proto == IPPROTO_UDP) &&
	    parse_ports(&pkt, ctx_data_end(ctx)) == XLB_OK) {
		r = reply_find(&pkt, reply_tcp_flags(&pkt, ctx_data_end(ctx)),
			       bpf_ktime_get_coarse_ns());
		if (r)
			return reply_apply(ctx, &pkt, r, &meta->ifindex);
		/* a hairpin answer: back out of this veth, from the VIP */
		if (snat_maybe_answer(&pkt)) {
			ret = snat_answer(ctx, &pkt, 1, &meta->ifindex);
			if (ret != XLB_PASS_NO_SERVICE)
				return ret;
		}
	}
	/* a backend's ICMP error about its flow: the flow's answer, reverse-NATed too */
	if (!pkt.fragment && pkt_is_icmp(&pkt)) {
		ret = reply_revnat_icmp(&pkt, ctx_data_end(ctx), bpf_ktime_get_coarse_ns());
		if (ret != XLB_PASS_ICMP)
			return ret;
	}
	if (!lb_maybe_vip(pkt.flow.daddr))
		return XLB_PASS_NO_SERVICE;
	return xlb_balance(ctx, &pkt, &meta->ifindex);
}

/* What the stack would forward: sent from here when the fast path can (lib/forward.h). */
__noinline int xlb_tc_forward_at(struct __sk_buff *ctx, struct xlb_pkt_meta *meta, int reason)
{
	if (!meta)
		return reason;
	return fwd_after(ctx, reason, &meta->ifindex);
}

SEC("tc")
int xlb_tc(struct __sk_buff *ctx)
{
	struct xlb_pkt pkt = {};
	struct xlb_pkt_meta meta;
	int reason;

	if (ctx_pull(ctx, XLB_TC_PULL))
		return xlb_exit(ctx, XLB_PASS_MALFORMED_L2, 0);
	reason = parse_packet(ctx, &pkt);
	if (reason != XLB_OK)
		return xlb_exit(ctx, reason, 0);
	pkt_to_meta(ctx, &pkt, &meta);
	reason = xlb_tc_at(ctx, &meta);
	if (fwd_wanted(reason))
		reason = xlb_tc_forward_at(ctx, &meta, reason);
	return xlb_exit(ctx, reason, meta.ifindex);
}

/* An answer leaving this node: its REVNAT entry's rewrite only, already on its way. */
__noinline int xlb_tc_egress_at(struct __sk_buff *ctx, struct xlb_pkt_meta *meta)
{
	struct xlb_reply *r;
	struct xlb_pkt pkt;
	int ret;

	ret = pkt_from_meta(ctx, meta, &pkt);
	if (ret != XLB_OK || pkt.fragment)
		return XLB_PASS_NO_SERVICE;
	if (pkt_is_icmp(&pkt))
		return reply_revnat_icmp(&pkt, ctx_data_end(ctx), bpf_ktime_get_coarse_ns());
	if (pkt.flow.proto != IPPROTO_TCP && pkt.flow.proto != IPPROTO_UDP)
		return XLB_PASS_NO_SERVICE;
	if (parse_ports(&pkt, ctx_data_end(ctx)) != XLB_OK)
		return XLB_PASS_NO_SERVICE;
	r = reply_find(&pkt, reply_tcp_flags(&pkt, ctx_data_end(ctx)),
		       bpf_ktime_get_coarse_ns());
	if (!r || r->kind != XLB_REPLY_REVNAT)
		return XLB_PASS_NO_SERVICE;
	ret = validate_l4(&pkt, ctx_data_end(ctx));
	if (ret != XLB_OK)
		return ret;
	ret = reply_revnat(&pkt, r, ctx_data_end(ctx));
	return ret == XLB_OK ? XLB_FWD_REPLY_REVNAT : ret;
}

SEC("tc")
int xlb_tc_egress(struct __sk_buff *ctx)
{
	struct xlb_pkt pkt = {};
	struct xlb_pkt_meta meta;
	int reason;

	if (ctx_pull(ctx, XLB_TC_PULL))
		return CTX_ACT_OK;
	if (parse_packet(ctx, &pkt) != XLB_OK)
		return CTX_ACT_OK;
	pkt_to_meta(ctx, &pkt, &meta);
	reason = xlb_tc_egress_at(ctx, &meta);
	/* not an answer xlb knows (nearly everything here): not counted */
	if (reason == XLB_PASS_NO_SERVICE || reason == XLB_PASS_ICMP)
		return CTX_ACT_OK;
	/* rewritten or dropped; nothing here redirects */
	return xlb_exit(ctx, reason, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
