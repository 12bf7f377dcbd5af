/* SPDX-License-Identifier: MIT */
/*
 * Which site a hit belongs to.  Where the kernel has BPF cookies (5.15+) each
 * uprobe link carries its site's index.  Before that, the hit is placed by
 * the file it is in and its offset there: the vma holding the instruction
 * pointer is found in the process's vma tree, and (inode, file offset,
 * program) is looked up in the site_by_addr map the loader fills.
 * This works for every process mapping the file, at any load address, so
 * path, -p, -c and -f targets all trace exactly as with cookies.
 */
#ifndef PYUSDT_USDT_SITE_BPF_H
#define PYUSDT_USDT_SITE_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "pyusdt_abi.h"
#include "arch_x86_64.bpf.h"
#include "usdt_maps.bpf.h"

/* Set by libbpf from its own probe of the running kernel; the verifier sees a
 * constant, so the branch a kernel cannot take (an unknown helper before
 * 5.15, a vma tree that no longer exists from 6.1) is removed before it is
 * checked. */
extern const _Bool LINUX_HAS_BPF_COOKIE __kconfig;

/* The kernel's own types as they were before 6.1 (vmas in an rbtree); CO-RE
 * finds the field offsets of the running kernel. */
struct rb_node___pyusdt {
	struct rb_node___pyusdt *rb_right;
	struct rb_node___pyusdt *rb_left;
} __attribute__((preserve_access_index));

struct super_block___pyusdt {
	__u32 s_dev;
} __attribute__((preserve_access_index));

struct inode___pyusdt {
	unsigned long i_ino;
	struct super_block___pyusdt *i_sb;
} __attribute__((preserve_access_index));

struct file___pyusdt {
	struct inode___pyusdt *f_inode;
} __attribute__((preserve_access_index));

struct vm_area_struct___pyusdt {
	unsigned long vm_start;
	unsigned long vm_end;
	struct rb_node___pyusdt vm_rb;
	unsigned long vm_flags;
	unsigned long vm_pgoff;
	struct file___pyusdt *vm_file;
} __attribute__((preserve_access_index));

struct mm_struct___pyusdt {
	struct {
		struct rb_node___pyusdt *rb_node;
	} mm_rb;
} __attribute__((preserve_access_index));

struct task_struct___pyusdt {
	struct mm_struct___pyusdt *mm;
} __attribute__((preserve_access_index));

/* Deep enough for any balanced tree of vmas a process can have (2^32). */
#define PYUSDT_VMA_TREE_DEPTH 64
#define PYUSDT_PAGE_SHIFT 12
#define PYUSDT_VM_WRITE 0x2 /* vm_flags: the mapping can be written */

/* True where vmas are in an rbtree (before 6.1): a CO-RE constant, so code
 * that walks it is removed from the program on newer kernels. */
#define PYUSDT_HAS_VMA_RBTREE bpf_core_field_exists(((struct mm_struct___pyusdt *)0)->mm_rb)

/* The vma of the current process that holds `addr`, or NULL.  A function
 * of its own: the compiler may hoist a CO-RE offset above the check that
 * guards it, and on 6.1+ these offsets are poisoned (the fields are gone),
 * but it does not hoist a call. */
static __noinline struct vm_area_struct___pyusdt *vma_of(__u64 addr)
{
	struct task_struct___pyusdt *task = (void *)bpf_get_current_task();
	struct rb_node___pyusdt *node = BPF_CORE_READ(task, mm, mm_rb.rb_node);
	__u64 rb_offset = bpf_core_field_offset(struct vm_area_struct___pyusdt, vm_rb);

	for (int depth = 0; depth < PYUSDT_VMA_TREE_DEPTH && node; depth++) {
		struct vm_area_struct___pyusdt *vma = (void *)node - rb_offset;
		if (addr < BPF_CORE_READ(vma, vm_start))
			node = BPF_CORE_READ(node, rb_left);
		else if (addr >= BPF_CORE_READ(vma, vm_end))
			node = BPF_CORE_READ(node, rb_right);
		else
			return vma;
	}
	return NULL;
}

/* The file and file offset `addr` maps; -1 for memory no file backs.  The
 * device only where asked for (dev not NULL). */
static __always_inline int file_of(struct vm_area_struct___pyusdt *vma, __u64 addr,
				   __u32 *dev, __u64 *ino, __u64 *offset)
{
	struct inode___pyusdt *inode = BPF_CORE_READ(vma, vm_file, f_inode);
	if (!inode)
		return -1;
	*ino = BPF_CORE_READ(inode, i_ino);
	if (dev)
		*dev = BPF_CORE_READ(inode, i_sb, s_dev);
	*offset = addr - BPF_CORE_READ(vma, vm_start) + (BPF_CORE_READ(vma, vm_pgoff) << PYUSDT_PAGE_SHIFT);
	return 0;
}

/* The site of a hit of program `prog` when there are no cookies; -1 if the
 * hit is not in a site this session attached (counted nowhere: no probe). */
static __always_inline int site_by_address(struct pt_regs *ctx, __u32 prog, __u32 *idx)
{
	__u64 ip = instruction_pointer(ctx);
	struct vm_area_struct___pyusdt *vma = vma_of(ip);
	struct pyusdt_site_addr key = {.prog = prog};
	if (!vma || file_of(vma, ip, NULL, &key.ino, &key.offset))
		return -1;
	__u32 *found = bpf_map_lookup_elem(&site_by_addr, &key);
	if (!found)
		return -1;
	*idx = *found;
	return 0;
}

/* The site of this hit and its index, or NULL. */
static __always_inline struct pyusdt_site *site_of_hit(struct pt_regs *ctx, __u32 prog, __u32 *idx)
{
	*idx = 0;
	if (LINUX_HAS_BPF_COOKIE)
		*idx = (__u32)bpf_get_attach_cookie(ctx);
	else if (site_by_address(ctx, prog, idx))
		return NULL;
	return bpf_map_lookup_elem(&sites, idx);
}

#endif
