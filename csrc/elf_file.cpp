#include "elf_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pyusdt {

namespace {
size_t align4(size_t n) { return (n + 3) & ~size_t(3); }
}  // namespace

ElfFile::ElfFile(const std::string &path) : path_(path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
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
    auto fail = [&](const char *why) { throw ElfError(ElfError::kNotElf, path_ + ": " + why); };
    if (std::memcmp(h.e_ident, ELFMAG, SELFMAG) != 0)
        fail("not an ELF file");
    if (h.e_ident[EI_CLASS] != ELFCLASS64 || h.e_ident[EI_DATA] != ELFDATA2LSB)
        fail("not a 64-bit little-endian ELF file");
    if (h.e_machine != EM_X86_64)
        fail("not an x86-64 ELF file");
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

std::optional<uint64_t> ElfFile::symbol_value(std::string_view name) const {
    unsigned n = ehdr_.e_shnum;
    for (unsigned i = 0; i < n; i++) {
        Elf64_Shdr sh = section(i);
        if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
            continue;
        if (sh.sh_link >= n || !in_bounds(sh.sh_offset, sh.sh_size))
            continue;
        Elf64_Shdr strtab = section(sh.sh_link);
        if (!in_bounds(strtab.sh_offset, strtab.sh_size))
            continue;
        const char *strs = reinterpret_cast<const char *>(data_ + strtab.sh_offset);
        size_t count = sh.sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < count; k++) {
            auto sym = read_at<Elf64_Sym>(sh.sh_offset + k * sizeof(Elf64_Sym));
            if (sym.st_name >= strtab.sh_size || sym.st_shndx == SHN_UNDEF)
                continue;
            const char *s = strs + sym.st_name;
            if (name == std::string_view(s, strnlen(s, strtab.sh_size - sym.st_name)))
                return sym.st_value;
        }
    }
    return std::nullopt;
}

std::vector<ElfFile::Note> ElfFile::notes() const {
    std::vector<Note> out;
    for (unsigned i = 0; i < ehdr_.e_shnum; i++) {
        Elf64_Shdr sh = section(i);
        if (sh.sh_type != SHT_NOTE || !in_bounds(sh.sh_offset, sh.sh_size))
            continue;
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
