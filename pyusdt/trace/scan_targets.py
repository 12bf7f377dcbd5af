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
import time
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
# How often the mappings of a process already scanned are read again (a
# new process is read at the first rescan that sees it).
MAPS_REREAD_S = 2.0


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


class Scanner:
    """A scan target's processes looked at again and again, cheaply: a
    process's mappings are read at once when it appears (a container
    starting, an exec), then again only every MAPS_REREAD_S (a dlopen in a
    running process); a file already met through some mapping (the
    (device, inode) /proc/PID/maps writes) is not looked at again."""

    def __init__(self, target: ScanTarget) -> None:
        self.target = target
        self._read_at: dict[int, float] = {}  # pid -> when its mappings were last read
        self._met: set[tuple[str, str]] = set()  # (dev, inode) of /proc/PID/maps, files met

    def new_objects(self, seen: set[InodeKey]) -> list[MappedObject]:
        """The objects of the target's processes not in `seen` (real
        inodes) that its object filter takes; adds them to `seen`."""
        now = time.monotonic()
        pids = self.target.pids()
        alive = set(pids)
        self._read_at = {pid: t for pid, t in self._read_at.items() if pid in alive}
        due = [pid for pid in pids if now - self._read_at.get(pid, -MAPS_REREAD_S) >= MAPS_REREAD_S]
        found = []
        for pid in due:
            self._read_at[pid] = now
            try:
                objects = process_objects(pid)
            except PyusdtError:
                continue  # exited meanwhile
            for obj in objects:
                if obj.inode_key in self._met:
                    continue
                try:
                    key = file_key(obj.open_path)
                except OSError:
                    continue  # unmapped meanwhile
                self._met.add(obj.inode_key)
                if key in seen:
                    continue
                seen.add(key)
                if object_matches(self.target.objects, obj):
                    found.append(obj)
        return found


def probes_of_objects(objects: Iterable[MappedObject]) -> list[Probe]:
    out: list[Probe] = []
    for obj in objects:
        out.extend(probes_in_object(obj))
    return out
