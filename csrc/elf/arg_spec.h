// Parser for the argument strings of sys/sdt.h notes ("-4@-20(%rbp) 8@%rdi ..."),
// producing the pyusdt_arg_spec records the BPF program interprets.
#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

extern "C" {
#include "pyusdt_abi.h"
}

namespace pyusdt {

// An argument form pyusdt cannot read; the message names the operand.
struct ArgSpecError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Resolves a symbol used in a %rip-relative operand to its link-time address.
using SymbolResolver = std::function<std::optional<uint64_t>(std::string_view)>;

// Parses one "N@OPERAND" token.
pyusdt_arg_spec parse_arg(std::string_view token, const SymbolResolver &resolve);

// Splits and parses a whole note argument string (at most PYUSDT_MAX_ARGS).
std::vector<pyusdt_arg_spec> parse_args(std::string_view text, const SymbolResolver &resolve);

// Splits the argument string into its tokens, for display.
std::vector<std::string> split_args(std::string_view text);

}  // namespace pyusdt
