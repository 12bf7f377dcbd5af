// A read-only view of one 64-bit ELF file: just what USDT discovery needs
// (program headers, sections, notes, symbols).  No libelf: the file is mapped
// and its headers read directly, so discovery works on any ELF pyusdt can open.
#pragma once

#include <elf.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pyusdt {

// Raised for a file that is missing, unreadable or not an ELF object pyusdt reads.
struct ElfError : std::runtime_error {
    enum Kind { kNotFound, kNotElf, kUnreadable };
    Kind kind;
    ElfError(Kind k, const std::string &what) : std::runtime_error(what), kind(k) {}
};

class ElfFile {
  public:
    explicit ElfFile(const std::string &path);
    // A view of an ELF image already in memory, which the caller keeps alive
    // and frees: the fuzz harness reads its inputs this way, so that a
    // sanitizer sees any read past the last byte (a mapped file ends on a page).
    ElfFile(std::string name, const uint8_t *data, size_t size);
    ~ElfFile();
    ElfFile(const ElfFile &) = delete;
    ElfFile &operator=(const ElfFile &) = delete;

    const std::string &path() const { return path_; }
    bool is_shared_object() const { return ehdr_.e_type == ET_DYN; }

    // File offset of a link-time virtual address, through the PT_LOAD segment
    // that maps it; nullopt when no loadable segment covers the address.
    std::optional<uint64_t> vaddr_to_offset(uint64_t vaddr) const;

    // Address of the named section, if the file has it.
    std::optional<uint64_t> section_addr(std::string_view name) const;

    // Value of a defined symbol from .symtab or .dynsym (the first of that
    // name).  The first call indexes every symbol, so that each later one
    // costs a hash lookup, not a pass over the tables.
    std::optional<uint64_t> symbol_value(std::string_view name) const;

    struct Note {
        uint32_t type;
        std::string_view owner;
        std::string_view desc;
    };
    // Every note in every SHT_NOTE section (see distinct_sections).
    std::vector<Note> notes() const;

  private:
    // The tables sit wherever the header says, at any alignment: each entry
    // is copied out, never read in place through an Elf64_* pointer (which
    // is undefined behaviour when the file misaligns it).  `off` is in bounds.
    template <class T>
    T read_at(uint64_t off) const;
    Elf64_Shdr section(unsigned i) const;
    // The in-file sections of the wanted types, in section order, less those
    // whose bytes overlap one kept before.  No real file overlaps two note
    // sections or two symbol tables; a crafted one that points thousands of
    // section headers at the same bytes made reading them quadratic in the
    // file's size (a 1 MB file took 48 s and 10 GB).
    std::vector<Elf64_Shdr> distinct_sections(bool (*wanted)(uint32_t type)) const;
    void index_symbols() const;
    std::string_view section_name(const Elf64_Shdr &s) const;
    bool in_bounds(uint64_t off, uint64_t len) const { return off <= size_ && len <= size_ - off; }
    // Copies the ELF header; throws ElfError unless it describes an ELF file
    // pyusdt reads, with its program and section header tables in the file.
    void load_header();

    std::string path_;
    const uint8_t *data_ = nullptr;
    size_t size_ = 0;
    bool mapped_ = false;  // data_ is our mmap of the file, unmapped on destruction
    Elf64_Ehdr ehdr_{};
    // name -> value, built by the first symbol_value() (one thread reads an ElfFile).
    mutable std::unique_ptr<std::unordered_map<std::string_view, uint64_t>> symbols_;
};

}  // namespace pyusdt
