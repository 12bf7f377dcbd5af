"""Finding USDT probes: in one ELF file, or in every object a process maps.

A process counts every ELF object it maps: the executable, shared libraries,
libraries opened with dlopen, and objects whose file was deleted or lives in
a memfd.  Those are read (and later attached) through /proc/PID/map_files,
which names the mapped inode whatever its path says.
"""
from __future__ import annotations

import fnmatch
import os
import stat
import warnings
from dataclasses import dataclass, field, replace
from typing import Iterable, Optional, Union

from . import _native
from .errors import (
    ConfigTypeError,
    ELFNotFoundError,
    ELFReadError,
    MalformedNotesWarning,
    NoMatchError,
    NoProbesError,
    NoSuchProcessError,
    NotELFError,
    PrivilegeError,
    PyusdtError,
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


# Provider argument type names by code (csrc/provider/provider_note.h, the one table).
ARG_TYPE_NAMES = {code: n for n, code in _native.ARG_TYPES.items()}


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
    def uniform(self) -> bool:
        """True when every site has the same arguments (count, widths, signs).
        One probe name used at several call sites with different arguments
        is not: each site keeps its own specs (see layouts())."""
        return len({_layout_key(s) for s in self.sites}) <= 1

    def layouts(self) -> list["Probe"]:
        """This probe split by argument layout: one Probe per distinct
        (count, widths, signs) of its sites, in site order.  A uniform probe
        is its own only layout.  A trace gives each layout its own probe id,
        so every record is decoded with the specs of the site that fired."""
        groups: dict[tuple, list] = {}
        for s in self.sites:
            groups.setdefault(_layout_key(s), []).append(s)
        return [self] if len(groups) <= 1 else [replace(self, sites=sites) for sites in groups.values()]

    @property
    def same_specs(self) -> bool:
        """True when every site has the same argument specs, to the letter
        (registers and addresses too): one args list describes them all."""
        return len({s.args_text for s in self.sites}) <= 1

    @property
    def layout(self) -> tuple:
        """The first site's argument layout (every site's when uniform)."""
        return _layout_key(self.sites[0]) if self.sites else ()

    @property
    def args(self) -> list[ArgSpec]:
        """The arguments of the probe's sites.  When the sites differ (not
        uniform), those of the first site: read each site's own from
        site_args(), or split the probe with layouts()."""
        return self.site_args(0)

    def site_args(self, index: int) -> list[ArgSpec]:
        """The arguments of site `index`, as its note describes them."""
        return [ArgSpec(**a) for a in self.sites[index].args] if self.sites else []

    @property
    def nargs(self) -> int:
        """Argument count of the first site (of every site when uniform)."""
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
        """Link-time address of the probe's semaphore, 0 when it has none
        (the first site's; every site's for probes built with sys/sdt.h)."""
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
        """The probe as list --json prints it: "sites" has each site's own
        location, semaphore and argument specs; the top-level "args" is the
        specs every site has, null when they differ."""
        sites = [{"location": hex(s.pc_vaddr),
                  "semaphore": hex(s.semaphore_vaddr) if s.semaphore_vaddr else None,
                  "args": s.args_text.split()} for s in self.sites]
        partial = [{"index": i, "spec": a.spec, "size": a.size, "bytes_read": a.bytes_read}
                   for i, a in enumerate(self.args) if a.partial]
        return {
            "path": self.path,
            "provider": self.provider,
            "name": self.name,
            "locations": [hex(a) for a in self.locations],
            "semaphore": hex(self.semaphore) if self.semaphore else None,
            "args": (sites[0]["args"] if self.sites else []) if self.same_specs else None,
            "sites": sites,
            **({"unsupported": self.unsupported} if self.unsupported else {}),
            **({"partial_args": partial} if partial else {}),
            **({"arg_names": self.arg_names, "arg_types": [t for _, t in self.described]}
               if self.described else {}),
        }


def _layout_key(site) -> tuple:
    """What decoding a site's record depends on: each argument's width and sign."""
    return tuple((a["size"], a["signed"]) for a in site.args) + (site.nargs,)


def probes_in_file(path: str, display: Optional[str] = None, pid: Optional[int] = None) -> list[Probe]:
    """Every probe in the ELF file at `path`, its sites grouped by provider:name."""
    sites, malformed = _native.read_sites(path)
    if malformed and not sites and pid is None:
        # A file named by the user whose every note is malformed: one error
        # that says why, not a warning followed by "no USDT probes".
        raise NoProbesError(f"{display or path}: no USDT probes: its {malformed} USDT note(s) are malformed "
                            "(truncated, or names that are not UTF-8)")
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
        # Paths as os.fsdecode gives them: a file name need not be UTF-8.
        with open(f"/proc/{pid}/maps", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except ProcessLookupError:
        raise NoSuchProcessError(f"no such process: {pid}") from None
    except PermissionError:
        raise PrivilegeError(f"cannot read /proc/{pid}/maps: permission denied (another user's process "
                             "needs ptrace access: run as root or as its user)") from None
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
        raise PrivilegeError(f"cannot read the files process {obj.pid} maps (/proc/{obj.pid}/map_files): "
                             "permission denied: that needs CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE; run as "
                             "root") from None
    except OSError:
        pass  # that mapping went away: the others are read as usual


def as_path(path: Union[str, bytes, os.PathLike]) -> str:
    """A path as str, whatever the caller gave: bytes and names that are not
    UTF-8 become str as os.fsdecode makes them (the native side encodes them
    back to the same bytes)."""
    try:
        return os.fsdecode(path)
    except TypeError:
        raise ConfigTypeError(f"a path must be str, bytes or os.PathLike (got {path!r})") from None


# What stat() says a file is, for the error naming it.
_FILE_TYPES = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_regular_file(path: str) -> None:
    """ELFNotFoundError, or NotELFError for anything but a regular file.  Checked
    before opening: opening a FIFO waits for a writer, forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ELFNotFoundError(f"no such file: {path}") from None
    except ValueError:  # a NUL in the name: no file has one
        raise ELFNotFoundError(f"no such file: {path!r}") from None
    except OSError as e:
        raise ELFReadError(f"{path}: {e.strerror}") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")
        raise NotELFError(f"{path}: is {kind}, not an ELF file")


def probes_at_path(path: Union[str, bytes, os.PathLike]) -> list[Probe]:
    """Every probe in the file at `path`, with clear errors for bad paths."""
    path = as_path(path)
    check_regular_file(path)
    return probes_in_file(path)


def normalize_pattern(pattern: Optional[str]) -> str:
    """A glob on provider:name; a bare name matches it under any provider."""
    if not pattern:
        return "*:*"
    if not isinstance(pattern, str):
        raise ConfigTypeError(f"a probe pattern must be a str (got {pattern!r})")
    return pattern if ":" in pattern else f"*:{pattern}"


def split_path_pattern(pattern: Optional[str]) -> Optional[tuple[str, str]]:
    """bpftrace's path-qualified form, PATH:provider:name (or PATH:name, or
    PATH alone): (PATH, the rest as a pattern); None for a plain pattern.
    A pattern names a file when it starts with '/'."""
    if not pattern or not pattern.startswith("/"):
        return None
    parts = pattern.rsplit(":", 2)
    if len(parts) == 1:
        return parts[0], "*"
    if len(parts) == 2:
        return parts[0], parts[1]
    return parts[0], f"{parts[1]}:{parts[2]}"


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
