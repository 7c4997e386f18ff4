/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Benchmark-only wrapper. BPF_PROG_TEST_RUN with `repeat` runs a program on
 * the same buffer again and again, so after the first repetition rewrites the
 * packet (DNAT) every later one would see the rewritten packet. This program
 * restores the original frame from a template, optionally stamps a new source
 * address so that every repetition is a new flow, and tail-calls the program
 * under test (xlb_xdp, or the floor program to measure the wrapper itself).
 * The kernel keeps one xdp_buff across repetitions, so a repetition that moved
 * the frame's start (encapsulation grows it at the front, decapsulation shrinks
 * it) leaves the next one a frame of another length: the wrapper moves the
 * start back first. That costs only in those scenarios, and is counted there as
 * xlb's time (the floor never moves it), so their figures err high, not low.
 * Never attached to an interface.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XLB_BENCH_FRAME 160 /* every benchmark frame is exactly this long */

struct xlb_bench_tmpl {
	__u8 frame[XLB_BENCH_FRAME] __attribute__((aligned(8)));
	__u32 stamp_off; /* offset of a 4-byte field to overwrite per repetition; 0 = none */
	__u32 counter;   /* per-CPU repetition counter for the stamp */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xlb_bench_tmpl);
} xlb_bench_tmpl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} xlb_bench_target SEC(".maps");

SEC("xdp")
int xlb_bench(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xlb_bench_tmpl *t;
	__u32 zero = 0, off;
	long moved = (long)(data_end - data) - XLB_BENCH_FRAME;

	if (moved) {
		if (bpf_xdp_adjust_head(ctx, (int)moved))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
	}
	if (data + XLB_BENCH_FRAME > data_end)
		return XDP_ABORTED;
	t = bpf_map_lookup_elem(&xlb_bench_tmpl, &zero);
	if (!t)
		return XDP_ABORTED;
	/* word copies: a plain memcpy of unknown alignment is byte by byte */
#pragma unroll
	for (int i = 0; i < XLB_BENCH_FRAME / 8; i++)
		((__u64 *)data)[i] = ((__u64 *)t->frame)[i];
	off = t->stamp_off;
	if (off && off <= XLB_BENCH_FRAME - 4) {
		void *stamp = data + off;

		if (stamp + 4 > data_end)
			return XDP_ABORTED;
		t->counter++;
		*(__u32 *)stamp = t->counter;
	}
	bpf_tail_call(ctx, &xlb_bench_target, 0);
	return XDP_ABORTED;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
