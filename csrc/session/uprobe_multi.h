// uprobe_multi links (Linux 6.6+), made with the raw BPF_LINK_CREATE command
// because the libbpf pyusdt builds against (1.1.2) predates them.  One link
// attaches a program at many offsets of one file, and closing it detaches
// them all with one RCU grace period, where one perf-event link per site
// waits for one each: detaching 600 sites took about a minute that way.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pyusdt {

// BPF_TRACE_UPROBE_MULTI in enum bpf_attach_type.
constexpr int kAttachUprobeMulti = 48;

// True when this kernel creates uprobe_multi links (probed once, with a tiny
// program and a link request the kernel must refuse with EBADF).
bool uprobe_multi_supported();

// One link of program `prog_fd` at `offsets` (file offsets) of `path`, each
// with its semaphore's file offset (0: none) and BPF cookie; pid > 0 limits
// it to that process.  Returns the link fd, or -errno.
int uprobe_multi_link(int prog_fd, const std::string &path, const std::vector<uint64_t> &offsets,
                      const std::vector<uint64_t> &ref_ctr_offsets, const std::vector<uint64_t> &cookies,
                      int pid);

}  // namespace pyusdt
