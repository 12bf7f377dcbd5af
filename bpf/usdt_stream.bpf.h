/* SPDX-License-Identifier: MIT */
/* Streaming: each hit becomes one pyusdt_event in the `events` ring buffer. */
#ifndef PYUSDT_USDT_STREAM_BPF_H
#define PYUSDT_USDT_STREAM_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"
#include "usdt_stats.bpf.h"
#include "usdt_filter.bpf.h"
#include "usdt_args.bpf.h"
#include "usdt_site.bpf.h"
#include "arch_x86_64.bpf.h"
#include "usdt_str.bpf.h"
#include "usdt_expr.bpf.h"

/*
 * A hold site (the dynamic linker's notification point, under -c) stops
 * the process that hit it until the reader has attached the probes of the
 * objects it just loaded, so that no event they fire is missed.  Only the
 * plain record path holds: a hold site has no string arguments.
 */

/*
 * Wake the reader when wakeup_bytes are pending, once per stretch of its
 * reading: above the mark a record wakes it only if the reader has consumed
 * something since the last such wake-up (the consumer position moved), so
 * a reader that is asleep is always woken, and one that is already reading
 * is not interrupted again.  (Waking only the record that crosses the mark
 * misses the crossing whenever another CPU reserves between this record's
 * reserve and submit: the reader then slept until its own timeout while the
 * ring filled.)  A forced wake-up is an interrupt: one per record would slow
 * the traced program whenever the reader lags.
 * Below the mark a record also wakes the reader when the last wake-up is
 * older than wakeup_interval_ns: the first event after a quiet spell is seen
 * at once, and a trickle costs at most one wake-up per interval.
 */
static __always_inline __u64 wakeup_flag(__u64 now_ns)
{
	if (!cfg.wakeup_bytes)
		return 0;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= cfg.wakeup_bytes) {
		__u64 cons = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
		if (cons + 1 == woken_at_cons_plus1)
			return BPF_RB_NO_WAKEUP;
		woken_at_cons_plus1 = cons + 1;
	} else if (!cfg.wakeup_interval_ns || now_ns - last_wakeup_ns < cfg.wakeup_interval_ns) {
		return BPF_RB_NO_WAKEUP;
	}
	last_wakeup_ns = now_ns;
	return BPF_RB_FORCE_WAKEUP;
}

/* Fills the fixed part of the record and its first `slots` argument slots
 * (the record may be no longer than that). */
static __always_inline void fill_event(struct pt_regs *ctx, const struct pyusdt_site *site,
				       struct pyusdt_event *e, __u64 id, int sleepable, const __u32 slots)
{
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->probe_id = site->probe_id;
	e->flags = 0;
	e->nstrings = 0;
	e->_pad = 0;
	for (int i = 0; i < PYUSDT_MAX_ARGS; i++) {
		if (i >= slots)
			break;
		if (i >= site->nargs) {
			e->args[i] = 0;
			continue;
		}
		if (read_arg(ctx, &site->args[i], site->site_vaddr, &e->args[i])) {
			e->flags |= 1u << (PYUSDT_FLAG_READ_FAIL_SHIFT + i);
			count(site->probe_id, COUNTER_arg_fail, sleepable);
		}
	}
}

/* A string the plain read could not fault in, in a mapping of a file that
 * is not writable: its slot says where in the file it is (see
 * pyusdt_str_file).  Only where the vma tree can be walked (before 6.1). */
static __always_inline void note_string_file(__u8 *dst, __u32 len, __u64 addr)
{
	if (!PYUSDT_HAS_VMA_RBTREE || len < sizeof(struct pyusdt_str_file))
		return;
	struct vm_area_struct___pyusdt *vma = vma_of(addr);
	if (!vma || (BPF_CORE_READ(vma, vm_flags) & PYUSDT_VM_WRITE))
		return;
	struct pyusdt_str_file ref = {.magic = PYUSDT_STR_FILE_MAGIC};
	if (file_of(vma, addr, &ref.dev, &ref.ino, &ref.offset))
		return;
	__builtin_memcpy(dst, &ref, sizeof(ref));
}

/* Reads the string arguments, among the record's first `args` arguments,
 * into the string slots at `slots`. */
static __always_inline void fill_strings(const struct pyusdt_site *site, struct pyusdt_event *e,
					 const __u32 args, __u8 *slots, int sleepable)
{
	__u32 len = cfg.str_len;
	/* The last slot's start: a load-time constant the verifier knows, so
	 * that every slot is provably inside the record on every kernel (6.2
	 * and older cannot bound slot * len by themselves). */
	__u64 last_slot = (__u64)(cfg.string_slots ? cfg.string_slots - 1 : 0) * len;

	for (int i = 0; i < PYUSDT_MAX_ARGS; i++) {
		if (i >= args || i >= site->nargs)
			break;
		const struct pyusdt_arg_spec *a = &site->args[i];
		if (!a->is_string)
			continue;
		__u32 slot = a->str_slot;
		if (slot >= cfg.string_slots)
			continue;
		__u64 off = (__u64)slot * len;
		asm volatile("" : "+r"(off)); /* bound this very register, not a copy */
		if (off > last_slot)
			continue;
		__u8 *dst = slots + off;
		const char *src = (const char *)e->args[i];
		long n = read_user_str(dst, len, src, sleepable);
		if (n < 0) {
			dst[0] = 0;
			if (!sleepable)
				note_string_file(dst, len, (__u64)src);
			e->flags |= 1u << (PYUSDT_FLAG_READ_FAIL_SHIFT + i);
			count(site->probe_id, COUNTER_str_fail, sleepable);
			continue;
		}
		/* A full slot is only a truncation if the source goes on (its
		 * pages are present now, if the read above faulted them in). */
		if (n == len) {
			char next = 0;
			bpf_probe_read_user(&next, 1, src + len - 1);
			if (next)
				e->flags |= 1u << (PYUSDT_FLAG_STR_TRUNC_SHIFT + i);
		}
	}
	e->nstrings = site->nstrings;
}

/*
 * A record of a site without expressions is only as long as its arguments:
 * the fixed part and `slots` argument slots, 3 for a site with at most 3
 * arguments and 12 otherwise (64 bytes in the ring for 3 arguments instead
 * of 136), so the ring holds twice as many and each hit writes half the
 * bytes.  A site with strings (`strings`, a constant) then has the
 * session's string slots, always the record's last string_slots * str_len
 * bytes (192 bytes in the ring with 2 slots of 64, not 264).  The reader
 * puts the left-out slots back (Session::expand).  The ring buffer's
 * reserve needs a size the verifier knows, hence a few fixed sizes rather
 * than any.
 */
static __always_inline int send_record(struct pt_regs *ctx, const struct pyusdt_site *site, __u64 id,
				       int sleepable, const __u32 slots, const int strings)
{
	__u64 head = offsetof(struct pyusdt_event, args) + slots * sizeof(__u64);
	__u64 size = strings ? head + (__u64)cfg.string_slots * cfg.str_len : head;
	struct pyusdt_event *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		count(site->probe_id, COUNTER_lost_ringbuf, sleepable);
		return 0;
	}
	fill_event(ctx, site, e, id, sleepable, slots);
	if (strings) {
		fill_strings(site, e, slots, (__u8 *)e + head, sleepable);
		bpf_ringbuf_submit(e, wakeup_flag(e->ts_ns));
		return 0;
	}
	if (site->hold)
		/* Before the record can be read: the reader's SIGCONT then
		 * comes after this stop, or cancels it while pending. */
		bpf_send_signal(PYUSDT_SIGSTOP);
	bpf_ringbuf_submit(e, site->hold ? BPF_RB_FORCE_WAKEUP : wakeup_flag(e->ts_ns));
	return 0;
}

/* The record of a hit without expressions, in the size for its site. */
static __always_inline int stream_record(struct pt_regs *ctx, const struct pyusdt_site *site, __u64 id,
					 int sleepable, const int strings)
{
	if (site->nargs <= PYUSDT_SHORT_RECORD_ARGS)
		return send_record(ctx, site, id, sleepable, PYUSDT_SHORT_RECORD_ARGS, strings);
	return send_record(ctx, site, id, sleepable, PYUSDT_MAX_ARGS, strings);
}

/*
 * A site with expressions: its predicate decides before anything is
 * reserved, and its output program writes the record's fields (integers in
 * args[], strings in the slots) in the scratch's record, which is then
 * copied to the ring buffer.  Every record of such a site has the session's
 * string slots: one record size, a load-time constant.
 */
static __always_inline int stream_expr_hit(struct pt_regs *ctx, const struct pyusdt_site *site,
					   __u32 site_idx, __u64 id, int sleepable)
{
	__u32 probe_id = site->probe_id;
	struct pyusdt_expr_scratch *x = claim_scratch();
	if (!x) {
		count(probe_id, COUNTER_busy, sleepable);
		return 0;
	}
	if (site->pred_prog && (run_program(ctx, site_idx, site->pred_prog, sleepable) || !x->result)) {
		count(probe_id, COUNTER_filtered, sleepable);
		goto out;
	}
	__u64 size = sizeof(struct pyusdt_event) + (__u64)cfg.string_slots * cfg.str_len;
	if (size > sizeof(x->rec))
		goto out;
	struct pyusdt_event *e = (struct pyusdt_event *)x->rec;
	for (int i = 0; i < PYUSDT_MAX_ARGS; i++)
		e->args[i] = 0;
	x->fail_mask = x->trunc_mask = x->arg_fails = x->str_fails = 0;
	if (site->out_prog)
		run_program(ctx, site_idx, site->out_prog, sleepable);
	e->ts_ns = bpf_ktime_get_ns();
	e->pid = id >> 32;
	e->tid = (__u32)id;
	e->cpu = bpf_get_smp_processor_id();
	e->probe_id = probe_id;
	e->_pad = 0;
	e->nstrings = cfg.string_slots ? site->nstrings : 0;
	e->flags = (x->fail_mask << PYUSDT_FLAG_READ_FAIL_SHIFT) | (x->trunc_mask << PYUSDT_FLAG_STR_TRUNC_SHIFT);
	if (x->arg_fails)
		count(probe_id, COUNTER_arg_fail, sleepable);
	if (x->str_fails)
		count(probe_id, COUNTER_str_fail, sleepable);
	if (bpf_ringbuf_output(&events, e, size, wakeup_flag(e->ts_ns)))
		count(probe_id, COUNTER_lost_ringbuf, sleepable);
out:
	x->busy = 0;
	return 0;
}

static __always_inline int stream_hit(struct pt_regs *ctx, int sleepable)
{
	__u32 site_idx;
	struct pyusdt_site *site = site_of_hit(ctx, PYUSDT_PROG_STREAM, &site_idx);
	if (!site)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (site->filter && !process_traced(site, id >> 32))
		return 0;
	if (stream_stopped)
		return 0;
	__u32 probe_id = site->probe_id;
	count(probe_id, COUNTER_hits, sleepable);
	/* cfg.expressions is a load-time constant: without expressions the
	 * verifier removes this branch and the plain path is as it was. */
	if (cfg.expressions && (site->pred_prog || site->out_prog))
		return stream_expr_hit(ctx, site, site_idx, id, sleepable);

	/* A session without string slots has no string path at all: the
	 * verifier sees the constant and never walks it (6.1 and older cannot
	 * prune it from the slot checks below, whose constant is on the left). */
	if (!cfg.string_slots || !site->nstrings)
		return stream_record(ctx, site, id, sleepable, 0);
	return stream_record(ctx, site, id, sleepable, 1);
}

#endif
