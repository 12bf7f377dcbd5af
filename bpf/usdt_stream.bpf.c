// SPDX-License-Identifier: MIT
/*
 * The one generic USDT program.  It never changes per trace: each uprobe link
 * carries a BPF cookie, the index of its site in the `sites` map, and the site
 * says where each argument lives (register, memory, constant), its width and
 * sign, and whether it is a string.  Each hit becomes one pyusdt_event in the
 * `events` ring buffer; every drop is counted per probe in `stats`.
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

/* Copies a user string and may fault pages in (sleepable programs only). */
extern int bpf_copy_from_user_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
				  __u64 flags) __ksym __weak;

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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1); /* resized to the number of probes before load */
	__type(key, __u32);
	__type(value, struct pyusdt_probe_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PYUSDT_MAX_TGIDS);
	__type(key, __u32);
	__type(value, __u8);
} tgids SEC(".maps");

/* True when this process is traced: in the tgid map, or a descendant of one. */
static __always_inline int tgid_traced(__u32 tgid)
{
	if (bpf_map_lookup_elem(&tgids, &tgid))
		return 1;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	for (int depth = 0; depth < PYUSDT_ANCESTOR_DEPTH; depth++) {
		task = BPF_CORE_READ(task, real_parent);
		if (!task)
			return 0;
		__u32 parent = BPF_CORE_READ(task, tgid);
		if (parent <= 1)
			return 0;
		if (bpf_map_lookup_elem(&tgids, &parent)) {
			/* Remember the child so the loader can watch its mappings too. */
			__u8 one = 1;
			bpf_map_update_elem(&tgids, &tgid, &one, BPF_ANY);
			return 1;
		}
	}
	return 0;
}

/*
 * A register by its offset in pt_regs.  Direct context loads need constant
 * offsets, hence the switch; it is several times cheaper than a
 * bpf_probe_read_kernel() call per register.  Each load is inline asm so the
 * compiler cannot merge the cases into one load at a computed offset, which
 * the verifier rejects.
 */
#define REG_CASE(field)                                                          \
	case offsetof(struct pt_regs, field): {                                  \
		__u64 v;                                                         \
		asm volatile("%0 = *(u64 *)(%1 + %2)"                            \
			     : "=r"(v)                                           \
			     : "r"(ctx), "i"(offsetof(struct pt_regs, field)));  \
		return v;                                                        \
	}

static __always_inline __u64 read_reg(struct pt_regs *ctx, __u16 off)
{
	switch (off) {
	REG_CASE(rax) REG_CASE(rdi) REG_CASE(rsi) REG_CASE(rdx) REG_CASE(rcx)
	REG_CASE(rbx) REG_CASE(rbp) REG_CASE(rsp) REG_CASE(r8) REG_CASE(r9)
	REG_CASE(r10) REG_CASE(r11) REG_CASE(r12) REG_CASE(r13) REG_CASE(r14)
	REG_CASE(r15) REG_CASE(rip)
	default: return 0;
	}
}

/* Reads one argument; returns 0, or -1 when user memory could not be read. */
static __always_inline int read_arg(struct pt_regs *ctx, const struct pyusdt_arg_spec *a,
				    __u64 site_vaddr, __u64 *out)
{
	__u64 val = 0, addr;
	__u32 size = a->size;

	switch (a->kind) {
	case PYUSDT_ARG_CONST:
		*out = (__u64)a->disp;
		return 0;
	case PYUSDT_ARG_REG:
		val = read_reg(ctx, a->base_off) >> (a->shift & 63);
		goto extend;
	case PYUSDT_ARG_MEM:
		addr = read_reg(ctx, a->base_off) + a->disp;
		break;
	case PYUSDT_ARG_MEM_INDEX:
		addr = read_reg(ctx, a->base_off) +
		       read_reg(ctx, a->index_off) * a->scale + a->disp;
		break;
	case PYUSDT_ARG_MEM_ABS:
		/* A link-time address, moved by the object's load bias. */
		addr = read_reg(ctx, offsetof(struct pt_regs, rip)) - site_vaddr + a->disp;
		break;
	default:
		*out = 0;
		return 0;
	}
	if (size == 0 || size > 8)
		size = 8;
	if (bpf_probe_read_user(&val, size, (void *)addr)) {
		*out = 0;
		return -1;
	}
extend:
	if (size < 8) {
		__u32 unused = 64 - 8 * size;
		if (a->is_signed)
			val = (__u64)((__s64)(val << unused) >> unused);
		else
			val = (val << unused) >> unused;
	}
	*out = val;
	return 0;
}

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

/*
 * Wake the reader once per wakeup_bytes of data, when this record crosses the
 * mark, not for every record past it: a forced wake-up is an interrupt, and
 * one per record would slow the traced program whenever the reader lags.
 */
static __always_inline __u64 wakeup_flag(__u64 record_bytes)
{
	if (!cfg.wakeup_bytes)
		return 0;
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 mark = cfg.wakeup_bytes;
	return avail >= mark && avail - record_bytes < mark ? BPF_RB_FORCE_WAKEUP
							     : BPF_RB_NO_WAKEUP;
}

/* Fills the fixed part of the record; returns the number of failed reads. */
static __always_inline void fill_event(struct pt_regs *ctx, const struct pyusdt_site *site,
				       struct pyusdt_event *e, __u64 id, int sleepable)
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
		if (i >= site->nargs) {
			e->args[i] = 0;
			continue;
		}
		if (read_arg(ctx, &site->args[i], site->site_vaddr, &e->args[i])) {
			e->flags |= 1u << (PYUSDT_FLAG_READ_FAIL_SHIFT + i);
			count(site->probe_id, ARG_FAIL, sleepable);
		}
	}
}

/* Reads the string arguments into the slots after the fixed record.  The
 * sleepable variant can fault in a page the program has not touched yet
 * (a string constant in .rodata), which the plain read cannot. */
static __always_inline void fill_strings(const struct pyusdt_site *site,
					 struct pyusdt_event *e, __u8 *slots, int sleepable)
{
	__u32 len = cfg.str_len;

	for (int i = 0; i < PYUSDT_MAX_ARGS; i++) {
		if (i >= site->nargs)
			break;
		const struct pyusdt_arg_spec *a = &site->args[i];
		if (!a->is_string)
			continue;
		__u32 slot = a->str_slot;
		if (slot >= cfg.string_slots)
			continue;
		__u8 *dst = slots + slot * len;
		const char *src = (const char *)e->args[i];
		long n = sleepable ? bpf_copy_from_user_str(dst, len, src, 0)
				   : bpf_probe_read_user_str(dst, len, src);
		if (n < 0) {
			dst[0] = 0;
			e->flags |= 1u << (PYUSDT_FLAG_READ_FAIL_SHIFT + i);
			count(site->probe_id, STR_FAIL, sleepable);
			continue;
		}
		/* A full slot is only a truncation if the source goes on. */
		if (n == len) {
			char next = 0;
			if (sleepable)
				bpf_copy_from_user(&next, 1, src + len - 1);
			else
				bpf_probe_read_user(&next, 1, src + len - 1);
			if (next)
				e->flags |= 1u << (PYUSDT_FLAG_STR_TRUNC_SHIFT + i);
		}
	}
	e->nstrings = site->nstrings;
}

static __always_inline int handle_hit(struct pt_regs *ctx, int sleepable)
{
	__u32 site_idx = (__u32)bpf_get_attach_cookie(ctx);
	struct pyusdt_site *site = bpf_map_lookup_elem(&sites, &site_idx);
	if (!site)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (site->filter_tgid && !tgid_traced(id >> 32))
		return 0;
	__u32 probe_id = site->probe_id;
	count(probe_id, HITS, sleepable);

	if (!site->nstrings) {
		struct pyusdt_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (!e) {
			count(probe_id, LOST_RINGBUF, sleepable);
			return 0;
		}
		fill_event(ctx, site, e, id, sleepable);
		bpf_ringbuf_submit(e, wakeup_flag(sizeof(*e)));
		return 0;
	}
	/* Both sizes are load-time constants, as the ring buffer requires. */
	__u64 size = sizeof(struct pyusdt_event) + (__u64)cfg.string_slots * cfg.str_len;
	struct pyusdt_event *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		count(probe_id, LOST_RINGBUF, sleepable);
		return 0;
	}
	fill_event(ctx, site, e, id, sleepable);
	fill_strings(site, e, (__u8 *)(e + 1), sleepable);
	bpf_ringbuf_submit(e, wakeup_flag(size));
	return 0;
}

/* Sites without string arguments: never sleeps, cheapest path. */
SEC("uprobe")
int pyusdt_stream(struct pt_regs *ctx)
{
	return handle_hit(ctx, 0);
}

/* Sites with string arguments, where the kernel allows sleepable uprobes. */
SEC("uprobe.s")
int pyusdt_stream_sleepable(struct pt_regs *ctx)
{
	return handle_hit(ctx, 1);
}
