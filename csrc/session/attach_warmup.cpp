#include "session/attach_warmup.h"
#include "session/memfd.h"

#include <linux/perf_event.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

namespace pyusdt {

namespace {

// The uprobe PMU's type number (perf_event_open's attr.type), or -1.
int uprobe_pmu_type() {
    FILE *f = fopen("/sys/bus/event_source/devices/uprobe/type", "re");
    if (!f)
        return -1;
    int type = -1;
    if (fscanf(f, "%d", &type) != 1)
        type = -1;
    fclose(f);
    return type;
}

// Registers a uprobe at offset 0 of a one-page memfd, then drops it: the
// kernel takes the lock (after its grace period), finds no process mapping
// the file, and installs nothing.
void register_and_drop_throwaway_uprobe() {
    int type = uprobe_pmu_type();
    int mem = make_memfd("pyusdt-attach-warmup");
    if (type < 0 || mem < 0) {
        if (mem >= 0)
            close(mem);
        return;
    }
    static const char page[4096] = {};
    std::string path = "/proc/self/fd/" + std::to_string(mem);
    int fd = -1;
    if (write(mem, page, sizeof(page)) == static_cast<ssize_t>(sizeof(page))) {
        perf_event_attr attr{};
        attr.size = sizeof(attr);
        attr.type = static_cast<uint32_t>(type);
        attr.config1 = reinterpret_cast<uint64_t>(path.c_str());  // the file
        attr.config2 = 0;                                         // the offset in it
        fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
    }
    close(mem);
    if (fd >= 0)
        close(fd);
}

}  // namespace

void start_attach_warmup() {
    // Detached: it touches nothing of its caller's, and nobody waits for it.
    std::thread(register_and_drop_throwaway_uprobe).detach();
}

}  // namespace pyusdt
