/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#include "lib/maps.h"

SEC("xdp")
int xlb_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
