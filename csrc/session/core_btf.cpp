#include "session/core_btf.h"
#include "session/memfd.h"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pyusdt {

namespace {

// Bumped when what is written changes, so older cache files are not read.
constexpr const char *kFormat = "pyusdt-core-btf-1";
// Cache files are named kCachePrefix + kernel build ID + "-" + key + kCacheSuffix.
constexpr const char *kCachePrefix = "core-";
constexpr const char *kCacheSuffix = ".btf";
// Cache files kept in a directory: one is made per (kernel build, pyusdt
// build), about a kilobyte each, so kernel and pyusdt upgrades would
// otherwise add files forever.  A file pruned while still wanted (a machine
// booting more kernels than this in turn) is only made again, in ~10 ms.
constexpr size_t kKeptCacheFiles = 8;

// A member of a planned struct or union, at its offset in the kernel's type.
struct Field {
    std::string name;
    uint32_t bit_offset = 0;
    uint32_t bit_size = 0;
    int type = -1;  // plan index, -1 for void
};

// One type of the minimal BTF; plan entry i becomes type id i + 1, so
// entries refer to each other (and to themselves, through pointers) before
// any is written.
struct PlanType {
    int kind = 0;  // BTF_KIND_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM
    std::string name;
    uint32_t size = 0;
    uint32_t int_encoding = 0;
    int ref = -1;  // PTR: pointee; ARRAY: element
    int index = -1;  // ARRAY: index type
    uint32_t nelems = 0;
    std::vector<Field> fields;
};

// A kernel type this file does not project (a bitfield-like integer, a
// float, ...): the kernel's own BTF is used instead.
struct Unsupported {};

const btf_type *skip_mods(const struct btf *b, uint32_t &id) {
    const btf_type *t = btf__type_by_id(b, id);
    while (t && (btf_is_mod(t) || btf_is_typedef(t))) {
        id = t->type;
        t = btf__type_by_id(b, id);
    }
    return t;
}

std::string name_of(const struct btf *b, const btf_type *t) {
    const char *n = btf__name_by_offset(b, t->name_off);
    return n ? n : "";
}

// "task_struct___pyusdt" -> "task_struct": libbpf's flavor convention.
std::string essential(const std::string &name) {
    size_t at = name.find("___");
    return at == std::string::npos ? name : name.substr(0, at);
}

class Planner {
public:
    Planner(const struct btf *program, const struct btf *kernel) : local_(program), kern_(kernel) {}

    std::vector<PlanType> plan() {
        // The kernel's composites by name, for the names the program uses:
        // one pass over the kernel's types instead of one per name.
        std::unordered_map<std::string, std::vector<uint32_t>> wanted;
        uint32_t nlocal = btf__type_cnt(local_);
        for (uint32_t id = 1; id < nlocal; id++) {
            const btf_type *t = btf__type_by_id(local_, id);
            if (btf_is_composite(t) && t->name_off)
                wanted[essential(name_of(local_, t))];
        }
        uint32_t nkern = btf__type_cnt(kern_);
        for (uint32_t id = 1; id < nkern; id++) {
            const btf_type *t = btf__type_by_id(kern_, id);
            if (!btf_is_composite(t) || !t->name_off)
                continue;
            auto it = wanted.find(btf__name_by_offset(kern_, t->name_off));
            if (it != wanted.end())
                it->second.push_back(id);
        }
        for (uint32_t id = 1; id < nlocal; id++) {
            const btf_type *t = btf__type_by_id(local_, id);
            if (!btf_is_composite(t) || !t->name_off)
                continue;
            for (uint32_t targ : wanted[essential(name_of(local_, t))])
                if (btf_kind(btf__type_by_id(kern_, targ)) == btf_kind(t))
                    merge(composite(targ), id, targ);
        }
        return std::move(plan_);
    }

private:
    int composite(uint32_t targ) {
        auto it = composites_.find(targ);
        if (it != composites_.end())
            return it->second;
        const btf_type *t = btf__type_by_id(kern_, targ);
        PlanType p;
        p.kind = btf_kind(t);
        p.name = name_of(kern_, t);
        p.size = t->size;
        plan_.push_back(std::move(p));
        return composites_[targ] = static_cast<int>(plan_.size()) - 1;
    }

    // Adds to plan entry `entry` (the kernel's composite `targ`) each member
    // the program's composite `local` declares, at the kernel's offset; a
    // member the kernel lacks is left out, as libbpf would find it missing.
    void merge(int entry, uint32_t local, uint32_t targ) {
        if (!merged_.insert({local, targ}).second)
            return;  // a pointer back to a type being merged
        const btf_type *lt = btf__type_by_id(local_, local);
        const btf_member *lm = btf_members(lt);
        for (int i = 0; i < btf_vlen(lt); i++) {
            std::string name = btf__name_by_offset(local_, lm[i].name_off);
            if (name.empty())
                throw Unsupported{};  // the program's types have no anonymous members
            uint32_t bit_offset = 0, bit_size = 0, member_type = 0;
            if (!find_member(targ, name, 0, bit_offset, bit_size, member_type))
                continue;
            // Made even when another flavor of this type declared the member:
            // its type's members (through a pointer) may differ.
            int type = member(lm[i].type, member_type);
            bool have = false;
            for (const Field &f : plan_[entry].fields)
                have = have || f.name == name;
            if (have)
                continue;
            Field f;
            f.name = name;
            f.bit_offset = bit_offset;
            f.bit_size = bit_size;
            f.type = type;
            plan_[entry].fields.push_back(std::move(f));
        }
    }

    // The kernel member `name` of composite `targ`, looking inside its
    // anonymous members as libbpf does; its offset from `targ`'s start.
    bool find_member(uint32_t targ, const std::string &name, uint32_t base, uint32_t &bit_offset,
                     uint32_t &bit_size, uint32_t &type) {
        const btf_type *t = btf__type_by_id(kern_, targ);
        const btf_member *m = btf_members(t);
        for (int i = 0; i < btf_vlen(t); i++) {
            uint32_t off = base + btf_member_bit_offset(t, i);
            if (m[i].name_off == 0) {
                uint32_t inner = m[i].type;
                const btf_type *it = skip_mods(kern_, inner);
                if (it && btf_is_composite(it) && find_member(inner, name, off, bit_offset, bit_size, type))
                    return true;
                continue;
            }
            if (name == btf__name_by_offset(kern_, m[i].name_off)) {
                bit_offset = off;
                bit_size = btf_member_bitfield_size(t, i);
                type = m[i].type;
                return true;
            }
        }
        return false;
    }

    // The type of a member: the kernel's, with composites cut down to what
    // the program's own type of the member declares.
    int member(uint32_t local, uint32_t targ) {
        const btf_type *lt = skip_mods(local_, local);
        const btf_type *tt = skip_mods(kern_, targ);
        if (!tt)
            throw Unsupported{};
        if (targ == 0)
            return -1;  // void
        switch (btf_kind(tt)) {
        case BTF_KIND_INT: {
            auto it = scalars_.find(targ);
            if (it != scalars_.end())
                return it->second;
            if (btf_int_offset(tt) || btf_int_bits(tt) != tt->size * 8)
                throw Unsupported{};
            PlanType p;
            p.kind = BTF_KIND_INT;
            p.name = name_of(kern_, tt);
            p.size = tt->size;
            p.int_encoding = btf_int_encoding(tt);
            return scalars_[targ] = add(std::move(p));
        }
        case BTF_KIND_ENUM:
        case BTF_KIND_ENUM64: {
            auto it = scalars_.find(targ);
            if (it != scalars_.end())
                return it->second;
            PlanType p;  // its values are not read: a sized, named enum suffices
            p.kind = BTF_KIND_ENUM;
            p.name = name_of(kern_, tt);
            p.size = tt->size;
            return scalars_[targ] = add(std::move(p));
        }
        case BTF_KIND_PTR: {
            uint32_t lp = lt && btf_is_ptr(lt) ? lt->type : 0, tp = tt->type;
            const btf_type *lpt = lp ? skip_mods(local_, lp) : nullptr;
            const btf_type *tpt = skip_mods(kern_, tp);
            int pointee = -1;
            if (lpt && tpt && btf_is_composite(lpt) && btf_kind(lpt) == btf_kind(tpt)) {
                pointee = composite(tp);
                merge(pointee, lp, tp);
            }
            PlanType p;
            p.kind = BTF_KIND_PTR;
            p.ref = pointee;
            return add(std::move(p));
        }
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION: {
            int entry = composite(targ);
            if (lt && btf_is_composite(lt))
                merge(entry, local, targ);
            return entry;
        }
        case BTF_KIND_ARRAY: {
            const struct btf_array *ta = btf_array(tt);
            uint32_t le = lt && btf_is_array(lt) ? btf_array(lt)->type : 0;
            PlanType index;
            index.kind = BTF_KIND_INT;
            index.name = "__pyusdt_index";
            index.size = 4;
            int index_id = add(std::move(index));
            int elem = member(le, ta->type);
            PlanType p;
            p.kind = BTF_KIND_ARRAY;
            p.ref = elem;
            p.index = index_id;
            p.nelems = ta->nelems;
            return add(std::move(p));
        }
        default:
            throw Unsupported{};
        }
    }

    int add(PlanType p) {
        plan_.push_back(std::move(p));
        return static_cast<int>(plan_.size()) - 1;
    }

    const struct btf *local_, *kern_;
    std::vector<PlanType> plan_;
    std::map<uint32_t, int> composites_, scalars_;
    std::set<std::pair<uint32_t, uint32_t>> merged_;
};

// The plan as raw BTF, or empty when libbpf refused a type.
std::vector<char> write_btf(const std::vector<PlanType> &plan) {
    struct btf *out = btf__new_empty();
    if (!out)
        return {};
    auto id = [](int index) { return index < 0 ? 0 : index + 1; };
    bool ok = true;
    for (const PlanType &p : plan) {
        int r = -1;
        const char *name = p.name.empty() ? nullptr : p.name.c_str();
        switch (p.kind) {
        case BTF_KIND_INT:
            r = btf__add_int(out, p.name.c_str(), p.size, p.int_encoding);
            break;
        case BTF_KIND_ENUM:
            r = btf__add_enum(out, name, p.size);
            break;
        case BTF_KIND_PTR:
            r = btf__add_ptr(out, id(p.ref));
            break;
        case BTF_KIND_ARRAY:
            r = btf__add_array(out, id(p.index), id(p.ref), p.nelems);
            break;
        case BTF_KIND_STRUCT:
        case BTF_KIND_UNION:
            r = p.kind == BTF_KIND_STRUCT ? btf__add_struct(out, name, p.size) : btf__add_union(out, name, p.size);
            for (const Field &f : p.fields)
                if (r >= 0 && btf__add_field(out, f.name.c_str(), id(f.type), f.bit_offset, f.bit_size) < 0)
                    r = -1;
            break;
        }
        ok = ok && r >= 0;
    }
    std::vector<char> raw;
    uint32_t size = 0;
    const void *data = ok ? btf__raw_data(out, &size) : nullptr;
    if (data)
        raw.assign(static_cast<const char *>(data), static_cast<const char *>(data) + size);
    btf__free(out);
    return raw;
}

// The running kernel's GNU build ID, from its notes, in hex: "" if it has none.
std::string kernel_build_id() {
    FILE *f = fopen("/sys/kernel/notes", "re");
    if (!f)
        return "";
    std::vector<unsigned char> notes(4096);
    size_t n = fread(notes.data(), 1, notes.size(), f);
    fclose(f);
    auto align4 = [](size_t v) { return (v + 3) & ~size_t(3); };
    for (size_t at = 0; at + 12 <= n;) {
        uint32_t namesz, descsz, type;
        memcpy(&namesz, &notes[at], 4);
        memcpy(&descsz, &notes[at + 4], 4);
        memcpy(&type, &notes[at + 8], 4);
        size_t name = at + 12, desc = name + align4(namesz), next = desc + align4(descsz);
        if (next > n || next <= at)
            break;
        if (type == 3 /* NT_GNU_BUILD_ID */ && namesz == 4 && memcmp(&notes[name], "GNU", 4) == 0) {
            std::string hex;
            char byte[3];
            for (size_t i = 0; i < descsz; i++) {
                snprintf(byte, sizeof(byte), "%02x", notes[desc + i]);
                hex += byte;
            }
            return hex;
        }
        at = next;
    }
    return "";
}

uint64_t fnv1a(const void *data, size_t size, uint64_t h = 1469598103934665603ull) {
    const unsigned char *p = static_cast<const unsigned char *>(data);
    for (size_t i = 0; i < size; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// True for a directory of this user's that no one else can write.
bool private_dir(const std::string &path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH));
}

// $PYUSDT_CACHE_DIR, else $XDG_CACHE_HOME/pyusdt, else ~/.cache/pyusdt;
// made if missing, and "" unless it is private to this user (a file
// another user could write must not decide where the program reads).
std::string cache_dir() {
    std::string dir;
    if (const char *own = getenv("PYUSDT_CACHE_DIR"); own && *own) {
        dir = own;
    } else {
        std::string base;
        struct stat home_st;
        const char *home = getenv("HOME");
        if (const char *xdg = getenv("XDG_CACHE_HOME"); xdg && *xdg)
            base = xdg;
        else if (home && *home && stat(home, &home_st) == 0 && home_st.st_uid == geteuid())
            base = std::string(home) + "/.cache";  // only in a home of this user's own
        else
            return "";
        mkdir(base.c_str(), 0700);
        dir = base + "/pyusdt";
    }
    mkdir(dir.c_str(), 0700);
    return private_dir(dir) ? dir : "";
}

bool private_file(const std::string &path) {
    struct stat st;
    return lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH)) && st.st_size > 0;
}

bool write_file(const std::string &path, const std::vector<char> &raw) {
    std::string tmp = path + ".XXXXXX";
    int fd = mkstemp(tmp.data());
    if (fd < 0)
        return false;
    bool ok = write(fd, raw.data(), raw.size()) == static_cast<ssize_t>(raw.size());
    ok = close(fd) == 0 && ok;
    if (ok && rename(tmp.c_str(), path.c_str()) == 0)
        return true;
    unlink(tmp.c_str());
    return false;
}

bool is_cache_file(const std::string &name) {
    size_t prefix = strlen(kCachePrefix), suffix = strlen(kCacheSuffix);
    return name.size() > prefix + suffix && name.compare(0, prefix, kCachePrefix) == 0 &&
           name.compare(name.size() - suffix, suffix, kCacheSuffix) == 0;
}

// Removes the cache files of `dir` beyond the kKeptCacheFiles last used
// (read or written: the later of atime and mtime; atime moves at most
// daily under relatime, which is fine at this scale).  `keep` is never
// removed: the file this process just wrote.
void prune_cache(const std::string &dir, const std::string &keep) {
    DIR *d = opendir(dir.c_str());
    if (!d)
        return;
    std::vector<std::pair<int64_t, std::string>> files;  // (last use, path)
    while (struct dirent *e = readdir(d)) {
        if (!is_cache_file(e->d_name))
            continue;
        std::string path = dir + "/" + e->d_name;
        struct stat st;
        if (path == keep || lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        files.emplace_back(std::max<int64_t>(st.st_atime, st.st_mtime), path);
    }
    closedir(d);
    if (files.size() < kKeptCacheFiles)
        return;
    std::sort(files.begin(), files.end(), std::greater<>());  // most recently used first
    for (size_t i = kKeptCacheFiles - 1; i < files.size(); i++)
        unlink(files[i].second.c_str());
}

// For a process that cannot keep a cache: the BTF in memory, under a path.
std::string memfd_path(const std::vector<char> &raw) {
    int fd = make_memfd("pyusdt-core-btf");
    if (fd < 0)
        return "";
    if (write(fd, raw.data(), raw.size()) != static_cast<ssize_t>(raw.size())) {
        close(fd);
        return "";
    }
    return "/proc/self/fd/" + std::to_string(fd);  // open for the process's lifetime
}

std::mutex g_mutex;
bool g_made = false;
std::string g_path, g_cache_file;

std::string make_path(const struct btf *program) {
    const char *mode = getenv("PYUSDT_CORE_BTF");
    if (mode && strcmp(mode, "kernel") == 0)
        return "";
    uint32_t size = 0;
    const void *raw = btf__raw_data(program, &size);
    if (!raw)
        return "";
    struct utsname uts;
    uname(&uts);
    uint64_t key = fnv1a(kFormat, strlen(kFormat));
    key = fnv1a(raw, size, key);
    key = fnv1a(uts.release, strlen(uts.release), key);
    std::string build_id = kernel_build_id(), dir = build_id.empty() ? "" : cache_dir();
    if (!dir.empty()) {
        char name[64];
        snprintf(name, sizeof(name), "-%016llx", static_cast<unsigned long long>(key));
        g_cache_file = dir + "/" + kCachePrefix + build_id + name + kCacheSuffix;
        if (private_file(g_cache_file))
            return g_cache_file;
    }
    struct btf *kernel = btf__load_vmlinux_btf();
    if (!kernel)
        return "";
    std::vector<char> out;
    try {
        out = write_btf(Planner(program, kernel).plan());
    } catch (const Unsupported &) {
        out.clear();
    }
    btf__free(kernel);
    if (out.empty())
        return "";
    if (!g_cache_file.empty() && write_file(g_cache_file, out)) {
        prune_cache(dir, g_cache_file);
        return g_cache_file;
    }
    g_cache_file.clear();
    return memfd_path(out);
}

}  // namespace

std::optional<std::string> core_btf_known() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_made)
        return std::nullopt;
    return g_path;
}

std::string core_btf_path(const struct btf *program_btf) {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_made) {
        g_path = make_path(program_btf);
        g_made = true;
    }
    return g_path;
}

void core_btf_failed() {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (!g_cache_file.empty())
        unlink(g_cache_file.c_str());
    g_cache_file.clear();
    g_path.clear();
    g_made = true;
}

}  // namespace pyusdt
