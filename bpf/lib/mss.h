/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * MSS clamping for tunnelled flows: a SYN or SYN-ACK that xlb encapsulates or
 * decapsulates gets its MSS option lowered so that full-sized segments still
 * fit into the underlay MTU with the outer headers added. Cheaper and more
 * robust than relying on path MTU discovery across the tunnel (ICMP errors from
 * the underlay would name the outer packet, which the sender never sent).
 */
#ifndef XLB_MSS_H
#define XLB_MSS_H

#include "csum.h"
#include "lb.h"

#define XLB_TCPOPT_EOL 0
#define XLB_TCPOPT_NOP 1
#define XLB_TCPOPT_MSS 2
/* Options scanned before giving up: MSS comes first in practice, maybe after NOPs. */
#define XLB_MSS_SCAN_MAX 12

/*
 * Bytes the outer headers add (the outer Ethernet header is not part of the
 * MTU): VXLAN 50 over IPv4 / 70 over IPv6 (IP + UDP 8 + VXLAN 8 + inner
 * Ethernet 14), GUE 28 / 48 (IP + UDP).
 */
static __always_inline __u32 encap_overhead(__u8 outer_family, __u8 encap)
{
	__u32 len = (outer_family == XLB_FAMILY_IPV4 ? 20 : 40) + 8;

	if (encap == XLB_ENCAP_VXLAN)
		len += 8 + 14;
	return len;
}

/* The largest MSS whose segments fit into tunnel_mtu once encapsulated. */
static __always_inline __u16 mss_for_tunnel(__u8 outer_family, __u8 encap, __u8 inner_family)
{
	__u32 hdrs = encap_overhead(outer_family, encap) + (inner_family == XLB_FAMILY_IPV4 ? 20 : 40) + 20;

	if (xlb_cfg.tunnel_mtu <= hdrs)
		return 0;
	return xlb_cfg.tunnel_mtu - hdrs;
}

/*
 * Lowers the MSS option of a validated TCP SYN (or SYN-ACK) to `max`, with the
 * TCP checksum updated incrementally. Anything odd in the options ends the
 * scan and leaves the segment as it is.
 */
static __always_inline void mss_clamp(struct xlb_pkt *pkt, void *data_end, __u16 max)
{
	struct tcphdr *th = pkt->l4;
	__u32 off = sizeof(*th), hlen;
	__u8 *p;

	if (pkt->flow.proto != IPPROTO_TCP || !max)
		return;
	if ((void *)(th + 1) > data_end || !th->syn)
		return;
	hlen = th->doff * 4;
	for (int i = 0; i < XLB_MSS_SCAN_MAX; i++) {
		__u16 mss;
		__u32 diff;

		if (off + 4 > hlen || off > 60)
			return;
		p = (__u8 *)th + off;
		if ((void *)(p + 4) > data_end)
			return;
		if (p[0] == XLB_TCPOPT_NOP) {
			off++;
			continue;
		}
		if (p[0] != XLB_TCPOPT_MSS) {
			/* EOL, or another option: MSS comes first when it comes at all */
			if (p[0] == XLB_TCPOPT_EOL || p[1] < 2)
				return;
			off += p[1];
			continue;
		}
		if (p[1] != 4)
			return;
		mss = ((__u16)p[2] << 8) | p[3];
		if (mss <= max)
			return;
		/*
		 * The sum is over 16-bit words from the header's start: a value at
		 * an odd offset straddles two words, which swaps its bytes' weight.
		 */
		if (off & 1)
			diff = csum_diff16(0, mss, max);
		else
			diff = csum_diff16(0, bpf_htons(mss), bpf_htons(max));
		p[2] = max >> 8;
		p[3] = max & 0xff;
		/* CHECKSUM_PARTIAL: the options are summed later, with the rest */
		if (!pkt->csum_partial)
			th->check = csum_apply(th->check, diff);
		return;
	}
}

#endif /* XLB_MSS_H */
