#include "provider/provider_elf.h"

#include <elf.h>

#include <cstring>

#include "elf/arch_x86_64.h"
#include "elf/stapsdt_note.h"

namespace pyusdt {

namespace {

constexpr uint64_t kPage = arch::kPageSize;
constexpr size_t kFunctionStride = arch::kFunctionAlign;

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

bool valid_identifier(const std::string &s) {
    if (s.empty() || s.size() > 64 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (char c : s)
        if (!(isalnum((unsigned char)c) || c == '_'))
            return false;
    return true;
}

int arg_size(ProviderArg t) { return provider_arg_info(t)->size; }

bool arg_signed(ProviderArg t) { return provider_arg_info(t)->is_signed; }

// A string table: offsets of added strings, NUL-separated, starting with "".
struct StringTable {
    std::string data{'\0'};
    uint32_t add(const std::string &s) {
        uint32_t off = static_cast<uint32_t>(data.size());
        data += s;
        data += '\0';
        return off;
    }
};

// The classic System V hash dlsym() looks symbols up with.
uint32_t elf_hash(const std::string &name) {
    uint32_t h = 0;
    for (unsigned char c : name) {
        h = (h << 4) + c;
        uint32_t g = h & 0xf0000000;
        if (g)
            h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

void append_note(std::vector<uint8_t> &out, const std::string &owner, uint32_t type,
                 const std::vector<uint8_t> &desc) {
    Elf64_Nhdr nh{};
    nh.n_namesz = static_cast<uint32_t>(owner.size() + 1);
    nh.n_descsz = static_cast<uint32_t>(desc.size());
    nh.n_type = type;
    const uint8_t *p = reinterpret_cast<const uint8_t *>(&nh);
    out.insert(out.end(), p, p + sizeof(nh));
    out.insert(out.end(), owner.begin(), owner.end());
    out.push_back(0);
    out.resize(align_up(out.size(), 4), 0);
    out.insert(out.end(), desc.begin(), desc.end());
    out.resize(align_up(out.size(), 4), 0);
}

template <typename T>
void put(std::vector<uint8_t> &buf, size_t off, const T &v) {
    if (buf.size() < off + sizeof(T))
        buf.resize(off + sizeof(T), 0);
    std::memcpy(buf.data() + off, &v, sizeof(T));
}

void put_bytes(std::vector<uint8_t> &buf, size_t off, const void *p, size_t n) {
    if (buf.size() < off + n)
        buf.resize(off + n, 0);
    std::memcpy(buf.data() + off, p, n);
}

}  // namespace

std::string provider_arg_spec(ProviderArg t, int index) {
    return arch::provider_arg_location(index, arg_size(t), arg_signed(t));
}

std::vector<uint8_t> build_provider_elf(const std::string &provider,
                                        const std::vector<ProviderProbeSpec> &probes, bool nop5,
                                        uint64_t return_value, ProviderLayout *layout) {
    if (!valid_identifier(provider))
        throw ProviderError("provider name '" + provider + "' is not a valid identifier");
    if (probes.empty())
        throw ProviderError("provider '" + provider + "' has no probes");
    for (const ProviderProbeSpec &p : probes) {
        if (!valid_identifier(p.name))
            throw ProviderError("probe name '" + p.name + "' is not a valid identifier");
        for (ProviderArg t : p.args)
            if (!provider_arg_info(t))
                throw ProviderError("probe '" + p.name + "': unknown argument type code " +
                                    std::to_string(static_cast<int>(t)));
        if (p.args.size() > kMaxProviderArgs)
            throw ProviderError("probe '" + p.name + "' has " + std::to_string(p.args.size()) +
                                " arguments; at most " + std::to_string(kMaxProviderArgs));
        if (p.arg_names.size() != p.args.size())
            throw ProviderError("probe '" + p.name + "': one name per argument");
    }
    size_t n = probes.size();

    // Dynamic symbols: the probe functions, then the semaphores.
    StringTable dynstr;
    std::vector<std::string> sym_names;
    for (const ProviderProbeSpec &p : probes)
        sym_names.push_back("__pyusdt_" + provider + "__" + p.name);
    for (const ProviderProbeSpec &p : probes)
        sym_names.push_back(provider + "_" + p.name + "_semaphore");
    std::vector<uint32_t> sym_name_off;
    for (const std::string &s : sym_names)
        sym_name_off.push_back(dynstr.add(s));
    uint32_t soname_off = dynstr.add("libpyusdt-" + provider + ".so");
    size_t nsyms = 1 + sym_names.size();

    // Segment 1 (read-only): headers, .hash, .dynsym, .dynstr.
    constexpr int kPhnum = 5;
    uint64_t hash_off = sizeof(Elf64_Ehdr) + kPhnum * sizeof(Elf64_Phdr);
    uint32_t nbucket = static_cast<uint32_t>(nsyms | 1);
    uint64_t hash_size = (2 + nbucket + nsyms) * sizeof(uint32_t);
    uint64_t dynsym_off = align_up(hash_off + hash_size, 8);
    uint64_t dynstr_off = dynsym_off + nsyms * sizeof(Elf64_Sym);
    uint64_t ro_end = dynstr_off + dynstr.data.size();

    // Segment 2 (read, execute): .text, one function per probe, then .stapsdt.base.
    uint64_t text_off = align_up(ro_end, kPage);
    uint64_t text_size = n * kFunctionStride;
    uint64_t base_off = text_off + text_size;  // .stapsdt.base: one byte
    uint64_t rx_end = base_off + 1;

    // Segment 3 (read, write): .dynamic, then .probes (the semaphores).
    uint64_t dyn_off = align_up(rx_end, kPage);
    constexpr int kDynEntries = 7;
    uint64_t dyn_size = kDynEntries * sizeof(Elf64_Dyn);
    uint64_t probes_off = dyn_off + dyn_size;
    uint64_t probes_size = n * sizeof(uint16_t);
    uint64_t rw_end = probes_off + probes_size;

    std::vector<uint8_t> out(rw_end, 0);

    // .text: the probe site (a nop), `movabs $return_value, %rax`, `ret`.
    const uint8_t *site = nop5 ? arch::kNop5 : arch::kNop1;
    size_t site_len = nop5 ? sizeof(arch::kNop5) : sizeof(arch::kNop1);
    uint8_t body[sizeof(arch::kMovabsRax) + sizeof(return_value) + 1];
    std::memcpy(body, arch::kMovabsRax, sizeof(arch::kMovabsRax));
    std::memcpy(body + sizeof(arch::kMovabsRax), &return_value, sizeof(return_value));
    body[sizeof(body) - 1] = arch::kRet;
    const size_t function_size = site_len + sizeof(body);
    static_assert(sizeof(arch::kNop5) + sizeof(body) <= kFunctionStride, "a probe function fits its slot");
    for (size_t i = 0; i < n; i++) {
        uint64_t at = text_off + i * kFunctionStride;
        put_bytes(out, at, site, site_len);
        put_bytes(out, at + site_len, body, sizeof(body));
        // Pad with int3 so a stray jump traps instead of sliding.
        std::memset(out.data() + at + function_size, arch::kInt3, kFunctionStride - function_size);
    }

    // .dynsym (link-time addresses are file offsets: the object is position
    // independent and needs no relocations).
    for (size_t i = 0; i < sym_names.size(); i++) {
        Elf64_Sym s{};
        s.st_name = sym_name_off[i];
        bool is_fn = i < n;
        s.st_info = ELF64_ST_INFO(STB_GLOBAL, is_fn ? STT_FUNC : STT_OBJECT);
        s.st_other = STV_DEFAULT;
        s.st_shndx = is_fn ? 4 : 7;
        s.st_value = is_fn ? text_off + i * kFunctionStride : probes_off + (i - n) * sizeof(uint16_t);
        s.st_size = is_fn ? function_size : sizeof(uint16_t);
        put(out, dynsym_off + (i + 1) * sizeof(Elf64_Sym), s);
    }
    put_bytes(out, dynstr_off, dynstr.data.data(), dynstr.data.size());

    // .hash: buckets and chains over the dynamic symbols.
    std::vector<uint32_t> buckets(nbucket, 0), chains(nsyms, 0);
    for (size_t i = 0; i < sym_names.size(); i++) {
        uint32_t idx = static_cast<uint32_t>(i + 1);
        uint32_t b = elf_hash(sym_names[i]) % nbucket;
        chains[idx] = buckets[b];
        buckets[b] = idx;
    }
    put(out, hash_off, nbucket);
    put(out, hash_off + 4, static_cast<uint32_t>(nsyms));
    put_bytes(out, hash_off + 8, buckets.data(), buckets.size() * 4);
    put_bytes(out, hash_off + 8 + buckets.size() * 4, chains.data(), chains.size() * 4);

    // .dynamic
    const Elf64_Dyn dyn[kDynEntries] = {
        {DT_HASH, {hash_off}},   {DT_STRTAB, {dynstr_off}},           {DT_SYMTAB, {dynsym_off}},
        {DT_STRSZ, {dynstr.data.size()}}, {DT_SYMENT, {sizeof(Elf64_Sym)}}, {DT_SONAME, {soname_off}},
        {DT_NULL, {0}},
    };
    put_bytes(out, dyn_off, dyn, sizeof(dyn));

    // Notes (not loaded; tracers read them from the file).
    std::vector<uint8_t> stapsdt, described;
    for (size_t i = 0; i < n; i++) {
        const ProviderProbeSpec &p = probes[i];
        StapsdtAddrs addrs{text_off + i * kFunctionStride, base_off, probes_off + i * sizeof(uint16_t)};
        std::vector<uint8_t> desc(sizeof(addrs), 0);
        std::memcpy(desc.data(), &addrs, sizeof(addrs));
        std::string text = provider + '\0' + p.name + '\0';
        for (size_t a = 0; a < p.args.size(); a++)
            text += (a ? " " : "") + provider_arg_spec(p.args[a], static_cast<int>(a));
        text += '\0';
        desc.insert(desc.end(), text.begin(), text.end());
        append_note(stapsdt, kStapsdtNoteOwner, kStapsdtNoteType, desc);
        append_note(described, kProviderNoteOwner, kProviderNoteType,
                    encode_provider_note(provider, p.name, p.args, p.arg_names));
    }
    uint64_t note_off = align_up(out.size(), 8);
    put_bytes(out, note_off, stapsdt.data(), stapsdt.size());
    uint64_t pynote_off = align_up(note_off + stapsdt.size(), 8);
    put_bytes(out, pynote_off, described.data(), described.size());

    // Section names and headers.
    StringTable shstr;
    const char *names[] = {"", ".hash", ".dynsym", ".dynstr", ".text", kStapsdtBaseSection, ".dynamic",
                           ".probes", ".note.stapsdt", kProviderNoteSection, ".shstrtab"};
    std::vector<uint32_t> shname;
    for (const char *s : names)
        shname.push_back(*s ? shstr.add(s) : 0);
    uint64_t shstr_off = pynote_off + described.size();
    put_bytes(out, shstr_off, shstr.data.data(), shstr.data.size());
    uint64_t sh_off = align_up(shstr_off + shstr.data.size(), 8);

    auto section = [&](int idx, uint32_t type, uint64_t flags, uint64_t off, uint64_t size,
                       uint32_t link, uint32_t info, uint64_t align, uint64_t entsize, bool alloc) {
        Elf64_Shdr sh{};
        sh.sh_name = shname[idx];
        sh.sh_type = type;
        sh.sh_flags = flags;
        sh.sh_addr = alloc ? off : 0;
        sh.sh_offset = off;
        sh.sh_size = size;
        sh.sh_link = link;
        sh.sh_info = info;
        sh.sh_addralign = align;
        sh.sh_entsize = entsize;
        put(out, sh_off + idx * sizeof(Elf64_Shdr), sh);
    };
    put(out, sh_off, Elf64_Shdr{});
    section(1, SHT_HASH, SHF_ALLOC, hash_off, hash_size, 2, 0, 8, 4, true);
    section(2, SHT_DYNSYM, SHF_ALLOC, dynsym_off, nsyms * sizeof(Elf64_Sym), 3, 1, 8, sizeof(Elf64_Sym), true);
    section(3, SHT_STRTAB, SHF_ALLOC, dynstr_off, dynstr.data.size(), 0, 0, 1, 0, true);
    section(4, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, text_size, 0, 0, 16, 0, true);
    section(5, SHT_PROGBITS, SHF_ALLOC, base_off, 1, 0, 0, 1, 0, true);
    section(6, SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dyn_off, dyn_size, 3, 0, 8, sizeof(Elf64_Dyn), true);
    section(7, SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, probes_off, probes_size, 0, 0, 2, 0, true);
    section(8, SHT_NOTE, 0, note_off, stapsdt.size(), 0, 0, 4, 0, false);
    section(9, SHT_NOTE, 0, pynote_off, described.size(), 0, 0, 4, 0, false);
    section(10, SHT_STRTAB, 0, shstr_off, shstr.data.size(), 0, 0, 1, 0, false);

    // Program headers: three loads, the dynamic section, a non-executable stack.
    auto load = [](uint32_t flags, uint64_t off, uint64_t size) {
        Elf64_Phdr ph{};
        ph.p_type = PT_LOAD;
        ph.p_flags = flags;
        ph.p_offset = ph.p_vaddr = ph.p_paddr = off;
        ph.p_filesz = ph.p_memsz = size;
        ph.p_align = kPage;
        return ph;
    };
    Elf64_Phdr ph[kPhnum] = {
        load(PF_R, 0, ro_end),
        load(PF_R | PF_X, text_off, rx_end - text_off),
        load(PF_R | PF_W, dyn_off, rw_end - dyn_off),
    };
    ph[3].p_type = PT_DYNAMIC;
    ph[3].p_flags = PF_R | PF_W;
    ph[3].p_offset = ph[3].p_vaddr = ph[3].p_paddr = dyn_off;
    ph[3].p_filesz = ph[3].p_memsz = dyn_size;
    ph[3].p_align = 8;
    ph[4].p_type = PT_GNU_STACK;
    ph[4].p_flags = PF_R | PF_W;
    ph[4].p_align = 16;
    put_bytes(out, sizeof(Elf64_Ehdr), ph, sizeof(ph));

    Elf64_Ehdr eh{};
    std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
    eh.e_ident[EI_CLASS] = arch::kElfClass;
    eh.e_ident[EI_DATA] = arch::kElfData;
    eh.e_ident[EI_VERSION] = EV_CURRENT;
    eh.e_ident[EI_OSABI] = ELFOSABI_SYSV;
    eh.e_type = ET_DYN;
    eh.e_machine = arch::kElfMachine;
    eh.e_version = EV_CURRENT;
    eh.e_phoff = sizeof(Elf64_Ehdr);
    eh.e_shoff = sh_off;
    eh.e_ehsize = sizeof(Elf64_Ehdr);
    eh.e_phentsize = sizeof(Elf64_Phdr);
    eh.e_phnum = kPhnum;
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 11;
    eh.e_shstrndx = 10;
    put(out, 0, eh);

    if (layout) {
        layout->function_vaddr.clear();
        layout->semaphore_vaddr.clear();
        for (size_t i = 0; i < n; i++) {
            layout->function_vaddr.push_back(text_off + i * kFunctionStride);
            layout->semaphore_vaddr.push_back(probes_off + i * sizeof(uint16_t));
        }
    }
    return out;
}

}  // namespace pyusdt
