/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The context layer: the load-balancing core sees __ctx_buff and ctx_*()
 * helpers, never xdp_md or __sk_buff, so XDP and TC share one core.
 * Include exactly one of ctx/xdp.h or ctx/skb.h before any other lib header.
 */
#ifndef XLB_CTX_H
#define XLB_CTX_H

#if !defined(XLB_CTX_XDP) && !defined(XLB_CTX_SKB)
#error "include ctx/xdp.h or ctx/skb.h first"
#endif

#endif /* XLB_CTX_H */
