#include "elf/arch_x86_64.h"

#include <asm/ptrace.h>  // the x86-64 user pt_regs layout the uprobe context uses

#include <string>

namespace pyusdt::arch {

namespace {

#define R(name, field, shift) {name, offsetof(struct pt_regs, field), shift}
const Register kRegisters[] = {
    R("rax", rax, 0), R("eax", rax, 0), R("ax", rax, 0), R("al", rax, 0), R("ah", rax, 8),
    R("rbx", rbx, 0), R("ebx", rbx, 0), R("bx", rbx, 0), R("bl", rbx, 0), R("bh", rbx, 8),
    R("rcx", rcx, 0), R("ecx", rcx, 0), R("cx", rcx, 0), R("cl", rcx, 0), R("ch", rcx, 8),
    R("rdx", rdx, 0), R("edx", rdx, 0), R("dx", rdx, 0), R("dl", rdx, 0), R("dh", rdx, 8),
    R("rsi", rsi, 0), R("esi", rsi, 0), R("si", rsi, 0), R("sil", rsi, 0),
    R("rdi", rdi, 0), R("edi", rdi, 0), R("di", rdi, 0), R("dil", rdi, 0),
    R("rbp", rbp, 0), R("ebp", rbp, 0), R("bp", rbp, 0), R("bpl", rbp, 0),
    R("rsp", rsp, 0), R("esp", rsp, 0), R("sp", rsp, 0), R("spl", rsp, 0),
    R("r8", r8, 0),   R("r8d", r8, 0),   R("r8w", r8, 0),   R("r8b", r8, 0),   R("r8l", r8, 0),
    R("r9", r9, 0),   R("r9d", r9, 0),   R("r9w", r9, 0),   R("r9b", r9, 0),   R("r9l", r9, 0),
    R("r10", r10, 0), R("r10d", r10, 0), R("r10w", r10, 0), R("r10b", r10, 0), R("r10l", r10, 0),
    R("r11", r11, 0), R("r11d", r11, 0), R("r11w", r11, 0), R("r11b", r11, 0), R("r11l", r11, 0),
    R("r12", r12, 0), R("r12d", r12, 0), R("r12w", r12, 0), R("r12b", r12, 0), R("r12l", r12, 0),
    R("r13", r13, 0), R("r13d", r13, 0), R("r13w", r13, 0), R("r13b", r13, 0), R("r13l", r13, 0),
    R("r14", r14, 0), R("r14d", r14, 0), R("r14w", r14, 0), R("r14b", r14, 0), R("r14l", r14, 0),
    R("r15", r15, 0), R("r15d", r15, 0), R("r15w", r15, 0), R("r15b", r15, 0), R("r15l", r15, 0),
    R("rip", rip, 0),
};
#undef R

// The argument registers in order, each as its 8, 4, 2 and 1-byte name.
const char *const kArgRegisters[kRegisterArgs][4] = {
    {"rdi", "edi", "di", "dil"}, {"rsi", "esi", "si", "sil"}, {"rdx", "edx", "dx", "dl"},
    {"rcx", "ecx", "cx", "cl"},  {"r8", "r8d", "r8w", "r8b"}, {"r9", "r9d", "r9w", "r9b"},
};

}  // namespace

const Register *find_register(std::string_view name) {
    for (const Register &r : kRegisters)
        if (r.name == name)
            return &r;
    return nullptr;
}

std::string provider_arg_location(int index, int size, bool is_signed) {
    std::string prefix = (is_signed ? "-" : "") + std::to_string(size) + "@";
    if (index < kRegisterArgs) {
        int which = size == 8 ? 0 : size == 4 ? 1 : size == 2 ? 2 : 3;
        return prefix + "%" + kArgRegisters[index][which];
    }
    // At the function's first instruction 0(%rsp) is the return address;
    // the caller's stack arguments follow, one slot each.
    return prefix + std::to_string(kStackSlotBytes * (index - kRegisterArgs + 1)) + "(%rsp)";
}

}  // namespace pyusdt::arch
