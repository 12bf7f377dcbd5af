/* SPDX-License-Identifier: MIT */
/* Per-probe counters (pyusdt_probe_stats in the `stats` map). */
#ifndef PYUSDT_USDT_STATS_BPF_H
#define PYUSDT_USDT_STATS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"

/* COUNTER_hits, COUNTER_lost_ringbuf, ...: each counter's index in the
 * struct, which is nothing but those u64s in that order. */
enum counter {
#define PYUSDT_X(field) COUNTER_##field,
	PYUSDT_PROBE_STATS(PYUSDT_X)
#undef PYUSDT_X
	COUNTERS
};
_Static_assert(sizeof(struct pyusdt_probe_stats) == COUNTERS * sizeof(__u64),
	       "pyusdt_probe_stats is its counters, in order");

static __always_inline void count(__u32 probe_id, enum counter which, int sleepable)
{
	struct pyusdt_probe_stats *s = bpf_map_lookup_elem(&stats, &probe_id);
	if (!s)
		return;
	__u64 *c = (__u64 *)s + which;
	/* A sleepable program can be preempted by another on this CPU: add
	 * atomically there; the plain program runs to completion. */
	if (sleepable)
		__sync_fetch_and_add(c, 1);
	else
		*c += 1;
}

#endif
