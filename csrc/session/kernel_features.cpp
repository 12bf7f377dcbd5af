#include "session/kernel_features.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/utsname.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace pyusdt {

namespace {

bool at_least(const KernelFeatures &k, int major, int minor) {
    return k.major > major || (k.major == major && k.minor >= minor);
}

KernelFeatures probe() {
    KernelFeatures k;
    utsname u{};
    if (uname(&u) == 0) {
        k.release = u.release;
        std::sscanf(u.release, "%d.%d", &k.major, &k.minor);
    }
    // Facilities a program or map can be asked about are probed; the rest
    // (behaviours of the verifier and of map allocation) follow the version.
    // A probe without privileges answers "no" or an error: then the version
    // decides too, and the load fails later with its own, clearer, message.
    k.ringbuf = libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1 || at_least(k, 5, 8);
    int cookie = libbpf_probe_bpf_helper(BPF_PROG_TYPE_KPROBE, BPF_FUNC_get_attach_cookie, nullptr);
    k.bpf_cookie = cookie < 0 ? at_least(k, 5, 15) : cookie == 1;
    // PYUSDT_SLEEPABLE_UPROBES=0 takes the route of kernels before 6.0 (the
    // tests run it here, as PYUSDT_UPROBE_MULTI=0 does for links).
    const char *sleepable = std::getenv("PYUSDT_SLEEPABLE_UPROBES");
    k.sleepable_uprobe = at_least(k, 6, 0) && !(sleepable && std::strcmp(sleepable, "0") == 0);
    k.runtime_alloc_ok = at_least(k, 6, 1);
    return k;
}

}  // namespace

const KernelFeatures &kernel_features() {
    static std::once_flag once;
    static KernelFeatures features;
    std::call_once(once, [] { features = probe(); });
    return features;
}

}  // namespace pyusdt
