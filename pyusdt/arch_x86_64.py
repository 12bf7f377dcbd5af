"""Every x86-64 fact of the Python side (csrc/elf/arch_x86_64.cpp and
bpf/arch_x86_64.bpf.h hold the C++ and BPF ones): another architecture is
one more file like this, and one like each of those."""
from __future__ import annotations

# glibc's dynamic loader, where Debian and the FHS put it: it lists the
# libraries a held command will map (ld.so --list), before it runs.
DYNAMIC_LOADERS = ("/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
