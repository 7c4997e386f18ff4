/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb's XDP entry, on the node's uplink: decapsulate what xlb's tunnels bring,
 * turn the answers of SNATed flows back, balance what is sent to a service
 * (conntrack or Maglev, DNAT, encapsulation toward tunnelled backends, SNAT),
 * forwarding from here what the stack would only route), pass everything else
 * untouched. Every verdict is
 * counted with its reason. The steps live in lib/, shared with xlb_tc.
 */
#include "lib/ctx/xdp.h"
#include "lib/balance.h"
#include "lib/decap.h"
#include "lib/forward.h"

/*
 * Global functions: the verifier checks each once, with the offsets unknown,
 * instead of once per distinct state the parser can end in (every VLAN and
 * IPv6 extension-header combination), which multiplied the program's states.
 */
__noinline int xlb_balance_at(struct xdp_md *ctx, struct xlb_pkt_meta *meta)
{
	struct xlb_pkt pkt;
	int ret;

	ret = pkt_from_meta(ctx, meta, &pkt);
	if (ret != XLB_OK)
		return ret;
	return xlb_balance(ctx, &pkt, &meta->ifindex);
}

__noinline int xlb_snat_answer_at(struct xdp_md *ctx, struct xlb_pkt_meta *meta)
{
	struct xlb_pkt pkt;
	int ret;

	ret = pkt_from_meta(ctx, meta, &pkt);
	if (ret != XLB_OK)
		return ret;
	if (parse_ports(&pkt, ctx_data_end(ctx)) != XLB_OK)
		return XLB_PASS_NO_SERVICE;
	/* handed to the stack unless the VIP is this node's own address */
	return snat_answer(ctx, &pkt, 0, &meta->ifindex);
}

__noinline int xlb_decap_at(struct xdp_md *ctx, struct xlb_pkt_meta *meta)
{
	struct xlb_pkt pkt;
	int ret;

	ret = pkt_from_meta(ctx, meta, &pkt);
	if (ret != XLB_OK)
		return ret;
	return tunnel_decap(ctx, &pkt, &meta->ifindex);
}

/* What the stack would forward: sent from here when the fast path can (lib/forward.h). */
__noinline int xlb_forward_at(struct xdp_md *ctx, struct xlb_pkt_meta *meta, int reason)
{
	if (!meta)
		return reason;
	return fwd_after(ctx, reason, &meta->ifindex);
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	struct xlb_pkt pkt = {};
	struct xlb_pkt_meta meta;
	int reason;

	reason = parse_packet(ctx, &pkt);
	if (reason != XLB_OK)
		return xlb_exit(ctx, reason, 0);
	/* UDP to this node's tunnel address and port: a few compares, then decap. */
	if (tunnel_match(&pkt, ctx_data_end(ctx))) {
		pkt_to_meta(ctx, &pkt, &meta);
		reason = xlb_decap_at(ctx, &meta);
		if (fwd_wanted(reason))
			reason = xlb_forward_at(ctx, &meta, reason);
		return xlb_exit(ctx, reason, meta.ifindex);
	}
	/* TCP/UDP to this node's address: maybe the answer of a SNATed flow. */
	if (snat_maybe_answer(&pkt)) {
		pkt_to_meta(ctx, &pkt, &meta);
		reason = xlb_snat_answer_at(ctx, &meta);
		if (fwd_wanted(reason))
			reason = xlb_forward_at(ctx, &meta, reason);
		if (reason != XLB_PASS_NO_SERVICE)
			return xlb_exit(ctx, reason, meta.ifindex);
	}
	/* Most traffic is not for a VIP: let it go before any more work. */
	if (!lb_maybe_vip(pkt.flow.daddr))
		return xlb_exit(ctx, XLB_PASS_NO_SERVICE, 0);
	pkt_to_meta(ctx, &pkt, &meta);
	reason = xlb_balance_at(ctx, &meta);
	if (fwd_wanted(reason))
		reason = xlb_forward_at(ctx, &meta, reason);
	return xlb_exit(ctx, reason, meta.ifindex);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
