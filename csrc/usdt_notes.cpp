#include "usdt_notes.h"

#include <cstring>

namespace pyusdt {

namespace {
constexpr uint32_t kNtStapsdt = 3;

// Reads one NUL-terminated string from the note payload; advances `pos`.
bool take_cstr(std::string_view desc, size_t &pos, std::string &out) {
    size_t end = desc.find('\0', pos);
    if (end == std::string_view::npos)
        return false;
    out.assign(desc.substr(pos, end - pos));
    pos = end + 1;
    return true;
}
}  // namespace

std::vector<UsdtSite> read_usdt_sites(const ElfFile &elf) {
    std::vector<UsdtSite> out;
    auto real_base = elf.section_addr(".stapsdt.base");
    SymbolResolver resolve = [&elf](std::string_view sym) { return elf.symbol_value(sym); };

    for (const ElfFile::Note &note : elf.notes()) {
        if (note.type != kNtStapsdt || note.owner != "stapsdt" || note.desc.size() < 24)
            continue;
        uint64_t addr[3];
        std::memcpy(addr, note.desc.data(), sizeof(addr));
        UsdtSite s;
        size_t pos = sizeof(addr);
        if (!take_cstr(note.desc, pos, s.provider) || !take_cstr(note.desc, pos, s.name))
            continue;
        take_cstr(note.desc, pos, s.args_text);  // absent for probes without arguments

        // The note records where .stapsdt.base was at link time; if the object
        // was prelinked or otherwise moved since, shift every address with it.
        int64_t shift = real_base ? static_cast<int64_t>(*real_base - addr[1]) : 0;
        s.pc_vaddr = addr[0] + shift;
        s.semaphore_vaddr = addr[2] ? addr[2] + shift : 0;
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
    return out;
}

std::vector<DescribedProbe> read_described_probes(const ElfFile &elf) {
    constexpr uint32_t kNtPyusdtArgs = 1;
    std::vector<DescribedProbe> out;
    for (const ElfFile::Note &note : elf.notes()) {
        if (note.type != kNtPyusdtArgs || note.owner != "pyusdt")
            continue;
        DescribedProbe d;
        size_t pos = 0;
        if (!take_cstr(note.desc, pos, d.provider) || !take_cstr(note.desc, pos, d.name) ||
            pos >= note.desc.size())
            continue;
        size_t nargs = static_cast<uint8_t>(note.desc[pos++]);
        bool ok = true;
        for (size_t i = 0; i < nargs && ok; i++) {
            if (pos >= note.desc.size()) {
                ok = false;
                break;
            }
            int type = static_cast<uint8_t>(note.desc[pos++]);
            std::string name;
            ok = take_cstr(note.desc, pos, name);
            d.args.emplace_back(type, name);
        }
        if (ok)
            out.push_back(std::move(d));
    }
    return out;
}

}  // namespace pyusdt
