/* SPDX-License-Identifier: MIT */
/* Reading a probe's arguments from the uprobe context, by their site specs. */
#ifndef PYUSDT_USDT_ARGS_BPF_H
#define PYUSDT_USDT_ARGS_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "pyusdt_abi.h"
#include "arch_x86_64.bpf.h"

/* Reads one argument; returns 0, or -1 when user memory could not be read. */
static __always_inline int read_arg(struct pt_regs *ctx, const struct pyusdt_arg_spec *a,
				    __u64 site_vaddr, __u64 *out)
{
	__u64 val = 0, addr;
	__u32 size = a->size;
	/* The base register is read once, before the kinds part: each inlined
	 * read_reg() is a 17-way switch the verifier walks for every argument
	 * slot, and its work (the start-up's) grows with their number. */
	__u64 base = read_reg(ctx, a->base_off);

	switch (a->kind) {
	case PYUSDT_ARG_CONST:
		*out = (__u64)a->disp;
		return 0;
	case PYUSDT_ARG_REG:
		val = base >> (a->shift & 63);
		goto extend;
	case PYUSDT_ARG_MEM:
		addr = base + a->disp;
		break;
	case PYUSDT_ARG_MEM_INDEX:
		addr = base + read_reg(ctx, a->index_off) * a->scale + a->disp;
		break;
	case PYUSDT_ARG_MEM_ABS:
		/* A link-time address, moved by the object's load bias. */
		addr = instruction_pointer(ctx) - site_vaddr + a->disp;
		break;
	default:
		*out = 0;
		return 0;
	}
	/* A 16-byte argument (a struct or __int128 by value) is read for its
	 * first 8 bytes, the low half: what the record's 64-bit slot holds. */
	if (size == 0 || size > PYUSDT_ARG_SLOT_BYTES)
		size = PYUSDT_ARG_SLOT_BYTES;
	if (bpf_probe_read_user(&val, size, (void *)addr)) {
		*out = 0;
		return -1;
	}
extend:
	/* Narrower than the slot: extend.  A register holding a 16-byte
	 * argument (its low half) is taken whole, as an 8-byte one. */
	if (size < PYUSDT_ARG_SLOT_BYTES) {
		__u32 unused = 64 - 8 * size;
		if (a->is_signed)
			val = (__u64)((__s64)(val << unused) >> unused);
		else
			val = (val << unused) >> unused;
	}
	*out = val;
	return 0;
}

#endif
