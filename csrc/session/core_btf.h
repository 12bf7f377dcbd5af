// The kernel types pyusdt's CO-RE relocations need, and only those.
//
// libbpf relocates a program against the kernel's whole BTF: it reads
// /sys/kernel/btf/vmlinux (5-6 MB, some 150,000 types) and, for each of
// the program's kernel types, scans every type for a name match.  On Linux
// 6.18 that was 6 ms to load and 0.9 ms per type, 11 types: about a third
// of a session's load, on the critical path of a trace's start.
//
// The program's own BTF already says what it reads: its local struct types
// (task_struct, vm_area_struct___pyusdt, ...) declare only the fields it
// uses.  This file projects the kernel's types onto them: the same type
// names, sizes and member offsets, and only the members the program
// declares, so libbpf's search and relocation come out the same as against
// the full BTF, in a few hundred bytes.
//
// The result is kept per process, and on disk per kernel (its build ID)
// and per program (a hash of the program's BTF), so a later trace on the
// same kernel reads a small file instead of the kernel's BTF.
#pragma once

#include <optional>
#include <string>

struct btf;

namespace pyusdt {

// A path libbpf can read as its btf_custom_path for a program whose BTF is
// `program_btf`, or "" when the kernel's own BTF should be used (no
// minimal BTF could be made, or PYUSDT_CORE_BTF=kernel).  Made once per
// process; the file stays readable for the process's lifetime.
std::string core_btf_path(const struct btf *program_btf);

// What core_btf_path() returns, once it has been made; nullopt before.
std::optional<std::string> core_btf_known();

// Says a session could not load with the path core_btf_path() gave: the
// cached file (if any) is removed and later calls return "".
void core_btf_failed();

}  // namespace pyusdt
