"""The probes of a running process: every ELF object it maps (executable,
shared libraries, dlopened objects, deleted files and memfds), read through
/proc/PID/map_files, which names the mapped inode whatever its path says."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from pyusdt.discover.probes import Probe, probes_in_file
from pyusdt.errors import NoSuchProcessError, PrivilegeError, PyusdtError
from pyusdt.privileges import mapped_files_denied, maps_denied


@dataclass(frozen=True)
class MappedObject:
    """One file-backed object mapped into a process."""

    pid: int
    path: str  # as /proc/PID/maps shows it, e.g. "/memfd:probes (deleted)"
    open_path: str  # /proc/PID/map_files/START-END
    inode_key: tuple[str, str]  # (dev, inode) as /proc/PID/maps writes them: the object's identity


def _map_files_name(maps_range: str) -> str:
    """/proc/PID/maps pads addresses to 8 digits (00400000-0041f000, a non-PIE
    executable); /proc/PID/map_files names them unpadded (400000-41f000)."""
    lo, hi = maps_range.split("-")
    return f"{int(lo, 16):x}-{int(hi, 16):x}"


def process_objects(pid: int) -> list[MappedObject]:
    """Every file-backed object mapped into `pid`, once each, in map order."""
    try:
        # Paths as os.fsdecode gives them: a file name need not be UTF-8.
        with open(f"/proc/{pid}/maps", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except ProcessLookupError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except PermissionError:
        raise PrivilegeError(maps_denied(pid)) from None
    seen: dict[tuple[str, str], MappedObject] = {}
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        addr, _perms, _off, dev, inode, path = parts
        if inode == "0" or not (path.startswith("/") or path.startswith("/memfd:")):
            continue
        key = (dev, inode)
        if key in seen:
            continue
        seen[key] = MappedObject(pid, path, f"/proc/{pid}/map_files/{_map_files_name(addr)}", key)
    return list(seen.values())


def _is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def probes_in_object(obj: MappedObject) -> list[Probe]:
    """Probes of one mapped object; [] for data files and objects pyusdt cannot read."""
    if not _is_elf(obj.open_path):
        return []
    try:
        return probes_in_file(obj.open_path, display=obj.path, pid=obj.pid)
    except PyusdtError:
        return []


def probes_in_process(pid: int) -> list[Probe]:
    """Every probe in every ELF object mapped into `pid`."""
    out: list[Probe] = []
    objects = process_objects(pid)
    if objects:
        _check_map_files_access(objects[0])
    for obj in objects:
        out.extend(probes_in_object(obj))
    return out


def _check_map_files_access(obj: MappedObject) -> None:
    """A process's objects are read through /proc/PID/map_files, which the
    kernel opens only for CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE, 5.9+)
    with ptrace access to the process: without, every object would be
    skipped and the process would seem to have no probes."""
    try:
        os.close(os.open(obj.open_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK))
    except PermissionError:
        raise PrivilegeError(mapped_files_denied(obj.pid)) from None
    except OSError:
        pass  # that mapping went away: the others are read as usual


def descendants(pid: int) -> list[int]:
    """The processes `pid` forked, theirs, and so on, from /proc, in pid order."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:  # comm may hold any bytes, ')' too
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(name))
    found: list[int] = []
    todo = [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found.extend(kids)
        todo.extend(kids)
    return sorted(found)



def namespace_pid(pid: int) -> Optional[int]:
    """The pid of process `pid` as its own (innermost) pid namespace sees it:
    the pid inside its container.  None when it has exited."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError, IndexError):
        return None
    return pid  # kernels before 4.1 have no NSpid: one namespace
