"""Cgroups (v2) as targets: where the hierarchy is mounted, a cgroup's id
(what the BPF filter compares), its member processes, and a process's own.

Paths are the hierarchy's own ("/docker/3f2a...", "/system.slice/x.service"),
as /proc/PID/cgroup writes them; a path under the mount point
("/sys/fs/cgroup/system.slice/x.service") is taken too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional

from pyusdt.discover.mounts import mounts
from pyusdt.errors import NoSuchCgroupError

# Where cgroup v2 is mounted when /proc/self/mountinfo cannot be read.
DEFAULT_MOUNTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


@dataclass(frozen=True)
class Cgroup:
    """One cgroup of the v2 hierarchy."""

    path: str  # in the hierarchy, e.g. "/docker/3f2a..."
    directory: str  # where it is on this machine, e.g. "/sys/fs/cgroup/unified/docker/3f2a..."
    id: int  # the kernel's cgroup id: its directory's inode number (64-bit kernels)


def v2_mount() -> str:
    """Where the cgroup v2 hierarchy is mounted (its root), hybrid hosts included."""
    try:
        for m in mounts():
            if m.fstype == "cgroup2" and m.root == "/":
                return m.mount_point
    except OSError:
        pass
    for mount in DEFAULT_MOUNTS:
        if os.path.exists(os.path.join(mount, "cgroup.controllers")):
            return mount
    raise NoSuchCgroupError("no cgroup v2 hierarchy is mounted here (cgroup and container targets need one: "
                            "mount -t cgroup2 none /sys/fs/cgroup/unified)")


def cgroup_at(path: str) -> Cgroup:
    """The cgroup at `path` (in the hierarchy, or under its mount point)."""
    mount = v2_mount()
    rel = path
    if os.path.isabs(path) and (path == mount or path.startswith(mount.rstrip("/") + "/")):
        rel = path[len(mount.rstrip("/")):]
    rel = "/" + rel.strip("/")
    directory = os.path.normpath(mount + rel)
    if not directory.startswith(mount.rstrip("/")) or rel.startswith("/.."):
        raise NoSuchCgroupError(f"no such cgroup: {path} (outside the cgroup v2 hierarchy at {mount})")
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise NoSuchCgroupError(f"no such cgroup: {path} (no {directory})") from None
    if not os.path.exists(os.path.join(directory, "cgroup.procs")):
        raise NoSuchCgroupError(f"not a cgroup: {path} ({directory} has no cgroup.procs)")
    return Cgroup(os.path.normpath(rel), directory, st.st_ino)


def cgroup_exists(cg: Cgroup) -> bool:
    """Whether the cgroup is still there (a container's is removed when it stops)."""
    try:
        return os.stat(cg.directory).st_ino == cg.id
    except OSError:
        return False


def member_pids(cg: Cgroup) -> list[int]:
    """The processes of the cgroup and of every cgroup below it, in pid order."""
    pids: set[int] = set()
    for directory in _tree(cg.directory):
        try:
            with open(os.path.join(directory, "cgroup.procs")) as f:
                pids.update(int(line) for line in f if line.strip())
        except OSError:
            continue  # removed meanwhile
    return sorted(pids)


def _tree(top: str) -> Iterator[str]:
    yield top
    for root, dirs, _files in os.walk(top, onerror=lambda e: None):
        for d in dirs:
            yield os.path.join(root, d)


def process_cgroup(pid: int) -> Optional[str]:
    """The cgroup v2 path of process `pid` (None when it has exited, or is
    outside this cgroup namespace's view)."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    path = line[3:].strip()
                    return None if path.startswith("/..") else path
    except OSError:
        return None
    return None
