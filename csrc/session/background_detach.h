// Handing perf-event links to a background process that detaches them.
#pragma once

#include <sys/types.h>

#include <vector>

namespace pyusdt {

// Detaching a perf-event link makes the kernel wait for RCU grace periods,
// one link after another: ~120 ms per link was measured on Linux 6.18, so
// 1,500 links took minutes, and threads do not help (the kernel serializes
// it).  A trace that has printed its results need not wait for that.
//
// Starts a detached grandchild process ("pyusdt-detach", its own session)
// that keeps only `link_fds` open and closes them one by one; the caller's
// own close of each link then only drops a reference, at once.  The kernel
// detaches a link when its last reference goes, so every uprobe still goes
// (and every semaphore comes back), if a little later.  Returns the
// grandchild's pid, or -1 when it could not be started (then nothing
// changed: detach as usual).
pid_t detach_links_in_background(const std::vector<int> &link_fds);

}  // namespace pyusdt
