#include "session/background_detach.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace pyusdt {

namespace {

// Between fork and _exit only async-signal-safe calls: the parent may have
// had other threads (holding malloc's lock, say) when it forked.

void close_fds_in(int from, int to) {  // [from, to)
#ifdef SYS_close_range
    if (from < to && syscall(SYS_close_range, from, to - 1, 0) == 0)
        return;
#endif
    for (int fd = from; fd < to; fd++)
        close(fd);
}

// Closes every descriptor but `keep` (sorted), so the detaching process
// holds no pipe or file of the caller open (a reader waiting for EOF on our
// stdout must not wait for the detach).
void close_all_but(const std::vector<int> &keep, int limit) {
    int next = 0;
    for (int fd : keep) {
        close_fds_in(next, fd);
        next = fd + 1;
    }
    close_fds_in(next, limit);
}

[[noreturn]] void detach_and_exit(const std::vector<int> &link_fds, int limit) {
    setsid();  // a Ctrl-C meant for the terminal's foreground group is not for us
    prctl(PR_SET_NAME, "pyusdt-detach", 0, 0, 0);
    close_all_but(link_fds, limit);
    for (int fd : link_fds)
        close(fd);  // the last reference: the kernel detaches the uprobe now
    _exit(0);
}

}  // namespace

pid_t detach_links_in_background(const std::vector<int> &link_fds) {
    std::vector<int> keep(link_fds);
    std::sort(keep.begin(), keep.end());
    struct rlimit nofile {};
    int limit = getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY
                    ? static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20))
                    : 1 << 16;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0)
        return -1;
    // Fork twice: the middle child exits at once, so the caller has nothing
    // to reap later and the grandchild is adopted by init (or a subreaper).
    pid_t child = fork();
    if (child < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (child == 0) {
        pid_t grandchild = fork();
        if (grandchild == 0) {
            detach_and_exit(keep, limit);
        }
        ssize_t ignored = write(pipefd[1], &grandchild, sizeof grandchild);
        (void)ignored;
        _exit(grandchild < 0 ? 1 : 0);
    }
    close(pipefd[1]);
    pid_t grandchild = -1;
    ssize_t n;
    do {
        n = read(pipefd[0], &grandchild, sizeof grandchild);
    } while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (n != sizeof grandchild)
        return -1;
    return grandchild;
}

}  // namespace pyusdt
