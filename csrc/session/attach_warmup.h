// Starting an attach's wait for the kernel ahead of the attach.
//
// Registering a uprobe (through a uprobe_multi link or a perf event alike)
// takes the kernel's dup_mmap_sem for writing, and the first writer after a
// quiet spell waits for an RCU grace period first: 8-16 ms on Linux 6.18,
// most of a one-probe attach, and all of it idle.  A writer that comes
// within about two grace periods of the previous ones does not wait (the
// semaphore's rcu_sync stays "passed" meanwhile).  So a trace that knows it
// will attach soon registers a throwaway uprobe first, on a private memfd
// no process maps, and drops it at once, from a thread of its own: that
// wait overlaps the caller's work, and the real attach finds none.
//
// Dropping the throwaway uprobe waits for more grace periods (~70 ms on
// 6.18), in that thread, which nobody waits for.  On 6.12+ the kernel holds
// the perf events' mutex meanwhile, so only traces that attach through
// uprobe_multi links (which do not take it) warm up: a perf-event attach
// would wait for the drop instead.
#pragma once

namespace pyusdt {

// Registers and drops the throwaway uprobe in a detached thread.  If the
// kernel refuses it, the attach only waits as it would have.
void start_attach_warmup();

}  // namespace pyusdt
