/* SPDX-License-Identifier: MIT */
/*
 * Every map and global of the USDT programs, in one place: the loader's
 * skeleton (csrc/session/) sees exactly these, and every other header
 * includes this one for the maps it uses.
 */
#ifndef PYUSDT_USDT_MAPS_BPF_H
#define PYUSDT_USDT_MAPS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"

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

/* The cgroup filter's cgroups, by cgroup v2 id (the directory's inode):
 * the sets (bits) each belongs to. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PYUSDT_MAX_CGROUPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u32);
} cgroups SEC(".maps");

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

/* Expression programs (pyusdt_abi.h), by id; id 0 is never used. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PYUSDT_MAX_EXPR_PROGS);
	__type(key, __u32);
	__type(value, struct pyusdt_expr);
} exprs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pyusdt_expr_scratch);
} expr_scratch SEC(".maps"); /* struct pyusdt_expr_scratch (pyusdt_abi.h) */

/* User stacks (ustack), by the id bpf_get_stackid gives: PYUSDT_USTACK_DEPTH
 * frames each where a session takes stacks, else one entry of one frame
 * (the loader sizes it: a stack map costs the kernel's callchain buffers). */
struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PYUSDT_USTACK_DEPTH * sizeof(__u64));
} ustacks SEC(".maps");

/* Aggregation rows keyed by short keys of expressions (resized before load). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pyusdt_agg_tuple_small_key);
	__type(value, struct pyusdt_agg_value);
} agg_tuple_small SEC(".maps");

/* Aggregation rows keyed by expressions (resized before load). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct pyusdt_agg_tuple_key);
	__type(value, struct pyusdt_agg_value);
} agg_tuple SEC(".maps");

/* When the reader was last woken (any CPU; a race only adds a wake-up). */
__u64 last_wakeup_ns;
/* 1 + the consumer position the reader was last woken at above the mark
 * (0: not yet, so the first record past the mark wakes it; kept in .bss,
 * zeroed, rather than a .data map of its own). */
__u64 woken_at_cons_plus1;

/*
 * Set by the reader when a trace stops (Ctrl-C, its duration): streaming
 * sites then neither count nor send a hit, as if detached, so the reader
 * drains a ring buffer that no longer fills and every hit counted is a
 * record read or a loss counted.  Detaching itself may take a while (one
 * RCU grace period per perf-event link) and comes after the results.
 */
volatile __u32 stream_stopped;

#endif
