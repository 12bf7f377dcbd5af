// The "pyusdt" ELF note a run-time provider's object carries beside its
// NT_STAPSDT notes: each probe's argument names and types, so that a tracer
// can name the arguments and decode strings.  One definition for its writer
// (provider/provider_elf.cpp) and its reader (elf/usdt_notes.cpp), and the
// one table of the provider argument types, which both native modules export
// to Python (ARG_TYPES, ArgType).
//
//   owner "pyusdt", type 1, desc (one note per probe):
//     provider\0 name\0
//     u8 nargs
//     nargs times: u8 type code (ProviderArg), argument name\0
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" {
#include "elf/note_strings.h"
#include "pyusdt_abi.h"
}

// X(NAME, "name", code, size in bytes, signed): every argument type a provider
// probe can carry, in the order Python lists them.  Codes are what the note
// stores: never renumber one.  str and bytes are passed as a pointer.
#define PYUSDT_PROVIDER_ARG_TYPES(X)      \
    X(INT8, "int8", 1, 1, true)           \
    X(UINT8, "uint8", 2, 1, false)        \
    X(INT16, "int16", 3, 2, true)         \
    X(UINT16, "uint16", 4, 2, false)      \
    X(INT32, "int32", 5, 4, true)         \
    X(UINT32, "uint32", 6, 4, false)      \
    X(INT64, "int64", 7, 8, true)         \
    X(UINT64, "uint64", 8, 8, false)      \
    X(STR, "str", 9, 8, false)  /* pointer to a NUL-terminated UTF-8 copy */ \
    X(BYTES, "bytes", 10, 8, false) /* pointer to the bytes (their length is usually passed too) */

namespace pyusdt {

enum class ProviderArg : uint8_t {
#define PYUSDT_X(NAME, name, code, size, is_signed) NAME = code,
    PYUSDT_PROVIDER_ARG_TYPES(PYUSDT_X)
#undef PYUSDT_X
};

struct ProviderArgInfo {
    ProviderArg type;
    const char *name;  // as Python spells it: "int8" ... "bytes"
    int size;          // bytes the probe site reads
    bool is_signed;
};

constexpr ProviderArgInfo kProviderArgTypes[] = {
#define PYUSDT_X(NAME, name, code, size, is_signed) {ProviderArg::NAME, name, size, is_signed},
    PYUSDT_PROVIDER_ARG_TYPES(PYUSDT_X)
#undef PYUSDT_X
};

// The type's entry, or nullptr for a code no type has.
constexpr const ProviderArgInfo *provider_arg_info(ProviderArg t) {
    for (const ProviderArgInfo &i : kProviderArgTypes)
        if (i.type == t)
            return &i;
    return nullptr;
}

// Most arguments a provider probe takes: sys/sdt.h's limit, the ABI's.
constexpr int kMaxProviderArgs = PYUSDT_MAX_ARGS;
static_assert(kMaxProviderArgs <= UINT8_MAX, "the note stores nargs in one byte");

constexpr char kProviderNoteOwner[] = "pyusdt";
constexpr uint32_t kProviderNoteType = 1;
constexpr char kProviderNoteSection[] = ".note.pyusdt";

// One probe as the note describes it.
struct DescribedProbe {
    std::string provider;
    std::string name;
    std::vector<std::pair<int, std::string>> args;  // (type code, name)
};

// The desc of one probe's note.
inline std::vector<uint8_t> encode_provider_note(const std::string &provider, const std::string &name,
                                                 const std::vector<ProviderArg> &types,
                                                 const std::vector<std::string> &names) {
    std::vector<uint8_t> out;
    auto cstr = [&out](const std::string &s) {
        out.insert(out.end(), s.begin(), s.end());
        out.push_back(0);
    };
    cstr(provider);
    cstr(name);
    out.push_back(static_cast<uint8_t>(types.size()));
    for (size_t a = 0; a < types.size(); a++) {
        out.push_back(static_cast<uint8_t>(types[a]));
        cstr(names[a]);
    }
    return out;
}

// Reads one probe's note desc; false when it is truncated or malformed.
// The strings are as found (the caller checks they are text).
inline bool decode_provider_note(std::string_view desc, DescribedProbe &d) {
    size_t pos = 0;
    auto cstr = [&](std::string &out) { return take_note_string(desc, pos, out); };
    if (!cstr(d.provider) || !cstr(d.name) || pos >= desc.size())
        return false;
    size_t nargs = static_cast<uint8_t>(desc[pos++]);
    for (size_t i = 0; i < nargs; i++) {
        if (pos >= desc.size())
            return false;
        int type = static_cast<uint8_t>(desc[pos++]);
        std::string arg;
        if (!cstr(arg))
            return false;
        d.args.emplace_back(type, std::move(arg));
    }
    return true;
}

}  // namespace pyusdt
