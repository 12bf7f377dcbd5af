"""Targets found by scanning processes rather than named by one pid: a
cgroup or a container (its member processes, now and later), or every
process on the host that maps a given object (by file name or build-id).

Each object is read through a member's /proc/PID/map_files, which names the
file the kernel maps: a file several containers share (a layer of one
image) is one inode there, so it is scanned and attached once.  Sites are
attached for every process that maps the file; for a cgroup the BPF filter
then counts only the cgroup's processes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Optional

from pyusdt.discover.cgroups import Cgroup, cgroup_exists, member_pids
from pyusdt.discover.containers import Container
from pyusdt.discover.file_identity import file_key
from pyusdt.discover.object_filter import object_matches
from pyusdt.discover.probes import Probe
from pyusdt.discover.process import MappedObject, probes_in_object, process_objects
from pyusdt.errors import PyusdtError

InodeKey = tuple[int, int]  # (st_dev, st_ino), as trace.requests has it


@dataclass(frozen=True)
class ScanTarget:
    """Which processes to scan, and which of their objects to take."""

    cgroup: Optional[Cgroup] = None  # None: every process on the host
    container: Optional[Container] = None  # the container the cgroup is, when one was named
    objects: Optional[str] = None  # file name glob or build-id; None: every object

    def describe(self) -> str:
        if self.container is not None:
            where = f"container {self.container.short_id}"
        elif self.cgroup is not None:
            where = f"cgroup {self.cgroup.path}"
        else:
            where = "every process"
        return where if self.objects is None else f"{self.objects} in {where}"

    def pids(self) -> list[int]:
        if self.cgroup is not None:
            return member_pids(self.cgroup)
        return sorted(int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid())

    @property
    def alive(self) -> bool:
        """False once the cgroup is gone (its container stopped)."""
        return self.cgroup is None or cgroup_exists(self.cgroup)


def new_objects(target: ScanTarget, seen: set[InodeKey], pids: Optional[Iterable[int]] = None) -> list[MappedObject]:
    """The objects of the target's processes (or of `pids`) not in `seen`
    (real inodes), that its object filter takes; adds them to `seen`."""
    found = []
    for pid in target.pids() if pids is None else pids:
        try:
            objects = process_objects(pid)
        except PyusdtError:
            continue  # exited meanwhile
        for obj in objects:
            try:
                key = file_key(obj.open_path)
            except OSError:
                continue  # unmapped meanwhile
            if key in seen:
                continue
            seen.add(key)
            if object_matches(target.objects, obj):
                found.append(obj)
    return found


def probes_of_objects(objects: Iterable[MappedObject]) -> list[Probe]:
    out: list[Probe] = []
    for obj in objects:
        out.extend(probes_in_object(obj))
    return out
