/* SPDX-License-Identifier: MIT */
/*
 * Every x86-64 specific fact of the BPF side: the uprobe context is the
 * user's struct pt_regs, and an argument's register is found by its offset
 * there (what csrc/elf/arch_x86_64.cpp writes into pyusdt_arg_spec).
 */
#ifndef PYUSDT_ARCH_X86_64_BPF_H
#define PYUSDT_ARCH_X86_64_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h> /* the x86-64 user register layout a uprobe's context has */
#include <bpf/bpf_helpers.h>

/* SIGSTOP's number (asm/signal.h), for bpf_send_signal(): the number is the
 * architecture's. */
#define PYUSDT_SIGSTOP 19

/* The offset of the instruction pointer in the context. */
#define PYUSDT_REG_IP offsetof(struct pt_regs, rip)

/*
 * A register by its offset in pt_regs.  Direct context loads need constant
 * offsets, hence the switch; it is several times cheaper than a
 * bpf_probe_read_kernel() call per register.  Each load is inline asm so the
 * compiler cannot merge the cases into one load at a computed offset, which
 * the verifier rejects.
 */
#define PYUSDT_REG_CASE(field)                                                   \
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
	PYUSDT_REG_CASE(rax) PYUSDT_REG_CASE(rdi) PYUSDT_REG_CASE(rsi) PYUSDT_REG_CASE(rdx)
	PYUSDT_REG_CASE(rcx) PYUSDT_REG_CASE(rbx) PYUSDT_REG_CASE(rbp) PYUSDT_REG_CASE(rsp)
	PYUSDT_REG_CASE(r8) PYUSDT_REG_CASE(r9) PYUSDT_REG_CASE(r10) PYUSDT_REG_CASE(r11)
	PYUSDT_REG_CASE(r12) PYUSDT_REG_CASE(r13) PYUSDT_REG_CASE(r14) PYUSDT_REG_CASE(r15)
	PYUSDT_REG_CASE(rip)
	default: return 0;
	}
}

/* The address of the instruction that hit (the probe site). */
static __always_inline __u64 instruction_pointer(struct pt_regs *ctx)
{
	return read_reg(ctx, PYUSDT_REG_IP);
}

#endif
