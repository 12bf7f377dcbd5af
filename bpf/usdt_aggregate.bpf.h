/* SPDX-License-Identifier: MIT */
/*
 * In-kernel aggregation: counts, sums, min/max, log2 and linear histograms,
 * optionally keyed, with filters, and latency between a start and a done
 * probe.  What to do is the site's pyusdt_agg_spec: data, not code.
 */
#ifndef PYUSDT_USDT_AGGREGATE_BPF_H
#define PYUSDT_USDT_AGGREGATE_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"
#include "usdt_stats.bpf.h"
#include "usdt_filter.bpf.h"
#include "usdt_args.bpf.h"
#include "usdt_site.bpf.h"
#include "usdt_str.bpf.h"
#include "usdt_expr.bpf.h"

/*
 * A sleepable program (string keys, which may need a page faulted in) can be
 * preempted by another task on its CPU between a load and a store of the same
 * per-CPU slot, so there every update is atomic; the plain program runs to
 * completion and uses plain adds.
 */
#define BUMP(field, sleepable)                                  \
	do {                                                    \
		if (sleepable)                                  \
			__sync_fetch_and_add(&(field), 1);      \
		else                                            \
			(field)++;                              \
	} while (0)

/* bpftrace's hist() buckets: (..., 0), [0], [1], [2, 4), [4, 8), ...: the
 * last is 2 + 63, so PYUSDT_LOG2_BUCKETS of them in all. */
_Static_assert(PYUSDT_LOG2_BUCKETS == 2 + 64, "log2_bucket returns 0 .. 2 + 63");
static __always_inline __u32 log2_bucket(__s64 v)
{
	if (v < 0)
		return 0;
	if (v == 0)
		return 1;
	__u64 n = v;
	__u32 r = 0;
	if (n >> 32) { n >>= 32; r += 32; }
	if (n >> 16) { n >>= 16; r += 16; }
	if (n >> 8) { n >>= 8; r += 8; }
	if (n >> 4) { n >>= 4; r += 4; }
	if (n >> 2) { n >>= 2; r += 2; }
	if (n >> 1) { r += 1; }
	return 2 + r;
}

/* bpftrace's lhist() buckets: (..., min), [min, min+step), ..., [max, ...) */
static __always_inline __u32 linear_bucket(__s64 v, const struct pyusdt_agg_spec *s)
{
	if (v < s->lmin)
		return 0;
	if (v >= s->lmax || s->step <= 0)
		return s->lbuckets + 1;
	__u64 idx = (__u64)(v - s->lmin) / (__u64)s->step;
	return idx >= s->lbuckets ? s->lbuckets + 1 : 1 + (__u32)idx;
}

static __always_inline int compare(__u64 a, __s64 b, __u8 op, int is_signed)
{
	if (is_signed) {
		__s64 x = (__s64)a;
		switch (op) {
		case PYUSDT_CMP_EQ: return x == b;
		case PYUSDT_CMP_NE: return x != b;
		case PYUSDT_CMP_LT: return x < b;
		case PYUSDT_CMP_LE: return x <= b;
		case PYUSDT_CMP_GT: return x > b;
		case PYUSDT_CMP_GE: return x >= b;
		}
		return 1;
	}
	__u64 y = (__u64)b;
	switch (op) {
	case PYUSDT_CMP_EQ: return a == y;
	case PYUSDT_CMP_NE: return a != y;
	case PYUSDT_CMP_LT: return a < y;
	case PYUSDT_CMP_LE: return a <= y;
	case PYUSDT_CMP_GT: return a > y;
	case PYUSDT_CMP_GE: return a >= y;
	}
	return 1;
}

/* Argument `i` of the site as a 64-bit value; -1 when it cannot be read. */
static __always_inline int site_arg(struct pt_regs *ctx, const struct pyusdt_site *site,
				    __u8 i, __u64 *out)
{
	if (i >= PYUSDT_MAX_ARGS || i >= site->nargs)
		return -1;
	return read_arg(ctx, &site->args[i], site->site_vaddr, out);
}

/* Rounds toward zero like C: the divisor only changes units. */
static __always_inline __s64 scale(__s64 v, __u64 divisor)
{
	if (divisor <= 1)
		return v;
	return v < 0 ? -(__s64)((__u64)(-v) / divisor) : (__s64)((__u64)v / divisor);
}

/* Adds one value to the row at `key` of `map` (a per-CPU hash). */
static __always_inline void update_min(__s64 *slot, __s64 v, int sleepable)
{
	if (!sleepable) {
		if (v < *slot)
			*slot = v;
		return;
	}
	for (int i = 0; i < 4; i++) {
		__s64 cur = *slot;
		if (v >= cur || __sync_val_compare_and_swap(slot, cur, v) == cur)
			return;
	}
}

static __always_inline void update_max(__s64 *slot, __s64 v, int sleepable)
{
	if (!sleepable) {
		if (v > *slot)
			*slot = v;
		return;
	}
	for (int i = 0; i < 4; i++) {
		__s64 cur = *slot;
		if (v <= cur || __sync_val_compare_and_swap(slot, cur, v) == cur)
			return;
	}
}

static __always_inline void update_row(struct pyusdt_agg_value *row, __s64 v, int stats,
				       int sleepable)
{
	if (row->count == 0) {
		row->min = v;
		row->max = v;
	}
	BUMP(row->count, sleepable);
	if (stats) {
		if (sleepable)
			__sync_fetch_and_add(&row->sum, v);
		else
			row->sum += v;
		update_min(&row->min, v, sleepable);
		update_max(&row->max, v, sleepable);
	}
}

static __always_inline void add_row(void *map, void *key, __s64 v, int stats,
				    struct pyusdt_agg_counters *c, int sleepable)
{
	struct pyusdt_agg_value *row = bpf_map_lookup_elem(map, key);
	if (!row) {
		struct pyusdt_agg_value init = {.count = 1, .sum = v, .min = v, .max = v};
		if (bpf_map_update_elem(map, key, &init, BPF_NOEXIST) == 0)
			return;
		/* Another CPU inserted the key first (our slot is zero), or the map is full. */
		row = bpf_map_lookup_elem(map, key);
		if (!row) {
			BUMP(c->map_full, sleepable);
			return;
		}
	}
	update_row(row, v, stats, sleepable);
}

/* Adds one value to row `idx` of agg_flat. */
static __always_inline void add_flat(__u32 idx, __s64 v, int stats, int sleepable)
{
	struct pyusdt_agg_value *row = bpf_map_lookup_elem(&agg_flat, &idx);
	if (row)
		update_row(row, v, stats, sleepable);
}

/* A hit's key: an integer, or a string.  A latency start stores it in its
 * pyusdt_start_value from `key` on (the done reads it back whole), and the
 * string goes into a row's pyusdt_agg_str_key: the layouts must agree. */
struct agg_key_buf {
	__u64 ikey;
	char skey[PYUSDT_STR_KEY_LEN];
};
_Static_assert(sizeof(struct agg_key_buf) ==
	       sizeof(struct pyusdt_start_value) - __builtin_offsetof(struct pyusdt_start_value, key),
	       "agg_key_buf is the tail of pyusdt_start_value from key");
_Static_assert(__builtin_offsetof(struct agg_key_buf, skey) ==
	       __builtin_offsetof(struct pyusdt_start_value, str_key) - __builtin_offsetof(struct pyusdt_start_value, key),
	       "agg_key_buf.skey is pyusdt_start_value.str_key");
_Static_assert(sizeof(((struct agg_key_buf *)0)->ikey) == sizeof(((struct pyusdt_start_value *)0)->key),
	       "agg_key_buf.ikey is pyusdt_start_value.key");
_Static_assert(sizeof(((struct agg_key_buf *)0)->skey) == sizeof(((struct pyusdt_agg_str_key *)0)->key),
	       "agg_key_buf.skey is a row's string key");
_Static_assert(sizeof(((struct agg_key_buf *)0)->ikey) == sizeof(((struct pyusdt_agg_key *)0)->key),
	       "agg_key_buf.ikey is a row's integer key");

static __always_inline int key_is_string(__u8 kind)
{
	return kind == PYUSDT_KEY_STR || kind == PYUSDT_KEY_COMM;
}

/* The aggregation key of this hit; -1 when its argument cannot be read. */
static __always_inline int make_key(struct pt_regs *ctx, const struct pyusdt_site *site,
				    __u64 id, struct agg_key_buf *k, int sleepable)
{
	const struct pyusdt_agg_spec *s = &site->agg;
	__u64 ptr = 0;

	switch (s->key_kind) {
	case PYUSDT_KEY_ARG:
		return site_arg(ctx, site, s->key_arg, &k->ikey);
	case PYUSDT_KEY_STR:
		if (site_arg(ctx, site, s->key_arg, &ptr))
			return -1;
		if (read_user_str(k->skey, sizeof(k->skey), (const void *)ptr, sleepable) < 0) {
			k->skey[0] = 0;
			return -1;
		}
		return 0;
	case PYUSDT_KEY_PID:
		k->ikey = id >> 32;
		return 0;
	case PYUSDT_KEY_TID:
		k->ikey = (__u32)id;
		return 0;
	case PYUSDT_KEY_COMM:
		bpf_get_current_comm(k->skey, 16);
		return 0;
	case PYUSDT_KEY_PROBE:
		k->ikey = site->probe_id;
		return 0;
	}
	return 0;
}

/* Histogram bucket and/or stats row for one value under one key.  A bucket
 * row keeps the sum, min and max of its own values too (the row is at hand,
 * so it costs a few instructions): the histogram's extremes and percentiles
 * then rest on values observed, not on bucket edges. */
static __always_inline void record(const struct pyusdt_agg_spec *s, struct agg_key_buf *k,
				   int string_key, __s64 value, struct pyusdt_agg_counters *c,
				   int sleepable)
{
	__s64 v = scale(value, s->divisor);
	__u32 bucket = s->hist_kind == PYUSDT_HIST_LOG2 ? log2_bucket(v) : linear_bucket(v, s);

	if (s->flat) {
		__u32 base = s->agg_id * PYUSDT_FLAT_ROWS;
		if (s->hist_kind == PYUSDT_HIST_LOG2 && bucket < PYUSDT_LOG2_BUCKETS)
			add_flat(base + bucket, v, 1, sleepable);
		if (s->keep_stats)
			add_flat(base + PYUSDT_LOG2_BUCKETS, v, 1, sleepable);
		return;
	}
	if (string_key) {
		struct pyusdt_agg_str_key sk = {.agg_id = s->agg_id};
		__builtin_memcpy(sk.key, k->skey, sizeof(sk.key));
		if (s->hist_kind) {
			sk.bucket = bucket;
			add_row(&agg_str, &sk, v, 1, c, sleepable);
		}
		if (s->keep_stats) {
			sk.bucket = PYUSDT_STATS_ROW;
			add_row(&agg_str, &sk, v, 1, c, sleepable);
		}
		return;
	}
	struct pyusdt_agg_key ik = {.agg_id = s->agg_id, .key = k->ikey};
	if (s->hist_kind) {
		ik.bucket = bucket;
		add_row(&agg_int, &ik, v, 1, c, sleepable);
	}
	if (s->keep_stats) {
		ik.bucket = PYUSDT_STATS_ROW;
		add_row(&agg_int, &ik, v, 1, c, sleepable);
	}
}

/* Histogram bucket and/or stats row for one value under a key of expressions. */
static __always_inline void record_tuple(const struct pyusdt_agg_spec *s, struct pyusdt_agg_tuple_key *tk,
					 __s64 value, struct pyusdt_agg_counters *c, int sleepable)
{
	__s64 v = scale(value, s->divisor);
	tk->agg_id = s->agg_id;
	/* A short key is the first bytes of the packed one: the same pointer. */
	void *map = s->key_kind == PYUSDT_KEY_TUPLE_SMALL ? (void *)&agg_tuple_small : (void *)&agg_tuple;
	if (s->hist_kind) {
		tk->bucket = s->hist_kind == PYUSDT_HIST_LOG2 ? log2_bucket(v) : linear_bucket(v, s);
		add_row(map, tk, v, 1, c, sleepable);
	}
	if (s->keep_stats) {
		tk->bucket = PYUSDT_STATS_ROW;
		add_row(map, tk, v, 1, c, sleepable);
	}
}

/*
 * An aggregating site with expressions: a predicate (at a latency's start,
 * it chooses the requests timed), and an output program writing the value
 * and the packed key.  As in bpftrace, a read that fails gives 0 and the hit
 * still counts; it is counted in read_fail.  A latency start keeps no key
 * here: expression keys are computed at the done.
 */
static __always_inline int aggregate_expr_hit(struct pt_regs *ctx, const struct pyusdt_site *site,
					      __u32 site_idx, __u64 id, struct pyusdt_agg_counters *c,
					      int sleepable)
{
	const struct pyusdt_agg_spec *s = &site->agg;
	struct pyusdt_expr_scratch *x = claim_scratch();
	if (!x) {
		count(site->probe_id, COUNTER_busy, sleepable);
		return 0;
	}
	if (site->pred_prog) {
		int failed = run_program(ctx, site_idx, site->pred_prog, sleepable);
		if (x->fail_mask)
			BUMP(c->read_fail, sleepable);
		if (failed || !x->result) {
			BUMP(c->filtered, sleepable);
			goto out;
		}
	}
	BUMP(c->hits, sleepable);
	__s64 value = 0;
	if (s->role == PYUSDT_ROLE_START || s->role == PYUSDT_ROLE_DONE) {
		struct pyusdt_start_key sk = {.agg_id = s->agg_id};
		if (s->pair_arg == PYUSDT_NO_ARG)
			sk.pair = (__u32)id;
		else if (site_arg(ctx, site, s->pair_arg, &sk.pair)) {
			BUMP(c->read_fail, sleepable);
			goto out;
		}
		if (s->role == PYUSDT_ROLE_START) {
			struct pyusdt_start_value sv = {};
			sv.ts_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&starts, &sk, &sv, BPF_ANY);
			BUMP(c->starts, sleepable);
			goto out;
		}
		__u64 now = bpf_ktime_get_ns();
		struct pyusdt_start_value *sv = bpf_map_lookup_elem(&starts, &sk);
		if (!sv) {
			BUMP(c->unmatched, sleepable);
			goto out;
		}
		value = now - sv->ts_ns;
		bpf_map_delete_elem(&starts, &sk);
		BUMP(c->matched, sleepable);
	}
	__builtin_memset(&x->agg, 0, sizeof(x->agg));
	if (site->out_prog) {
		run_program(ctx, site_idx, site->out_prog, sleepable);
		if (x->fail_mask)
			BUMP(c->read_fail, sleepable);
	}
	if (s->role == PYUSDT_ROLE_AGG)
		value = x->agg.value;
	record_tuple(s, &x->agg.tuple, value, c, sleepable);
out:
	x->busy = 0;
	return 0;
}

static __always_inline int aggregate_hit(struct pt_regs *ctx, int sleepable)
{
	__u32 site_idx;
	struct pyusdt_site *site = site_of_hit(ctx, PYUSDT_PROG_AGGREGATE, &site_idx);
	if (!site)
		return 0;
	const struct pyusdt_agg_spec *s = &site->agg;
	/* Helper calls cost tens of ns here: ask for the ids only when used. */
	__u64 id = 0;
	if (site->filter || s->filter_pid || s->role != PYUSDT_ROLE_AGG ||
	    s->key_kind == PYUSDT_KEY_PID || s->key_kind == PYUSDT_KEY_TID ||
	    (cfg.expressions && (site->pred_prog || site->out_prog)))
		id = bpf_get_current_pid_tgid();
	if (site->filter && !process_traced(site, id >> 32))
		return 0;
	count(site->probe_id, COUNTER_hits, sleepable);

	__u32 agg_id = s->agg_id;
	struct pyusdt_agg_counters *c = bpf_map_lookup_elem(&agg_counters, &agg_id);
	if (!c)
		return 0;
	if (s->filter_pid && (__u32)(id >> 32) != s->filter_pid) {
		BUMP(c->filtered, sleepable);
		return 0;
	}
	/* A load-time constant: without expressions this branch is removed. */
	if (cfg.expressions && (site->pred_prog || site->out_prog))
		return aggregate_expr_hit(ctx, site, site_idx, id, c, sleepable);
	if (s->filter_op != PYUSDT_CMP_NONE) {
		__u64 a = 0;
		__u8 fi = s->filter_arg;
		if (fi >= PYUSDT_MAX_ARGS || site_arg(ctx, site, fi, &a)) {
			BUMP(c->read_fail, sleepable);
			return 0;
		}
		if (!compare(a, s->filter_value, s->filter_op, site->args[fi].is_signed)) {
			BUMP(c->filtered, sleepable);
			return 0;
		}
	}
	BUMP(c->hits, sleepable);

	/* Only a string key needs the whole buffer zeroed (it is the map key). */
	int string_key = key_is_string(s->key_kind);
	struct agg_key_buf k;
	k.ikey = 0;
	if (string_key)
		__builtin_memset(k.skey, 0, sizeof(k.skey));
	__u64 value = 0;
	if (s->role == PYUSDT_ROLE_START || s->role == PYUSDT_ROLE_DONE) {
		struct pyusdt_start_key sk = {.agg_id = agg_id};
		if (s->pair_arg == PYUSDT_NO_ARG)
			sk.pair = (__u32)id;
		else if (site_arg(ctx, site, s->pair_arg, &sk.pair)) {
			BUMP(c->read_fail, sleepable);
			return 0;
		}
		if (s->role == PYUSDT_ROLE_START) {
			struct pyusdt_start_value sv = {};
			if (make_key(ctx, site, id, (struct agg_key_buf *)&sv.key, sleepable))
				BUMP(c->read_fail, sleepable);
			sv.ts_ns = bpf_ktime_get_ns();
			bpf_map_update_elem(&starts, &sk, &sv, BPF_ANY);
			BUMP(c->starts, sleepable);
			return 0;
		}
		__u64 now = bpf_ktime_get_ns();
		struct pyusdt_start_value *sv = bpf_map_lookup_elem(&starts, &sk);
		if (!sv) {
			BUMP(c->unmatched, sleepable);
			return 0;
		}
		value = now - sv->ts_ns;
		if (s->key_from_start)
			__builtin_memcpy(&k, &sv->key, sizeof(k));
		bpf_map_delete_elem(&starts, &sk);
		BUMP(c->matched, sleepable);
		if (!s->key_from_start && make_key(ctx, site, id, &k, sleepable))
			BUMP(c->read_fail, sleepable);
	} else {
		if (s->value_arg != PYUSDT_NO_ARG && site_arg(ctx, site, s->value_arg, &value)) {
			BUMP(c->read_fail, sleepable);
			return 0;
		}
		if (make_key(ctx, site, id, &k, sleepable))
			BUMP(c->read_fail, sleepable);
	}
	record(s, &k, string_key, (__s64)value, c, sleepable);
	return 0;
}

#endif
