// Strings the BPF program could not read, read again from user space.
//
// A uprobe program that cannot sleep cannot fault a page in, so a string in
// a page the process has not touched yet (a constant in .rodata) fails there.
// Kernels from 6.0 fault it in with a sleepable program; before that, the
// reader reads the string itself, as soon as the record arrives, with
// process_vm_readv (which faults the page in for the process too, so the
// next hit reads it in the kernel).  Only a mapping that is not writable is
// read so: its bytes cannot have changed since the hit.  Before 6.1 the
// program also says which file and offset such a string is at
// (pyusdt_str_file), so it is read from the file when the process is gone.
// A string elsewhere stays unreadable, and counted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pyusdt {

// Reads the string at `addr` of process `pid` into `dst` (len bytes, NUL
// padded), as bpf_probe_read_user_str would have.  Returns false when it
// cannot be read exactly; sets `truncated` when the string goes on past len-1.
bool read_string_late(uint32_t pid, uint64_t addr, uint8_t *dst, size_t len, bool &truncated);

// The same from `path` at file offset `offset`.
bool read_string_from_file(const std::string &path, uint64_t offset, uint8_t *dst, size_t len,
                           bool &truncated);

}  // namespace pyusdt
