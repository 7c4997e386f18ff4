/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ABI between xlb's BPF programs and its userspace: map keys, values,
 * constants and limits. Compiled by clang -target bpf and by g++, so it uses
 * only fixed-width UAPI types, explicit padding and no bitfields (the compilers
 * may lay bitfields out differently). Every size is asserted below, and
 * tests/unit/abi_btf_test.cc compares these layouts with the BTF of the built
 * object.
 *
 * Addresses are always four big-endian 32-bit words: an IPv4 address lives in
 * word 0 and words 1..3 are zero, so one key shape serves both families.
 *
 * A layout change bumps XLB_ABI_VERSION and the "_vN" suffix of every pinned
 * map name, so a new agent never reads an old map with the wrong layout.
 */
#ifndef XLB_ABI_H
#define XLB_ABI_H

#include <linux/types.h>

#define XLB_ABI_VERSION 1

/* A 16-bit constant in network order, usable in initializers on both sides. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define XLB_BE16_CONST(x) ((__u16)(x))
#else
#define XLB_BE16_CONST(x) ((__u16)((((x) & 0xff) << 8) | (((x) >> 8) & 0xff)))
#endif
#define XLB_PIN_DIR "/sys/fs/bpf/xlb"

/* Pinned map names (at most 15 characters: BPF_OBJ_NAME_LEN - 1). */
#define XLB_MAP_SERVICES "xlb_services_v1"
#define XLB_MAP_BACKENDS "xlb_backends_v1"
#define XLB_MAP_MAGLEV "xlb_maglev_v3"
#define XLB_MAP_CT "xlb_ct_v1"
#define XLB_MAP_REASONS "xlb_reasons_v4"
#define XLB_MAP_SVC_STATS "xlb_svcstat_v1"
#define XLB_MAP_BE_STATS "xlb_bestat_v1"
#define XLB_MAP_VIP_FILTER "xlb_vipfilt_v1"
#define XLB_MAP_REPLY "xlb_reply_v1"
#define XLB_MAP_SNAT "xlb_snat_v1"
#define XLB_MAP_PEERS "xlb_peers_v1"
#define XLB_MAP_AFFINITY "xlb_affinity_v1"
#define XLB_MAP_AFFINITY_MATCH "xlb_affmatch_v1"
#define XLB_MAP_SRC_RANGES "xlb_srcrange_v1"
#define XLB_MAP_CT_HALF_OPEN "xlb_cthalf_v2"
#define XLB_MAP_REPLY_HALF_OPEN "xlb_rplhalf_v1"
#define XLB_MAP_NEXTHOP "xlb_nexthop_v2"
/*
 * The interfaces XDP may forward onto (DEVMAP_HASH, ifindex -> ifindex), agent-
 * written: those whose driver takes XDP frames now (netdev xdp-features
 * NDO_XMIT; a veth only while its peer runs NAPI: an XDP program or GRO on the
 * peer). Not pinned: the agent fills it again after every start.
 */
#define XLB_MAP_FWD_DEV "xlb_fwddev"
#define XLB_FWD_DEV_MAX 4096

/* Default map sizes; the loader may change them before load. */
#define XLB_MAX_SERVICES 4096      /* service ids 1..XLB_MAX_SERVICES-1 */
#define XLB_MAX_BACKENDS 65536     /* backend ids 1..XLB_MAX_BACKENDS-1 */
#define XLB_CT_MAX 262144          /* conntrack entries (LRU) */
#define XLB_CT_HALF_OPEN_MAX 65536 /* half-open TCP flows (LRU), and decapsulated SYNs' reply entries */
#define XLB_MAGLEV_DEFAULT_SIZE 16381 /* slots per service table, prime */
#define XLB_MAGLEV_MAX_SIZE 131071 /* largest table size the loader accepts, prime */

/*
 * The VIP filter: a one-hash Bloom filter over every VIP address, an ARRAY of
 * XLB_VIP_FILTER_WORDS __u64 words (xlb_vip_filter_pos() in xlb_hash.h gives a
 * bit). Packets whose destination's bit is clear are not for xlb and skip the
 * services hash entirely. Userspace sets an address's bit before inserting its
 * first service and recomputes a word after removing an address.
 */
#define XLB_VIP_FILTER_WORDS 4096

/* Id 0 is never a valid service or backend: an all-zero Maglev slot is empty. */
#define XLB_ID_NONE 0

#define XLB_FAMILY_IPV4 4
#define XLB_FAMILY_IPV6 6

/* The services map: (VIP, port, protocol) -> service. */
struct xlb_service_key {
	__be32 addr[4]; /* VIP: ClusterIP, ClusterSet IP, external IP or node address */
	__be16 port;    /* L4 destination port, network order; 0 = all ports */
	__u8 proto;     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;    /* XLB_FAMILY_IPV4 or XLB_FAMILY_IPV6 */
};

/* Service flags. */
/*
 * ClientIP affinity: Maglev hashes the source address only, and a new flow goes
 * to the client's last backend (xlb_affinity_v1) while that is younger than
 * affinity_timeout.
 */
#define XLB_SVC_F_AFFINITY (1U << 0)
/*
 * A NodePort on one of this node's own addresses: the answers leave with that
 * address as their source, which the stack drops as martian when it receives
 * one (from a pod's veth, or decapsulated on the uplink), so xlb routes them.
 */
#define XLB_SVC_F_NODE_PORT (1U << 1)
/*
 * A LoadBalancer IP of a Service with spec.loadBalancerSourceRanges: a packet
 * whose source is in no range of xlb_srcrange_v1 under the service id is
 * dropped (XLB_DROP_SOURCE_RANGE), new flow or established (a flow that began
 * under the flag: XLB_CT_F_SOURCE_RANGES). The agent writes a key's ranges
 * before it sets the flag, or every source is dropped in between.
 */
#define XLB_SVC_F_SOURCE_RANGES (1U << 2)
/*
 * The service port has no endpoint at all (none ready, none serving while
 * terminating): new flows are answered with ICMP/ICMPv6 port unreachable from
 * the VIP (XLB_FWD_REJECT), as kube-proxy and Cilium reject. Without it a
 * backend_count of 0 drops (XLB_DROP_NO_BACKEND): a Local traffic policy with
 * no endpoint on this node, where kube-proxy drops too.
 */
#define XLB_SVC_F_REJECT (1U << 3)

struct xlb_service {
	__u32 id;               /* index into xlb_maglev_v1 and xlb_svcstat_v1 */
	__u32 flags;            /* XLB_SVC_F_* */
	__u32 affinity_timeout; /* AFFINITY: seconds without a new flow after which a client may move */
	__u32 backend_count;    /* backends in the service's table; 0 drops new flows */
};

/* Backend flags. */
#define XLB_BE_F_VALID (1U << 0)  /* slot holds a backend; conntrack entries to others reselect */
#define XLB_BE_F_TUNNEL (1U << 1) /* reached through `tunnel` (remote cluster), not routed */
/*
 * Where no xlb runs to answer back (a host address, a node without xlb) or the
 * client is its own backend (hairpin): DNAT and SNAT to this node's address and
 * a port from the SNAT range, so the answer comes back here (kube-proxy's
 * masquerade). The backend sees the node, not the client.
 */
#define XLB_BE_F_SNAT (1U << 2)

/* The backends map: backend id (array index) -> how to reach it. */
struct xlb_backend {
	__be32 addr[4];     /* backend address: pod, or a routed remote address */
	__be32 tunnel[4];   /* node that hosts a tunnelled backend; zero when routed */
	__be16 port;        /* backend port, network order; 0 keeps the packet's port */
	__u8 family;        /* family of addr: XLB_FAMILY_IPV4 or XLB_FAMILY_IPV6 */
	__u8 tunnel_family; /* family of tunnel; 0 when routed */
	__u16 cluster_id;   /* cluster the backend lives in */
	__u16 flags;        /* XLB_BE_F_* */
};

/*
 * The Maglev tables: xlb_maglev_v3 is an ARRAY_OF_MAPS indexed by service id;
 * each inner map is an ARRAY of XLB_MAGLEV_ELEMS(maglev_size) chunks of
 * XLB_MAGLEV_CHUNK __u32 backend ids: slot s is id[s % XLB_MAGLEV_CHUNK] of
 * element s / XLB_MAGLEV_CHUNK. Chunks are whole multiples of 8 bytes, so the
 * kernel lays them out back to back and a table mapped (BPF_F_MMAPABLE) is the
 * plain array of its slots. A table has at least one slot more than
 * maglev_size: its last __u32 (id[XLB_MAGLEV_CHUNK - 1] of the last element)
 * holds maglev_size, so a reader knows a table's size from the table alone.
 * The slots between are 0.
 * A new table is filled with batch updates of its few elements, before it
 * is put into the outer slot (a mapping costs the writer an mmap, a munmap
 * and a TLB shootdown per table: 2.5 times the CPU); later tables of the
 * service are written into it in place through a mapping, each changed slot
 * one aligned 4-byte store. A packet reads one slot: it sees that slot's old
 * backend or its new one, never a torn value. xlb_maglev_v2 held two slots per
 * 8-byte element, xlb_maglev_v1 one.
 */
#define XLB_MAGLEV_CHUNK 512
struct xlb_maglev_chunk {
	__u32 id[XLB_MAGLEV_CHUNK];
};
#define XLB_MAGLEV_ELEMS(size) ((size) / XLB_MAGLEV_CHUNK + 1)

/*
 * ClientIP session affinity (sessionAffinityConfig.clientIP.timeoutSeconds):
 * xlb_affinity_v1 is an LRU the datapath alone writes, (service, client) -> the
 * backend the client's last new flow went to. A new flow of an AFFINITY
 * service goes to that backend when the entry is younger than the service's
 * affinity_timeout and (service id, backend id) is in xlb_affmatch_v1 (the
 * agent's list of the backends that take new flows for the service); otherwise
 * Maglev selects, and the entry is rewritten. Every new flow refreshes it, as
 * kube-proxy's `recent` match and Cilium's affinity map do.
 */
#define XLB_AFFINITY_MAX 65536

struct xlb_affinity_key {
	__be32 client[4]; /* the client's (source) address */
	__u32 service_id; /* xlb_service.id */
	__u8 family;      /* XLB_FAMILY_* */
	__u8 pad[3];      /* zero */
};

struct xlb_affinity {
	__u64 last_seen;  /* CLOCK_MONOTONIC ns (bpf_ktime_get_coarse_ns()) of the client's last new flow */
	__u32 backend_id; /* backend that flow went to */
	__u32 pad;        /* zero */
};

/* xlb_affmatch_v1 (HASH, written by the agent): (service id, backend id) -> 0. */
#define XLB_AFFINITY_MATCH_MAX 65536

struct xlb_affinity_match_key {
	__u32 service_id;
	__u32 backend_id;
};

/*
 * spec.loadBalancerSourceRanges: xlb_srcrange_v1 is an LPM_TRIE the agent
 * writes, (service id, family, source prefix) -> 0, for services whose
 * LoadBalancer-IP keys carry XLB_SVC_F_SOURCE_RANGES. prefixlen counts the
 * bits after it: 64 (service_id, family and pad) + the range's prefix length.
 * The datapath looks a source up with the full length of its family (64 + 32
 * or 64 + 128, xlb_src_range_lookup_key() in xlb_rules.h); an IPv4 range's
 * address is in word 0 like every IPv4 address here, so its prefix never
 * reaches words 1..3. The socket hooks do not filter: at connect() the
 * source address is not chosen yet, and the host namespace's own sockets are
 * no LoadBalancer clients.
 */
#define XLB_SRC_RANGES_MAX 16384
#define XLB_SRC_RANGE_PREFIX_BASE 64

struct xlb_src_range_key {
	__u32 prefixlen;  /* XLB_SRC_RANGE_PREFIX_BASE + prefix bits */
	__u32 service_id; /* xlb_service.id */
	__u8 family;      /* XLB_FAMILY_* */
	__u8 pad[3];      /* zero */
	__be32 addr[4];   /* the range's address (a lookup: the packet's source) */
};

/* Conntrack: the original-direction tuple of a flow -> its backend. */
struct xlb_ct_key {
	__be32 saddr[4]; /* client address */
	__be32 daddr[4]; /* VIP */
	__be16 sport;    /* client port */
	__be16 dport;    /* VIP port */
	__u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 family;     /* XLB_FAMILY_* */
	__u8 pad[2];     /* zero */
};

/*
 * Half-open TCP flows: a new flow whose first packet is a SYN is written into
 * xlb_cthalf_v2 as one entry (struct xlb_half_open: its conntrack entry and its
 * answer's REVNAT entry), keyed by what both directions carry, the client's
 * side (struct xlb_half_key): the client's packets find it through their
 * source, the backend's SYN-ACK or RST through its destination. The client's
 * ACK completes the handshake and moves the flow into xlb_ct_v1 and
 * xlb_reply_v1. A flood of spoofed SYNs thus evicts only other half-open flows,
 * never an established one, and costs one insert per SYN. A legitimate
 * handshake needs its entry only until the backend's SYN-ACK has passed (a
 * round trip between this node and the backend, not the client): an ACK whose
 * entry was evicted is placed by Maglev again, and writes the REVNAT entry
 * afresh.
 *
 * The key lacks the VIP, so an entry is the flow's only when its REVNAT
 * address and port are the packet's VIP and port (for the client's packets),
 * or its backend is the packet's source (for the backend's). A SYN does not
 * look the key up: it inserts with BPF_NOEXIST, and only when the key is taken
 * looks at its holder. Its own flow still waiting for the SYN-ACK (the SYN
 * retransmitted) is rewritten, and the packet is not a new flow; a closed or
 * stale entry is replaced; another VIP's live handshake from the same client
 * address and port (Linux reuses an ephemeral port toward other destinations)
 * keeps the key, and the new flow starts in xlb_ct_v1 / xlb_reply_v1 as a UDP
 * flow does.
 *
 * Only a SYN-ACK or an RST looks into the half-open tables (nothing else
 * answers a half-open flow), and first: xlb_reply_v1 may hold an older flow's
 * entry under the same tuple (a client port reused toward another VIP). The
 * node that decapsulates a SYN for its pod keeps the TUNNEL entry in
 * xlb_rplhalf_v1 (struct xlb_reply under the answer's tuple) until the flow's
 * next packet. SNAT flows (their port is owned by a conntrack entry of
 * xlb_ct_v1) do not take this path.
 */
/* Conntrack states. */
#define XLB_CT_SYN_SENT 1    /* TCP: a SYN was seen, no ACK from the client yet */
#define XLB_CT_ESTABLISHED 2 /* TCP: client has ACKed; UDP: any packet */
#define XLB_CT_CLOSING 3     /* TCP: FIN or RST seen */

/*
 * The flow began while its service key carried XLB_SVC_F_SOURCE_RANGES: each of
 * its packets looks the key up again and is dropped while the key still has the
 * flag and the source is in none of its ranges, so narrowing the ranges cuts
 * established flows too. Flows that began before the key had the flag are not
 * cut (kube-proxy's nftables firewall check, too, matches new connections
 * only); every other flow keeps its one-lookup established path.
 */
#define XLB_CT_F_SOURCE_RANGES (1U << 0)
/*
 * The flow's VIP is this node's own address (XLB_SVC_F_NODE_PORT): what its
 * REVNAT entry needs (XLB_REPLY_F_ROUTE) when the flow's handshake completes
 * and the entry is written among the established ones.
 */
#define XLB_CT_F_NODE_PORT (1U << 1)

struct xlb_ct_value {
	__u64 last_seen;  /* bpf_ktime_get_ns() of a recent packet (refreshed coarsely) */
	__u32 backend_id; /* backend the flow is pinned to */
	__u32 service_id; /* service the flow belongs to */
	__u8 state;       /* XLB_CT_* */
	__u8 flags;       /* XLB_CT_F_*; zero in entries written before it existed */
	__be16 snat_port; /* XLB_BE_F_SNAT backends: the source port the flow leaves with */
	__u8 pad[4];      /* zero */
};

/*
 * Replies: a flow's reply-direction tuple (saddr = backend, daddr = client,
 * sport = backend port, dport = client port: the tuple as the backend's answer
 * carries it, in struct xlb_ct_key) -> what to do with the answer.
 *
 * REVNAT entries live on the node that balanced the flow (they are written with
 * its conntrack entry): the answer's source becomes the VIP and its port again,
 * whether it comes from a local pod (TC) or back through the tunnel (XDP,
 * after decapsulation). TUNNEL entries live on the node that decapsulated a
 * flow for one of its pods: the pod's answer is encapsulated back to the node
 * that balanced it, which then reverses the DNAT. The client only ever sees the
 * VIP; the backend always sees the client's own address.
 */
#define XLB_REPLY_REVNAT 1 /* source backend:port -> VIP:port */
#define XLB_REPLY_TUNNEL 2 /* encapsulate to the origin node, unchanged */

struct xlb_reply {
	__u64 last_seen; /* bpf_ktime_get_coarse_ns() of a recent packet (refreshed coarsely) */
	__be32 addr[4];  /* REVNAT: the VIP; TUNNEL: the origin node's tunnel address */
	__be16 port;     /* REVNAT: the VIP port, network order; TUNNEL: 0 */
	__u8 kind;       /* XLB_REPLY_* */
	__u8 family;     /* family of addr: XLB_FAMILY_* */
	__u8 encap;      /* TUNNEL: the XLB_ENCAP_* format the flow arrived in; 0 for REVNAT */
	__u8 flags;      /* XLB_REPLY_F_* */
	__u8 pad[2];     /* zero */
};

/* REVNAT: the VIP is this node's address (XLB_SVC_F_NODE_PORT): xlb routes the answer. */
#define XLB_REPLY_F_ROUTE (1U << 0)

/* A half-open flow's key in xlb_cthalf_v2: the client's side of the tuple. */
struct xlb_half_key {
	__be32 client[4]; /* client address */
	__be16 port;      /* client port */
	__u8 proto;       /* IPPROTO_TCP */
	__u8 family;      /* XLB_FAMILY_* */
};

/* A half-open flow: its conntrack entry, and its answer's REVNAT entry (the VIP and port). */
struct xlb_half_open {
	struct xlb_ct_value ct;
	struct xlb_reply revnat;
};

/*
 * SNAT (XLB_BE_F_SNAT backends): the answer's tuple as it reaches this node
 * (saddr = backend, daddr = this node's address, sport = backend port, dport =
 * the SNAT port; struct xlb_ct_key) -> the flow it answers. The answer leaves
 * from VIP:port to client:port again. An LRU like conntrack, written with the
 * flow's conntrack entry, which keeps the port in its snat_port.
 *
 * SNAT ports come from XLB_SNAT_PORT_MIN..MAX, above Linux's default ephemeral
 * range (32768-60999), so that a port xlb takes never belongs to a socket of
 * the node's own talking to the same backend. A port is unique per (backend
 * address, backend port, protocol): this many flows per backend per node.
 */
#define XLB_SNAT_PORT_MIN 61000
#define XLB_SNAT_PORT_MAX 65535
#define XLB_SNAT_TRIES 16 /* ports tried (the flow's hash, then random) before the flow is dropped */
/*
 * A port whose flow ended (its conntrack entry expired, or the flow moved to
 * another port) is taken again only after this long idle: the backend may hold
 * the old connection in TIME_WAIT (60 s on Linux), and a new SYN on that tuple
 * would meet it. So one node opens at most about (MAX - MIN + 1) / 120 new
 * connections per second to one backend address and port, sustained.
 */
#define XLB_SNAT_REUSE_S 120

struct xlb_snat {
	__u64 last_seen;   /* bpf_ktime_get_coarse_ns() of a recent packet (refreshed coarsely) */
	__be32 client[4];  /* the client's address: the answer's new destination */
	__be32 vip[4];     /* the address the client connected to: the answer's new source */
	__be16 client_port; /* network order */
	__be16 vip_port;   /* network order */
	__u8 family;       /* XLB_FAMILY_* of all four addresses */
	__u8 flags;        /* XLB_REPLY_F_ROUTE: the VIP is this node's own address */
	__u8 pad[2];       /* zero */
};

/*
 * Encapsulation toward tunnelled backends (XLB_BE_F_TUNNEL). Both are UDP, so
 * they cross cloud networks and spread over RSS/ECMP: the UDP source port is
 * taken from the inner flow's hash.
 *   VXLAN: outer IP | UDP | VXLAN (flags 0x08, VNI) | inner Ethernet | inner IP;
 *          a stock Linux `vxlan` device decapsulates it (its MAC = vtep_mac).
 *   GUE:   outer IP | UDP | inner IP (GUE variant 1, "direct IP" as in FOU);
 *          the ethertype follows from the inner IP version nibble.
 */
#define XLB_ENCAP_VXLAN 1
#define XLB_ENCAP_GUE 2
#define XLB_VXLAN_PORT 4789
#define XLB_GUE_PORT 6080
#define XLB_VXLAN_VNI 4242

/*
 * Tunnel peers: the nodes xlb decapsulates from. A tunnel packet is decapsulated
 * only when its outer source is a key of xlb_peers_v1 (a HASH the agent fills
 * from every node address its model knows, before XDP is attached); anything
 * else on the tunnel port is dropped (XLB_DROP_TUNNEL_PEER), so nobody who can
 * merely send UDP to a node injects packets with arbitrary inner sources.
 */
#define XLB_PEERS_MAX 65536

struct xlb_peer_key {
	__be32 addr[4]; /* a node's address (the outer source of its tunnel packets) */
	__u8 family;    /* XLB_FAMILY_* */
	__u8 pad[3];    /* zero */
};

struct xlb_peer {
	__u16 cluster_id; /* the cluster the node belongs to (informational) */
	__u8 pad[2];      /* zero */
};

/*
 * The next hop toward a tunnel peer or a routed backend (a packet xlb forwards
 * itself, bpf/lib/forward.h), as bpf_fib_lookup last found it: the datapath's
 * cache of the kernel's routing and neighbour tables, so that an established
 * flow pays one hash lookup instead of a fib lookup per packet (IPv6's costs
 * more than the rest of the path). Written by the datapath only, for a
 * resolved neighbour, with the MTU the route carries (tunnel_mtu, or less
 * where the route is narrower: a hit stands for a packet up to `mtu`), or
 * with ifindex 0 for a destination without a route xlb may use (a local
 * address, unreachable, forwarding off: the stack's); trusted until `expires`,
 * XLB_NEXTHOP_TTL_NS after the lookup, so a changed route or neighbour MAC is
 * seen within that time. Keyed by the interface the packet came in on as
 * well, as the fib lookup is.
 */
#define XLB_NEXTHOP_MAX 4096
#define XLB_NEXTHOP_TTL_NS 1000000000ULL

struct xlb_nexthop_key {
	__be32 addr[4]; /* the destination: a tunnel peer, or a backend or client xlb forwards to */
	__u32 ifindex;  /* the interface the packet came in on */
	__u8 family;    /* XLB_FAMILY_* */
	__u8 pad[3];    /* zero */
};

struct xlb_nexthop {
	__u64 expires;  /* bpf_ktime_get_coarse_ns() after which the fib is asked again */
	__u32 ifindex;  /* the interface toward the next hop; 0: no route xlb may use (the stack's) */
	__u8 dmac[6];   /* the next hop's MAC */
	__u8 smac[6];   /* the interface's MAC */
	__u16 mtu;      /* a hit stands for a packet of up to this many bytes */
	__u8 pad[6];    /* zero */
};

/*
 * Why a packet went where it went: the index of xlb_reasons_v4. The groups
 * stay in this order (pass, forward, drop): the exit helper and userspace
 * derive the verdict class from it.
 */
enum xlb_reason {
	/* passed to the stack untouched */
	XLB_PASS_NOT_IP = 0,     /* not IPv4/IPv6 (ARP, LLDP, ...) */
	XLB_PASS_NO_SERVICE,     /* IP, but not to a VIP/port xlb serves */
	XLB_PASS_NOT_L4,         /* IP protocol xlb does not balance */
	XLB_PASS_FRAGMENT,       /* IP fragment: no ports to place it by */
	XLB_PASS_ICMP,           /* ICMP that belongs to no tracked flow */
	XLB_PASS_MALFORMED_L2,   /* frame too short for its Ethernet/VLAN headers */
	XLB_PASS_MALFORMED_L3,   /* bad IP version/IHL/length, IPv6 payload beyond frame */
	XLB_PASS_MALFORMED_L4,   /* L4 header too short to read the ports */
	XLB_PASS_UNSUPPORTED,    /* too many VLAN tags or IPv6 extension headers */
	XLB_PASS_TUNNEL_MALFORMED, /* to our tunnel address and port: bad UDP, VXLAN or inner header */
	XLB_PASS_TUNNEL_FOREIGN, /* to our tunnel port, but not xlb's: VXLAN flags/VNI, inner not IP */
	/* rewritten, then handed to the kernel to send */
	XLB_PASS_ENCAP_KERNEL,   /* encapsulated; next hop's neighbour unresolved: the kernel sends it */
	XLB_PASS_REPLY_KERNEL,   /* answer reverse-NATed and to be routed by xlb; next hop unresolved: the kernel sends it */
	XLB_PASS_SNAT_KERNEL,    /* DNATed and SNATed; next hop unresolved: the kernel sends it */
	/* balanced or rewritten by xlb */
	XLB_FWD_NEW_FLOW,        /* conntrack miss: Maglev selected the backend */
	XLB_FWD_ESTABLISHED,     /* conntrack hit */
	XLB_FWD_ICMP_ERROR,      /* ICMP error of a tracked flow, sent to that flow's backend */
	XLB_FWD_ENCAP,           /* DNATed, encapsulated toward a tunnelled backend's node, sent */
	XLB_FWD_DECAP,           /* decapsulated for a backend on this node (TUNNEL reply entry) */
	XLB_FWD_REPLY_REVNAT,    /* a backend's answer: source rewritten back to the VIP */
	XLB_FWD_REPLY_TUNNEL,    /* a local backend's answer, encapsulated back to the origin node */
	XLB_FWD_REPLY_ROUTED,    /* an answer reverse-NATed and sent out by xlb (fib lookup): a NodePort's, or back into a pod */
	XLB_FWD_SNAT,            /* DNATed and SNATed to this node, sent out by xlb (fib lookup) */
	XLB_FWD_REPLY_SNAT,      /* the answer of a SNATed flow, back to client from the VIP, to the stack */
	XLB_FWD_ICMP_TOO_BIG,    /* too big for the tunnel: answered with ICMP frag needed / too big */
	XLB_FWD_REJECT,          /* service port without endpoints (XLB_SVC_F_REJECT): answered with ICMP port unreachable */
	XLB_FWD_ROUTED,          /* DNATed to a routed backend and forwarded by xlb (fib, TTL, MACs, redirect): the stack never sees it */
	XLB_FWD_DECAP_ROUTED,    /* decapsulated for a backend on this node and forwarded to it by xlb (as XLB_FWD_ROUTED) */
	/* dropped */
	XLB_DROP_MALFORMED_L4,   /* to a VIP, but TCP doff < 5, or L4 header beyond the frame */
	XLB_DROP_NO_BACKEND,     /* no backend takes new flows here (a Local traffic policy without an endpoint on this node) */
	XLB_DROP_BACKEND_FAMILY, /* backend of another address family than the VIP */
	XLB_DROP_NO_TABLE,       /* service id without an installed Maglev table */
	XLB_DROP_NO_TUNNEL_ADDR, /* tunnel endpoint of a family this node has no tunnel address of */
	XLB_DROP_FIB,            /* the fib has no usable route to the tunnel endpoint */
	XLB_DROP_TOO_BIG,        /* encapsulated, it would exceed tunnel_mtu or the route's MTU */
	XLB_DROP_ENCAP,          /* no room to add or remove the outer headers */
	XLB_DROP_SNAT_PORTS,     /* SNAT: every port tried is taken toward that backend */
	XLB_DROP_UDP6_ZERO_CSUM, /* UDP over IPv6 with checksum 0 (RFC 8200 8.1: receivers discard it) */
	XLB_DROP_TUNNEL_PEER,    /* xlb's tunnel packet from an outer source that is no known node */
	XLB_DROP_SOURCE_RANGE,   /* to a LoadBalancer IP, from outside its loadBalancerSourceRanges */
	XLB_DROP_REJECT,         /* to be rejected (XLB_SVC_F_REJECT), but no ICMP answer could be built */
	XLB_REASON_MAX
};

/* Slots of xlb_reasons_v4: room for new reasons without a new map. */
#define XLB_REASON_SLOTS 64

/* The first reason of the drop group. */
#define XLB_DROP_FIRST XLB_DROP_MALFORMED_L4

/* Per-CPU counters: one per reason. */
struct xlb_counter {
	__u64 packets;
	__u64 bytes;
};

/* Per-CPU counters: one per service and one per backend. */
struct xlb_flow_counter {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows; /* conntrack misses that selected this service/backend */
};

/*
 * Runtime knobs, set through the skeleton's rodata before load
 * (`const volatile struct xlb_config xlb_cfg`).
 */
struct xlb_config {
	__u32 maglev_size;       /* slots per Maglev table, prime; = inner map max_entries */
	__u32 hash_seed;         /* flow hash seed; the same on every node, so nodes agree */
	__u32 ct_tcp_timeout_s;  /* idle time after which an established TCP flow may move */
	__u32 ct_syn_timeout_s;  /* idle time of a TCP flow that never completed its handshake */
	__u32 ct_udp_timeout_s;  /* idle time of a UDP flow */
	__u32 ct_close_timeout_s; /* idle time of a TCP flow after FIN/RST */
	__be32 tunnel_addr4;      /* this node's IPv4 tunnel endpoint: outer source, decap match; 0 = none */
	__be32 tunnel_addr6[4];   /* this node's IPv6 tunnel endpoint; zero = none */
	__be16 vxlan_port;        /* UDP destination port of VXLAN, network order */
	__be16 gue_port;          /* UDP destination port of GUE, network order */
	__u32 vni;                /* VXLAN network identifier xlb sends and accepts (24 bits, host order) */
	__u16 tunnel_mtu;         /* underlay MTU: MSS of tunnelled SYNs is clamped so segments fit */
	__u8 encap;               /* XLB_ENCAP_* xlb sends toward tunnelled backends */
	__u8 flags;               /* XLB_CFG_F_* */
	__u8 vtep_mac[6];         /* inner Ethernet destination of VXLAN frames: the far vxlan device's MAC */
	__u8 pad1[2];             /* zero */
};

/*
 * Decapsulate only from the nodes in xlb_peers_v1: the agent fills that map with
 * every address of every node of every cluster (the Nodes it watches, the
 * config's nodes) and the nodes its endpoints live on. Off in
 * XLB_CONFIG_DEFAULTS (a bare program has an empty map); the agent turns it on
 * unless told `--tunnel-peers any`.
 */
#define XLB_CFG_F_TUNNEL_PEERS (1U << 0)

/*
 * Hand every DNATed packet of a routed backend (a pod on this node, an address
 * the network routes) to the stack, as before the fast path: netfilter's
 * FORWARD chain, conntrack and policy routing by mark see it. Without it xlb
 * forwards such a packet itself when the fib has a resolved next hop
 * (bpf/lib/forward.h); XDP only onto interfaces in xlb_fwddev (XLB_MAP_FWD_DEV).
 */
#define XLB_CFG_F_STACK_FORWARD (1U << 1)

/* Ports are written byte-swapped (network order on little-endian hosts). */
#define XLB_CONFIG_DEFAULTS                                                                \
	{                                                                                  \
		XLB_MAGLEV_DEFAULT_SIZE, 0x786c6231U /* "xlb1" */, 3600, 60, 300, 10, 0,   \
			{0, 0, 0, 0}, XLB_BE16_CONST(XLB_VXLAN_PORT),                      \
			XLB_BE16_CONST(XLB_GUE_PORT), XLB_VXLAN_VNI, 1500, XLB_ENCAP_VXLAN, 0, \
			{0x02, 0x78, 0x6c, 0x62, 0x00, 0x01}, { 0, 0 }                    \
	}

/*
 * Socket-level load balancing (bpf/xlb_sock.bpf.c): cgroup hooks translate a
 * VIP to a backend when a socket of this node's own network namespace
 * connects or sends, so host-namespace clients (kubelet, hostNetwork pods)
 * need no per-packet NAT. What the application asked for is remembered per
 * socket and backend, so that recvmsg() and getpeername() show it the VIP
 * again (Cilium's lb4_reverse_nat_sk).
 */
#define XLB_MAP_SOCK_REV "xlb_sockrev_v1"
#define XLB_SOCK_REV_MAX 65536 /* reverse entries (LRU): sockets x backends talked to */

/* Pinned cgroup links of the socket hooks, beside the maps in the pin directory. */
#define XLB_LINK_SOCK_CONNECT4 "xlb_sk_conn4_v1"
#define XLB_LINK_SOCK_CONNECT6 "xlb_sk_conn6_v1"
#define XLB_LINK_SOCK_SENDMSG4 "xlb_sk_send4_v1"
#define XLB_LINK_SOCK_SENDMSG6 "xlb_sk_send6_v1"
#define XLB_LINK_SOCK_RECVMSG4 "xlb_sk_recv4_v1"
#define XLB_LINK_SOCK_RECVMSG6 "xlb_sk_recv6_v1"
#define XLB_LINK_SOCK_PEER4 "xlb_sk_peer4_v1"
#define XLB_LINK_SOCK_PEER6 "xlb_sk_peer6_v1"

/* xlb_sockrev_v1: (socket, backend address and port) -> what the application asked for. */
struct xlb_sock_rev_key {
	__u64 cookie;    /* bpf_get_socket_cookie() of the socket */
	__be32 addr[4];  /* backend address the socket was sent to */
	__be16 port;     /* backend port, network order */
	__u8 family;     /* XLB_FAMILY_* */
	__u8 pad[5];     /* zero */
};

struct xlb_sock_rev {
	__be32 addr[4];  /* the destination the application used: VIP, node address or loopback */
	__be16 port;     /* its port, network order */
	__u8 family;     /* XLB_FAMILY_* */
	__u8 pad;        /* zero */
	__u32 service_id; /* the service it was translated by */
};

/*
 * The node's own addresses, one entry of a per-program ARRAY the agent rewrites when they
 * change: a NodePort reached through loopback is looked up under them (the services map
 * holds NodePorts under the node's addresses only).
 */
struct xlb_sock_node {
	__be32 addr4;    /* this node's IPv4 address; 0 = none */
	__be32 addr6[4]; /* this node's IPv6 address; zero = none */
};

/* Rodata of xlb_sock, set through the skeleton before load. */
struct xlb_sock_config {
	__u64 netns_cookie; /* the agent's network namespace: the only one translated; 0 = none */
};

#ifdef __cplusplus
#define XLB_STATIC_ASSERT static_assert
#else
#define XLB_STATIC_ASSERT _Static_assert
#endif

XLB_STATIC_ASSERT(sizeof(struct xlb_service_key) == 20, "xlb_service_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_service) == 16, "xlb_service layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_backend) == 40, "xlb_backend layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_maglev_chunk) % 8 == 0, "xlb_maglev_chunk: back to back in an ARRAY");
XLB_STATIC_ASSERT((XLB_MAGLEV_CHUNK & (XLB_MAGLEV_CHUNK - 1)) == 0, "XLB_MAGLEV_CHUNK: a power of 2");
XLB_STATIC_ASSERT(sizeof(struct xlb_ct_key) == 40, "xlb_ct_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_ct_value) == 24, "xlb_ct_value layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_counter) == 16, "xlb_counter layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_flow_counter) == 24, "xlb_flow_counter layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_config) == 64, "xlb_config layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_affinity_key) == 24, "xlb_affinity_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_affinity) == 16, "xlb_affinity layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_affinity_match_key) == 8, "xlb_affinity_match_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_src_range_key) == 28, "xlb_src_range_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_reply) == 32, "xlb_reply layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_half_key) == 20, "xlb_half_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_half_open) == 56, "xlb_half_open layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_snat) == 48, "xlb_snat layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_peer_key) == 20, "xlb_peer_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_peer) == 4, "xlb_peer layout");
XLB_STATIC_ASSERT(XLB_REASON_MAX <= XLB_REASON_SLOTS, "xlb_reasons_v4 has a slot per reason");
XLB_STATIC_ASSERT(sizeof(struct xlb_sock_rev_key) == 32, "xlb_sock_rev_key layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_sock_rev) == 24, "xlb_sock_rev layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_sock_node) == 20, "xlb_sock_node layout");
XLB_STATIC_ASSERT(sizeof(struct xlb_sock_config) == 8, "xlb_sock_config layout");

#endif /* XLB_ABI_H */
