/* SPDX-License-Identifier: MIT */
/* The process filters: pid and command targets that follow their children
 * (by process tree), and cgroup and container targets (by cgroup). */
#ifndef PYUSDT_USDT_FILTER_BPF_H
#define PYUSDT_USDT_FILTER_BPF_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "pyusdt_abi.h"
#include "usdt_maps.bpf.h"

/* Only the fields the filters read; CO-RE relocates them on any kernel. */
struct kernfs_node {
	__u64 id; /* a u64 from 5.5; on 64-bit the cgroup's id and its directory's inode */
} __attribute__((preserve_access_index));

struct cgroup_subsys_state {
	struct cgroup_subsys_state *parent;
} __attribute__((preserve_access_index));

/* `self` is the first member of struct cgroup in every kernel: a css's
 * parent pointer is the parent cgroup's address. */
struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
} __attribute__((preserve_access_index));

struct css_set {
	struct cgroup *dfl_cgrp; /* the process's cgroup in the v2 (default) hierarchy */
} __attribute__((preserve_access_index));

struct task_struct {
	int tgid;
	struct task_struct *real_parent;
	struct css_set *cgroups;
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

/* True when the current process is in a cgroup of one of `sets` (bits of
 * the cgroups map's values), or below one.  The process's own cgroup (a
 * container's, most often) is asked of the helper, a native call; the
 * parents, only when that misses, are walked by CO-RE reads of the parent
 * pointers: bpf_get_current_ancestor_cgroup_id reaches uprobe programs only
 * from Linux 5.14. */
static __always_inline int cgroup_traced(__u32 sets)
{
	__u64 own = bpf_get_current_cgroup_id();
	__u32 *in = bpf_map_lookup_elem(&cgroups, &own);
	if (in && (*in & sets))
		return 1;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct cgroup *cg = (struct cgroup *)BPF_CORE_READ(task, cgroups, dfl_cgrp, self.parent);
	for (int depth = 1; depth < PYUSDT_CGROUP_DEPTH && cg; depth++) {
		__u64 id = BPF_CORE_READ(cg, kn, id);
		__u32 *in = bpf_map_lookup_elem(&cgroups, &id);
		if (in && (*in & sets))
			return 1;
		cg = (struct cgroup *)BPF_CORE_READ(cg, self.parent);
	}
	return 0;
}

/* Whether `site` (its filter is not NONE) counts this hit of process `tgid`. */
static __always_inline int process_traced(const struct pyusdt_site *site, __u32 tgid)
{
	if (site->filter == PYUSDT_FILTER_CGROUP)
		return cgroup_traced(site->cgroup_sets);
	return tgid_traced(tgid);
}

#endif
