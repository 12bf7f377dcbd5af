"""A process's mount table (/proc/PID/mountinfo), the fields pyusdt reads:
where cgroup v2 is mounted, and which device is which overlay."""
from __future__ import annotations

from typing import NamedTuple


class Mount(NamedTuple):
    """One line of a mount table.  (A NamedTuple, not a dataclass: file
    identities read the table while `pyusdt trace` starts, and a dataclass
    costs ~1 ms to create.)"""

    device: str  # "MAJOR:MINOR", as stat()'s st_dev splits
    root: str  # the mounted directory of its filesystem ("/" for the whole)
    mount_point: str
    fstype: str
    super_options: str  # the filesystem's own options (an overlay's lowerdir=...,upperdir=...)


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    """Every mount of the table at `mountinfo` (OSError if it cannot be read)."""
    with open(mountinfo) as f:
        lines = f.read().splitlines()
    out = []
    for line in lines:
        # ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
        fields = line.split()
        try:
            sep = fields.index("-")
            out.append(Mount(fields[2], fields[3], fields[4], fields[sep + 1], fields[sep + 3]))
        except (ValueError, IndexError):
            continue  # not a line of this format
    return out
