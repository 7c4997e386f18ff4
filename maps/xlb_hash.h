/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash that picks a Maglev slot. Compiled into the BPF programs and
 * into userspace (xlbctl explain, tests), so both sides agree on every slot.
 * MurmurHash3's 32-bit mixing over whole words: good avalanche, a handful of
 * instructions per word, and no table the verifier would have to bound.
 */
#ifndef XLB_HASH_H
#define XLB_HASH_H

#include "xlb_abi.h"

#ifdef __bpf__
#define XLB_INLINE static __always_inline
#else
#define XLB_INLINE static inline
#endif

XLB_INLINE __u32 xlb_rotl32(__u32 x, __u32 r)
{
	return (x << r) | (x >> (32 - r));
}

XLB_INLINE __u32 xlb_hash_mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51U;
	k = xlb_rotl32(k, 15);
	k *= 0x1b873593U;
	h ^= k;
	h = xlb_rotl32(h, 13);
	return h * 5 + 0xe6546b64U;
}

XLB_INLINE __u32 xlb_hash_final(__u32 h, __u32 nwords)
{
	h ^= nwords * 4;
	h ^= h >> 16;
	h *= 0x85ebca6bU;
	h ^= h >> 13;
	h *= 0xc2b2ae35U;
	h ^= h >> 16;
	return h;
}

/* Hash of a flow's original-direction tuple: the default selection key. */
XLB_INLINE __u32 xlb_hash_flow(const struct xlb_ct_key *k, __u32 seed)
{
	__u32 h = seed;
	__u32 ports = ((__u32)k->sport << 16) | k->dport;

	if (k->family == XLB_FAMILY_IPV6) {
#ifdef __bpf__
#pragma unroll
#endif
		for (int i = 0; i < 4; i++) {
			h = xlb_hash_mix(h, k->saddr[i]);
			h = xlb_hash_mix(h, k->daddr[i]);
		}
		h = xlb_hash_mix(h, ports);
		h = xlb_hash_mix(h, k->proto);
		return xlb_hash_final(h, 10);
	}
	h = xlb_hash_mix(h, k->saddr[0]);
	h = xlb_hash_mix(h, k->daddr[0]);
	h = xlb_hash_mix(h, ports);
	h = xlb_hash_mix(h, k->proto);
	return xlb_hash_final(h, 4);
}

/* Hash of the client address only: ClientIP session affinity. */
XLB_INLINE __u32 xlb_hash_client(const struct xlb_ct_key *k, __u32 seed)
{
	__u32 h = seed;

	if (k->family == XLB_FAMILY_IPV6) {
#ifdef __bpf__
#pragma unroll
#endif
		for (int i = 0; i < 4; i++)
			h = xlb_hash_mix(h, k->saddr[i]);
		return xlb_hash_final(h, 4);
	}
	h = xlb_hash_mix(h, k->saddr[0]);
	return xlb_hash_final(h, 1);
}

/*
 * The VIP filter position of an address (IPv4 in addr[0], other words zero):
 * sets *word to the array index and returns the bit within that word.
 */
XLB_INLINE __u64 xlb_vip_filter_pos(const __be32 *addr, __u32 *word)
{
	__u32 h = (addr[0] ^ xlb_rotl32(addr[1], 8) ^ xlb_rotl32(addr[2], 16) ^
		   xlb_rotl32(addr[3], 24)) * 0x9e3779b1U;

	h ^= h >> 15;
	h *= 0x2c1b3c6dU;
	h ^= h >> 12;
	*word = h % XLB_VIP_FILTER_WORDS;
	return 1ULL << (h >> 26);
}

#endif /* XLB_HASH_H */
