/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket-level load balancing: the steps of the cgroup sock_addr hooks
 * (bpf/xlb_sock.bpf.c). A socket of this node's own network namespace that
 * connects or sends to a VIP is pointed at a backend before the kernel routes
 * anything, so its packets carry the backend's address from the first one and
 * nothing has to be NATed per packet. The service lookup and the Maglev
 * selection are the ones xlb_xdp and xlb_tc use (lb.h, maps/xlb_rules.h).
 */
#ifndef XLB_SOCK_H
#define XLB_SOCK_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "lb.h"
#include "stats.h"

#ifndef ECONNREFUSED
#define ECONNREFUSED 111
#endif

/* What the application asked for, per socket and backend (struct xlb_sock_rev). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XLB_SOCK_REV_MAX);
	__type(key, struct xlb_sock_rev_key);
	__type(value, struct xlb_sock_rev);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xlb_sockrev_v1 SEC(".maps");

/* The node's addresses (struct xlb_sock_node), rewritten by the agent when they change. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_sock_node);
} xlb_sock_node SEC(".maps");

const volatile struct xlb_sock_config xlb_sock_cfg = {};

/*
 * Every agent of a machine attaches to the same cgroup (testbed nodes are
 * network namespaces of one host, and a container runtime's pods share the
 * host's cgroup tree): each translates only the sockets of its own namespace.
 */
static __always_inline int sock_is_ours(struct bpf_sock_addr *ctx)
{
	return xlb_sock_cfg.netns_cookie && bpf_get_netns_cookie(ctx) == xlb_sock_cfg.netns_cookie;
}

/*
 * The destination the application named, in the conntrack key's shape. An
 * IPv6 socket's IPv4-mapped destination (::ffff:a.b.c.d, how dual-stack
 * applications such as Java's reach IPv4) is read as the IPv4 address it is.
 */
static __always_inline void sock_read_dst(const struct bpf_sock_addr *ctx, __u8 sock_family,
					  struct xlb_ct_key *flow)
{
	flow->family = sock_family;
	if (sock_family == XLB_FAMILY_IPV4) {
		flow->daddr[0] = ctx->user_ip4;
	} else if (!ctx->user_ip6[0] && !ctx->user_ip6[1] &&
		   ctx->user_ip6[2] == bpf_htonl(0xffff)) {
		flow->daddr[0] = ctx->user_ip6[3];
		flow->family = XLB_FAMILY_IPV4;
	} else {
		flow->daddr[0] = ctx->user_ip6[0];
		flow->daddr[1] = ctx->user_ip6[1];
		flow->daddr[2] = ctx->user_ip6[2];
		flow->daddr[3] = ctx->user_ip6[3];
	}
	flow->dport = (__be16)ctx->user_port;
	flow->proto = ctx->protocol;
}

/* addr is of the family sock_read_dst() gave: IPv4 goes back mapped into an IPv6 socket. */
static __always_inline void sock_write_dst(struct bpf_sock_addr *ctx, __u8 sock_family,
					   __u8 family, const __be32 *addr, __be16 port)
{
	if (sock_family == XLB_FAMILY_IPV4) {
		ctx->user_ip4 = addr[0];
	} else if (family == XLB_FAMILY_IPV4) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = addr[0];
	} else {
		ctx->user_ip6[0] = addr[0];
		ctx->user_ip6[1] = addr[1];
		ctx->user_ip6[2] = addr[2];
		ctx->user_ip6[3] = addr[3];
	}
	ctx->user_port = (__u32)port;
}

static __always_inline int sock_is_loopback(const struct xlb_ct_key *flow)
{
	if (flow->family == XLB_FAMILY_IPV4)
		return (bpf_ntohl(flow->daddr[0]) >> 24) == 127;
	return !flow->daddr[0] && !flow->daddr[1] && !flow->daddr[2] &&
	       flow->daddr[3] == bpf_htonl(1);
}

/*
 * The node's address of the flow's family into flow->saddr (zero when the
 * agent knows none). It is the client address of every host socket.
 */
static __always_inline void sock_node_addr(struct xlb_ct_key *flow)
{
	__u32 zero = 0;
	struct xlb_sock_node *node = bpf_map_lookup_elem(&xlb_sock_node, &zero);

	if (!node)
		return;
	if (flow->family == XLB_FAMILY_IPV4) {
		flow->saddr[0] = node->addr4;
		return;
	}
	__builtin_memcpy(flow->saddr, node->addr6, sizeof(flow->saddr));
}

/*
 * The service of a destination. 127.0.0.0/8 and ::1 reach the NodePorts
 * (kube-proxy serves them on 127.0.0.1; nothing routes ::1 off the node, so it
 * serves as well), looked up under the node's address of that family, which
 * is where the services map has them; only NodePorts, so a local listener on
 * any other loopback port is never taken over.
 */
static __always_inline struct xlb_service *sock_lookup_service(const struct xlb_ct_key *flow)
{
	struct xlb_ct_key lookup = *flow;
	struct xlb_service *svc;

	if (!sock_is_loopback(flow)) {
		if (!lb_maybe_vip(flow->daddr))
			return NULL;
		return lb_lookup_service(flow);
	}
	__builtin_memcpy(lookup.daddr, flow->saddr, sizeof(lookup.daddr));
	if (!lookup.daddr[0] && !lookup.daddr[1] && !lookup.daddr[2] && !lookup.daddr[3])
		return NULL;
	svc = lb_lookup_service(&lookup);
	return svc && (svc->flags & XLB_SVC_F_NODE_PORT) ? svc : NULL;
}

/*
 * The socket's stand-in for a source port. At connect() and sendmsg() time the
 * kernel has not chosen the source port yet, so the 5-tuple hash the packet
 * hooks use cannot be computed. The socket cookie is unique per socket and
 * fixed for its life: folded into the port's place, one socket keeps its
 * backend for every datagram it sends while the table stays, and different
 * sockets spread over the table as different source ports would. (A random
 * number would scatter an unconnected UDP socket's datagrams over every
 * backend.) Under ClientIP affinity the hash ignores ports: every socket of
 * the node goes where a packet from the node's address would.
 */
static __always_inline __be16 sock_cookie_port(__u64 cookie)
{
	return (__be16)(cookie ^ (cookie >> 16) ^ (cookie >> 32) ^ (cookie >> 48));
}

/* Remembers what the application asked for, for recvmsg() and getpeername(). */
static __always_inline int sock_rev_update(__u64 cookie, const struct xlb_ct_key *asked,
					   const struct xlb_backend *be, __be16 be_port,
					   __u32 service_id)
{
	struct xlb_sock_rev_key key = {.cookie = cookie, .port = be_port, .family = be->family};
	struct xlb_sock_rev rev = {.port = asked->dport, .family = asked->family};
	struct xlb_sock_rev *old;

	__builtin_memcpy(key.addr, be->addr, sizeof(key.addr));
	old = bpf_map_lookup_elem(&xlb_sockrev_v1, &key);
	if (old && old->port == asked->dport && old->service_id == service_id &&
	    old->addr[0] == asked->daddr[0] && old->addr[1] == asked->daddr[1] &&
	    old->addr[2] == asked->daddr[2] && old->addr[3] == asked->daddr[3])
		return 0;
	__builtin_memcpy(rev.addr, asked->daddr, sizeof(rev.addr));
	rev.service_id = service_id;
	bpf_map_update_elem(&xlb_sockrev_v1, &key, &rev, BPF_ANY);
	return 1;
}

/*
 * connect() and sendmsg(): a destination that is a service becomes one of its
 * backends, whichever way that backend is reached (a pod here, a pod on
 * another node or cluster, a host address): the host namespace routes to
 * backend addresses itself. The backend is chosen as the packet hooks choose
 * it (lb_select_backend: ClientIP affinity, then Maglev), the client being
 * the node's address. Returns 1 to let the call go on, 0 to fail it: a service
 * without a usable backend is refused with ECONNREFUSED, the local form of
 * the port unreachable the packet hooks answer (XLB_SVC_F_REJECT) and of
 * kube-proxy's REJECT. Without REJECT the packet hooks drop instead; a host
 * socket is refused all the same, since an untranslated VIP would only leave
 * the node toward nowhere. loadBalancerSourceRanges are not checked here: the
 * source address is not chosen yet at connect(), and the node's own sockets
 * are no clients of a LoadBalancer IP from outside.
 * `connected`: the socket gets this backend for good (connect()), so the call
 * is a new flow; a datagram is one only for a (socket, backend) pair not seen
 * before.
 */
static __always_inline int sock_xlate_fwd(struct bpf_sock_addr *ctx, __u8 sock_family,
					  int connected)
{
	struct xlb_ct_key flow = {};
	struct xlb_service *svc;
	struct xlb_backend *be;
	__u32 backend_id;
	__be16 port;
	__u64 cookie;
	int new_flow;

	if (!sock_is_ours(ctx))
		return 1;
	sock_read_dst(ctx, sock_family, &flow);
	if (flow.proto != IPPROTO_TCP && flow.proto != IPPROTO_UDP)
		return 1;
	sock_node_addr(&flow);
	svc = sock_lookup_service(&flow);
	if (!svc)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	flow.sport = sock_cookie_port(cookie);
	if (lb_select_backend(svc, &flow, bpf_ktime_get_coarse_ns(), &backend_id) != XLB_OK)
		goto refuse;
	be = lb_lookup_backend(backend_id);
	if (!be || be->family != flow.family)
		goto refuse;
	port = be->port ? be->port : flow.dport;
	new_flow = sock_rev_update(cookie, &flow, be, port, svc->id) || connected;
	sock_write_dst(ctx, sock_family, flow.family, be->addr, port);
	stats_flow(&xlb_svcstat_v1, svc->id, 0, new_flow);
	stats_flow(&xlb_bestat_v1, backend_id, 0, new_flow);
	return 1;
refuse:
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

/*
 * recvmsg() and getpeername(): a backend this socket was pointed at shows as
 * the address the application asked for.
 */
static __always_inline int sock_xlate_rev(struct bpf_sock_addr *ctx, __u8 sock_family)
{
	struct xlb_sock_rev_key key = {};
	struct xlb_ct_key peer = {};
	struct xlb_sock_rev *rev;

	if (!sock_is_ours(ctx))
		return 1;
	sock_read_dst(ctx, sock_family, &peer);
	key.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(key.addr, peer.daddr, sizeof(key.addr));
	key.port = peer.dport;
	key.family = peer.family;
	rev = bpf_map_lookup_elem(&xlb_sockrev_v1, &key);
	if (!rev)
		return 1;
	sock_write_dst(ctx, sock_family, rev->family, rev->addr, rev->port);
	return 1;
}

#endif /* XLB_SOCK_H */
