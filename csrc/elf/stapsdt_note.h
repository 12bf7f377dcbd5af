// The NT_STAPSDT note of sys/sdt.h, as both its reader (elf/usdt_notes.cpp)
// and the provider ELF builder (provider/provider_elf.cpp) see it:
//
//   owner "stapsdt", type 3, desc:
//     u64 pc         link-time address of the probe site
//     u64 base       link-time address of .stapsdt.base (to detect prelinking)
//     u64 semaphore  link-time address of the semaphore, 0 for none
//     provider\0 name\0 [argument specs, space separated]\0
#pragma once

#include <cstdint>

namespace pyusdt {

constexpr char kStapsdtNoteOwner[] = "stapsdt";
constexpr uint32_t kStapsdtNoteType = 3;
constexpr char kStapsdtBaseSection[] = ".stapsdt.base";

// The fixed head of the desc; the strings follow it.
struct StapsdtAddrs {
    uint64_t pc;
    uint64_t base;
    uint64_t semaphore;
};
static_assert(sizeof(StapsdtAddrs) == 24, "three 64-bit addresses, no padding");

}  // namespace pyusdt
