#include "session/uprobe_multi.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>

namespace pyusdt {

namespace {

// The BPF_LINK_CREATE member of union bpf_attr with its uprobe_multi part,
// as the kernel's UAPI lays it out (the system headers may be older).
struct LinkCreateUprobeMulti {
    uint32_t prog_fd;
    uint32_t target_fd;
    uint32_t attach_type;
    uint32_t flags;
    uint64_t path;
    uint64_t offsets;
    uint64_t ref_ctr_offsets;
    uint64_t cookies;
    uint32_t cnt;
    uint32_t multi_flags;
    uint32_t pid;
    uint32_t pad;
};
static_assert(sizeof(LinkCreateUprobeMulti) == 64, "the UAPI layout");

int link_create(const LinkCreateUprobeMulti &attr) {
    int fd = static_cast<int>(syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr)));
    return fd < 0 ? -errno : fd;
}

bool probe_support() {
    // r0 = 0; exit
    const bpf_insn insns[] = {
        {BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0},
        {BPF_JMP | BPF_EXIT, 0, 0, 0, 0},
    };
    LIBBPF_OPTS(bpf_prog_load_opts, opts);
    opts.expected_attach_type = static_cast<bpf_attach_type>(kAttachUprobeMulti);
    int prog = bpf_prog_load(BPF_PROG_TYPE_KPROBE, "pyusdt_probe", "GPL", insns, 2, &opts);
    if (prog < 0)
        return false;
    // A directory cannot be probed: a kernel that knows uprobe_multi says
    // EBADF; one that does not, EINVAL.
    uint64_t offset = 0;
    LinkCreateUprobeMulti attr{};
    attr.prog_fd = static_cast<uint32_t>(prog);
    attr.attach_type = kAttachUprobeMulti;
    attr.path = reinterpret_cast<uint64_t>("/");
    attr.offsets = reinterpret_cast<uint64_t>(&offset);
    attr.cnt = 1;
    int fd = link_create(attr);
    close(prog);
    if (fd >= 0) {
        close(fd);
        return false;  // not what a kernel that checks the file does
    }
    return fd == -EBADF;
}

}  // namespace

bool uprobe_multi_supported() {
    static std::once_flag once;
    static bool supported = false;
    std::call_once(once, [] { supported = probe_support(); });
    return supported;
}

int uprobe_multi_link(int prog_fd, const std::string &path, const std::vector<uint64_t> &offsets,
                      const std::vector<uint64_t> &ref_ctr_offsets, const std::vector<uint64_t> &cookies,
                      int pid) {
    if (offsets.empty() || ref_ctr_offsets.size() != offsets.size() || cookies.size() != offsets.size())
        return -EINVAL;
    LinkCreateUprobeMulti attr{};
    attr.prog_fd = static_cast<uint32_t>(prog_fd);
    attr.attach_type = kAttachUprobeMulti;
    attr.path = reinterpret_cast<uint64_t>(path.c_str());
    attr.offsets = reinterpret_cast<uint64_t>(offsets.data());
    attr.ref_ctr_offsets = reinterpret_cast<uint64_t>(ref_ctr_offsets.data());
    attr.cookies = reinterpret_cast<uint64_t>(cookies.data());
    attr.cnt = static_cast<uint32_t>(offsets.size());
    attr.pid = pid > 0 ? static_cast<uint32_t>(pid) : 0;
    return link_create(attr);
}

}  // namespace pyusdt
