#include "elf/arg_spec.h"

#include "elf/arch_x86_64.h"

#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdlib>

namespace pyusdt {

namespace {

using arch::Register;
using arch::find_register;

[[noreturn]] void unsupported(std::string_view token, const char *why) {
    throw ArgSpecError("unsupported argument '" + std::string(token) + "': " + why);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
        s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
        s.remove_suffix(1);
    return s;
}

// Parses a whole decimal or 0x-hex integer with optional sign.
std::optional<int64_t> parse_int(std::string_view s) {
    s = trim(s);
    if (s.empty())
        return std::nullopt;
    std::string buf(s);
    char *end = nullptr;
    errno = 0;
    long long v;
    if (buf[0] == '-')
        v = std::strtoll(buf.c_str(), &end, 0);
    else
        v = static_cast<long long>(std::strtoull(buf.c_str(), &end, 0));
    if (errno || end != buf.c_str() + buf.size())
        return std::nullopt;
    return v;
}

// The "N@" or "-N@" prefix: a width in bytes, signed when negative.  Read as
// sign and unsigned magnitude, never through a signed 64-bit value, which
// would make 18446744073709551615 read as -1 and 2^63 negate out of range.
bool parse_size(std::string_view s, uint64_t *size, bool *is_signed) {
    s = trim(s);
    *is_signed = !s.empty() && s[0] == '-';
    if (*is_signed)
        s.remove_prefix(1);
    if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])))
        return false;
    std::string buf(s);
    char *end = nullptr;
    errno = 0;
    *size = std::strtoull(buf.c_str(), &end, 0);
    return errno == 0 && end == buf.c_str() + buf.size();
}

const Register &register_or_fail(std::string_view token, std::string_view name) {
    if (name.empty() || name[0] != '%')
        unsupported(token, "expected a register");
    const Register *r = find_register(name.substr(1));
    if (!r)
        unsupported(token, "unknown register");
    return *r;
}

// "sym", "sym+8", "sym-8", "40+sym": a sum of numbers and one symbol, as a
// link-time address through the resolver.  The sum wraps modulo 2^64, as the
// assembler's address arithmetic does (and as a signed sum may not).
int64_t resolve_symbolic(std::string_view token, std::string_view expr, const SymbolResolver &resolve) {
    uint64_t total = 0;
    bool have_symbol = false;
    size_t i = 0;
    while (i < expr.size()) {
        bool negative = false;
        if (expr[i] == '+' || expr[i] == '-') {
            negative = expr[i] == '-';
            i++;
        }
        size_t end = expr.find_first_of("+-", i);
        std::string_view term = expr.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
        if (term.empty())
            unsupported(token, "malformed address expression");
        uint64_t value;
        if (auto n = parse_int(term)) {
            value = static_cast<uint64_t>(*n);
        } else {
            if (have_symbol || negative)
                unsupported(token, "address expression with more than one symbol");
            auto addr = resolve ? resolve(term) : std::nullopt;
            if (!addr)
                unsupported(token, "symbol not found in the object's symbol tables");
            value = *addr;
            have_symbol = true;
        }
        total = negative ? total - value : total + value;
        i = end == std::string_view::npos ? expr.size() : end;
    }
    if (!have_symbol)
        unsupported(token, "numeric %rip displacement");
    return static_cast<int64_t>(total);
}

}  // namespace

pyusdt_arg_spec parse_arg(std::string_view token, const SymbolResolver &resolve) {
    pyusdt_arg_spec a{};
    std::string_view op = trim(token);
    size_t at = op.find('@');
    uint64_t size = 8;
    bool is_signed = false;
    if (at != std::string_view::npos) {
        if (!parse_size(op.substr(0, at), &size, &is_signed))
            unsupported(token, "bad size prefix");
        op = op.substr(at + 1);
    }
    // 16: a struct or __int128 passed by value; the BPF side reads its first
    // PYUSDT_ARG_SLOT_BYTES.
    if (size != 1 && size != 2 && size != 4 && size != 8 && size != PYUSDT_ARG_MAX_SIZE)
        unsupported(token, "size must be 1, 2, 4, 8 or 16");
    a.size = static_cast<uint8_t>(size);
    a.is_signed = is_signed;

    if (op.empty())
        unsupported(token, "empty operand");
    if (op[0] == '$') {
        auto v = parse_int(op.substr(1));
        if (!v)
            unsupported(token, "constant is not a number");
        a.kind = PYUSDT_ARG_CONST;
        a.disp = *v;
        return a;
    }
    if (op[0] == '%') {
        if (op.find(':') != std::string_view::npos)
            unsupported(token, "segment-relative operands are not supported");
        const Register &r = register_or_fail(token, op);
        a.kind = PYUSDT_ARG_REG;
        a.base_off = r.offset;
        a.shift = r.shift;
        return a;
    }
    size_t open = op.find('(');
    if (open == std::string_view::npos || op.back() != ')')
        unsupported(token, "unrecognised operand");
    std::string_view disp = trim(op.substr(0, open));
    std::string_view inner = op.substr(open + 1, op.size() - open - 2);
    if (disp.find(':') != std::string_view::npos)
        unsupported(token, "segment-relative operands are not supported");

    // Split "base,index,scale".
    std::string_view parts[3];
    int nparts = 0;
    while (nparts < 3) {
        size_t comma = inner.find(',');
        parts[nparts++] = trim(inner.substr(0, comma));
        if (comma == std::string_view::npos)
            break;
        inner = inner.substr(comma + 1);
        if (nparts == 3)
            unsupported(token, "too many operand parts");
    }

    if (nparts == 1 && parts[0] == arch::kInstructionPointer) {
        // The note's operand is assembler text: "sym(%rip)" names the symbol's address.
        if (disp.empty())
            unsupported(token, "numeric %rip displacement");
        a.kind = PYUSDT_ARG_MEM_ABS;
        a.disp = resolve_symbolic(token, disp, resolve);
        return a;
    }
    if (parts[0].empty())
        unsupported(token, "memory operand without a base register");
    if (parts[0] == arch::kInstructionPointer || (nparts > 1 && parts[1] == arch::kInstructionPointer))
        unsupported(token, "%rip with an index");
    if (!disp.empty()) {
        auto d = parse_int(disp);
        if (!d)
            unsupported(token, "symbolic displacement");
        a.disp = *d;
    }
    a.base_off = register_or_fail(token, parts[0]).offset;
    if (nparts == 1) {
        a.kind = PYUSDT_ARG_MEM;
        return a;
    }
    a.kind = PYUSDT_ARG_MEM_INDEX;
    a.index_off = register_or_fail(token, parts[1]).offset;
    a.scale = 1;
    if (nparts == 3) {
        auto s = parse_int(parts[2]);
        if (!s || (*s != 1 && *s != 2 && *s != 4 && *s != 8))
            unsupported(token, "scale must be 1, 2, 4 or 8");
        a.scale = static_cast<uint8_t>(*s);
    }
    return a;
}

std::vector<std::string> split_args(std::string_view text) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && text[i] == ' ')
            i++;
        size_t start = i;
        // A space inside parentheses does not end the operand.
        int depth = 0;
        while (i < text.size() && (text[i] != ' ' || depth > 0)) {
            if (text[i] == '(')
                depth++;
            else if (text[i] == ')')
                depth--;
            i++;
        }
        if (i > start)
            out.emplace_back(text.substr(start, i - start));
    }
    return out;
}

std::vector<pyusdt_arg_spec> parse_args(std::string_view text, const SymbolResolver &resolve) {
    std::vector<std::string> tokens = split_args(text);
    if (tokens.size() > PYUSDT_MAX_ARGS)
        throw ArgSpecError("more than " + std::to_string(PYUSDT_MAX_ARGS) + " arguments");
    std::vector<pyusdt_arg_spec> out;
    for (const std::string &t : tokens)
        out.push_back(parse_arg(t, resolve));
    return out;
}

}  // namespace pyusdt
