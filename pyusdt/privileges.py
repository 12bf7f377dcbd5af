"""The capabilities each job needs, and which of them this process lacks,
so that a permission error names what to grant instead of "run as root".

    list PATH                    none (the file must be readable)
    trace/aggregate PATH, -c     CAP_BPF, CAP_PERFMON; where sites are
                                 attached with perf-event links (Linux
                                 before 6.6, or uprobe_multi off), the
                                 kernel's uprobe event asks CAP_SYS_ADMIN
    -p PID                       + CAP_CHECKPOINT_RESTORE (open the files a
                                 process maps, /proc/PID/map_files), and
                                 CAP_SYS_PTRACE for a process with
                                 capabilities this one lacks (any process of
                                 root) or of another user
    --cgroup, --container,       the same as -p, for every member
    --object
    serve                        what its targets need
    Linux before 5.11            + CAP_SYS_RESOURCE (BPF maps are charged to
                                 RLIMIT_MEMLOCK there), or a large enough
                                 `ulimit -l`

CAP_SYS_ADMIN stands in for CAP_BPF, CAP_PERFMON and CAP_CHECKPOINT_RESTORE.
"""
from __future__ import annotations

import os
from typing import Optional

# Capability numbers (linux/capability.h).
CAP_NUMBERS = {"CAP_SYS_PTRACE": 19, "CAP_SYS_ADMIN": 21, "CAP_SYS_RESOURCE": 24, "CAP_PERFMON": 38,
               "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40}
# Held instead of each, by the kernel's own rules.
SUPERSEDED_BY = {"CAP_BPF": "CAP_SYS_ADMIN", "CAP_PERFMON": "CAP_SYS_ADMIN",
                 "CAP_CHECKPOINT_RESTORE": "CAP_SYS_ADMIN"}
LOAD_BPF = ("CAP_BPF", "CAP_PERFMON")
READ_MAPPED_FILES = ("CAP_CHECKPOINT_RESTORE",)
# The first kernel that charges BPF memory to the cgroup, not RLIMIT_MEMLOCK.
MEMCG_ACCOUNTING = (5, 11)


def effective_capabilities() -> Optional[int]:
    """This process's effective capability bits (None: unknown)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def has(cap: str, effective: Optional[int] = None) -> bool:
    bits = effective_capabilities() if effective is None else effective
    if bits is None:
        return os.geteuid() == 0
    if bits >> CAP_NUMBERS[cap] & 1:
        return True
    other = SUPERSEDED_BY.get(cap)
    return other is not None and bool(bits >> CAP_NUMBERS[other] & 1)


def missing(caps: tuple[str, ...]) -> list[str]:
    """The capabilities of `caps` this process does not hold (or hold through CAP_SYS_ADMIN)."""
    bits = effective_capabilities()
    return [c for c in caps if not has(c, bits)]


def names(caps: list[str]) -> str:
    return " and ".join(caps) if len(caps) <= 2 else ", ".join(caps[:-1]) + " and " + caps[-1]


def load_denied() -> str:
    """Why loading BPF was refused, naming what to grant."""
    lacking = missing(LOAD_BPF)
    if lacking:
        return f"permission denied loading BPF: this process lacks {names(lacking)} (run as root, or grant them)"
    if _kernel_version() < MEMCG_ACCOUNTING and not has("CAP_SYS_RESOURCE"):
        return ("permission denied loading BPF: this kernel charges BPF maps to the locked-memory limit: grant "
                "CAP_SYS_RESOURCE, or raise `ulimit -l`")
    return "permission denied loading BPF, though this process holds CAP_BPF and CAP_PERFMON (a security module?)"


def mapped_files_denied(pid: int) -> str:
    """Why the files process `pid` maps could not be opened."""
    lacking = missing(READ_MAPPED_FILES)
    where = f"cannot read the files process {pid} maps (/proc/{pid}/map_files): permission denied"
    if lacking:
        return f"{where}: this process lacks CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)"
    if not has("CAP_SYS_PTRACE"):
        return (f"{where}: process {pid} has capabilities this one lacks, or another user: that needs "
                "CAP_SYS_PTRACE")
    return f"{where} (a security module?)"


def maps_denied(pid: int) -> str:
    """Why /proc/PID/maps could not be read."""
    where = f"cannot read /proc/{pid}/maps: permission denied"
    if not has("CAP_SYS_PTRACE"):
        return f"{where}: process {pid} has capabilities this one lacks, or another user: that needs CAP_SYS_PTRACE"
    return f"{where} (a security module?)"


def attach_denied(perf_links: bool) -> str:
    """What an attach refused with EPERM/EACCES lacks; `perf_links`: the
    session attaches with perf-event links, not uprobe_multi."""
    lacking = missing(("CAP_PERFMON",))
    if lacking:
        return "attaching uprobes needs CAP_PERFMON, which this process lacks"
    if perf_links and not has("CAP_SYS_ADMIN"):
        # perf_event_open() of the kernel's uprobe event checks CAP_SYS_ADMIN itself.
        return ("attaching with perf-event links (Linux before 6.6, or uprobe_multi off) needs CAP_SYS_ADMIN, "
                "which this process lacks")
    return "attaching to another process's uprobes needs CAP_SYS_PTRACE" if not has("CAP_SYS_PTRACE") else ""


def _kernel_version() -> tuple[int, int]:
    try:
        major, minor = os.uname().release.split(".")[:2]
        return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)
    except ValueError:
        return (0, 0)
