"""Finding USDT probes: in one ELF file, or in every object a process maps.

A process counts every ELF object it maps: the executable, shared libraries,
libraries opened with dlopen, and objects whose file was deleted or lives in
a memfd.  Those are read (and later attached) through /proc/PID/map_files,
which names the mapped inode whatever its path says.
"""
from __future__ import annotations

import fnmatch
import os
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Optional, Union

from . import _native
from .errors import (
    ELFNotFoundError,
    MalformedNotesWarning,
    NoMatchError,
    NoProbesError,
    NoSuchProcessError,
    NotELFError,
    PyusdtError,
    TargetError,
)


@dataclass(frozen=True)
class ArgSpec:
    """One argument as the probe's note describes it."""

    spec: str  # the note's text, e.g. "-4@-20(%rbp)"
    kind: str  # const, reg, mem, mem_index, mem_abs
    size: int  # bytes, as the note says: 1, 2, 4, 8, or 16 (a struct or __int128 passed by value)
    signed: bool

    @property
    def bytes_read(self) -> int:
        """Bytes a trace reads: all of them, or the first 8 (the low half) of a
        16-byte argument, since each event holds an argument in 64 bits."""
        return min(self.size, _native.ARG_SLOT_BYTES)

    @property
    def partial(self) -> bool:
        """Whether a trace reads only part of this argument."""
        return self.bytes_read < self.size


_TYPE_NAMES = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "str", "bytes")
# Provider argument type codes (csrc/provider_elf.h) by name, and back.
ARG_TYPE_NAMES = {getattr(_native, "ARG_" + n.upper()): n for n in _TYPE_NAMES}


@dataclass
class Probe:
    """A USDT probe in one ELF object: provider, name and every site of it."""

    path: str  # where the object is, as a person would name it
    open_path: str  # a path that opens the same inode (map_files for a process)
    provider: str
    name: str
    sites: list = field(default_factory=list)  # _native.UsdtSite, one per location
    mapped_by: Optional[int] = None  # the pid whose mapping this came from
    # (name, type) of each argument, when a pyusdt Provider described them.
    described: Optional[list] = None

    @property
    def fullname(self) -> str:
        return f"{self.provider}:{self.name}"

    @property
    def args(self) -> list[ArgSpec]:
        return [ArgSpec(**a) for a in self.sites[0].args] if self.sites else []

    @property
    def nargs(self) -> int:
        return self.sites[0].nargs if self.sites else 0

    @property
    def arg_names(self) -> list[str]:
        """Argument names: the provider's own when it described them, else argN."""
        if self.described:
            return [n for n, _ in self.described]
        return [f"arg{i}" for i in range(self.nargs)]

    @property
    def string_args(self) -> tuple:
        """Indices of the arguments a provider declared as str."""
        return tuple(i for i, (_, t) in enumerate(self.described or ()) if t == "str")

    @property
    def semaphore(self) -> int:
        """Link-time address of the probe's semaphore, 0 when it has none."""
        return self.sites[0].semaphore_vaddr if self.sites else 0

    @property
    def locations(self) -> list[int]:
        return [s.pc_vaddr for s in self.sites]

    @property
    def unsupported(self) -> str:
        """Why pyusdt cannot read this probe's arguments; empty when it can."""
        for s in self.sites:
            if s.args_error:
                return s.args_error
        return ""

    def to_json(self) -> dict:
        partial = [{"index": i, "spec": a.spec, "size": a.size, "bytes_read": a.bytes_read}
                   for i, a in enumerate(self.args) if a.partial]
        return {
            "path": self.path,
            "provider": self.provider,
            "name": self.name,
            "locations": [hex(a) for a in self.locations],
            "semaphore": hex(self.semaphore) if self.semaphore else None,
            "args": self.sites[0].args_text.split() if self.sites else [],
            **({"unsupported": self.unsupported} if self.unsupported else {}),
            **({"partial_args": partial} if partial else {}),
            **({"arg_names": self.arg_names, "arg_types": [t for _, t in self.described]}
               if self.described else {}),
        }


def probes_in_file(path: str, display: Optional[str] = None, pid: Optional[int] = None) -> list[Probe]:
    """Every probe in the ELF file at `path`, its sites grouped by provider:name."""
    sites, malformed = _native.read_sites(path)
    if malformed:
        warnings.warn(f"{display or path}: {malformed} malformed USDT note(s) skipped "
                      "(truncated, or names that are not UTF-8)", MalformedNotesWarning, stacklevel=2)
    grouped: dict[tuple[str, str], Probe] = {}
    for s in sites:
        key = (s.provider, s.name)
        if key not in grouped:
            grouped[key] = Probe(display or path, path, s.provider, s.name, mapped_by=pid)
        grouped[key].sites.append(s)
    if grouped:
        for key, args in _native.described_probes(path).items():
            probe = grouped.get(tuple(key))
            if probe is not None and len(args) == probe.nargs:
                probe.described = [(name, ARG_TYPE_NAMES.get(code, "?")) for code, name in args]
    return list(grouped.values())


@dataclass(frozen=True)
class MappedObject:
    """One file-backed object mapped into a process."""

    pid: int
    path: str  # as /proc/PID/maps shows it, e.g. "/memfd:probes (deleted)"
    open_path: str  # /proc/PID/map_files/START-END
    inode_key: tuple  # (dev, inode): the uprobe identity of the object


def _map_files_name(maps_range: str) -> str:
    """/proc/PID/maps pads addresses to 8 digits (00400000-0041f000, a non-PIE
    executable); /proc/PID/map_files names them unpadded (400000-41f000)."""
    lo, hi = maps_range.split("-")
    return f"{int(lo, 16):x}-{int(hi, 16):x}"


def process_objects(pid: int) -> list[MappedObject]:
    """Every file-backed object mapped into `pid`, once each, in map order."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except ProcessLookupError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except PermissionError:
        raise TargetError(f"cannot read /proc/{pid}/maps: permission denied") from None
    seen: dict[tuple, MappedObject] = {}
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
    for obj in process_objects(pid):
        out.extend(probes_in_object(obj))
    return out


def probes_at_path(path: Union[str, os.PathLike]) -> list[Probe]:
    """Every probe in the file at `path`, with clear errors for bad paths."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ELFNotFoundError(f"no such file: {path}")
    if os.path.isdir(path):
        raise NotELFError(f"{path}: is a directory, not an ELF file")
    return probes_in_file(path)


def normalize_pattern(pattern: Optional[str]) -> str:
    """A glob on provider:name; a bare name matches it under any provider."""
    if not pattern:
        return "*:*"
    return pattern if ":" in pattern else f"*:{pattern}"


def match(probes: Iterable[Probe], pattern: Optional[str]) -> list[Probe]:
    pat = normalize_pattern(pattern)
    return [p for p in probes if fnmatch.fnmatchcase(p.fullname, pat)]


def require_match(probes: list[Probe], pattern: Optional[str], where: str) -> list[Probe]:
    """The probes matching `pattern`, or a clear error for none at all / none matching."""
    if not probes:
        raise NoProbesError(f"{where}: no USDT probes")
    found = match(probes, pattern)
    if not found:
        raise NoMatchError(f"{where}: no probe matches '{pattern}'")
    return found
