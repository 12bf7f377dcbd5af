#include "session/session.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <tuple>
#include <type_traits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "session/attach_warmup.h"
#include "session/background_detach.h"
#include "session/core_btf.h"
#include "session/kernel_features.h"
#include "elf/elf_file.h"
#include "elf/usdt_notes.h"
#include "session/late_strings.h"
#include "session/ring_reader.h"
#include "session/uprobe_multi.h"
#include "usdt.skel.h"

namespace pyusdt {

namespace {

std::mutex g_msg_mutex;
std::string g_verifier_reason;  // the verifier's own words on the last refused program

// The line of a verifier log that says why: the last one before its
// statistics ("processed N insns ...", "verification time ...").
std::string verifier_reason(const std::string &log) {
    std::string reason, line;
    size_t begin = log.find("-- BEGIN PROG LOAD LOG --");
    size_t end = log.find("-- END PROG LOAD LOG --");
    if (begin == std::string::npos || end == std::string::npos || end < begin)
        return "";
    size_t at = log.find('\n', begin);
    while (at != std::string::npos && at < end) {
        size_t next = log.find('\n', at + 1);
        line = log.substr(at + 1, (next == std::string::npos ? end : std::min(next, end)) - at - 1);
        if (!line.empty() && line.rfind("processed ", 0) != 0 && line.rfind("verification time", 0) != 0 &&
            line.rfind("stack depth", 0) != 0 && line.rfind("-- END", 0) != 0)
            reason = line;
        at = next;
    }
    size_t quote = log.find("prog '");
    if (quote != std::string::npos && !reason.empty()) {
        size_t close = log.find('\'', quote + 6);
        if (close != std::string::npos)
            reason = log.substr(quote + 6, close - quote - 6) + ": " + reason;
    }
    return reason;
}

// libbpf's chatter is not printed: only a verifier's refusal is kept, in its
// own words, for the error a person reads.  PYUSDT_DEBUG=1 prints everything.
int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap) {
    va_list copy;
    va_copy(copy, ap);
    int n = vsnprintf(nullptr, 0, fmt, copy);
    va_end(copy);
    std::string buf(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    va_copy(copy, ap);
    vsnprintf(buf.data(), buf.size() + 1, fmt, copy);
    va_end(copy);
    const char *debug = getenv("PYUSDT_DEBUG");
    if (debug && debug[0] == '1')
        fputs(buf.c_str(), stderr);
    if (level != LIBBPF_DEBUG) {
        std::lock_guard<std::mutex> lock(g_msg_mutex);
        std::string reason = verifier_reason(buf);
        if (!reason.empty())
            g_verifier_reason = reason;
    }
    return 0;
}

void install_printer() {
    static std::once_flag once;
    std::call_once(once, [] { libbpf_set_print(libbpf_print); });
}

[[noreturn]] void load_failed(int err, const char *step) {
    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
        throw LoadError(ENOENT, "kernel has no BTF (/sys/kernel/btf/vmlinux is missing): "
                                "pyusdt needs a kernel built with CONFIG_DEBUG_INFO_BTF (Debian, Ubuntu, "
                                "RHEL and Amazon Linux kernels from 5.10 have it)");
    // The verifier refuses a program with EACCES too: its log tells the two apart.
    std::string reason;
    {
        std::lock_guard<std::mutex> lock(g_msg_mutex);
        reason = g_verifier_reason;
        g_verifier_reason.clear();
    }
    if ((err == EPERM || err == EACCES) && reason.empty())
        throw LoadError(err, "permission denied loading BPF: run as root or with CAP_BPF and CAP_PERFMON");
    const KernelFeatures &kernel = kernel_features();
    if (!reason.empty())
        throw LoadError(err, "this kernel (" + kernel.release + ") refused pyusdt's BPF program: " + reason +
                                 " (pyusdt supports Linux 5.10 and newer; PYUSDT_DEBUG=1 prints the verifier's log)");
    throw LoadError(err, std::string(step) + " failed on this kernel (" + kernel.release + "): " + strerror(err) +
                             " (PYUSDT_DEBUG=1 prints libbpf's log)");
}

// "provider:name in PATH: attach failed: <errno text>", for both kinds of link.
std::string attach_failed(const std::string &label, const std::string &path, int err) {
    std::string msg = label + " in " + path + ": attach failed: " + strerror(err);
    return msg;  // Python names the capability an EPERM/EACCES lacks (pyusdt.privileges)
}

// The kernel's (dev, inode) of a file: what the program reports in a
// pyusdt_str_file.
std::pair<uint32_t, uint64_t> kernel_file_id(const struct stat &st) {
    return {(static_cast<uint32_t>(major(st.st_dev)) << 20) | minor(st.st_dev), st.st_ino};
}

uint64_t round_up_pow2(uint64_t v) {
    uint64_t p = 4096;
    while (p < v && p < PYUSDT_MAX_RINGBUF_BYTES)  // bounded: past 2^63, p would wrap to 0
        p <<= 1;
    return p;
}

// The minimal kernel BTF for CO-RE (core_btf.h), or "" for the kernel's
// own.  The first session of a process opens the object once more, only to
// read the program's BTF from it (about 0.3 ms).
std::string core_btf_for_load() {
    if (std::optional<std::string> known = core_btf_known())
        return *known;
    usdt *program = usdt__open();
    if (!program)
        return "";
    std::string path = core_btf_path(bpf_object__btf(program->obj));
    usdt__destroy(program);
    return path;
}

}  // namespace

Session::Session(const SessionOptions &opts) : opts_(opts) {
    install_printer();
    if (opts_.str_len == 0 || opts_.str_len > PYUSDT_MAX_STR_LEN)
        throw std::invalid_argument("string length must be 1.." + std::to_string(PYUSDT_MAX_STR_LEN));
    if (opts_.string_slots > PYUSDT_MAX_ARGS)
        throw std::invalid_argument("at most " + std::to_string(PYUSDT_MAX_ARGS) + " string arguments");
    if (opts_.ringbuf_bytes > PYUSDT_MAX_RINGBUF_BYTES)
        throw std::invalid_argument("ring buffer must be at most " + std::to_string(PYUSDT_MAX_RINGBUF_BYTES) +
                                    " bytes");
    opts_.ringbuf_bytes = round_up_pow2(opts_.ringbuf_bytes);
    opts_.max_sites = std::clamp<uint32_t>(opts_.max_sites, 1, PYUSDT_MAX_SITES);
    opts_.max_probes = std::clamp<uint32_t>(opts_.max_probes, 1, PYUSDT_MAX_PROBES);

    if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
        load_failed(ENOENT, "open");
    const KernelFeatures &kernel = kernel_features();
    if (!kernel.ringbuf)
        throw LoadError(ENOTSUP, "this kernel (" + kernel.release +
                                     ") has no BPF ring buffer, which pyusdt needs: Linux 5.8 or newer has it");
    // String sites prefer the sleepable program, which can fault in pages;
    // a kernel that refuses it still gets the plain one.
    sleepable_ = (opts_.string_slots > 0 || opts_.aggregate || opts_.expressions) && kernel.sleepable_uprobe;
    multi_ = opts_.uprobe_multi && uprobe_multi_supported();
    int err = open_and_load();
    if (err && sleepable_) {
        sleepable_ = false;
        err = open_and_load();
    }
    if (err == ENOMEM || err == E2BIG)
        // The sizes asked for are within pyusdt's limits, but not this
        // kernel's or this machine's: say which sizes, so they can be lowered.
        throw LoadError(err, std::string("the kernel could not create pyusdt's BPF maps (") + strerror(err) +
                                 "): ring buffer " + std::to_string(opts_.ringbuf_bytes) + " bytes, " +
                                 std::to_string(opts_.max_agg_keys) + " rows per aggregation map, " +
                                 std::to_string(opts_.max_starts) + " pending latency starts; ask for less");
    if (err)
        load_failed(err, "loading the BPF program");
    if (!opts_.queue_bytes) {
        // An eighth of the machine's memory, at most 1 GiB: room for a burst
        // of several hundred thousand rows with strings while the caller
        // formats them, without letting one trace take the machine's memory.
        uint64_t phys = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE));
        opts_.queue_bytes = std::max<uint64_t>(opts_.ringbuf_bytes, std::min<uint64_t>(phys / 8, 1ull << 30));
    }
    try {
        ring_ = std::make_unique<RingReader>(bpf_map__fd(skel_->maps.events), opts_.ringbuf_bytes);
        open_waiter();
    } catch (...) {
        release();  // the destructor does not run for a half-built session
        throw;
    }
}

// The reader's thread sleeps on an edge-triggered epoll of the ring buffer
// (the BPF side wakes it at wakeup_bytes, or after a quiet spell) and of an
// eventfd that ends it.
void Session::open_waiter() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    epoll_event stop{};
    stop.events = EPOLLIN;
    stop.data.fd = stop_fd_;
    if (epfd_ < 0 || stop_fd_ < 0 || epoll_ctl(epfd_, EPOLL_CTL_ADD, bpf_map__fd(skel_->maps.events), &ev) != 0 ||
        epoll_ctl(epfd_, EPOLL_CTL_ADD, stop_fd_, &stop) != 0)
        throw LoadError(errno, std::string("watching the ring buffer: ") + strerror(errno));
}

void Session::stop_streaming() {
    if (skel_ && skel_->bss)
        __atomic_store_n(&skel_->bss->stream_stopped, 1, __ATOMIC_SEQ_CST);
}

uint64_t Session::pending_bytes() const { return ring_ ? ring_->pending() : 0; }

int Session::open_and_load(bool kernel_btf) {
    if (skel_) {
        usdt__destroy(skel_);
        skel_ = nullptr;
    }
    {
        std::lock_guard<std::mutex> lock(g_msg_mutex);
        g_verifier_reason.clear();  // only this load's refusal explains it
    }
    std::string core_btf = kernel_btf ? "" : core_btf_for_load();
    LIBBPF_OPTS(bpf_object_open_opts, open_opts);
    open_opts.btf_custom_path = core_btf.empty() ? nullptr : core_btf.c_str();
    skel_ = usdt__open_opts(&open_opts);
    if (!skel_)
        return errno ? errno : EINVAL;
    skel_->rodata->cfg.str_len = opts_.str_len;
    skel_->rodata->cfg.string_slots = opts_.string_slots;
    skel_->rodata->cfg.wakeup_bytes = opts_.wakeup_bytes;
    skel_->rodata->cfg.wakeup_interval_ns = opts_.wakeup_interval_ns;
    skel_->rodata->cfg.expressions = opts_.expressions ? 1 : 0;
    bpf_map__set_max_entries(skel_->maps.events, opts_.ringbuf_bytes);
    bpf_map__set_max_entries(skel_->maps.sites, opts_.max_sites);
    bpf_map__set_max_entries(skel_->maps.stats, opts_.max_probes);
    bpf_map__set_max_entries(skel_->maps.agg_int, opts_.max_agg_keys);
    bpf_map__set_max_entries(skel_->maps.agg_str, opts_.max_agg_keys);
    bpf_map__set_max_entries(skel_->maps.agg_tuple, opts_.expressions ? opts_.max_agg_keys : 1);
    bpf_map__set_max_entries(skel_->maps.agg_tuple_small, opts_.expressions ? opts_.max_agg_keys : 1);
    // A stack map takes the kernel's callchain buffers: a token one unless stacks are taken.
    bpf_map__set_max_entries(skel_->maps.ustacks, opts_.max_stacks ? opts_.max_stacks : 1);
    if (!opts_.max_stacks)
        bpf_map__set_value_size(skel_->maps.ustacks, sizeof(uint64_t));
    bpf_map__set_max_entries(skel_->maps.starts, opts_.max_starts);
    bpf_map__set_max_entries(skel_->maps.agg_flat, std::max<uint32_t>(1, opts_.flat_aggs * PYUSDT_FLAT_ROWS));
    const KernelFeatures &kernel = kernel_features();
    if (!kernel.bpf_cookie)
        bpf_map__set_max_entries(skel_->maps.site_by_addr, opts_.max_sites);
    if (!kernel.runtime_alloc_ok) {
        bpf_map *grown[] = {skel_->maps.tgids, skel_->maps.cgroups, skel_->maps.agg_int, skel_->maps.agg_str, skel_->maps.agg_tuple,
                            skel_->maps.agg_tuple_small};
        for (bpf_map *m : grown)
            bpf_map__set_map_flags(m, bpf_map__map_flags(m) & ~BPF_F_NO_PREALLOC);
    }
    bpf_program__set_autoload(skel_->progs.pyusdt_stream_sleepable,
                              sleepable_ && (opts_.string_slots > 0 || opts_.expressions));
    bpf_program__set_autoload(skel_->progs.pyusdt_aggregate, opts_.aggregate);
    bpf_program__set_autoload(skel_->progs.pyusdt_aggregate_sleepable, sleepable_ && opts_.aggregate);
    if (multi_) {
        bpf_program *progs[] = {skel_->progs.pyusdt_stream, skel_->progs.pyusdt_stream_sleepable,
                                skel_->progs.pyusdt_aggregate, skel_->progs.pyusdt_aggregate_sleepable};
        for (bpf_program *p : progs)
            bpf_program__set_expected_attach_type(p, static_cast<bpf_attach_type>(kAttachUprobeMulti));
    }
    int err = usdt__load(skel_);
    if (err) {
        usdt__destroy(skel_);
        skel_ = nullptr;
        if (!core_btf.empty()) {
            // Whatever the cause, the kernel's own BTF is tried once: if
            // that loads, the minimal one was at fault and is not used again.
            int again = open_and_load(true);
            if (again == 0)
                core_btf_failed();
            return again;
        }
        return -err;
    }
    return 0;
}

Session::~Session() { release(); }

void Session::release() {
    detach_all();
    stop_drainer();
    if (epfd_ >= 0)
        close(epfd_);
    epfd_ = -1;
    if (stop_fd_ >= 0)
        close(stop_fd_);
    stop_fd_ = -1;
    ring_.reset();
    if (skel_)
        usdt__destroy(skel_);
    skel_ = nullptr;
}

int Session::detach_in_background() {
    if (links_.empty())
        return -1;
    std::vector<int> fds;
    for (bpf_link *l : links_)
        fds.push_back(bpf_link__fd(l));
    pid_t pid = detach_links_in_background(fds);
    if (pid > 0)
        detach_all();  // drops this process's references only: at once
    return pid;
}

void Session::detach_all() {
    for (bpf_link *l : links_)
        bpf_link__destroy(l);
    links_.clear();
    for (int fd : multi_links_)
        close(fd);  // the link's last reference: the kernel detaches all its sites
    multi_links_.clear();
    multi_sites_ = 0;
    pending_.clear();
}

std::vector<AttachFailure> Session::commit() {
    std::vector<AttachFailure> failures;
    // Grouped by file, process and program, in attach order within a group.
    std::map<std::tuple<std::string, int, bpf_program *>, std::vector<const PendingSite *>> groups;
    for (const PendingSite &p : pending_)
        groups[{p.path, p.pid, p.prog}].push_back(&p);
    auto link = [&](const std::vector<const PendingSite *> &sites) {
        std::vector<uint64_t> offsets, ref_ctrs, cookies;
        for (const PendingSite *p : sites) {
            offsets.push_back(p->offset);
            ref_ctrs.push_back(p->ref_ctr_offset);
            cookies.push_back(p->cookie);
        }
        const PendingSite &first = *sites.front();
        int fd = uprobe_multi_link(bpf_program__fd(first.prog), first.path, offsets, ref_ctrs, cookies,
                                   first.pid);
        if (fd >= 0) {
            multi_links_.push_back(fd);
            multi_sites_ += sites.size();
        }
        return fd;
    };
    for (auto &[key, sites] : groups) {
        if (link(sites) >= 0)
            continue;
        // Which site(s) the kernel refuses: one link each.
        for (const PendingSite *p : sites) {
            int fd = link({p});
            if (fd < 0)
                failures.push_back({-fd, attach_failed(p->label, p->path, -fd)});
        }
    }
    pending_.clear();
    return failures;
}

void Session::warm_attach() {
    if (multi_ && skel_)
        start_attach_warmup(bpf_program__fd(skel_->progs.pyusdt_stream));
}

uint32_t Session::attach(const std::string &path, const UsdtSite &site, uint32_t probe_id,
                         const std::vector<int> &string_args, int pid, uint8_t filter,
                         const pyusdt_agg_spec *agg, bool hold, const SiteExprs &exprs,
                         uint32_t cgroup_sets) {
    if (!site.args_error.empty())
        throw AttachError(EINVAL, site.provider + ":" + site.name + ": " + site.args_error);
    if (next_site_ >= opts_.max_sites)
        throw AttachError(ENOSPC, "too many probe sites (limit " + std::to_string(opts_.max_sites) + ")");
    if (probe_id >= opts_.max_probes)
        throw AttachError(ENOSPC, "too many probes (limit " + std::to_string(opts_.max_probes) + ")");
    if (string_args.size() > opts_.string_slots)
        throw AttachError(EINVAL, "more string arguments than the session has slots for");

    pyusdt_site s{};
    s.site_vaddr = site.pc_vaddr;
    s.probe_id = probe_id;
    if (filter > PYUSDT_FILTER_CGROUP)
        throw AttachError(EINVAL, "unknown process filter " + std::to_string(filter));
    s.filter = filter;
    if (filter == PYUSDT_FILTER_CGROUP && !cgroup_sets)
        throw AttachError(EINVAL, "a cgroup-filtered site needs a cgroup set");
    s.cgroup_sets = cgroup_sets;
    if (hold && (agg || !string_args.empty()))
        throw AttachError(EINVAL, "a hold site streams plain records only");
    s.hold = hold ? 1 : 0;
    if (exprs.pred_prog || exprs.out_prog) {
        if (!opts_.expressions)
            throw AttachError(EINVAL, "this session was started without expressions");
        if (hold || !string_args.empty())
            throw AttachError(EINVAL, "a site with expressions reads no string arguments itself");
        if (exprs.pred_prog >= PYUSDT_MAX_EXPR_PROGS || exprs.out_prog >= PYUSDT_MAX_EXPR_PROGS)
            throw AttachError(EINVAL, "expression program id out of range");
        if (exprs.string_fields > opts_.string_slots)
            throw AttachError(EINVAL, "more string fields than the session has slots for");
        s.pred_prog = static_cast<uint16_t>(exprs.pred_prog);
        s.out_prog = static_cast<uint16_t>(exprs.out_prog);
        s.nstrings = static_cast<uint8_t>(exprs.string_fields);
    }
    s.nargs = static_cast<uint8_t>(site.args.size());
    std::copy(site.args.begin(), site.args.end(), s.args);
    for (size_t slot = 0; slot < string_args.size(); slot++) {
        int i = string_args[slot];
        if (i < 0 || i >= s.nargs)
            throw AttachError(EINVAL, "argument index out of range");
        s.args[i].is_string = 1;
        s.args[i].str_slot = static_cast<uint8_t>(slot);
        s.nstrings = static_cast<uint8_t>(slot + 1);
    }

    bool aggregating = agg && agg->role != PYUSDT_ROLE_NONE;
    if (aggregating) {
        if (!opts_.aggregate)
            throw AttachError(EINVAL, "this session was started without aggregation");
        if (agg->agg_id >= PYUSDT_MAX_AGGS)
            throw AttachError(ENOSPC, "too many aggregations (limit " + std::to_string(PYUSDT_MAX_AGGS) + ")");
        if (agg->flat && agg->agg_id >= opts_.flat_aggs)
            throw AttachError(EINVAL, "aggregation " + std::to_string(agg->agg_id) + " has no rows in agg_flat");
        s.agg = *agg;
    }

    uint32_t idx = next_site_;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.sites), &idx, &s, BPF_ANY) != 0)
        throw AttachError(errno, std::string("writing the site map: ") + strerror(errno));
    std::string label = site.provider + ":" + site.name;
    // The file's identity, for the late string reads (before 6.0) and the
    // site index (before 5.15): one stat serves both.
    bool by_address = !kernel_features().bpf_cookie;
    if (!sleepable_ || by_address) {
        struct stat st{};
        if (stat(path.c_str(), &st) != 0) {
            if (by_address)
                throw AttachError(errno, label + " in " + path + ": " + strerror(errno));
        } else {
            if (!sleepable_) {
                std::lock_guard<std::mutex> meta(meta_mu_);
                known_files_.emplace(kernel_file_id(st), path);
            }
            if (by_address)
                index_by_address(st, site.pc_offset, aggregating ? PYUSDT_PROG_AGGREGATE : PYUSDT_PROG_STREAM,
                                 idx, s, label + " in " + path);
        }
    }

    // String reads go to the sleepable programs, which can fault pages in.
    bool string_key = aggregating && agg->key_kind == PYUSDT_KEY_STR && !agg->key_from_start;
    // A program that takes user stacks must be the plain one: a sleepable
    // program may not use a stack map.
    bool reads_strings = (string_key || s.nstrings || exprs.reads_strings) && !exprs.takes_stacks;
    bpf_program *prog = aggregating ? (reads_strings && sleepable_ ? skel_->progs.pyusdt_aggregate_sleepable
                                                                   : skel_->progs.pyusdt_aggregate)
                        : (reads_strings && sleepable_) ? skel_->progs.pyusdt_stream_sleepable
                                                        : skel_->progs.pyusdt_stream;
    if (multi_) {
        pending_.push_back({path, pid, prog, site.pc_offset, site.semaphore_offset, idx, label});
    } else {
        LIBBPF_OPTS(bpf_uprobe_opts, uo);
        uo.ref_ctr_offset = site.semaphore_offset;
        // Without cookies libbpf refuses a non-zero one: sites are found by address there.
        uo.bpf_cookie = kernel_features().bpf_cookie ? idx : 0;
        bpf_link *link = bpf_program__attach_uprobe_opts(prog, pid, path.c_str(), site.pc_offset, &uo);
        if (!link) {
            // errno says it; libbpf's own line (its errno, its names) is for PYUSDT_DEBUG=1.
            int err = errno;
            throw AttachError(err, attach_failed(label, path, err));
        }
        links_.push_back(link);
    }
    next_site_++;
    probe_count_ = std::max(probe_count_, probe_id + 1);
    std::lock_guard<std::mutex> meta(meta_mu_);
    if (probe_strings_.size() <= probe_id)
        probe_strings_.resize(probe_id + 1);
    probe_strings_[probe_id] = string_args;
    if (hold)
        hold_probes_.insert(probe_id);
    return idx;
}

// Without BPF cookies a hit finds its site by (file, offset, program): one
// site per key.  The same site attached again for another process (the same
// library in two -p targets) shares the entry; a different use of the same
// site in one session cannot be told apart at the hit, and is refused.
void Session::index_by_address(const struct stat &st, uint64_t offset, uint32_t prog, uint32_t idx,
                               const pyusdt_site &s, const std::string &where) {
    pyusdt_site_addr key{};
    key.ino = st.st_ino;
    key.offset = offset;
    key.prog = prog;
    int fd = bpf_map__fd(skel_->maps.site_by_addr);
    if (bpf_map_update_elem(fd, &key, &idx, BPF_NOEXIST) == 0)
        return;
    int err = errno;
    uint32_t other = 0;
    pyusdt_site existing{};
    if (err == EEXIST && bpf_map_lookup_elem(fd, &key, &other) == 0 &&
        bpf_map_lookup_elem(bpf_map__fd(skel_->maps.sites), &other, &existing) == 0 &&
        std::memcmp(&existing, &s, sizeof(s)) == 0)
        return;
    if (err == EEXIST)
        throw AttachError(EEXIST, where + ": this kernel (" + kernel_features().release +
                                      ") has no BPF cookies (Linux 5.15 has them), so one probe site can be "
                                      "traced only one way per session");
    throw AttachError(err, where + ": indexing the site: " + strerror(err));
}

void Session::add_tgid(uint32_t tgid) {
    uint8_t one = 1;
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.tgids), &tgid, &one, BPF_ANY) != 0)
        throw std::runtime_error(std::string("adding pid to the filter: ") + strerror(errno));
}

void Session::remove_tgid(uint32_t tgid) {
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.tgids), &tgid);  // ENOENT is fine
}

std::vector<uint32_t> Session::tgids() const {
    std::vector<uint32_t> out;
    int fd = bpf_map__fd(skel_->maps.tgids);
    uint32_t key = 0, next = 0;
    uint32_t *prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        out.push_back(next);
        key = next;
        prev = &key;
    }
    return out;
}

void Session::add_cgroup(uint64_t id, uint32_t set) {
    if (set >= PYUSDT_MAX_CGROUP_SETS)
        throw std::runtime_error("too many cgroup targets (limit " + std::to_string(PYUSDT_MAX_CGROUP_SETS) + ")");
    int fd = bpf_map__fd(skel_->maps.cgroups);
    uint32_t sets = 0;
    bpf_map_lookup_elem(fd, &id, &sets);  // ENOENT: in no set yet
    sets |= 1u << set;
    if (bpf_map_update_elem(fd, &id, &sets, BPF_ANY) != 0) {
        if (errno == E2BIG)
            throw std::runtime_error("too many cgroups traced (limit " + std::to_string(PYUSDT_MAX_CGROUPS) + ")");
        throw std::runtime_error(std::string("adding a cgroup to the filter: ") + strerror(errno));
    }
}

void Session::remove_cgroup(uint64_t id) {
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.cgroups), &id);  // ENOENT is fine
}

void Session::expand(const uint8_t *rec, uint32_t len, std::vector<uint8_t> &rows, std::vector<uint8_t> &urgent) {
    // A short record (usdt_stream.bpf.h) leaves out argument slots: one
    // without strings stops after its site's arguments, and one with strings
    // has them after its last argument, as the record's last
    // string_slots * str_len bytes.  The slots left out read as zeros, as a
    // whole record's unused ones do.
    pyusdt_event head{};
    std::memcpy(&head, rec, std::min<size_t>(len, sizeof(head)));
    bool hold = !hold_probes_.empty() && hold_probes_.count(head.probe_id);
    if (hold && resume_hold(head.pid))
        return;  // resumed here; nothing for the caller to do
    std::vector<uint8_t> &out = hold ? urgent : rows;
    size_t row = row_size();
    size_t at = out.size();
    out.resize(at + row);
    uint8_t *dst = out.data() + at;
    size_t strings = head.nstrings && len >= row - sizeof(pyusdt_event) ? row - sizeof(pyusdt_event) : 0;
    size_t fixed = std::min<size_t>(len - strings, sizeof(pyusdt_event));
    std::memcpy(dst, rec, fixed);
    std::memset(dst + fixed, 0, row - fixed - strings);
    std::memcpy(dst + row - strings, rec + len - strings, strings);
    if (!sleepable_)
        read_strings_late(dst);
    // A string slot holds the string up to its NUL and, after it, whatever
    // the ring buffer held there before: clear that tail so a row never
    // shows bytes of another event.
    size_t slot_len = opts_.str_len;
    for (uint8_t *slot = dst + sizeof(pyusdt_event); slot + slot_len <= dst + row; slot += slot_len) {
        auto *nul = static_cast<uint8_t *>(std::memchr(slot, 0, slot_len));
        if (nul)
            std::memset(nul, 0, slot + slot_len - nul);
    }
}

namespace {

// (dev, inode) of each file /proc/PID/maps names, with one address range of it.
bool mapped_files(uint32_t pid, std::map<std::pair<uint64_t, uint64_t>, std::string> &files) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    if (!maps)
        return false;
    std::string line;
    while (std::getline(maps, line)) {
        std::istringstream in(line);
        std::string range, perms, offset, dev;
        uint64_t ino = 0;
        if (!(in >> range >> perms >> offset >> dev >> ino) || ino == 0)
            continue;
        unsigned maj = 0, min = 0;
        if (sscanf(dev.c_str(), "%x:%x", &maj, &min) != 2)
            continue;
        files.emplace(std::make_pair(uint64_t(makedev(maj, min)), ino), range);
    }
    return true;
}

}  // namespace

bool Session::resume_hold(uint32_t pid) {
    // The caller takes stacks' mappings at each load: it must see them all.
    if (opts_.max_stacks)
        return false;
    std::map<std::pair<uint64_t, uint64_t>, std::string> files;
    if (!mapped_files(pid, files))
        return false;
    std::set<std::pair<uint64_t, uint64_t>> with_notes;
    for (const auto &[id, range] : files) {
        if (no_notes_.count(id))
            continue;
        // Through the process's own view of it (another mount namespace, a deleted file).
        std::string path = "/proc/" + std::to_string(pid) + "/map_files/" + range;
        bool notes = true;  // an object that cannot be read is the caller's to judge
        char magic[4] = {};
        std::ifstream head(path, std::ios::binary);
        if (head && head.read(magic, sizeof(magic)) && std::memcmp(magic, "\177ELF", 4) != 0) {
            notes = false;  // not an ELF object (ld.so.cache, a locale archive): no probes
        } else if (head) {
            try {
                ElfFile elf(path);
                notes = !read_usdt_sites(elf).empty();
            } catch (...) {
            }
        }
        if (notes)
            with_notes.insert(id);
        else
            no_notes_.insert(id);
    }
    std::set<std::pair<uint64_t, uint64_t>> &seen = seen_with_notes_[pid];
    bool all_seen = std::includes(seen.begin(), seen.end(), with_notes.begin(), with_notes.end());
    if (!all_seen) {
        // The caller looks at every object while the process stays stopped.
        seen = std::move(with_notes);
        return false;
    }
    kill(static_cast<pid_t>(pid), SIGCONT);  // a stop still pending is cancelled by it
    holds_resumed_++;
    return true;
}

// The string arguments of this record the program could not read (see
// late_strings.h), read from user space where that is exact.
void Session::read_strings_late(uint8_t *row) {
    auto *e = reinterpret_cast<pyusdt_event *>(row);
    uint32_t failed = e->flags >> PYUSDT_FLAG_READ_FAIL_SHIFT;
    if (!failed || e->probe_id >= probe_strings_.size())
        return;
    const std::vector<int> &args = probe_strings_[e->probe_id];
    size_t len = opts_.str_len;
    for (size_t slot = 0; slot < args.size() && slot < e->nstrings; slot++) {
        int i = args[slot];
        if (!(failed & (1u << i)))
            continue;
        bool truncated = false;
        uint8_t *dst = row + sizeof(pyusdt_event) + slot * len;
        pyusdt_str_file ref{};
        if (len >= sizeof(ref))
            std::memcpy(&ref, dst, sizeof(ref));
        bool read = read_string_late(e->pid, e->args[i], dst, len, truncated);
        if (!read && ref.magic == PYUSDT_STR_FILE_MAGIC) {
            auto file = known_files_.find({ref.dev, ref.ino});
            read = file != known_files_.end() && read_string_from_file(file->second, ref.offset, dst, len, truncated);
        }
        if (!read) {
            dst[0] = 0;  // an empty string (the rest is cleared with the slot's tail)
            continue;
        }
        e->flags &= ~(1u << (PYUSDT_FLAG_READ_FAIL_SHIFT + i));
        if (truncated)
            e->flags |= 1u << (PYUSDT_FLAG_STR_TRUNC_SHIFT + i);
        if (late_strings_.size() <= e->probe_id)
            late_strings_.resize(e->probe_id + 1);
        late_strings_[e->probe_id]++;
    }
}

// Rows the reader's thread moves per pass, and how often (bytes of records)
// it gives ring space back to the producers within a pass.
constexpr size_t kDrainRows = 8192;
// How long the reader's thread sleeps at most without a wake-up.
constexpr int kDrainTimeoutMs = 100;

size_t Session::drain_pass(size_t max_rows) {
    std::lock_guard<std::mutex> ring(ring_mu_);
    std::vector<uint8_t> rows, urgent;
    size_t n;
    {
        std::lock_guard<std::mutex> meta(meta_mu_);
        rows.reserve(std::min<size_t>(max_rows, ring_->pending() / row_size() + 1) * row_size());
        n = ring_->consume(max_rows, std::max<uint64_t>(opts_.ringbuf_bytes / 16, 4096),
                           [&](const uint8_t *rec, uint32_t len) {
                               expand(rec, len, rows, urgent);
                               return true;
                           });
    }
    if (rows.empty() && urgent.empty())
        return n;
    {
        std::lock_guard<std::mutex> q(queue_mu_);
        queued_bytes_ += rows.size();
        if (!rows.empty())
            queue_.push_back(std::move(rows));
        urgent_.insert(urgent_.end(), urgent.begin(), urgent.end());
    }
    rows_cv_.notify_all();
    return n;
}

bool Session::ring_stopped_at_busy() {
    std::lock_guard<std::mutex> ring(ring_mu_);
    return ring_->stopped_at_busy();
}

void Session::drain_loop() {
    for (;;) {
        {
            std::unique_lock<std::mutex> q(queue_mu_);
            // Full: wait for poll() to take rows (the ring fills meanwhile,
            // and the BPF side counts what it cannot write).
            room_cv_.wait(q, [&] { return drainer_stop_ || queued_bytes_ < opts_.queue_bytes; });
            if (drainer_stop_)
                return;
        }
        size_t n = drain_pass(kDrainRows);
        if (n == kDrainRows)
            continue;  // more were there
        if (ring_stopped_at_busy()) {
            // A producer is still writing the record at the head (done
            // within microseconds, unless it was preempted or faults on a
            // string), and the records already behind it will not wake this
            // thread again: the BPF side wakes it once per wakeup_bytes.
            struct timespec pause = {0, 50 * 1000};
            nanosleep(&pause, nullptr);
            continue;
        }
        // Whatever came in during the pass waits for the next wake-up (the
        // BPF side's, once per wakeup_bytes, or after a quiet spell): reading
        // it at once would hand poll() a few rows at a time while the
        // producers run, a pass and a Python batch per handful of records.
        epoll_event ev[2];
        // The timeout only bounds how late a record is seen if a wake-up
        // were ever missed (counted: it should never be).
        int ready = epoll_wait(epfd_, ev, 2, kDrainTimeoutMs);
        if (ready == 0 && opts_.wakeup_bytes && pending_bytes() >= opts_.wakeup_bytes)
            late_wakeups_.fetch_add(1, std::memory_order_relaxed);
    }
}

void Session::start_drainer() {
    if (drainer_started_)
        return;
    drainer_started_ = true;
    drainer_ = std::thread([this] { drain_loop(); });
}

void Session::stop_drainer() {
    if (!drainer_started_)
        return;
    {
        std::lock_guard<std::mutex> q(queue_mu_);
        drainer_stop_ = true;
    }
    room_cv_.notify_all();
    uint64_t one = 1;
    if (write(stop_fd_, &one, sizeof(one)) < 0) {
        // eventfd writes fail only past 2^64-2: the epoll timeout still ends the wait.
    }
    drainer_.join();
    drainer_started_ = false;
}

size_t Session::poll(int timeout_ms, size_t max_events, std::vector<uint8_t> &out) {
    if (max_events == 0)
        return 0;
    start_drainer();
    auto has_rows = [&] { return !urgent_.empty() || !queue_.empty(); };
    std::unique_lock<std::mutex> q(queue_mu_);
    // Rows come from the thread, which the BPF side wakes once per
    // wakeup_bytes (or after a quiet spell): waiting for them gives batches
    // of that size, where reading the ring at once would give a few rows
    // per call while the producers run.
    if (!has_rows() && timeout_ms != 0) {
        auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        if (timeout_ms < 0)
            rows_cv_.wait(q, has_rows);
        else
            rows_cv_.wait_until(q, until, has_rows);
    }
    if (queue_.empty()) {
        // No rows queued (urgent ones maybe) at the end of the wait: read
        // the ring here, so that a record committed before the call ended
        // is returned by it (no wake-up may be due for it yet).  Urgent rows
        // alone are not enough: a caller that sees no events after its
        // targets exited stops reading.
        q.unlock();
        drain_pass(max_events);
        q.lock();
    }
    size_t row = row_size(), n = 0;
    size_t urgent_rows = std::min(urgent_.size() / row, max_events);
    if (urgent_rows) {
        out.insert(out.end(), urgent_.begin(), urgent_.begin() + urgent_rows * row);
        urgent_.erase(urgent_.begin(), urgent_.begin() + urgent_rows * row);
        n += urgent_rows;
    }
    while (n < max_events && !queue_.empty()) {
        std::vector<uint8_t> &front = queue_.front();
        size_t avail = (front.size() - front_taken_) / row;
        if (out.empty() && front_taken_ == 0 && avail <= max_events - n) {
            // A whole chunk into an empty batch: handed over, not copied,
            // and returned alone (at most max_events, as promised).
            out.swap(front);
            queued_bytes_ -= avail * row;
            n += avail;
            queue_.pop_front();
            break;
        }
        size_t take = std::min(avail, max_events - n);
        out.insert(out.end(), front.begin() + front_taken_, front.begin() + front_taken_ + take * row);
        front_taken_ += take * row;
        queued_bytes_ -= take * row;
        n += take;
        if (front_taken_ == front.size()) {
            queue_.pop_front();
            front_taken_ = 0;
        }
    }
    q.unlock();
    room_cv_.notify_all();
    return n;
}

namespace {

// A per-CPU map value needs one slot per possible CPU.
size_t possible_cpus() {
    int n = libbpf_num_possible_cpus();
    return n > 0 ? static_cast<size_t>(n) : 1;
}

// Entries 0..n-1 of a per-CPU array whose values are structs of u64
// counters (pyusdt_probe_stats, pyusdt_agg_counters), summed over CPUs.
template <typename Counters>
std::vector<Counters> sum_counters(int fd, uint32_t n) {
    static_assert(std::is_trivially_copyable_v<Counters> && sizeof(Counters) % sizeof(uint64_t) == 0,
                  "a struct of u64 counters");
    constexpr size_t kWords = sizeof(Counters) / sizeof(uint64_t);
    std::vector<Counters> per_cpu(possible_cpus()), out(n);
    for (uint32_t id = 0; id < n; id++) {
        if (bpf_map_lookup_elem(fd, &id, per_cpu.data()) != 0)
            continue;
        uint64_t total[kWords], one[kWords];
        std::memcpy(total, &out[id], sizeof(total));
        for (const Counters &c : per_cpu) {
            std::memcpy(one, &c, sizeof(one));
            for (size_t w = 0; w < kWords; w++)
                total[w] += one[w];
        }
        std::memcpy(&out[id], total, sizeof(total));
    }
    return out;
}

}  // namespace

std::vector<pyusdt_probe_stats> Session::stats() const {
    auto out = sum_counters<pyusdt_probe_stats>(bpf_map__fd(skel_->maps.stats), probe_count_);
    // A string the reader read after all is not lost.
    std::lock_guard<std::mutex> meta(meta_mu_);
    for (size_t id = 0; id < out.size() && id < late_strings_.size(); id++)
        out[id].str_fail -= std::min(out[id].str_fail, late_strings_[id]);
    return out;
}

namespace {

// Per-CPU values of one row folded into one: counts and sums add up, min and
// max come from the CPUs that saw the key (the others hold zeros).
template <typename Row>
void fold(const std::vector<pyusdt_agg_value> &per_cpu, Row &row) {
    row.count = 0;
    row.sum = 0;
    bool seen = false;
    for (const pyusdt_agg_value &v : per_cpu) {
        if (!v.count)
            continue;
        row.count += v.count;
        row.sum += v.sum;
        row.min = seen ? std::min(row.min, v.min) : v.min;
        row.max = seen ? std::max(row.max, v.max) : v.max;
        seen = true;
    }
}

template <typename Key, typename Row, typename Fill>
void read_rows(int fd, std::vector<Row> &out, Fill fill) {
    std::vector<pyusdt_agg_value> per_cpu(possible_cpus());
    Key key{}, next{};
    Key *prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        if (bpf_map_lookup_elem(fd, &key, per_cpu.data()) != 0)
            continue;  // deleted meanwhile
        Row row{};
        fill(key, row);
        fold(per_cpu, row);
        if (row.count)
            out.push_back(row);
    }
}

}  // namespace

std::vector<AggRow> Session::agg_rows() const {
    std::vector<AggRow> out;
    read_rows<pyusdt_agg_key>(bpf_map__fd(skel_->maps.agg_int), out,
                              [](const pyusdt_agg_key &k, AggRow &r) {
                                  r.agg_id = k.agg_id;
                                  r.bucket = k.bucket;
                                  r.key = k.key;
                              });
    read_rows<pyusdt_agg_str_key>(bpf_map__fd(skel_->maps.agg_str), out,
                                  [](const pyusdt_agg_str_key &k, AggRow &r) {
                                      r.agg_id = k.agg_id;
                                      r.bucket = k.bucket;
                                      std::memcpy(r.str_key, k.key, sizeof(r.str_key));
                                      r.str_key[sizeof(r.str_key) - 1] = 0;
                                      r.is_str = 1;
                                  });
    // The flat rows: bucket rows, then the count/sum/min/max row.
    int fd = bpf_map__fd(skel_->maps.agg_flat);
    std::vector<pyusdt_agg_value> per_cpu(possible_cpus());
    for (uint32_t idx = 0; idx < opts_.flat_aggs * PYUSDT_FLAT_ROWS; idx++) {
        if (bpf_map_lookup_elem(fd, &idx, per_cpu.data()) != 0)
            continue;
        AggRow row{};
        row.agg_id = idx / PYUSDT_FLAT_ROWS;
        uint32_t bucket = idx % PYUSDT_FLAT_ROWS;
        row.bucket = bucket == PYUSDT_LOG2_BUCKETS ? PYUSDT_STATS_ROW : bucket;
        fold(per_cpu, row);
        if (row.count)
            out.push_back(row);
    }
    return out;
}

std::vector<AggTupleRow> Session::agg_tuple_rows() const {
    std::vector<AggTupleRow> out;
    read_rows<pyusdt_agg_tuple_key>(bpf_map__fd(skel_->maps.agg_tuple), out,
                                    [](const pyusdt_agg_tuple_key &k, AggTupleRow &r) {
                                        r.agg_id = k.agg_id;
                                        r.bucket = k.bucket;
                                        std::memcpy(r.key, k.key, sizeof(r.key));
                                    });
    read_rows<pyusdt_agg_tuple_small_key>(bpf_map__fd(skel_->maps.agg_tuple_small), out,
                                          [](const pyusdt_agg_tuple_small_key &k, AggTupleRow &r) {
                                              r.agg_id = k.agg_id;
                                              r.bucket = k.bucket;
                                              std::memcpy(r.key, k.key, sizeof(k.key));  // the rest stays 0
                                          });
    return out;
}

std::vector<uint64_t> Session::ustack(uint32_t id) const {
    std::vector<uint64_t> frames(PYUSDT_USTACK_DEPTH);
    if (!opts_.max_stacks || bpf_map_lookup_elem(bpf_map__fd(skel_->maps.ustacks), &id, frames.data()) != 0)
        return {};
    while (!frames.empty() && frames.back() == 0)
        frames.pop_back();
    return frames;
}

void Session::set_expr(uint32_t id, const pyusdt_expr &program) {
    if (id == 0 || id >= PYUSDT_MAX_EXPR_PROGS)
        throw AttachError(ENOSPC, "too many expression programs (limit " +
                                      std::to_string(PYUSDT_MAX_EXPR_PROGS - 1) + ")");
    if (bpf_map_update_elem(bpf_map__fd(skel_->maps.exprs), &id, &program, BPF_ANY) != 0)
        throw AttachError(errno, std::string("writing the expression map: ") + strerror(errno));
}

std::vector<pyusdt_agg_counters> Session::agg_counters(uint32_t n) const {
    return sum_counters<pyusdt_agg_counters>(bpf_map__fd(skel_->maps.agg_counters),
                                             std::min<uint32_t>(n, PYUSDT_MAX_AGGS));
}

std::vector<uint64_t> Session::pending_starts(uint32_t n) const {
    std::vector<uint64_t> out(n);
    int fd = bpf_map__fd(skel_->maps.starts);
    pyusdt_start_key key{}, next{};
    pyusdt_start_key *prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        key = next;
        prev = &key;
        if (key.agg_id < n)
            out[key.agg_id]++;
    }
    return out;
}

}  // namespace pyusdt
