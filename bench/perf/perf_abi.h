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
	__u8 frame[PERF_FRAME_MIN]; /* Ethernet, IPv4 (source .0.0), UDP (checksum 0), payload */
	__be16 frame_ip_check;      /* the template's IPv4 header checksum */
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
