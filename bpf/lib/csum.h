/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental Internet checksum updates (RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m')).
 * Differences are accumulated as a 32-bit one's-complement sum with end-around
 * carry and folded once when applied; the sum is byte-order independent, so
 * header words are used exactly as they sit in the packet.
 */
#ifndef XLB_CSUM_H
#define XLB_CSUM_H

#include <linux/types.h>

static __always_inline __u32 csum_add(__u32 a, __u32 b)
{
	a += b;
	return a + (a < b);
}

/* Adds the change of one 32-bit header word from `from` to `to`. */
static __always_inline __u32 csum_diff32(__u32 acc, __be32 from, __be32 to)
{
	return csum_add(csum_add(acc, ~(__u32)from), (__u32)to);
}

/* Adds the change of one 16-bit header word. */
static __always_inline __u32 csum_diff16(__u32 acc, __be16 from, __be16 to)
{
	return csum_add(csum_add(acc, (__u16)~from), (__u16)to);
}

/* Adds the change of a 16-byte address. */
static __always_inline __u32 csum_diff128(__u32 acc, const __be32 *from, const __be32 *to)
{
#pragma unroll
	for (int i = 0; i < 4; i++)
		acc = csum_diff32(acc, from[i], to[i]);
	return acc;
}

static __always_inline __u16 csum_fold(__u32 c)
{
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	return (__u16)c;
}

/* The checksum field `check` after the changes summed in `diff`. */
static __always_inline __sum16 csum_apply(__sum16 check, __u32 diff)
{
	return (__sum16)~csum_fold(csum_add((__u16)~check, diff));
}

/*
 * UDP: a zero checksum means "none" over IPv4 and stays zero (over IPv6 it is
 * invalid and left alone); a computed zero is sent as 0xffff (RFC 768).
 */
static __always_inline __sum16 csum_apply_udp(__sum16 check, __u32 diff)
{
	__sum16 c;

	if (!check)
		return 0;
	c = csum_apply(check, diff);
	return c ? c : (__sum16)0xffff;
}

#endif /* XLB_CSUM_H */
