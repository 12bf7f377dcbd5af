#include "session/late_strings.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

namespace pyusdt {

namespace {

// The end of the mapping holding `addr`, if it is readable and not writable.
bool immutable_mapping_end(uint32_t pid, uint64_t addr, uint64_t &end) {
    std::string path = "/proc/" + std::to_string(pid) + "/maps";
    FILE *f = std::fopen(path.c_str(), "re");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (std::fgets(line, sizeof(line), f)) {
        uint64_t lo = 0, hi = 0;
        char perms[8] = {};
        if (std::sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s", &lo, &hi, perms) != 3)
            continue;
        if (addr >= lo && addr < hi) {
            found = perms[0] == 'r' && perms[1] != 'w';
            end = hi;
            break;
        }
    }
    std::fclose(f);
    return found;
}

// dst holds `got` bytes read from where the string starts: cut it as
// bpf_probe_read_user_str would have, NUL padded to len.
void finish_string(uint8_t *dst, size_t got, size_t len, bool &truncated) {
    auto *nul = static_cast<uint8_t *>(std::memchr(dst, 0, got));
    if (nul) {
        std::memset(nul, 0, len - static_cast<size_t>(nul - dst));
        return;
    }
    // No NUL in what could be read: cut at len - 1 as the kernel does, and
    // flag it only when the string really goes on.
    size_t keep = std::min(got, len - 1);
    truncated = got > keep && dst[keep] != 0;
    std::memset(dst + keep, 0, len - keep);
}

}  // namespace

bool read_string_late(uint32_t pid, uint64_t addr, uint8_t *dst, size_t len, bool &truncated) {
    truncated = false;
    uint64_t end = 0;
    if (len == 0 || !immutable_mapping_end(pid, addr, end))
        return false;
    size_t want = static_cast<size_t>(std::min<uint64_t>(len, end - addr));
    iovec local{dst, want};
    iovec remote{reinterpret_cast<void *>(addr), want};
    ssize_t got = process_vm_readv(static_cast<pid_t>(pid), &local, 1, &remote, 1, 0);
    if (got <= 0)
        return false;
    finish_string(dst, static_cast<size_t>(got), len, truncated);
    return true;
}

bool read_string_from_file(const std::string &path, uint64_t offset, uint8_t *dst, size_t len,
                           bool &truncated) {
    truncated = false;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 || len == 0) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    ssize_t got = pread(fd, dst, len, static_cast<off_t>(offset));
    close(fd);
    if (got <= 0)
        return false;
    finish_string(dst, static_cast<size_t>(got), len, truncated);
    return true;
}

}  // namespace pyusdt
