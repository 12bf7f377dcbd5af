/* SPDX-License-Identifier: MIT */
/* The process filter of pid and command targets that follow their children. */
#ifndef PYUSDT_USDT_FILTER_BPF_H
#define PYUSDT_USDT_FILTER_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"

/* Only the fields the pid filter reads; CO-RE relocates them on any kernel. */
struct task_struct {
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

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

#endif
