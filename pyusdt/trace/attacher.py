"""Linking the probes of attach requests into a session.

Each probe layout gets one probe id (records carry it; stats are counted by
it), each site is attached once however many requests match it, and the
sites the kernel refuses become a few grouped warnings, or one error for a
file the caller named.
"""
from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Optional, Union

from pyusdt import _native, expr, privileges
from pyusdt.discover.probes import Probe
from pyusdt.errors import (
    AttachError,
    ConfigError,
    ELFNotFoundError,
    ELFReadError,
    NoSuchProcessError,
    PyusdtError,
)
from pyusdt.trace.events import RecordValue, TracedProbe
from pyusdt.trace.expressions import ProgramStore
from pyusdt.trace.loader_hook import LoaderHook
from pyusdt.trace.requests import AttachRequest, InodeKey, inode_key, pid_alive

# Imported where they are used: aggregations, cgroup targets, process
# identities and user stacks are not every trace's (a plain `trace -p`
# reaches its first event without these modules and their dataclasses).
if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.aggregate.specs import Aggregate, Latency
    from pyusdt.discover.cgroups import Cgroup
    from pyusdt.trace.process_table import ProcessTable
    from pyusdt.trace.stacks import StackSymbolizer

# Attach failures: reasons shown one per line (beyond, a count), and the
# probes named in each.
MAX_FAILURE_LINES = 5
MAX_NAMES_SHOWN = 3


class Attacher:
    """Probe ids, aggregation ids and attached sites of one tracer."""

    def __init__(self, warnings: list[str], follow_children: bool) -> None:
        self.warnings = warnings  # the tracer's list, shared
        self.follow_children = follow_children
        self.probes: list[TracedProbe] = []  # by probe id
        self._probe_ids: dict[tuple[object, ...], int] = {}
        # (inode key, file offset, agg id, predicate, fields, process filter) of every attached site
        self._attached: set[tuple[InodeKey, int, int, Optional[str], Optional[str], tuple[int, int]]] = set()
        # cgroup id -> (its cgroup set: a bit of the BPF filter, the cgroup), one per cgroup target
        self.cgroup_sets: dict[int, tuple[int, Cgroup]] = {}
        # agg id -> the parts of its key, for aggregations keyed by expressions
        self.key_fields: dict[int, tuple[expr.OutField, ...]] = {}
        self.programs: Optional[ProgramStore] = None
        self.stacks: Optional[StackSymbolizer] = None  # where sites take user stacks
        self.pids: set[int] = set()  # the pid and command targets
        self.linked_ids: set[int] = set()  # probe ids with at least one site attached
        self.aggs: list[Union[Aggregate, Latency]] = []  # specs, indexed by agg id
        self.flat_aggs = 0  # aggregations with rows in the flat per-CPU array
        self.max_probe_ids = _native.MAX_PROBES
        self.session: Any = None  # _native.Session, from start()
        self.loader: Optional[LoaderHook] = None
        # Who each traced pid is (ns pid, container), for targets in containers
        self.processes: Optional[ProcessTable] = None
        self.started = False  # start() has attached what was asked before it

    def bind(self, session: Any, max_probe_ids: int, stacks: bool = False) -> None:
        """The session started: probes attach into it from now on.  With
        `stacks`, its sites take user stacks, named by a StackSymbolizer."""
        self.session = session
        self.programs = ProgramStore(session)
        self.stacks = None
        if stacks:
            from pyusdt.trace.stacks import StackSymbolizer

            self.stacks = StackSymbolizer(session)
        self.max_probe_ids = max_probe_ids
        self.flat_aggs = len(self.aggs)
        # The last probe id is the dynamic linker's notification site's.
        self.loader = LoaderHook(session, max_probe_ids)

    def attach_deferred(self) -> bool:
        """Attaches the loader hooks start() left for later; True if there were any."""
        if self.loader is None or not self.loader.has_deferred:
            return False
        self.warnings.extend(self.loader.attach_deferred())
        return True

    def traced_pids(self) -> set[int]:
        """The processes traced by pid: the targets, and the children the filter admits."""
        if self.follow_children and self.session is not None:
            return self.pids | set(self.session.tgids())
        return set(self.pids)

    def traced_files(self) -> set[InodeKey]:
        """The files with a site attached."""
        return {attached[0] for attached in self._attached}

    def agg_id(self, spec: Union[Aggregate, Latency]) -> int:
        """This tracer's number for an aggregation spec (specs are matched by
        identity, so one spec object can serve several tracers)."""
        for i, known in enumerate(self.aggs):
            if known is spec:
                return i
        if len(self.aggs) >= _native.MAX_AGGS:
            raise ConfigError(f"at most {_native.MAX_AGGS} aggregations per tracer")
        self.aggs.append(spec)
        return len(self.aggs) - 1

    def probe_id(self, probe: Probe, strings: tuple[int, ...],
                 fields: Optional[tuple[RecordValue, ...]] = None) -> int:
        # One id per argument layout of a probe (pending holds layouts), and
        # per set of fields (records of other fields are decoded otherwise).
        key = (inode_key(probe.open_path), probe.provider, probe.name, probe.layout, fields)
        if key in self._probe_ids and self.probes[self._probe_ids[key]].strings != strings:
            raise ConfigError(f"{probe.fullname} is already traced with other string arguments")
        if key not in self._probe_ids:
            if len(self.probes) >= self.max_probe_ids:
                raise AttachError(f"too many probes (limit {self.max_probe_ids})")
            self._probe_ids[key] = len(self.probes)
            self.probes.append(TracedProbe(len(self.probes), probe, strings, fields))
        return self._probe_ids[key]

    def attach_checked(self, req: AttachRequest) -> None:
        """attach_pending, for targets that can vanish meanwhile: a file or a
        process's mapping gone between discovery and attach is an OSError
        there; it becomes the error a person can act on."""
        warned = len(self.warnings)
        gone = NoSuchProcessError(f"process {req.pid} exited before its probes were attached")
        try:
            self.attach_pending(req)
        except OSError as e:
            if isinstance(e, PyusdtError):
                raise
            if req.scan is not None:  # a member's mapping gone meanwhile: the others go on
                self.warnings.append(f"{req.scan.describe()}: {e.filename}: {e.strerror}")
                return
            if req.kind == "path":
                cls = ELFNotFoundError if isinstance(e, FileNotFoundError) else ELFReadError
                raise cls(f"{e.filename}: {e.strerror}") from None
            if req.pid is not None and pid_alive(req.pid):
                raise AttachError(f"process {req.pid}: {e.filename}: {e.strerror}") from None
            if not self.started:
                raise gone from None
            return  # exited during the trace: a normal end, which `done` reports
        # Its objects refused to attach (warnings) because it has gone: that is the one error.
        if (req.kind == "pid" and req.pid is not None and not self.started and len(self.warnings) > warned
                and not pid_alive(req.pid)):
            raise gone

    def attach_pending(self, req: AttachRequest) -> None:
        session = self.session
        assert session is not None and self.loader is not None, "attach before start()"
        by_pid = req.kind in ("pid", "command")
        follow = by_pid and self.follow_children
        if req.pid is not None and follow:
            session.add_tgid(req.pid)
        pid = req.pid if (by_pid and not follow and req.pid is not None) else -1
        process_filter = self._process_filter(req, follow)
        if req.pid is not None:
            self.pids.add(req.pid)
        pending, req.pending = req.pending, []
        agg_id = self.agg_id(req.agg) if req.agg is not None else -1
        spec = req.agg.native_spec(req.role, agg_id) if req.agg is not None else None
        if spec is not None:
            flat_kind = spec.key_kind == _native.KeyKind.NONE and spec.hist_kind != _native.HistKind.LINEAR
            spec.flat = int(flat_kind and agg_id < self.flat_aggs)
        slots = session.string_slots
        failed: list[AttachError] = []
        for probe, strings in pending:
            if len(strings) > slots:
                self.warnings.append(f"{probe.fullname}: only its first {slots} string argument(s) "
                                     "are read (the session was started with fewer)")
                strings = strings[:slots]
            inode = inode_key(probe.open_path)
            req.seen_objects.add(inode)
            try:
                programs = req.programs_for(probe)
            except expr.ExpressionError as e:  # a probe found later whose arguments do not fit
                self.warnings.append(f"{probe.fullname} in {probe.path}: not traced: {e}")
                continue
            exprs = _native.SiteExprs()
            fields = None
            if programs is not None:
                assert self.programs is not None
                exprs = self.programs.site_exprs(programs, req.str_len)
                fields = programs.fields
                if fields is not None:  # the record's strings are the string fields
                    strings = tuple(i for i, v in enumerate(fields) if v.is_str)
                if agg_id >= 0 and req.role != _native.Role.START:
                    self.key_fields.setdefault(agg_id, programs.keys)
                if spec is not None and spec.key_kind == _native.KeyKind.TUPLE and \
                        programs.key_bytes <= _native.TUPLE_SMALL_KEY_LEN:
                    spec.key_kind = _native.KeyKind.TUPLE_SMALL  # the map of short keys
            probe_id = self.probe_id(probe, strings, fields)
            for site in probe.sites:
                # Two requests matching the same site (overlapping patterns on
                # one target) must not attach it twice: that would double events.
                attached = (inode, site.pc_offset, agg_id, req.where, req.fields, process_filter)
                if attached in self._attached:
                    continue
                self._attached.add(attached)
                try:
                    session.attach(probe.open_path, site, probe_id, [] if fields is not None else list(strings),
                                   pid, process_filter[0], spec, exprs=exprs, cgroup_sets=process_filter[1])
                except AttachError as e:
                    if probe.fullname not in str(e):
                        e = _named(e, probe)
                    failed.append(_privilege_named(e, not session.uprobe_multi))
                    continue
                self.linked_ids.add(probe_id)
        # With uprobe_multi links, attach() only queued the sites: link them.
        for err, message in session.commit():
            failed.append(_privilege_named(AttachError.refused(err, message), False))
        if by_pid and req.only_path is None and not req.loader_hooked:
            req.loader_hooked = True
            assert req.pid is not None  # pid and command targets have one
            if req.held is None and not self.started:
                # Linking the hook took 13 ms of a 60 ms start() (the kernel
                # visits every process that maps the dynamic linker): a
                # process pyusdt does not hold gets it once the first events
                # are read, and a rescan then finds what it loaded meanwhile.
                self.loader.defer(req.loader_objects(), req.pid, follow)
            else:  # before a held command runs: not one object it loads is missed
                why = self.loader.hook(req.loader_objects(), req.pid, follow, hold=req.held is not None)
                if why:
                    self.warnings.append(why)
        if failed:
            self._attach_failed(req, failed)

    def _process_filter(self, req: AttachRequest, follow: bool) -> tuple[int, int]:
        """(FilterKind, cgroup sets) of the request's sites.  Each cgroup
        target has a set of its own, so two of them in one tracer each
        count only their own processes."""
        if follow:
            return int(_native.FilterKind.TGID), 0
        cgroup = req.scan.cgroup if req.scan is not None else None
        if cgroup is None:
            return int(_native.FilterKind.NONE), 0
        if cgroup.id not in self.cgroup_sets:
            self.cgroup_sets[cgroup.id] = (self._free_cgroup_set(), cgroup)
            self.session.add_cgroup(cgroup.id, self.cgroup_sets[cgroup.id][0])
        return int(_native.FilterKind.CGROUP), 1 << self.cgroup_sets[cgroup.id][0]

    def _free_cgroup_set(self) -> int:
        """A cgroup set no cgroup uses.  The set of a cgroup that is gone (a
        container that stopped) is taken again: the sites already attached
        with its bit then count the new cgroup (a restarted container's)."""
        from pyusdt.discover.cgroups import cgroup_exists  # loaded already: a cgroup target made req.scan

        for cgroup_id, (_, cgroup) in list(self.cgroup_sets.items()):
            if not cgroup_exists(cgroup):
                self.session.remove_cgroup(cgroup_id)
                del self.cgroup_sets[cgroup_id]
        used = {bit for bit, _ in self.cgroup_sets.values()}
        free = [bit for bit in range(_native.MAX_CGROUP_SETS) if bit not in used]
        if not free:
            raise ConfigError(f"at most {_native.MAX_CGROUP_SETS} cgroup and container targets per tracer")
        return free[0]

    def _attach_failed(self, req: AttachRequest, failed: list[AttachError]) -> None:
        """A file the caller named fails loudly; the objects of a process
        (some may be gone already) leave warnings and the rest are traced.
        Many failures (a limit reached) are a few lines, not one per site."""
        if req.held is None and req.kind == "path":
            raise failed[0]
        by_reason: dict[str, list[AttachError]] = {}
        for e in failed:
            by_reason.setdefault(e.reason or str(e), []).append(e)
        for reason, errors in list(by_reason.items())[:MAX_FAILURE_LINES]:
            named = {id(e.probe): e.probe for e in errors}
            probes = [p for p in named.values() if isinstance(p, Probe)]
            if len(errors) == 1 or len(probes) < len(named):
                self.warnings.extend(f"not attached: {e}" for e in errors[:MAX_FAILURE_LINES])
                continue
            names = ", ".join(p.fullname for p in probes[:MAX_NAMES_SHOWN])
            more = f" and {len(probes) - MAX_NAMES_SHOWN} more" if len(probes) > MAX_NAMES_SHOWN else ""
            self.warnings.append(f"not attached: {len(errors)} site(s) of {len(probes)} probe(s) "
                                 f"({names}{more}) in {probes[0].path}: {reason}")
        if len(by_reason) > MAX_FAILURE_LINES:
            self.warnings.append(f"{len(failed)} probe site(s) not attached in all "
                                 f"({len(by_reason) - MAX_FAILURE_LINES} more reason(s) not shown)")


def _named(e: AttachError, probe: Probe) -> AttachError:
    """The same failure, its message naming the probe; `reason` and `probe`
    let failures be grouped."""
    named = AttachError(f"{probe.fullname} in {probe.path}: {e}")
    named.os_errno = e.os_errno
    named.reason = str(e)
    named.probe = probe
    return named


def _privilege_named(e: AttachError, perf_link: bool) -> AttachError:
    """A refusal for want of privilege, naming the capability this process
    lacks (`perf_link`: the site was being linked by a perf event)."""
    hint = privileges.attach_denied(perf_link) if e.os_errno in (errno.EPERM, errno.EACCES) else ""
    if not hint:
        return e
    named = AttachError(f"{e} ({hint})")
    named.os_errno, named.reason, named.probe = e.os_errno, f"{e.reason or e} ({hint})", e.probe
    return named
