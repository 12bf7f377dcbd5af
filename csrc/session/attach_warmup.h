// Starting an attach's wait for the kernel ahead of the attach.
//
// Registering a uprobe takes the kernel's dup_mmap_sem for writing, and the
// first writer after a quiet spell waits for an RCU grace period first:
// 8-16 ms on Linux 6.18, most of a one-probe attach, and all of it idle.  A
// writer that comes within about two grace periods of the previous ones
// does not wait (the semaphore's rcu_sync stays "passed" meanwhile).  So a
// trace that knows it will attach soon links its program, through a
// uprobe_multi link, to a throwaway site on a private memfd no process
// maps, and drops the link at once, from a thread of its own: that wait
// overlaps the caller's work, and the real attach finds none.
//
// Dropping the link waits for more grace periods (~70 ms on 6.18, seconds
// on a loaded machine), in that thread, which nobody waits for; the thread
// has an fd table of its own, so the process never shows (or keeps) an fd
// of it once start_attach_warmup() has returned.  A uprobe_multi link, not
// a perf event: the kernel makes and drops perf-event uprobes under one
// mutex, which another tool's detaching may hold for seconds.
#pragma once

namespace pyusdt {

// Links and drops the throwaway site in a detached thread, with its own
// duplicate of `prog_fd` (a program loaded for uprobe_multi links).  If the
// kernel refuses it, the attach only waits as it would have.
void start_attach_warmup(int prog_fd);

}  // namespace pyusdt
