#include "session/attach_warmup.h"
#include "session/memfd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "session/uprobe_multi.h"

#ifndef __NR_close_range
#define __NR_close_range 436  // Linux 5.9; every kernel with uprobe_multi links (6.6) has it
#endif

namespace pyusdt {

namespace {

// Links `prog` at offset 0 of a one-page memfd, then drops the link: the
// kernel takes the lock (after its grace period), finds no process mapping
// the file, and installs nothing.  Closes `prog`.
void link_and_drop_throwaway_site(int prog) {
    // In this thread's own fd table: named through thread-self, not self (the leader's).
    int mem = make_memfd("pyusdt-attach-warmup");
    static const char page[4096] = {};
    int link = -1;
    if (mem >= 0 && write(mem, page, sizeof(page)) == static_cast<ssize_t>(sizeof(page)))
        link = uprobe_multi_link(prog, "/proc/thread-self/fd/" + std::to_string(mem), {0}, {0}, {0}, -1);
    if (mem >= 0)
        close(mem);  // the link holds the file, and the program, as long as it lives
    close(prog);
    if (link >= 0)
        close(link);  // the slow part: the kernel's grace periods, waited for here
}

// Every fd of this thread's own table but `keep`.
void close_all_but(int keep) {
    if (syscall(__NR_close_range, 0u, static_cast<unsigned>(keep) - 1, 0u) == 0 &&
        syscall(__NR_close_range, static_cast<unsigned>(keep) + 1, ~0u, 0u) == 0)
        return;
    std::vector<int> fds;
    if (DIR *d = opendir("/proc/thread-self/fd")) {
        while (dirent *e = readdir(d))
            if (e->d_name[0] != '.')
                fds.push_back(atoi(e->d_name));
        closedir(d);
    }
    for (int fd : fds)
        if (fd != keep)
            close(fd);
}

struct Handoff {
    std::mutex mutex;
    std::condition_variable cv;
    bool ready = false, own_table = false;
};

}  // namespace

void start_attach_warmup(int prog_fd) {
    int prog = fcntl(prog_fd, F_DUPFD_CLOEXEC, 0);  // the session may close its own meanwhile
    if (prog < 0)
        return;
    auto handoff = std::make_shared<Handoff>();
    // The thread moves to an fd table of its own (a copy, of which it keeps
    // only `prog`): what it holds while the kernel makes it wait is not the
    // process's, so no fd of it outlives this call in the process's table,
    // and a session closed meanwhile leaves nothing open behind it.
    std::thread([handoff, prog] {
        bool own = unshare(CLONE_FILES) == 0;
        if (own)
            close_all_but(prog);
        {
            std::lock_guard<std::mutex> lock(handoff->mutex);
            handoff->ready = true;
            handoff->own_table = own;
        }
        handoff->cv.notify_one();
        link_and_drop_throwaway_site(prog);
    }).detach();
    std::unique_lock<std::mutex> lock(handoff->mutex);
    handoff->cv.wait(lock, [&] { return handoff->ready; });
    if (handoff->own_table)
        close(prog);  // the process's copy; the thread's is in its own table
}

}  // namespace pyusdt
