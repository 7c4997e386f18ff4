/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb's XDP entry: parse, find the service, keep the flow on its backend
 * (conntrack) or pick one (Maglev), DNAT, and hand the packet to the stack.
 * Everything that is not for a service passes untouched; every verdict is
 * counted with its reason.
 */
#include "lib/ctx/xdp.h"
#include "lib/maps.h"
#include "lib/parse.h"
#include "lib/lb.h"
#include "lib/nat.h"
#include "lib/stats.h"

/* The one exit: count the reason, turn it into a verdict. */
static __always_inline int xlb_exit(struct __ctx_buff *ctx, int reason)
{
	stats_reason(reason, ctx_full_len(ctx));
	if (reason >= XLB_DROP_MALFORMED_L4)
		return CTX_ACT_DROP;
	return CTX_ACT_OK;
}

static __always_inline int xlb_balance(struct __ctx_buff *ctx, struct xlb_pkt *pkt)
{
	void *data_end = ctx_data_end(ctx);
	struct xlb_service *svc;
	struct xlb_backend *be;
	__u32 backend_id, service_id, bytes = ctx_full_len(ctx);
	__u8 tcp_flags = 0;
	__u64 now;
	int ret, new_flow = 0;

	/* A later fragment's next header names a protocol whose header it lacks. */
	if (pkt->fragment)
		return XLB_PASS_FRAGMENT;
	if (pkt->flow.proto == IPPROTO_ICMP || pkt->flow.proto == IPPROTO_ICMPV6)
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
	be = ct_lookup(&pkt->flow, tcp_flags, now, &backend_id, &service_id);
	if (!be) {
		svc = lb_lookup_service(&pkt->flow);
		if (!svc)
			return XLB_PASS_NO_SERVICE;
		ret = lb_select(svc, &pkt->flow, &backend_id);
		if (ret != XLB_OK)
			return ret;
		be = lb_lookup_backend(backend_id);
		if (!be)
			return XLB_DROP_NO_BACKEND;
		service_id = svc->id;
		ct_create(&pkt->flow, tcp_flags, now, service_id, backend_id);
		new_flow = 1;
	}
	ret = nat_dnat(pkt, be, data_end);
	if (ret != XLB_OK)
		return ret;
	stats_flow(&xlb_svcstat_v1, service_id, bytes, new_flow);
	stats_flow(&xlb_bestat_v1, backend_id, bytes, new_flow);
	return new_flow ? XLB_FWD_NEW_FLOW : XLB_FWD_ESTABLISHED;
}

/*
 * A global function: the verifier checks it once, with the offsets unknown,
 * instead of once per distinct state the parser can end in (every VLAN and
 * IPv6 extension-header combination), which multiplied the program's states.
 */
__noinline int xlb_balance_at(struct xdp_md *ctx, struct xlb_pkt_meta *meta)
{
	void *data = ctx_data(ctx);
	struct xlb_pkt pkt;

	if (!meta)
		return XLB_PASS_UNSUPPORTED;
	/* bounded, or the verifier grants no packet range past them */
	if (meta->l3_off > XLB_HDR_OFF_MAX || meta->l4_off > XLB_HDR_OFF_MAX)
		return XLB_PASS_UNSUPPORTED;
	pkt.l3 = data + meta->l3_off;
	pkt.l4 = data + meta->l4_off;
	pkt.end = data + meta->end_off;
	pkt.flow = meta->flow;
	pkt.fragment = meta->fragment;
	return xlb_balance(ctx, &pkt);
}

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	struct xlb_pkt pkt = {};
	struct xlb_pkt_meta meta;
	void *data = ctx_data(ctx);
	int reason;

	reason = parse_packet(ctx, &pkt);
	if (reason != XLB_OK)
		return xlb_exit(ctx, reason);
	/* Most traffic is not for a VIP: let it go before any more work. */
	if (!lb_maybe_vip(pkt.flow.daddr))
		return xlb_exit(ctx, XLB_PASS_NO_SERVICE);
	meta.flow = pkt.flow;
	meta.l3_off = pkt.l3 - data;
	meta.l4_off = pkt.l4 - data;
	meta.end_off = pkt.end - data;
	meta.fragment = pkt.fragment;
	return xlb_exit(ctx, xlb_balance_at(ctx, &meta));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
