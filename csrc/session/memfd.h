// memfd_create(2) by its system call: the wheels are built against glibc
// 2.17, which has no wrapper for it (2.27 added one).
#pragma once

#include <linux/memfd.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace pyusdt {

// A close-on-exec memfd named `name`, or -1 (errno set).
inline int make_memfd(const char *name) { return static_cast<int>(syscall(__NR_memfd_create, name, MFD_CLOEXEC)); }

}  // namespace pyusdt
