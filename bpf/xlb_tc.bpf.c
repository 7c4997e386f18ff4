/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * xlb's TC entry, attached (clsact ingress) to the host side of every pod's
 * veth: it sees what pods send. Placeholder until the reply path and
 * east-west balancing land: it passes everything.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "lib/maps.h"

SEC("tc")
int xlb_tc(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
