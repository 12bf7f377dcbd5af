/* SPDX-License-Identifier: MIT */
/* Per-probe counters (pyusdt_probe_stats in the `stats` map). */
#ifndef PYUSDT_USDT_STATS_BPF_H
#define PYUSDT_USDT_STATS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"

enum counter { HITS, LOST_RINGBUF, STR_FAIL, ARG_FAIL };

static __always_inline void count(__u32 probe_id, enum counter which, int sleepable)
{
	struct pyusdt_probe_stats *s = bpf_map_lookup_elem(&stats, &probe_id);
	if (!s)
		return;
	__u64 *c = which == HITS ? &s->hits : which == LOST_RINGBUF ? &s->lost_ringbuf
		 : which == STR_FAIL ? &s->str_fail : &s->arg_fail;
	/* A sleepable program can be preempted by another on this CPU: add
	 * atomically there; the plain program runs to completion. */
	if (sleepable)
		__sync_fetch_and_add(c, 1);
	else
		*c += 1;
}

#endif
