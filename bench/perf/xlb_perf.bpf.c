/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The programs of xlb-perf's packet-rate runs, none of them part of xlb:
 *
 * perf_gen   the traffic generator, run by BPF_PROG_TEST_RUN with
 *            BPF_F_TEST_XDP_LIVE_FRAMES: every repetition becomes a real frame
 *            sent (XDP_TX) out of the generator's veth. The kernel recycles the
 *            frame's page with whatever the path under test wrote into it, so
 *            every repetition writes the whole template again before stamping
 *            the flow (source address and port) into it.
 * perf_sink  on the far end of the path: counts what arrives by where it was
 *            sent (the destination port tells DNAT, VXLAN or untouched apart)
 *            and drops the test's UDP; everything else (ARP, the TCP runs)
 *            goes on to the stack.
 * perf_pass  XDP_PASS only: a veth drops the frames XDP sends into it unless
 *            its receiving end has an XDP program, so the node's uplink needs
 *            one in the modes where the stack does the work.
 * perf_fwd   the ceiling: an XDP forwarder that rewrites the MACs, decrements
 *            the TTL and redirects to the node's other veth, without any
 *            service lookup.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "perf_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct perf_gen_config);
} perf_gen_cfg SEC(".maps");

/* Frames each CPU generated: also the flow counter, so flows go on across runs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} perf_gen_sent SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PERF_ARRIVAL_MAX);
	__type(key, __u32);
	__type(value, __u64);
} perf_arrivals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct perf_fwd_config);
} perf_fwd_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} perf_forwarded SEC(".maps");

static __always_inline __u16 csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

SEC("xdp")
int perf_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct perf_gen_config *cfg;
	__u32 zero = 0, cpu, flow, host;
	__u64 *sent, n;
	__u16 sport;

	cfg = bpf_map_lookup_elem(&perf_gen_cfg, &zero);
	sent = bpf_map_lookup_elem(&perf_gen_sent, &zero);
	if (!cfg || !sent)
		return XDP_ABORTED;
	/* the template, so every header any path writes (frames are at least 60 bytes) */
#pragma unroll
	for (int i = 0; i < PERF_TEMPLATE / 4; i++) {
		if (data + (i + 1) * 4 > data_end)
			break;
		((__u32 *)data)[i] = ((__u32 *)cfg->frame)[i];
	}

	n = (*sent)++;
	cpu = bpf_get_smp_processor_id();
	if (cfg->flows) {
		/* each generator CPU owns every ncpu-th flow, as RSS would spread them */
		flow = (__u32)((n * cfg->ncpu + cpu % cfg->ncpu) % cfg->flows);
	} else {
		flow = (cpu << 27) | (__u32)(n & ((1U << 27) - 1));
	}
	host = (flow >> PERF_PORT_BITS) & 0xffff;
	sport = PERF_SPORT_BASE + (flow & ((1U << PERF_PORT_BITS) - 1));

	struct iphdr *ip = data + (cfg->ip_off & 0xff);
	struct udphdr *udp = data + (cfg->l4_off & 0xff);

	if ((void *)(ip + 1) > data_end || (void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	/* the template's source address ends in .0.0 and its checksum covers that */
	ip->saddr |= bpf_htonl(host);
	ip->check = ~bpf_htons(csum_fold((__u32)(__u16)~bpf_ntohs(cfg->ip_check) + host));
	udp->source = bpf_htons(sport);
	return XDP_TX;
}

SEC("xdp")
int perf_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 kind = PERF_ARRIVAL_OTHER;
	__u64 *count;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (udp->dest == bpf_htons(PERF_BACKEND_PORT))
		kind = PERF_ARRIVAL_DNAT;
	else if (udp->dest == bpf_htons(PERF_VXLAN_PORT))
		kind = PERF_ARRIVAL_VXLAN;
	else if (udp->dest == bpf_htons(PERF_SERVICE_PORT))
		kind = PERF_ARRIVAL_UNTOUCHED;
	count = bpf_map_lookup_elem(&perf_arrivals, &kind);
	if (count)
		(*count)++;
	return XDP_DROP;
}

SEC("xdp")
int perf_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("xdp")
int perf_fwd(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct perf_fwd_config *cfg;
	__u32 zero = 0, sum;
	__u64 *count;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ttl <= 1)
		return XDP_PASS;
	cfg = bpf_map_lookup_elem(&perf_fwd_cfg, &zero);
	if (!cfg || !cfg->ifindex)
		return XDP_PASS;
	/* ip_decrease_ttl(): the TTL is the high byte of its 16-bit word */
	ip->ttl--;
	sum = (__u32)ip->check + bpf_htons(0x0100);
	ip->check = (__u16)(sum + (sum >= 0xffff));
	__builtin_memcpy(eth->h_dest, cfg->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	count = bpf_map_lookup_elem(&perf_forwarded, &zero);
	if (count)
		(*count)++;
	return bpf_redirect(cfg->ifindex, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
