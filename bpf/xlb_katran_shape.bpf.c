/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark-only: the work Katran's balancer does for an IPv4 TCP packet to one
 * of its VIPs, so that xlb-bench can run it beside xlb_xdp on the same machine,
 * by the same method, with its connection table as large as xlb's conntrack.
 * Written from Katran's documented design (a VIP hash, a per-CPU LRU of flows,
 * a Maglev ring per VIP, a reals array, IPIP toward the real, XDP_TX), not from
 * its code, and without what a benchmark packet never reaches (QUIC, ICMP,
 * fragments, the LRU-miss rate limit, the source-routing and decap paths).
 * Katran gives each CPU an LRU of its own; BPF_PROG_TEST_RUN runs on one CPU,
 * where one LRU_HASH is the same thing. Never attached to an interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define KS_RING_SIZE 65537 /* Katran's default ring size, prime */
#define KS_REALS 4096

struct ks_vip_key {
	__be32 addr;
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct ks_vip_meta {
	__u32 flags;
	__u32 vip_num;
};

/* Katran's flow key: both addresses as IPv6-sized unions, ports, protocol */
struct ks_flow {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct ks_real_pos {
	__u32 pos;
	__u32 pad;
	__u64 atime;
};

struct ks_real {
	__be32 addr;
	__u32 flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct ks_vip_key);
	__type(value, struct ks_vip_meta);
} ks_vips SEC(".maps");

/* the loader sets max_entries to the benchmark's conntrack size */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ks_flow);
	__type(value, struct ks_real_pos);
} ks_lru SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
} ks_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, KS_REALS);
	__type(key, __u32);
	__type(value, struct ks_real);
} ks_reals SEC(".maps");

/* [0] new flows (LRU miss, ring, insert), [1] LRU hits */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ks_stats SEC(".maps");

static __always_inline void ks_count(__u32 which)
{
	__u64 *n = bpf_map_lookup_elem(&ks_stats, &which);

	if (n)
		*n += 1;
}

/* a 32-bit mix of the client's address and ports (Katran: jhash of the same) */
static __always_inline __u32 ks_hash(const struct ks_flow *f)
{
	__u32 h = f->src[0] * 0x9e3779b1u;

	h ^= ((__u32)f->sport << 16 | f->dport) * 0x85ebca6bu;
	h ^= h >> 15;
	h *= 0xc2b2ae35u;
	h ^= h >> 13;
	return h;
}

static __always_inline __u16 ks_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xlb_katran_shape(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ethhdr *new_eth, *old_eth;
	struct ks_vip_key vip = {};
	struct ks_vip_meta *meta;
	struct ks_flow flow = {};
	struct ks_real_pos *dst, fresh = {};
	struct ks_real *real;
	struct iphdr *ip, *outer;
	struct tcphdr *tcp;
	__u32 key, *pos, sum = 0;
	__u16 inner_len;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP ||
	    (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > data_end)
		return XDP_PASS;

	vip.addr = ip->daddr;
	vip.port = tcp->dest;
	vip.proto = IPPROTO_TCP;
	meta = bpf_map_lookup_elem(&ks_vips, &vip);
	if (!meta)
		return XDP_PASS;

	flow.src[0] = ip->saddr;
	flow.dst[0] = ip->daddr;
	flow.sport = tcp->source;
	flow.dport = tcp->dest;
	flow.proto = IPPROTO_TCP;
	dst = bpf_map_lookup_elem(&ks_lru, &flow);
	if (dst) {
		key = dst->pos;
		ks_count(1);
	} else {
		key = meta->vip_num * KS_RING_SIZE + ks_hash(&flow) % KS_RING_SIZE;
		pos = bpf_map_lookup_elem(&ks_ring, &key);
		if (!pos)
			return XDP_DROP;
		key = *pos;
		fresh.pos = key;
		fresh.atime = bpf_ktime_get_ns();
		bpf_map_update_elem(&ks_lru, &flow, &fresh, BPF_ANY);
		ks_count(0);
	}
	real = bpf_map_lookup_elem(&ks_reals, &key);
	if (!real)
		return XDP_DROP;

	/* IPIP toward the real: a new outer IPv4 header between Ethernet and the packet */
	inner_len = bpf_ntohs(ip->tot_len);
	if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	new_eth = data;
	old_eth = data + sizeof(struct iphdr);
	outer = data + sizeof(struct ethhdr);
	if ((void *)(new_eth + 1) > data_end || (void *)(old_eth + 1) > data_end ||
	    (void *)(outer + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(new_eth->h_source, old_eth->h_dest, ETH_ALEN);
	__builtin_memcpy(new_eth->h_dest, old_eth->h_source, ETH_ALEN);
	new_eth->h_proto = bpf_htons(ETH_P_IP);
	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0;
	outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
	outer->id = 0;
	outer->frag_off = 0;
	outer->ttl = 64;
	outer->protocol = IPPROTO_IPIP;
	outer->check = 0;
	outer->saddr = 0x0100000a ^ flow.src[0]; /* Katran: a source derived from the client's */
	outer->daddr = real->addr;
#pragma unroll
	for (int i = 0; i < (int)sizeof(struct iphdr) / 2; i++)
		sum += ((__u16 *)outer)[i];
	outer->check = ks_csum_fold(sum);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
