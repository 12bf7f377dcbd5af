// What the running kernel can do, for the choices the loader makes, each
// named with the first Linux version that has it:
//   BPF ring buffer 5.8 (none: pyusdt cannot run, said in one line);
//   BPF cookies on uprobes 5.15 (else sites are found by file and offset);
//   sleepable uprobe programs 6.0 (else strings a plain read cannot fault
//     in are read by the reader, from user space);
//   hash maps allocated at run time in tracing programs without a warning
//     6.1 (else the maps are preallocated);
//   uprobe_multi links 6.6 (see uprobe_multi.h).
#pragma once

#include <string>

namespace pyusdt {

struct KernelFeatures {
    std::string release;        // uname -r
    int major = 0, minor = 0;   // from the release
    bool ringbuf = false;
    bool bpf_cookie = false;
    bool sleepable_uprobe = false;
    bool runtime_alloc_ok = false;
};

// Probed once per process.
const KernelFeatures &kernel_features();

}  // namespace pyusdt
