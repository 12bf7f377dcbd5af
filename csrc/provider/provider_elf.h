// Builds, in memory, the small x86-64 shared object a run-time USDT provider
// is made of (what libstapsdt did with libelf, written here without it):
// one function per probe whose first instruction is the probe site, one
// semaphore per probe in .probes, the NT_STAPSDT notes that describe them, and
// a pyusdt note with each argument's name and type so tracers can decode them.
// The caller writes the bytes to a memfd and dlopens it.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "provider/provider_note.h"

namespace pyusdt {

struct ProviderProbeSpec {
    std::string name;
    std::vector<ProviderArg> args;
    std::vector<std::string> arg_names;
};

struct ProviderError : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};

// Where each probe ended up in the object (offsets from its load address).
struct ProviderLayout {
    std::vector<uint64_t> function_vaddr;   // probe function (its first byte is the site)
    std::vector<uint64_t> semaphore_vaddr;  // its unsigned short semaphore
};

// The object's bytes; nop5 chooses a 5-byte nop probe site (optimizable by
// the kernel's uprobe syscall) instead of the classic 1-byte nop.  Every
// probe function returns `return_value` in %rax: pyusdt passes the address
// of Python's None, so that probe.fire can jump to the function as its last
// act and the function's return is fire's (see provider_probe.cpp).
std::vector<uint8_t> build_provider_elf(const std::string &provider,
                                        const std::vector<ProviderProbeSpec> &probes, bool nop5,
                                        uint64_t return_value, ProviderLayout *layout);

// The note's argument spec for argument `index` of type `t` at the probe
// site (the function entry): registers, then the caller's stack slots.
std::string provider_arg_spec(ProviderArg t, int index);

}  // namespace pyusdt
