/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb's socket-level entry: cgroup sock_addr hooks for the sockets of the
 * node's own network namespace (kubelet, hostNetwork pods, the agent). A
 * connect() or sendmsg() to a VIP, a NodePort on a node address or on
 * loopback goes to a backend chosen by the same rules as xlb_xdp's and
 * xlb_tc's; recvmsg() and getpeername() show the application the address it
 * asked for. Every other socket is left alone.
 */
/*
 * lb.h reaches the packet parser, which is written against a context; these
 * hooks parse no packet, but the shared core compiles against one.
 */
#include "lib/ctx/skb.h"
#include "lib/sock.h"

SEC("cgroup/connect4")
int xlb_sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, XLB_FAMILY_IPV4, 1);
}

SEC("cgroup/connect6")
int xlb_sock_connect6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, XLB_FAMILY_IPV6, 1);
}

SEC("cgroup/sendmsg4")
int xlb_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, XLB_FAMILY_IPV4, 0);
}

SEC("cgroup/sendmsg6")
int xlb_sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_fwd(ctx, XLB_FAMILY_IPV6, 0);
}

SEC("cgroup/recvmsg4")
int xlb_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, XLB_FAMILY_IPV4);
}

SEC("cgroup/recvmsg6")
int xlb_sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, XLB_FAMILY_IPV6);
}

SEC("cgroup/getpeername4")
int xlb_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, XLB_FAMILY_IPV4);
}

SEC("cgroup/getpeername6")
int xlb_sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return sock_xlate_rev(ctx, XLB_FAMILY_IPV6);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
