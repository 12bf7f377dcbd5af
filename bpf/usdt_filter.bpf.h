/* SPDX-License-Identifier: MIT */
/* The process filter of pid and command targets that follow their children. */
#ifndef PYUSDT_USDT_FILTER_BPF_H
#define PYUSDT_USDT_FILTER_BPF_H

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
