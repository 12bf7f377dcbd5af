// libFuzzer target: USDT discovery (csrc/elf/elf_file.cpp, csrc/elf/usdt_notes.cpp)
// on arbitrary bytes read as an ELF file.
//
// Every input must end in one of two ways, as it does behind `pyusdt list`:
// sites plus a count of malformed notes, or an ElfError (which the bindings
// turn into a pyusdt error).  A crash, a sanitizer report or any other
// exception is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "elf/usdt_notes.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try {
        pyusdt::ElfFile elf("fuzz-input", data, size);
        size_t malformed = 0;
        std::vector<pyusdt::UsdtSite> sites = pyusdt::read_usdt_sites(elf, &malformed);
        for (const pyusdt::UsdtSite &s : sites) {
            // The bindings pair each parsed spec with its display token.
            if (s.args_error.empty() && pyusdt::split_args(s.args_text).size() != s.args.size())
                abort();
        }
        pyusdt::read_described_probes(elf);
    } catch (const pyusdt::ElfError &) {
        // Not an ELF file pyusdt reads: the expected answer to most inputs.
    }
    return 0;
}
