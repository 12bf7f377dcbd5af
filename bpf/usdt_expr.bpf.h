/* SPDX-License-Identifier: MIT */
/*
 * The expression interpreter: runs one program of the `exprs` map (a
 * predicate, or the fields of a record, or an aggregation's key and value)
 * for one hit.  The instruction set is PYUSDT_EXPR_OPS in pyusdt_abi.h;
 * Python (pyusdt/expr/) lowers bpftrace's syntax to it.
 *
 * Shaped for the verifier of every kernel from 5.10: the interpreter is a
 * global function, checked once; its loop runs a fixed
 * PYUSDT_EXPR_MAX_INSNS times with a constant counter, and everything that
 * varies between instructions (the stack, its depth, how far a jump skips,
 * the failure bits) lives in the per-CPU scratch map, not in registers, so
 * the states reaching the top of the loop are alike and the verifier prunes
 * them: each iteration costs it one walk of the switch, not one per path.
 */
#ifndef PYUSDT_USDT_EXPR_BPF_H
#define PYUSDT_USDT_EXPR_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"
#include "usdt_args.bpf.h"
#include "usdt_str.bpf.h"

#define EXPR_MASK (PYUSDT_EXPR_STACK - 1)
#define COMM_LEN 16
#define SCRATCH_SIZE sizeof(struct pyusdt_expr_scratch)
_Static_assert((PYUSDT_MAX_STR_LEN & (PYUSDT_MAX_STR_LEN - 1)) == 0, "string sizes are masked");

/* The value `v` cut to `size` bytes and extended back to 64 bits. */
static __always_inline __u64 extend(__u64 v, __u32 size, int is_signed)
{
	if (size == 0 || size >= 8)
		return v;
	__u32 unused = 64 - 8 * size;
	if (is_signed)
		return (__u64)((__s64)(v << unused) >> unused);
	return (v << unused) >> unused;
}

static __always_inline __u64 binary_op(__u8 op, __u64 a, __u64 b, int is_signed)
{
	__s64 sa = (__s64)a, sb = (__s64)b;

	switch (op) {
	case PYUSDT_OP_ADD: return a + b;
	case PYUSDT_OP_SUB: return a - b;
	case PYUSDT_OP_MUL: return a * b;
	case PYUSDT_OP_DIV:
		if (!b)
			return 0;
		if (is_signed) {
			/* BPF before 6.6 has no signed division: divide magnitudes. */
			__u64 q = (sa < 0 ? -(__u64)sa : a) / (sb < 0 ? -(__u64)sb : b);
			return (sa < 0) != (sb < 0) ? -q : q;
		}
		return a / b;
	case PYUSDT_OP_MOD:
		if (!b)
			return 0;
		if (is_signed) {
			__u64 r = (sa < 0 ? -(__u64)sa : a) % (sb < 0 ? -(__u64)sb : b);
			return sa < 0 ? -r : r; /* C: the remainder has the dividend's sign */
		}
		return a % b;
	case PYUSDT_OP_AND: return a & b;
	case PYUSDT_OP_OR: return a | b;
	case PYUSDT_OP_XOR: return a ^ b;
	case PYUSDT_OP_SHL: return a << (b & 63);
	case PYUSDT_OP_SHR: return is_signed ? (__u64)(sa >> (b & 63)) : a >> (b & 63);
	case PYUSDT_OP_EQ: return a == b;
	case PYUSDT_OP_NE: return a != b;
	case PYUSDT_OP_LT: return is_signed ? sa < sb : a < b;
	case PYUSDT_OP_LE: return is_signed ? sa <= sb : a <= b;
	case PYUSDT_OP_GT: return is_signed ? sa > sb : a > b;
	case PYUSDT_OP_GE: return is_signed ? sa >= sb : a >= b;
	}
	return 0;
}

/*
 * Global functions (not static): the verifier checks each once, by its
 * signature, instead of once per call and per path through the caller; on
 * 5.10 such a function may take only scalars and the context, so each looks
 * its maps up itself.
 */

/* 1 if temporary string 0 equals literal bytes [off, off + size) of program
 * `prog_id` (its NUL included) or, with size 0, temporary string 1. */
__noinline int pyusdt_expr_streq(__u32 prog_id, __u32 off, __u32 size)
{
	__u32 zero = 0;
	struct pyusdt_expr_scratch *x = bpf_map_lookup_elem(&expr_scratch, &zero);
	const struct pyusdt_expr *p = bpf_map_lookup_elem(&exprs, &prog_id);
	if (!x || !p)
		return 0;
	for (int i = 0; i < PYUSDT_STR_KEY_LEN; i++) {
		char a = x->tmp[0][i], b;
		if (size) {
			if (i >= size)
				return 1;
			__u32 at = off + i;
			if (at >= PYUSDT_EXPR_LIT_BYTES)
				return 0;
			b = p->lits[at];
		} else {
			b = x->tmp[1][i];
		}
		if (a != b)
			return 0;
		if (!a)
			return 1;
	}
	return 1;
}

/*
 * Reads the string at `ptr` into the scratch at `off`, `width` bytes: up to
 * its NUL, or with a length (bpftrace's str(p, n)) at most n bytes.  Sets
 * the field's failure or truncation bit.
 */
static __always_inline void read_string(struct pyusdt_expr_scratch *x, __u64 off, __u64 width,
					__u64 ptr, __u64 len, int with_len, __u32 field, int sleepable)
{
	if (off > SCRATCH_SIZE - PYUSDT_MAX_STR_LEN || width == 0 || width > PYUSDT_MAX_STR_LEN)
		return;
	char *dst = (char *)x + off;
	__u32 size = width;
	if (with_len && len < width)
		size = len + 1;
	/* 1..PYUSDT_MAX_STR_LEN already; said so in a form every verifier
	 * follows (6.1's loses a range checked as "size - 1 <= max - 1"). */
	size = ((size - 1) & (PYUSDT_MAX_STR_LEN - 1)) + 1;
	long n = read_user_str(dst, size, (const void *)ptr, sleepable);
	if (n < 0) {
		dst[0] = 0;
		x->fail_mask |= 1u << (field & 31);
		x->str_fails++;
		return;
	}
	/* Full: cut if the source goes on (with a length, if it asked for more). */
	if (n == size && (!with_len || len >= width)) {
		char next = 0;
		bpf_probe_read_user(&next, 1, (const char *)ptr + size - 1);
		if (next)
			x->trunc_mask |= 1u << (field & 31);
	}
}

#define PUSH(v) do { x->stack[x->sp & EXPR_MASK] = (v); x->sp++; } while (0)
#define POP() (x->sp--, x->stack[x->sp & EXPR_MASK])
#define TOP x->stack[(x->sp - 1) & EXPR_MASK]

/*
 * Runs program `prog_id` for this hit of site `site_idx`, on this CPU's
 * scratch: its results are there (x->result, the stack's top, is a
 * predicate's truth; x->fail_mask and x->trunc_mask say which fields failed
 * or were cut).  Returns 0, or -1 when a map entry is missing.
 */
static __always_inline int expr_run(struct pt_regs *ctx, __u32 site_idx, __u32 prog_id, int sleepable)
{
	__u32 zero = 0;
	struct pyusdt_expr_scratch *x = bpf_map_lookup_elem(&expr_scratch, &zero);
	const struct pyusdt_site *site = bpf_map_lookup_elem(&sites, &site_idx);
	const struct pyusdt_expr *p = bpf_map_lookup_elem(&exprs, &prog_id);
	if (!x || !site || !p)
		return -1;
	x->sp = 0;
	x->skip_to = 0;
	x->result = 0;
	x->fail_mask = 0;
	x->trunc_mask = 0;
	x->arg_fails = 0;
	x->str_fails = 0;

	/* A do-while whose skipped instructions are an `if`, not a `continue`:
	 * the loop then has one latch, ending in its conditional jump back.  A
	 * latch that falls through into the loop's head is a back-edge 5.10's
	 * verifier refuses (it allows loops only through jumps). */
	int i = 0;
	do {
		const struct pyusdt_insn *in = &p->insns[i];
		__u8 op = in->op;
		__u32 field = in->field;
		int is_signed = in->flags & PYUSDT_EXPR_SIGNED;
		__u64 a, b, off;

		if (op == PYUSDT_OP_END)
			break;
		if (i < x->skip_to)
			op = PYUSDT_OP_COUNT; /* skipped: the switch's default does nothing */
		switch (op) {
		case PYUSDT_OP_ARG: {
			__u32 idx = in->off;
			a = 0;
			if (idx >= PYUSDT_MAX_ARGS || idx >= site->nargs ||
			    read_arg(ctx, &site->args[idx], site->site_vaddr, &a)) {
				x->fail_mask |= 1u << (field & 31);
				x->arg_fails++;
			}
			PUSH(a);
			break;
		}
		case PYUSDT_OP_IMM: PUSH((__u64)in->imm); break;
		case PYUSDT_OP_PID: PUSH(bpf_get_current_pid_tgid() >> 32); break;
		case PYUSDT_OP_TID: PUSH((__u32)bpf_get_current_pid_tgid()); break;
		case PYUSDT_OP_CPU: PUSH(bpf_get_smp_processor_id()); break;
		case PYUSDT_OP_NSECS: PUSH(bpf_ktime_get_ns()); break;
		case PYUSDT_OP_PROBE: PUSH(site->probe_id); break;
		case PYUSDT_OP_LOAD: {
			__u32 size = in->size;
			a = POP();
			b = 0;
			if (size == 0 || size > 8)
				size = 8;
			size = ((size - 1) & 7) + 1; /* 1..8, in a form every verifier follows */
			if (bpf_probe_read_user(&b, size, (const void *)a)) {
				b = 0;
				x->fail_mask |= 1u << (field & 31);
				x->arg_fails++;
			}
			PUSH(extend(b, size, is_signed));
			break;
		}
		case PYUSDT_OP_EXT: TOP = extend(TOP, in->size, is_signed); break;
		case PYUSDT_OP_NEG: TOP = -TOP; break;
		case PYUSDT_OP_NOT: TOP = ~TOP; break;
		case PYUSDT_OP_LNOT: TOP = !TOP; break;
		case PYUSDT_OP_BOOL: TOP = !!TOP; break;
		case PYUSDT_OP_JZ:
			if (!TOP)
				x->skip_to = i + 1 + in->off;
			else
				x->sp--;
			break;
		case PYUSDT_OP_JNZ:
			if (TOP) {
				TOP = 1;
				x->skip_to = i + 1 + in->off;
			} else {
				x->sp--;
			}
			break;
		case PYUSDT_OP_STR: {
			int with_len = in->flags & PYUSDT_EXPR_WITH_LEN;
			b = with_len ? POP() : 0;
			a = POP();
			read_string(x, in->off, (__u64)in->imm, a, b, with_len, field, sleepable);
			break;
		}
		case PYUSDT_OP_COMM: {
			/* At most the slot's width: a narrow slot gets the comm cut. */
			__u64 size = (__u64)in->imm;
			if (size == 0 || size > COMM_LEN)
				size = COMM_LEN;
			size = ((size - 1) & (COMM_LEN - 1)) + 1; /* 1..16, in a form every verifier follows */
			off = in->off;
			if (off <= SCRATCH_SIZE - COMM_LEN)
				bpf_get_current_comm((char *)x + off, size);
			break;
		}
		case PYUSDT_OP_STREQ:
			PUSH(pyusdt_expr_streq(prog_id, in->off, in->size));
			break;
		case PYUSDT_OP_OUT:
			off = in->off;
			a = POP();
			if (off <= SCRATCH_SIZE - 8)
				*(__u64 *)((__u8 *)x + off) = a;
			break;
		case PYUSDT_OP_USTACK: {
			/* A sleepable program may not use a stack map (before 6.18 at
			 * least): sites that take stacks run the plain programs. */
			long id = sleepable ? -1 : bpf_get_stackid(ctx, &ustacks, BPF_F_USER_STACK);
			if (id < 0) {
				id = PYUSDT_USTACK_NONE;
				x->fail_mask |= 1u << (field & 31);
				x->arg_fails++;
			}
			PUSH((bpf_get_current_pid_tgid() & 0xffffffff00000000ull) | (__u32)id);
			break;
		}
		case PYUSDT_OP_COUNT: /* skipped by JZ or JNZ */
			break;
		default: /* the binary operators */
			b = POP();
			a = POP();
			PUSH(binary_op(op, a, b, is_signed));
			break;
		}
		i++;
	} while (i < PYUSDT_EXPR_MAX_INSNS);
	x->result = x->sp ? TOP : 0;
	return 0;
}

#undef PUSH
#undef POP
#undef TOP

/* The interpreter for each kind of program: a sleepable one may fault a
 * string's page in, which a plain one must not even mention. */
__noinline int pyusdt_expr_run(struct pt_regs *ctx, __u32 site_idx, __u32 prog_id)
{
	return expr_run(ctx, site_idx, prog_id, 0);
}

__noinline int pyusdt_expr_run_sleepable(struct pt_regs *ctx, __u32 site_idx, __u32 prog_id)
{
	return expr_run(ctx, site_idx, prog_id, 1);
}

static __always_inline int run_program(struct pt_regs *ctx, __u32 site_idx, __u32 prog_id, int sleepable)
{
	return sleepable ? pyusdt_expr_run_sleepable(ctx, site_idx, prog_id)
			 : pyusdt_expr_run(ctx, site_idx, prog_id);
}

/* This CPU's scratch, claimed for one hit; NULL when it is in use (a
 * sleepable program preempted while it faulted a page in), counted. */
static __always_inline struct pyusdt_expr_scratch *claim_scratch(void)
{
	__u32 zero = 0;
	struct pyusdt_expr_scratch *x = bpf_map_lookup_elem(&expr_scratch, &zero);
	if (!x || x->busy)
		return NULL;
	x->busy = 1;
	return x;
}

#endif
