// libFuzzer target: the argument-spec parser (csrc/elf/arg_spec.cpp) on arbitrary
// note argument strings ("-4@-20(%rbp) 8@%rdi ...").
//
// Every input must give specs the BPF program can interpret, or an
// ArgSpecError; the checks below are what read_arg() in bpf/usdt_args.bpf.h
// relies on.  A crash, a sanitizer report, any other exception or a broken
// check is a bug.
#include <asm/ptrace.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>

#include "elf/arg_spec.h"

namespace {

// Some names resolve (to an address derived from the name), some do not, so
// both the found and the missing symbol paths run.
std::optional<uint64_t> resolve(std::string_view name) {
    if (name.empty() || name.size() % 3 == 0)
        return std::nullopt;
    return std::hash<std::string_view>{}(name);
}

bool is_register_offset(unsigned off) { return off % 8 == 0 && off < sizeof(struct pt_regs); }

// The size the token's "N@" prefix states, as sign and magnitude, read
// independently of the parser; false when the prefix is not one number.
bool stated_size(const std::string &token, bool *negative, uint64_t *magnitude) {
    size_t at = token.find('@');
    if (at == std::string::npos)
        return false;
    std::string prefix = token.substr(0, at);
    size_t first = prefix.find_first_not_of(" \t\n\v\f\r");
    if (first == std::string::npos)
        return false;
    *negative = prefix[first] == '-';
    char *end = nullptr;
    errno = 0;
    if (*negative) {
        long long v = std::strtoll(prefix.c_str(), &end, 0);
        *magnitude = 0 - static_cast<uint64_t>(v);
    } else {
        *magnitude = std::strtoull(prefix.c_str(), &end, 0);
    }
    return errno == 0 && end != prefix.c_str();
}

void check(const pyusdt_arg_spec &a, const std::string &token) {
    bool ok = a.kind >= PYUSDT_ARG_CONST && a.kind <= PYUSDT_ARG_MEM_ABS;
    ok = ok && (a.size == 1 || a.size == 2 || a.size == 4 || a.size == 8 || a.size == PYUSDT_ARG_MAX_SIZE);
    ok = ok && (a.shift == 0 || (a.shift == 8 && a.kind == PYUSDT_ARG_REG));
    if (a.kind == PYUSDT_ARG_REG || a.kind == PYUSDT_ARG_MEM || a.kind == PYUSDT_ARG_MEM_INDEX)
        ok = ok && is_register_offset(a.base_off);
    if (a.kind == PYUSDT_ARG_MEM_INDEX)
        ok = ok && is_register_offset(a.index_off) &&
             (a.scale == 1 || a.scale == 2 || a.scale == 4 || a.scale == 8);
    bool negative;
    uint64_t magnitude;
    if (stated_size(token, &negative, &magnitude))
        ok = ok && magnitude == a.size && negative == bool(a.is_signed);
    if (!ok)
        abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    std::string_view text(reinterpret_cast<const char *>(data), size);
    std::vector<std::string> tokens = pyusdt::split_args(text);
    try {
        std::vector<pyusdt_arg_spec> specs = pyusdt::parse_args(text, resolve);
        if (specs.size() != tokens.size())
            abort();
        for (size_t i = 0; i < specs.size(); i++)
            check(specs[i], tokens[i]);
    } catch (const pyusdt::ArgSpecError &) {
    }
    // One token at a time, as `_native.parse_arg` does, without a resolver.
    for (const std::string &t : tokens) {
        try {
            check(pyusdt::parse_arg(t, nullptr), t);
        } catch (const pyusdt::ArgSpecError &) {
        }
    }
    return 0;
}
