// SPDX-License-Identifier: GPL-2.0
/*
 * Bench-only BPF programs: the physical floors a tracer's cost per hit is
 * measured against (bench/floor.py builds and runs them through floor.c).
 *
 *   empty      does nothing: what the uprobe hit alone costs, trap and
 *              program dispatch included.
 *   ring_only  reserves one record of `record_bytes` in a BPF ring buffer,
 *              stores one word and submits it: the ring buffer's own cost per
 *              record, without any of a tracer's work (reading arguments,
 *              site lookups, timestamps).  With `stamp` set it also stores
 *              bpf_ktime_get_ns() in the record's second word: the least a
 *              record that says when its hit happened costs (the clock read
 *              is not free on every machine: an ordered rdtsc behind an
 *              indirect call).
 *   strings    reserves a record of `record_bytes`, reads two string
 *              arguments of the probe into it (bpf_probe_read_user_str, one
 *              slot of `str_len` bytes each after a header of `strings_at`
 *              bytes) and submits it: the least a tracer streaming a probe's
 *              two strings can do per hit.  Each site's attach cookie says
 *              which registers hold the two pointers (their byte offsets in
 *              struct pt_regs, the second in bits 16-31; floor.c sets it).
 *              With `stamp`, the record also says when its hit happened.
 *
 * Plain BPF, no CO-RE: nothing here reads a kernel structure.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "arch_x86_64.bpf.h" /* pyusdt's read_reg: a register by its pt_regs offset */

/* Set by the loader before load.  A read-only global: the verifier reads it
 * as a constant, which bpf_ringbuf_reserve's size argument must be. */
const volatile __u32 record_bytes = 56;
/* strings: where the string slots start in a record, and each slot's size. */
const volatile __u32 strings_at = 56;
const volatile __u32 str_len = 64;
/* ring_only, strings: stamp each record with the time of its hit, as a tracer does. */
const volatile __u32 stamp = 0;

/* Records that found the ring full; the loader prints it so that the bench
 * can check consumed + dropped == fires. */
__u64 dropped = 0;

/* One page unless the loader sets its size (bpf_map__set_max_entries): the
 * empty program's run creates it too. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

SEC("uprobe")
int empty(void *ctx)
{
	return 0;
}

SEC("uprobe")
int ring_only(void *ctx)
{
	__u64 *rec = bpf_ringbuf_reserve(&ring, record_bytes, 0);

	if (!rec) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	/* One word, so that the reader can count what it consumed by summing;
	 * the rest of the record is left as reserved (nothing to compute). */
	*rec = 1;
	if (stamp && record_bytes >= 2 * sizeof(__u64))
		rec[1] = bpf_ktime_get_ns();
	/* No wakeup: the reader polls (see floor.c), the cheapest arrangement
	 * for the producer, so this is a floor. */
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	return 0;
}

SEC("uprobe")
int strings(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u8 *rec = bpf_ringbuf_reserve(&ring, record_bytes, 0);

	if (!rec) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	*(__u64 *)rec = 1;
	if (stamp && record_bytes >= 2 * sizeof(__u64))
		((__u64 *)rec)[1] = bpf_ktime_get_ns();
	if (strings_at + 2 * str_len <= record_bytes && str_len <= 4096) {
		bpf_probe_read_user_str(rec + strings_at, str_len, (const void *)read_reg(ctx, cookie & 0xffff));
		bpf_probe_read_user_str(rec + strings_at + str_len, str_len,
					(const void *)read_reg(ctx, (cookie >> 16) & 0xffff));
	}
	bpf_ringbuf_submit(rec, BPF_RB_NO_WAKEUP);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
