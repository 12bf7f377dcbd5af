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
#include <bpf/bpf_core_read.h>
#include <asm/ptrace.h> /* the x86-64 user register layout a uprobe's context has */
#include "pyusdt_abi.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/* Only the fields the pid filter reads; CO-RE relocates them on any kernel. */
struct task_struct {
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

/* Written by the loader before load; the verifier sees them as constants. */
const volatile struct pyusdt_config cfg = {
	.str_len = PYUSDT_DEFAULT_STR_LEN,
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* resized to the number of sites before load */
	__type(key, __u32);
	__type(value, struct pyusdt_site);
} sites SEC(".maps");

/* Kernels without BPF cookies: (file, offset, program) -> site index.
 * Resized to the number of sites before load there, left at 1 elsewhere. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, struct pyusdt_site_addr);
	__type(value, __u32);
} site_by_addr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* resized to the number of probes before load */
	__type(key, __u32);
	__type(value, struct pyusdt_probe_stats);
} stats SEC(".maps");

/* The hash maps below are not preallocated: memory follows the processes and
 * keys actually seen, not their limits (10240 per-CPU rows preallocated cost
 * megabytes of locked memory per trace, most of it never used).  Only the
 * first hit of a new key pays the allocation; the limits still hold, and a
 * full map is counted as before.  Kernels before 6.1 warn (with a call trace)
 * about run-time allocation in tracing programs, and before 6.1 a sleepable
 * program may use preallocated maps only: there the loader preallocates. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PYUSDT_MAX_TGIDS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, __u8);
} tgids SEC(".maps");

/* Aggregation rows keyed by nothing or an integer (resized before load). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pyusdt_agg_key);
	__type(value, struct pyusdt_agg_value);
} agg_int SEC(".maps");

/* Unkeyed aggregations, PYUSDT_FLAT_ROWS rows each (resized before load). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pyusdt_agg_value);
} agg_flat SEC(".maps");

/* Aggregation rows keyed by a string (resized before load). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pyusdt_agg_str_key);
	__type(value, struct pyusdt_agg_value);
} agg_str SEC(".maps");

/* Latency starts waiting for their done; LRU bounds the ones never done. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1);
	__type(key, struct pyusdt_start_key);
	__type(value, struct pyusdt_start_value);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PYUSDT_MAX_AGGS);
	__type(key, __u32);
	__type(value, struct pyusdt_agg_counters);
} agg_counters SEC(".maps");

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

#include "usdt_filter.bpf.h"
#include "usdt_args.bpf.h"
#include "usdt_site.bpf.h"
#include "usdt_str.bpf.h"
#include "usdt_stream.bpf.h"
#include "usdt_aggregate.bpf.h"

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
