// USDT probe discovery: the NT_STAPSDT notes of one ELF file, with the
// .stapsdt.base adjustment applied and every address also given as a file
// offset (what uprobes and the kernel's semaphore reference counter take).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "elf/arg_spec.h"
#include "elf/elf_file.h"
#include "provider/provider_note.h"

namespace pyusdt {

struct UsdtSite {
    std::string provider;
    std::string name;
    uint64_t pc_vaddr = 0;         // link-time address of the probe site (adjusted)
    uint64_t pc_offset = 0;        // file offset of the probe site
    uint64_t semaphore_vaddr = 0;  // 0: no semaphore
    uint64_t semaphore_offset = 0; // file offset of the semaphore, 0 if none
    std::string args_text;         // the note's argument string
    std::vector<pyusdt_arg_spec> args;  // parsed, when args_error is empty
    std::string args_error;        // why pyusdt cannot read this site's arguments
};

// Every probe site in the file, in note order (one probe may have many sites).
// Notes too short or malformed (names that are not UTF-8) are skipped, and
// counted in *malformed when given.
std::vector<UsdtSite> read_usdt_sites(const ElfFile &elf, size_t *malformed = nullptr);

// A probe's arguments as a pyusdt run-time provider describes them in its
// "pyusdt" note (provider/provider_note.h): type code and name of each.
std::vector<DescribedProbe> read_described_probes(const ElfFile &elf);

}  // namespace pyusdt
