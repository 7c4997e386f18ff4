/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What xlb-perf's BPF programs (xlb_perf.bpf.c) and its runner share: the
 * generator's template, the ceiling's next hop, the sink's arrival kinds.
 * Compiled by clang -target bpf and by g++.
 */
#ifndef XLB_BENCH_PERF_ABI_H
#define XLB_BENCH_PERF_ABI_H

#include <linux/types.h>

/* 64-byte frames on the wire: 60 bytes of frame, the FCS the kernel never sees. */
#define PERF_FRAME_MIN 60

/*
 * Bytes of the template the generator writes into every frame: a minimum-size frame whole,
 * and in the decapsulation mode the outer headers (50 bytes) in front of it.
 */
#define PERF_TEMPLATE 112

/* The service every mode serves: UDP to SERVICE_PORT, backends listen on BACKEND_PORT. */
#define PERF_SERVICE_PORT 80
#define PERF_BACKEND_PORT 8080
#define PERF_VXLAN_PORT 4789

/*
 * Flow i of a run leaves from 198.19.(i >> 23).(i >> 15 & 0xff) (the template's
 * source address with its low 16 bits replaced) and port SPORT_BASE + (i & 0x7fff).
 */
#define PERF_PORT_BITS 15
#define PERF_SPORT_BASE 1024

struct perf_gen_config {
	/* Ethernet, [outer IPv4, UDP, VXLAN, inner Ethernet,] IPv4 (source .0.0), UDP (checksum 0) */
	__u8 frame[PERF_TEMPLATE];
	__u16 ip_off;          /* the IPv4 header whose source is stamped (the inner one in VXLAN) */
	__u16 l4_off;          /* its UDP header */
	__be16 ip_check;       /* that header's checksum in the template */
	__u16 pad;
	__u32 flows; /* distinct flows the generator cycles through; 0: a new flow every frame */
	__u32 ncpu;  /* generator CPUs: CPU c sends flows c, c + ncpu, ... */
};

enum perf_arrival {
	PERF_ARRIVAL_UNTOUCHED = 0, /* UDP still to the service port: routed or forwarded */
	PERF_ARRIVAL_DNAT,          /* UDP to the backend port: DNATed to a backend */
	PERF_ARRIVAL_VXLAN,         /* UDP to the VXLAN port: encapsulated toward a remote node */
	PERF_ARRIVAL_OTHER,         /* any other UDP */
	PERF_ARRIVAL_MAX
};

struct perf_fwd_config {
	__u32 ifindex; /* where the ceiling redirects to; 0: pass */
	__u8 src_mac[6];
	__u8 dst_mac[6];
};

#endif /* XLB_BENCH_PERF_ABI_H */
