#include "elf/elf_file.h"

#include "elf/arch_x86_64.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pyusdt {

namespace {
size_t align4(size_t n) { return (n + 3) & ~size_t(3); }
}  // namespace

ElfFile::ElfFile(const std::string &path) : path_(path) {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever;
    // it is refused just below, as every file that is not a regular one.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        throw ElfError(err == ENOENT ? ElfError::kNotFound : ElfError::kUnreadable,
                       path + ": " + std::strerror(err));
    }
    struct stat st {};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw ElfError(ElfError::kNotElf, path + ": not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ < sizeof(Elf64_Ehdr)) {
        ::close(fd);
        throw ElfError(ElfError::kNotElf, path + ": not an ELF file");
    }
    void *m = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (m == MAP_FAILED)
        throw ElfError(ElfError::kUnreadable, path + ": mmap: " + std::strerror(errno));
    data_ = static_cast<const uint8_t *>(m);
    mapped_ = true;
    try {
        load_header();
    } catch (...) {
        munmap(const_cast<uint8_t *>(data_), size_);
        throw;
    }
}

ElfFile::ElfFile(std::string name, const uint8_t *data, size_t size)
    : path_(std::move(name)), data_(data), size_(size) {
    if (size_ < sizeof(Elf64_Ehdr))
        throw ElfError(ElfError::kNotElf, path_ + ": not an ELF file");
    load_header();
}

void ElfFile::load_header() {
    ehdr_ = read_at<Elf64_Ehdr>(0);
    const Elf64_Ehdr &h = ehdr_;
    auto fail = [&](const std::string &why) { throw ElfError(ElfError::kNotElf, path_ + ": " + why); };
    if (std::memcmp(h.e_ident, ELFMAG, SELFMAG) != 0)
        fail("not an ELF file");
    if (h.e_ident[EI_CLASS] != arch::kElfClass || h.e_ident[EI_DATA] != arch::kElfData)
        fail("not a 64-bit little-endian ELF file");
    if (h.e_machine != arch::kElfMachine)
        fail(std::string("not an ") + arch::kElfMachineName + " ELF file");
    if (!in_bounds(h.e_phoff, uint64_t(h.e_phnum) * sizeof(Elf64_Phdr)) ||
        !in_bounds(h.e_shoff, uint64_t(h.e_shnum) * sizeof(Elf64_Shdr)))
        fail("truncated ELF headers");
}

ElfFile::~ElfFile() {
    if (mapped_)
        munmap(const_cast<uint8_t *>(data_), size_);
}

template <class T>
T ElfFile::read_at(uint64_t off) const {
    T v;
    std::memcpy(&v, data_ + off, sizeof(T));
    return v;
}

Elf64_Shdr ElfFile::section(unsigned i) const {
    return read_at<Elf64_Shdr>(ehdr_.e_shoff + uint64_t(i) * sizeof(Elf64_Shdr));
}

std::string_view ElfFile::section_name(const Elf64_Shdr &s) const {
    if (ehdr_.e_shstrndx >= ehdr_.e_shnum)
        return {};
    Elf64_Shdr strtab = section(ehdr_.e_shstrndx);
    if (!in_bounds(strtab.sh_offset, strtab.sh_size) || s.sh_name >= strtab.sh_size)
        return {};
    const char *base = reinterpret_cast<const char *>(data_ + strtab.sh_offset);
    return std::string_view(base + s.sh_name, strnlen(base + s.sh_name, strtab.sh_size - s.sh_name));
}

std::optional<uint64_t> ElfFile::vaddr_to_offset(uint64_t vaddr) const {
    for (unsigned i = 0; i < ehdr_.e_phnum; i++) {
        auto ph = read_at<Elf64_Phdr>(ehdr_.e_phoff + uint64_t(i) * sizeof(Elf64_Phdr));
        if (ph.p_type != PT_LOAD)
            continue;
        if (vaddr >= ph.p_vaddr && vaddr - ph.p_vaddr < ph.p_memsz)
            return vaddr - ph.p_vaddr + ph.p_offset;
    }
    return std::nullopt;
}

std::optional<uint64_t> ElfFile::section_addr(std::string_view name) const {
    for (unsigned i = 0; i < ehdr_.e_shnum; i++) {
        Elf64_Shdr sh = section(i);
        if (section_name(sh) == name)
            return sh.sh_addr;
    }
    return std::nullopt;
}

std::vector<Elf64_Shdr> ElfFile::distinct_sections(bool (*wanted)(uint32_t type)) const {
    std::vector<Elf64_Shdr> out;
    std::map<uint64_t, uint64_t> taken;  // start -> end of each section kept
    for (unsigned i = 0; i < ehdr_.e_shnum; i++) {
        Elf64_Shdr sh = section(i);
        if (!wanted(sh.sh_type) || sh.sh_size == 0 || !in_bounds(sh.sh_offset, sh.sh_size))
            continue;
        uint64_t start = sh.sh_offset, end = sh.sh_offset + sh.sh_size;
        auto next = taken.lower_bound(start);
        if (next != taken.end() && next->first < end)
            continue;
        if (next != taken.begin() && std::prev(next)->second > start)
            continue;
        taken.emplace(start, end);
        out.push_back(sh);
    }
    return out;
}

void ElfFile::index_symbols() const {
    symbols_ = std::make_unique<std::unordered_map<std::string_view, uint64_t>>();
    auto is_symtab = [](uint32_t t) { return t == SHT_SYMTAB || t == SHT_DYNSYM; };
    for (const Elf64_Shdr &sh : distinct_sections(is_symtab)) {
        if (sh.sh_link >= ehdr_.e_shnum)
            continue;
        Elf64_Shdr strtab = section(sh.sh_link);
        if (!in_bounds(strtab.sh_offset, strtab.sh_size))
            continue;
        const char *strs = reinterpret_cast<const char *>(data_ + strtab.sh_offset);
        std::vector<Elf64_Sym> syms(sh.sh_size / sizeof(Elf64_Sym));
        for (size_t k = 0; k < syms.size(); k++)
            syms[k] = read_at<Elf64_Sym>(sh.sh_offset + k * sizeof(Elf64_Sym));

        // Each name ends at the first NUL at or after it.  Found in order of
        // name offset, one NUL serves every name that starts before it, so
        // the string table is scanned once, however many symbols point into
        // it (a crafted table may point every symbol at one unterminated run).
        std::vector<size_t> order(syms.size());
        for (size_t k = 0; k < order.size(); k++)
            order[k] = k;
        std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return syms[a].st_name < syms[b].st_name; });
        std::vector<std::string_view> names(syms.size());
        uint64_t nul = 0;
        bool have_nul = false;
        for (size_t k : order) {
            uint64_t start = syms[k].st_name;
            if (start >= strtab.sh_size)
                break;
            if (!have_nul || nul < start) {
                const void *hit = std::memchr(strs + start, 0, strtab.sh_size - start);
                if (!hit)
                    break;  // unterminated from here to the end of the table
                nul = static_cast<uint64_t>(static_cast<const char *>(hit) - strs);
                have_nul = true;
            }
            names[k] = std::string_view(strs + start, nul - start);
        }
        // In table order, so the first definition of a name wins.
        for (size_t k = 0; k < syms.size(); k++)
            if (syms[k].st_shndx != SHN_UNDEF && syms[k].st_name < strtab.sh_size &&
                names[k].data() != nullptr)
                symbols_->emplace(names[k], syms[k].st_value);
    }
}

std::optional<uint64_t> ElfFile::symbol_value(std::string_view name) const {
    if (!symbols_)
        index_symbols();
    auto it = symbols_->find(name);
    if (it == symbols_->end())
        return std::nullopt;
    return it->second;
}

std::vector<ElfFile::Note> ElfFile::notes() const {
    std::vector<Note> out;
    for (const Elf64_Shdr &sh : distinct_sections([](uint32_t t) { return t == SHT_NOTE; })) {
        const uint8_t *p = data_ + sh.sh_offset;
        size_t left = sh.sh_size;
        while (left >= sizeof(Elf64_Nhdr)) {
            Elf64_Nhdr nh;
            std::memcpy(&nh, p, sizeof(nh));
            size_t name_sz = align4(nh.n_namesz), desc_sz = align4(nh.n_descsz);
            if (sizeof(nh) + name_sz > left || desc_sz > left - sizeof(nh) - name_sz)
                break;  // malformed: stop at what was readable
            const char *name = reinterpret_cast<const char *>(p + sizeof(nh));
            std::string_view owner(name, nh.n_namesz ? strnlen(name, nh.n_namesz) : 0);
            std::string_view desc(reinterpret_cast<const char *>(p + sizeof(nh) + name_sz), nh.n_descsz);
            out.push_back({nh.n_type, owner, desc});
            p += sizeof(nh) + name_sz + desc_sz;
            left -= sizeof(nh) + name_sz + desc_sz;
        }
    }
    return out;
}

}  // namespace pyusdt
