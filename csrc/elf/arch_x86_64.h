// Every x86-64 specific fact of the C++ side, in one place: the ELF machine
// pyusdt reads and writes, the register names a note's argument spec may use
// (and where each lives in the uprobe context's struct pt_regs), the System V
// calling convention a provider probe function is called with, and the
// instruction bytes of the probe functions the provider ELF builder writes.
// A port to another architecture starts from a sibling of this file (and of
// bpf/arch_x86_64.bpf.h on the BPF side).
#pragma once

#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pyusdt::arch {

// ---- ELF ---------------------------------------------------------------------
// 64-bit little-endian objects (ElfFile reads Elf64_* structures only).
constexpr unsigned char kElfClass = ELFCLASS64;
constexpr unsigned char kElfData = ELFDATA2LSB;
constexpr uint16_t kElfMachine = EM_X86_64;
constexpr const char *kElfMachineName = "x86-64";

// ---- Registers in an argument spec ("8@%rdi", "-4@-20(%rbp)", "8@8(%rax,%rdx,8)")
struct Register {
    std::string_view name;  // without the '%'
    unsigned offset;        // offsetof(struct pt_regs, ...) of the full register
    unsigned shift;         // 8 for the legacy high-byte registers (%ah..%dh)
};

// Any general-purpose register or sub-register name GCC and clang emit, or
// nullptr.
const Register *find_register(std::string_view name);

// The instruction pointer: only as the base of "sym(%rip)" operands.
constexpr std::string_view kInstructionPointer = "%rip";

// ---- Calling convention (System V AMD64) ------------------------------------
// Integer arguments in registers before the rest go on the stack.
constexpr int kRegisterArgs = 6;
// The stack slot of each further argument, one word each.
constexpr int kStackSlotBytes = 8;

// The note's argument spec ("-4@%edi", "8@16(%rsp)") for integer argument
// `index` of `size` bytes (1, 2, 4 or 8), read at a function's first
// instruction: registers, then the caller's stack slots (0(%rsp) is the
// return address there).
std::string provider_arg_location(int index, int size, bool is_signed);

// ---- Instructions of a provider probe function ------------------------------
// The probe site: a 5-byte nop (`nopl 0(%rax,%rax,1)`, which the kernel's
// uprobe syscall can optimize) or the classic 1-byte nop.
constexpr uint8_t kNop5[] = {0x0f, 0x1f, 0x44, 0x00, 0x00};
constexpr uint8_t kNop1[] = {0x90};
// `movabs $imm64, %rax`: these two bytes, then the 8-byte immediate.
constexpr uint8_t kMovabsRax[] = {0x48, 0xb8};
constexpr uint8_t kRet = 0xc3;
// Padding between functions: a stray jump traps instead of sliding.
constexpr uint8_t kInt3 = 0xcc;
// Where functions start (their alignment).
constexpr size_t kFunctionAlign = 16;
// The page size the object's segments are aligned to.
constexpr uint64_t kPageSize = 0x1000;

}  // namespace pyusdt::arch
