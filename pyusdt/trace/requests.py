"""What one attach call asks for: the target (a path, a pid, a held
command, or processes found by a scan: a cgroup, a container, an object),
the probes it matched, how their hits are read (streamed with string
arguments, or aggregated), and which of them can be traced as asked.
The Tracer keeps one AttachRequest per call and links its probes into the
session at start(), and again when the target maps new objects.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, NamedTuple, Optional, Union

from pyusdt import _native, expr, limits
from pyusdt.discover.file_identity import file_key
from pyusdt.discover.patterns import require_match
from pyusdt.discover.probes import Probe, probes_at_path
from pyusdt.discover.process import probes_in_process, process_objects
from pyusdt.errors import (
    ArgumentIndexError,
    ELFReadError,
    NoMatchError,
    NoProbesError,
    NoSuchProcessError,
    NotELFError,
    PyusdtError,
)
from pyusdt.trace.expressions import (
    LayoutPrograms,
    aggregation_programs,
    mentions_ustack,
    stream_programs,
    uses_expressions,
)

# Imported where they are used: aggregations, -c commands (subprocess)
# and scans (cgroups, containers, json) are not every trace's, and a
# plain `trace -p` reaches its first event without them.
if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.aggregate.specs import Aggregate, Latency
    from pyusdt.trace.launcher import HeldProcess
    from pyusdt.trace.scan_targets import Scanner, ScanTarget

InodeKey = tuple[int, int]  # (st_dev, st_ino): a file as the kernel's uprobes know it


@dataclass
class AttachRequest:
    """One attach call: which probes, where, and how to read their arguments."""

    pattern: str
    strings: tuple[int, ...]
    kind: str  # "path", "pid", "command" or "scan"
    path: Optional[str] = None
    scanner: Optional[Scanner] = None  # kind "scan": which processes and objects, looked at again
    pid: Optional[int] = None
    held: Optional[HeldProcess] = None
    agg: Union[None, Aggregate, Latency] = None  # aggregate in the kernel instead of streaming
    role: int = _native.Role.NONE  # what this request's sites do with a hit
    # (probe layout, its string arguments), resolved but not yet attached
    pending: list[tuple[Probe, tuple[int, ...]]] = field(default_factory=list)
    seen_objects: set[InodeKey] = field(default_factory=set)  # inode keys already scanned
    only_path: Optional[str] = None  # PATH:provider:name: that file only, attached by inode
    matched: bool = False  # some probe matched (a pattern may match only objects loaded later)
    unmatched_why: str = ""  # later=True and nothing matched when attached: why
    loader_hooked: bool = False  # the dynamic linker's site was attached for this target
    where: Optional[str] = None  # streaming: a predicate (bpftrace syntax)
    fields: Optional[str] = None  # streaming: what each record holds instead of the arguments
    str_len: int = _native.DEFAULT_STR_LEN  # the session's string slot width (fields' strings)
    # (provider:name, layout) -> its programs, compiled once per layout
    programs: dict[tuple[str, tuple[object, ...]], LayoutPrograms] = field(default_factory=dict)

    @property
    def scan(self) -> Optional[ScanTarget]:
        return self.scanner.target if self.scanner is not None else None

    @property
    def uses_expressions(self) -> bool:
        return uses_expressions(self.where, self.fields, self.agg)

    @property
    def takes_stacks(self) -> bool:
        """Whether its expressions take user stacks (ustack)."""
        if self.agg is not None:
            from pyusdt.aggregate.specs import Latency  # loaded already: self.agg is one of its classes

            agg = self.agg.aggregate() if isinstance(self.agg, Latency) else self.agg
            return agg.uses_expressions and mentions_ustack(*agg.expression_texts())
        return mentions_ustack(self.where, self.fields)

    def programs_for(self, probe: Probe) -> Optional[LayoutPrograms]:
        """This request's programs for one probe layout (None without
        expressions); ExpressionError when they do not fit its arguments."""
        if not self.uses_expressions:
            return None
        key = (probe.fullname, probe.layout)
        known = self.programs.get(key)
        if known is None:
            if self.agg is not None:
                known = aggregation_programs(self.agg, self.role, probe)
            else:
                known = stream_programs(self.where, self.fields, probe, self.str_len)
            self.programs[key] = known
        return known

    def loader_objects(self) -> list[tuple[str, str]]:
        """(open path, display path) of the objects where the target's
        dynamic linker may be: for a command not yet started, what its
        executable links; for a process, what it maps."""
        if self.held is not None:
            from pyusdt.trace.launcher import linked_libraries  # loaded already: it made self.held

            objs = [self.held.executable] + linked_libraries(self.held.executable)
            return [(o, o) for o in objs]
        try:
            return [(o.open_path, o.path) for o in process_objects(self.pid)] if self.pid is not None else []
        except PyusdtError:
            return []


class RoleAgg(NamedTuple):
    """One side (start or done) of a Latency, as one attach request sees it.
    (A NamedTuple, not a dataclass: this module is on `pyusdt trace`'s
    start-up path, where each dataclass costs ~1 ms to create.)"""

    spec: Latency
    role: int


def inode_key(path: str) -> InodeKey:
    """The file as uprobes know it: its real inode, one key for every
    container's view of one image file (discover.file_identity)."""
    return file_key(path)


def inode_keys(paths: Iterable[str]) -> set[InodeKey]:
    """Inode keys of the paths that still exist (a mapping can vanish meanwhile)."""
    keys = set()
    for p in paths:
        try:
            keys.add(inode_key(p))
        except OSError:
            pass
    return keys


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:  # bytes: comm is any bytes the process chose
            # A zombie has exited: its probes can no longer fire.
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def by_layout(probes: list[Probe]) -> list[Probe]:
    """Each probe split by argument layout (Probe.layouts): the unit a trace
    attaches and decodes, so no site is read with another site's specs."""
    return [view for p in probes for view in p.layouts()]


def probes_of_process(pid: object, pattern: Optional[str]) -> list[Probe]:
    """The probes matching `pattern` in every object process `pid` maps.  A
    process that is not running, or exits while its objects are read, is
    NoSuchProcessError, not "no USDT probes"."""
    pid = limits.as_int(pid, "pid")
    if not 0 < pid <= limits.PID_MAX_LIMIT or not pid_alive(pid):
        raise NoSuchProcessError(f"no such process: {pid}")
    try:
        return require_match(probes_in_process(pid), pattern, f"process {pid}")
    except NoProbesError:
        if not pid_alive(pid):
            raise NoSuchProcessError(f"process {pid} exited before its probes were read") from None
        raise


def check_probes(probes: list[Probe], req: AttachRequest, strict: bool,
                 warnings: list[str]) -> list[tuple[Probe, tuple[int, ...]]]:
    """(probe layout, its string arguments) for each one that can be traced as asked.

    `probes` are split by layout first.  A string index applies to the
    layouts that have such an argument; it is an error only when none has
    it.  An aggregation argument a probe's sites lack is an error for that
    probe (with `strict`, ArgumentIndexError), unless some of its sites have
    it: the others are then skipped with a warning.  Probes whose arguments
    pyusdt cannot read are refused with a warning naming them (appended to
    `warnings`).
    """
    probes = by_layout(probes)
    if not probes:
        return []
    strings = req.strings
    if req.agg is not None:
        probes = _fit_aggregation(probes, req, strict, warnings)
    for i in strings:
        if not any(0 <= i < p.nargs and p.args[i].size == 8 for p in probes):
            if any(0 <= i < p.nargs for p in probes):
                p = next(p for p in probes if 0 <= i < p.nargs)
                problem = (f"argument {i} of {p.fullname} is a {p.args[i].size}-byte integer, "
                           "not a string pointer")
            else:
                most = max(p.nargs for p in probes)
                problem = f"argument {i} out of range: the matched probes have at most {most} argument(s)"
            if strict:
                raise ArgumentIndexError(problem)
            warnings.append(problem)
    usable = []
    misfits: list[tuple[Probe, expr.ExpressionError]] = []
    for p in probes:
        if p.unsupported:
            warnings.append(f"{p.fullname} in {p.path}: refused: {p.unsupported}")
            continue
        try:
            req.programs_for(p)
        except expr.ExpressionError as e:
            # An expression that does not fit this probe's arguments (an
            # argument it lacks): skipped with a warning, unless it fits none.
            misfits.append((p, e))
            continue
        mine = tuple(i for i in strings if 0 <= i < p.nargs and p.args[i].size == 8)
        if not strings and req.agg is None:
            # A provider that described its arguments says which are strings.
            mine = p.string_args
        usable.append((p, mine))
    if misfits and strict and not usable:
        raise misfits[0][1]
    warnings.extend(f"{p.fullname} in {p.path}: not traced: {e}" for p, e in misfits)
    return usable


def _fit_aggregation(layouts: list[Probe], req: AttachRequest, strict: bool, warnings: list[str]) -> list[Probe]:
    """The layouts whose sites have every argument the aggregation reads."""
    agg = req.agg
    assert agg is not None
    problems = [agg.arg_problems(p, req.role) for p in layouts]
    ok_names = {(p.path, p.fullname) for p, why in zip(layouts, problems) if not why}
    fitting = []
    for p, why in zip(layouts, problems):
        if not why:
            fitting.append(p)
        elif (p.path, p.fullname) in ok_names:
            # Other sites of the same probe have the argument: aggregate those.
            warnings.append(f"{p.fullname} in {p.path}: {len(p.sites)} site(s) skipped "
                            f"({p.nargs} argument(s)): {why[0]}")
        elif strict:
            raise ArgumentIndexError(why[0])
        else:
            warnings.extend(why)
    return fitting


def matching_now(find: Callable[[], list[Probe]], later: bool) -> tuple[list[Probe], str]:
    """(find()'s probes, ""); with `later`, ([], why) when none match yet."""
    try:
        return find(), ""
    except (NoProbesError, NoMatchError) as e:
        if not later:
            raise
        return [], str(e)


def command_probes(held: HeldProcess) -> tuple[list[Probe], list[str]]:
    """The probes in a held command's executable and the libraries it links,
    and those objects.  A program that is not an ELF file pyusdt reads
    (another architecture...) and has nothing to trace: that is the error."""
    from pyusdt.trace.launcher import linked_libraries  # loaded already: it made `held`

    probes: list[Probe] = []
    objects = [held.executable] + linked_libraries(held.executable)
    unreadable: Optional[PyusdtError] = None
    for obj in objects:
        try:
            probes.extend(probes_at_path(obj))
        except PyusdtError as e:
            unreadable = unreadable or e
            continue
    if not probes and isinstance(unreadable, (NotELFError, ELFReadError)):
        raise unreadable
    return probes, objects


def targets_done(requests: Iterable[AttachRequest]) -> bool:
    """True once every pid and command target has exited, and every cgroup
    target's cgroup is gone (never for paths, nor objects everywhere)."""
    roots = [r for r in requests if r.kind != "path"]
    if not roots:
        return False
    for r in roots:
        if r.scan is not None:
            if r.scan.cgroup is None or r.scan.alive:
                return False
        elif r.held is not None:
            if r.held.poll() is None:
                return False
        elif r.pid is not None and pid_alive(r.pid):
            return False
    return True
