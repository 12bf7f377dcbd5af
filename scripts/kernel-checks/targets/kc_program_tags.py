"""The kernel's tag (its hash of a program's instructions as loaded, CO-RE
offsets included) of each BPF program one pyusdt session loads, as one JSON
list, sorted.

    python kc_program_tags.py [OPTION=VALUE ...]     (SessionOptions fields)

Run once with PYUSDT_CORE_BTF=kernel (relocated against the kernel's whole
BTF) and once without (against pyusdt's minimal BTF): the same tags show the
two relocate every program alike.  Used by scripts/check-kernels on each
kernel and by tests/test_core_btf.py on the host."""
import json
import os
import sys

from pyusdt import _native

opts = _native.SessionOptions()
for arg in sys.argv[1:]:
    name, value = arg.split("=", 1)
    setattr(opts, name, int(value))
session = _native.Session(opts)
tags = []
for fd in os.listdir("/proc/self/fdinfo"):
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            info = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        continue  # the listing's own fd, gone by now
    if "prog_tag" in info:
        tags.append(info["prog_tag"])
print(json.dumps(sorted(tags)))
session.close()
