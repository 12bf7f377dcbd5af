"""The probes of one ELF file: each probe's sites, argument specs and semaphore,
read from its NT_STAPSDT notes (and a pyusdt provider's own argument names)."""
from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Optional, Union

from pyusdt import _native
from pyusdt.errors import (
    ConfigTypeError,
    ELFNotFoundError,
    ELFReadError,
    MalformedNotesWarning,
    NoProbesError,
    NotELFError,
)

# A file name as the os module takes one.
PathArg = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]

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


def arg_type_names() -> dict[int, str]:
    """Provider argument type names by code (csrc/provider/provider_note.h,
    the one table); imported only when a probe is a pyusdt provider's, since
    the provider extension is a load of its own (~1.5 ms of a trace's start)."""
    from pyusdt import _provider

    return {code: n for n, code in _provider.ARG_TYPES.items()}


@dataclass
class Probe:
    """A USDT probe in one ELF object: provider, name and every site of it."""

    path: str  # where the object is, as a person would name it
    open_path: str  # a path that opens the same inode (map_files for a process)
    provider: str
    name: str
    sites: list[_native.UsdtSite] = field(default_factory=list)  # one per location
    mapped_by: Optional[int] = None  # the pid whose mapping this came from
    # (name, type) of each argument, when a pyusdt Provider described them.
    described: Optional[list[tuple[str, str]]] = None

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
        groups: dict[tuple[object, ...], list[_native.UsdtSite]] = {}
        for s in self.sites:
            groups.setdefault(_layout_key(s), []).append(s)
        return [self] if len(groups) <= 1 else [replace(self, sites=sites) for sites in groups.values()]

    @property
    def same_specs(self) -> bool:
        """True when every site has the same argument specs, to the letter
        (registers and addresses too): one args list describes them all."""
        return len({s.args_text for s in self.sites}) <= 1

    @property
    def layout(self) -> tuple[object, ...]:
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
    def string_args(self) -> tuple[int, ...]:
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

    def to_json(self) -> dict[str, Any]:
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


def _layout_key(site: _native.UsdtSite) -> tuple[object, ...]:
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
        described = _native.described_probes(path)
        names = arg_type_names() if described else {}
        for key, args in described.items():
            probe = grouped.get((key[0], key[1]))
            if probe is not None and len(args) == probe.nargs:
                probe.described = [(name, names.get(code, "?")) for code, name in args]
    return list(grouped.values())


def as_path(path: PathArg) -> str:
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


def probes_at_path(path: PathArg) -> list[Probe]:
    """Every probe in the file at `path`, with clear errors for bad paths."""
    path = as_path(path)
    check_regular_file(path)
    return probes_in_file(path)
