#include "session/attach_warmup.h"
#include "session/memfd.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "session/uprobe_multi.h"

namespace pyusdt {

namespace {

// Links `prog` at offset 0 of a one-page memfd, then drops the link: the
// kernel takes the lock (after its grace period), finds no process mapping
// the file, and installs nothing.
void link_and_drop_throwaway_site(int prog) {
    int mem = make_memfd("pyusdt-attach-warmup");
    static const char page[4096] = {};
    if (mem >= 0 && write(mem, page, sizeof(page)) == static_cast<ssize_t>(sizeof(page))) {
        int link = uprobe_multi_link(prog, "/proc/self/fd/" + std::to_string(mem), {0}, {0}, {0}, -1);
        if (link >= 0)
            close(link);
    }
    if (mem >= 0)
        close(mem);
    close(prog);
}

}  // namespace

void start_attach_warmup(int prog_fd) {
    int prog = fcntl(prog_fd, F_DUPFD_CLOEXEC, 0);  // the session may close its own meanwhile
    if (prog < 0)
        return;
    // Detached: it holds only its own fds, and nobody waits for it.
    std::thread(link_and_drop_throwaway_site, prog).detach();
}

}  // namespace pyusdt
