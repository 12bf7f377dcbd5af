#include "elf/usdt_notes.h"

#include <cstring>

#include "elf/note_strings.h"
#include "elf/stapsdt_note.h"

namespace pyusdt {

namespace {

// Whether `s` is well-formed UTF-8 (what Python's str can hold): a note
// mutated or written by another tool may hold anything.
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        size_t extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xe ? 2 : (c >> 3) == 0x1e ? 3 : 4;
        if (extra == 4 || (extra == 1 && c < 0xc2) || (extra > 0 && i + extra >= s.size()))
            return false;
        uint32_t cp = extra == 0 ? c : extra == 1 ? c & 0x1f : extra == 2 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k <= extra; k++) {
            auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 0x2)
                return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        // Overlong forms, surrogates and values past U+10FFFF.
        if ((extra == 2 && cp < 0x800) || (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += extra + 1;
    }
    return true;
}
}  // namespace

std::vector<UsdtSite> read_usdt_sites(const ElfFile &elf, size_t *malformed) {
    std::vector<UsdtSite> out;
    size_t bad = 0;
    auto real_base = elf.section_addr(kStapsdtBaseSection);
    SymbolResolver resolve = [&elf](std::string_view sym) { return elf.symbol_value(sym); };

    for (const ElfFile::Note &note : elf.notes()) {
        if (note.type != kStapsdtNoteType || note.owner != kStapsdtNoteOwner)
            continue;
        StapsdtAddrs addr;
        if (note.desc.size() < sizeof(addr)) {
            bad++;
            continue;
        }
        std::memcpy(&addr, note.desc.data(), sizeof(addr));
        UsdtSite s;
        size_t pos = sizeof(addr);
        if (!take_note_string(note.desc, pos, s.provider) || !take_note_string(note.desc, pos, s.name)) {
            bad++;
            continue;
        }
        take_note_string(note.desc, pos, s.args_text);  // absent for probes without arguments
        // One malformed note must not hide the file's other probes: skipped, counted.
        if (!valid_utf8(s.provider) || !valid_utf8(s.name) || !valid_utf8(s.args_text)) {
            bad++;
            continue;
        }

        // The note records where .stapsdt.base was at link time; if the object
        // was prelinked or otherwise moved since, shift every address with it.
        int64_t shift = real_base ? static_cast<int64_t>(*real_base - addr.base) : 0;
        s.pc_vaddr = addr.pc + shift;
        s.semaphore_vaddr = addr.semaphore ? addr.semaphore + shift : 0;
        auto pc_off = elf.vaddr_to_offset(s.pc_vaddr);
        if (!pc_off) {
            s.args_error = "probe address is not in a loadable segment";
        } else {
            s.pc_offset = *pc_off;
        }
        if (s.semaphore_vaddr) {
            auto sem_off = elf.vaddr_to_offset(s.semaphore_vaddr);
            if (sem_off)
                s.semaphore_offset = *sem_off;
            else
                s.args_error = "semaphore is not in a loadable segment";
        }
        if (s.args_error.empty()) {
            try {
                s.args = parse_args(s.args_text, resolve);
            } catch (const ArgSpecError &e) {
                s.args_error = e.what();
            }
        }
        out.push_back(std::move(s));
    }
    if (malformed)
        *malformed = bad;
    return out;
}

std::vector<DescribedProbe> read_described_probes(const ElfFile &elf) {
    std::vector<DescribedProbe> out;
    for (const ElfFile::Note &note : elf.notes()) {
        if (note.type != kProviderNoteType || note.owner != kProviderNoteOwner)
            continue;
        DescribedProbe d;
        bool ok = decode_provider_note(note.desc, d) && valid_utf8(d.provider) && valid_utf8(d.name);
        for (const auto &arg : d.args)
            ok = ok && valid_utf8(arg.second);
        if (ok)
            out.push_back(std::move(d));
    }
    return out;
}

}  // namespace pyusdt
