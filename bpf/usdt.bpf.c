// SPDX-License-Identifier: MIT
/*
 * The generic USDT programs.  They never change per trace: each uprobe link
 * carries a BPF cookie, the index of its site in the `sites` map, and the site
 * says where each argument lives (register, memory, constant), its width and
 * sign, whether it is a string, and for aggregating sites what to aggregate.
 * Streaming sites send each hit to the `events` ring buffer; aggregating
 * sites update the `agg_*` maps.  Every drop is counted.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "usdt_maps.bpf.h"
#include "usdt_stream.bpf.h"
#include "usdt_aggregate.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Sites without string arguments: never sleeps, cheapest path. */
SEC("uprobe")
int pyusdt_stream(struct pt_regs *ctx)
{
	return stream_hit(ctx, 0);
}

/* Aggregating sites: no record leaves the kernel. */
SEC("uprobe")
int pyusdt_aggregate(struct pt_regs *ctx)
{
	return aggregate_hit(ctx, 0);
}

/* Aggregating sites keyed by a string, where the kernel allows sleepable uprobes. */
SEC("uprobe.s")
int pyusdt_aggregate_sleepable(struct pt_regs *ctx)
{
	return aggregate_hit(ctx, 1);
}

/* Sites with string arguments, where the kernel allows sleepable uprobes. */
SEC("uprobe.s")
int pyusdt_stream_sleepable(struct pt_regs *ctx)
{
	return stream_hit(ctx, 1);
}
