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
        check_headers();
    } catch (...) {
        munmap(const_cast<uint8_t *>(data_), size_);
        throw;
    }
}

ElfFile::ElfFile(std::string name, const uint8_t *data, size_t size)
    : path_(std::move(name)), data_(data), size_(size) {
    if (size_ < sizeof(Elf64_Ehdr))
        throw ElfError(ElfError::kNotElf, path_ + ": not an ELF file");
    check_headers();
}

void ElfFile::check_headers() const {
    const Elf64_Ehdr &h = header();
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

const Elf64_Shdr *ElfFile::sections() const {
    return reinterpret_cast<const Elf64_Shdr *>(data_ + header().e_shoff);
}

std::string_view ElfFile::section_name(const Elf64_Shdr &s) const {
    const Elf64_Ehdr &h = header();
    if (h.e_shstrndx >= h.e_shnum)
        return {};
    const Elf64_Shdr &strtab = sections()[h.e_shstrndx];
    if (!in_bounds(strtab.sh_offset, strtab.sh_size) || s.sh_name >= strtab.sh_size)
        return {};
    const char *base = reinterpret_cast<const char *>(data_ + strtab.sh_offset);
    return std::string_view(base + s.sh_name, strnlen(base + s.sh_name, strtab.sh_size - s.sh_name));
}

std::optional<uint64_t> ElfFile::vaddr_to_offset(uint64_t vaddr) const {
    const Elf64_Ehdr &h = header();
    auto *ph = reinterpret_cast<const Elf64_Phdr *>(data_ + h.e_phoff);
    for (unsigned i = 0; i < h.e_phnum; i++) {
        if (ph[i].p_type != PT_LOAD)
            continue;
        if (vaddr >= ph[i].p_vaddr && vaddr < ph[i].p_vaddr + ph[i].p_memsz)
            return vaddr - ph[i].p_vaddr + ph[i].p_offset;
    }
    return std::nullopt;
}

std::optional<uint64_t> ElfFile::section_addr(std::string_view name) const {
    const Elf64_Shdr *sh = sections();
    for (unsigned i = 0; i < header().e_shnum; i++)
        if (section_name(sh[i]) == name)
            return sh[i].sh_addr;
    return std::nullopt;
}

std::optional<uint64_t> ElfFile::symbol_value(std::string_view name) const {
    const Elf64_Shdr *sh = sections();
    unsigned n = header().e_shnum;
    for (unsigned i = 0; i < n; i++) {
        if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM)
            continue;
        if (sh[i].sh_link >= n || !in_bounds(sh[i].sh_offset, sh[i].sh_size))
            continue;
        const Elf64_Shdr &strtab = sh[sh[i].sh_link];
        if (!in_bounds(strtab.sh_offset, strtab.sh_size))
            continue;
        const char *strs = reinterpret_cast<const char *>(data_ + strtab.sh_offset);
        auto *syms = reinterpret_cast<const Elf64_Sym *>(data_ + sh[i].sh_offset);
        size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < count; k++) {
            if (syms[k].st_name >= strtab.sh_size || syms[k].st_shndx == SHN_UNDEF)
                continue;
            const char *s = strs + syms[k].st_name;
            if (name == std::string_view(s, strnlen(s, strtab.sh_size - syms[k].st_name)))
                return syms[k].st_value;
        }
    }
    return std::nullopt;
}

std::vector<ElfFile::Note> ElfFile::notes() const {
    std::vector<Note> out;
    const Elf64_Shdr *sh = sections();
    for (unsigned i = 0; i < header().e_shnum; i++) {
        if (sh[i].sh_type != SHT_NOTE || !in_bounds(sh[i].sh_offset, sh[i].sh_size))
            continue;
        const uint8_t *p = data_ + sh[i].sh_offset;
        size_t left = sh[i].sh_size;
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
