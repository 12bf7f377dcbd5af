"""The tracing API: choose targets and probes, start, read batches, stop.

    with Tracer() as t:
        t.attach_pid(1234, "python:gc__start")
        t.start()
        for batch in t.batches(duration=5):
            print(batch.array["args"][:, 0])
        print(t.stats())

Targets are a path (every process running that file), a pid (every object it
maps, its children too), a command started held until the probes are in, a
cgroup or container (every process in it, now and later, filtered in BPF by
cgroup), or every process that maps a given object (by name or build-id).

Tracer is a facade; each job is a part of its own: requests (targets, held
commands, the probes each attach call matched), attacher (probe and
aggregation ids, linking sites into the session), sizing (the session's
maps and ring at start), watcher (objects loaded after start), reader
(batches, stop, drain) and results (counters and aggregations read back).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, AsyncIterator, Iterator, Optional, Sequence, Union

from pyusdt import _native, expr, limits, privileges
from pyusdt.discover.patterns import match, require_match, split_path_pattern
from pyusdt.discover.probes import PathArg, Probe, as_path, probes_at_path
from pyusdt.discover.process import namespace_pid, process_objects
from pyusdt.errors import (
    ConfigError,
    ConfigTypeError,
    NoSuchProcessError,
    PrivilegeError,
    SessionClosedError,
    UnsupportedArgumentError,
)
from pyusdt.trace.async_batches import iterate_in_thread
from pyusdt.trace.attacher import Attacher
from pyusdt.trace.events import EventBatch, TracedProbe
from pyusdt.trace.reader import DEFAULT_MAX_EVENTS, Reader
from pyusdt.trace.requests import (
    AttachRequest,
    RoleAgg,
    check_probes,
    command_probes,
    inode_keys,
    matching_now,
    pid_alive,
    probes_of_process,
    targets_done,
)
from pyusdt.trace.results import ProbeStats, read_stats
from pyusdt.trace.session_prefetch import take as take_prefetched
from pyusdt.trace.sizing import (
    DEFAULT_MAX_AGG_KEYS,
    DEFAULT_MAX_SITES,
    DEFAULT_WAKEUP_INTERVAL_S,
    default_ring,
    default_uprobe_multi,
    default_wakeup_bytes,
    session_options,
)
from pyusdt.trace.watcher import ObjectWatcher

# Imported where they are used, not here: aggregations, latencies, -c
# commands and cgroup, container or object scans each need a module a plain
# `trace -p` does not (subprocess, json, a dozen dataclasses to create:
# ~15 ms of start-up before the first event).
if TYPE_CHECKING:  # pragma: no cover - type names only
    import numpy as np

    from pyusdt.aggregate.results import AggregationResult
    from pyusdt.aggregate.specs import Aggregate, Latency
    from pyusdt.trace.launcher import HeldProcess
    from pyusdt.trace.scan_targets import ScanTarget

    AggregateArg = Union[None, Aggregate, RoleAgg]

# From this many perf-event links (~0.1 s each to detach), a CLI close()
# leaves the detaching to a background process.
BACKGROUND_DETACH_MIN_LINKS = 16


class Tracer:
    """A tracing session: attach to probes, then read event batches and statistics."""

    def __init__(
        self,
        *,
        str_len: int = _native.DEFAULT_STR_LEN,
        ringbuf_bytes: Optional[int] = None,
        follow_children: bool = False,
        wakeup_bytes: Optional[int] = None,
        wakeup_interval: Optional[float] = DEFAULT_WAKEUP_INTERVAL_S,
        max_sites: int = DEFAULT_MAX_SITES,
        max_agg_keys: int = DEFAULT_MAX_AGG_KEYS,
        uprobe_multi: Optional[bool] = None,
    ) -> None:
        """
        str_len: bytes read for each string argument, NUL included (1..MAX_STR_LEN).
        ringbuf_bytes: ring buffer size, 4096..MAX_RINGBUF_BYTES (2 GiB), rounded
            up to a power of two.  None:
            16 MiB, or one page when every probe attached before start()
            aggregates in the kernel (then attaching a streaming probe after
            start() raises ConfigError: pass ringbuf_bytes to do both).
        follow_children: with a pid or command target, trace the processes it forks too.
            Off by default, as bpftrace -p and strace do: following children
            attaches to every process that maps the object and filters in
            BPF, so while tracing every such process pays the trap and sees
            its semaphores raised.  Without it the kernel filters by process.
        wakeup_bytes: wake the reader once this much data is pending (default ring/64).
        wakeup_interval: seconds; below wakeup_bytes, a new event also wakes the
            reader when it was last woken longer ago than this, so a trickle of
            events reaches poll() within about this long instead of at poll's
            timeout, for at most one wake-up per interval.  None: never.
        max_sites: how many probe sites this tracer can attach (1..MAX_SITES).
        max_agg_keys: rows each aggregation map holds (keys x buckets,
            1..MAX_MAP_ENTRIES); beyond,
            values are dropped and counted as map_full.
        uprobe_multi: attach with one uprobe_multi link per file and process
            where the kernel has them (Linux 6.6+): detaching then takes one
            RCU grace period per link, not one per probe site.  False: one
            perf-event link per site, as older kernels get anyway.  None (the
            default): True unless the environment has PYUSDT_UPROBE_MULTI=0.
        """
        # Every number is checked here, before anything is loaded (pyusdt.limits).
        self.str_len = limits.STR_LEN.check(str_len, "str_len")
        # chosen at start() when None
        self.ringbuf_bytes = None if ringbuf_bytes is None else limits.RINGBUF_BYTES.check(ringbuf_bytes,
                                                                                             "ringbuf_bytes")
        self.follow_children = follow_children
        # ring/64 when None
        self.wakeup_bytes = None if wakeup_bytes is None else limits.WAKEUP_BYTES.check(wakeup_bytes,
                                                                                         "wakeup_bytes")
        if wakeup_interval is not None:
            wakeup_interval = limits.check_seconds(wakeup_interval, "wakeup_interval", zero_ok=True)
        self.wakeup_interval = wakeup_interval
        self.max_sites = limits.MAX_SITES.check(max_sites, "max_sites")
        self.max_agg_keys = limits.MAP_ENTRIES.check(max_agg_keys, "max_agg_keys")
        if uprobe_multi is None:
            uprobe_multi = default_uprobe_multi()
        self.uprobe_multi = uprobe_multi
        self.warnings: list[str] = []
        self._warnings_taken = 0
        self._requests: list[AttachRequest] = []
        self._attacher = Attacher(self.warnings, follow_children)
        self._watcher = ObjectWatcher(self._attacher, self._requests)
        self._reader = Reader(self._attacher, self._watcher)
        self._closed = False
        self._final_stats: Optional[list[ProbeStats]] = None
        self._final_aggs: Optional[list[AggregationResult]] = None
        self._streams_nothing = False  # set at start(): only aggregations, a one-page ring
        self.detaching_pid: Optional[int] = None  # close(detach_in_background=True)'s process
        self.detaching_links = 0

    # -- choosing what to trace -------------------------------------------

    def attach_path(self, path: PathArg, pattern: str = "*", strings: Sequence[int] = (),
                    aggregate: AggregateArg = None, *, where: Optional[str] = None,
                    fields: Optional[str] = None) -> list[Probe]:
        """Probes matching `pattern` in the ELF file at `path`, in every process running it.
        With `aggregate`, hits are aggregated in the kernel instead of streamed.

        where: a bpftrace predicate ('str(arg0) == "GET" && arg2 >= 500'):
            only the hits where it holds are recorded.
        fields: bpftrace expressions, comma-separated ("str(arg1, arg2),
            *(int32 *)arg0"): what each record holds instead of the
            arguments, named by their text.  Both are evaluated in the kernel
            by the precompiled program (pyusdt.expr)."""
        path = as_path(path)
        probes = require_match(probes_at_path(path), pattern, path)
        req = self._request(pattern, strings, "path", where, fields, path=path)
        return self._add(self._with_agg(req, aggregate), probes)

    def attach_pid(self, pid: int, pattern: str = "*", strings: Sequence[int] = (),
                   aggregate: AggregateArg = None, later: bool = False, *, where: Optional[str] = None,
                   fields: Optional[str] = None) -> list[Probe]:
        """Probes matching `pattern` in every object mapped into process `pid`,
        and in objects it maps later (dlopen).  With `aggregate`, hits are
        aggregated in the kernel instead of streamed.

        `pattern` may name a file, as bpftrace does: PATH:provider:name
        attaches to that file's probes in this process whether or not it has
        mapped it yet (the kernel applies them when it does).  later: a
        pattern that matches nothing yet is no error: it waits for objects
        loaded later (see unmatched).  where, fields: as for attach_path."""
        pid = limits.as_int(pid, "pid")
        qualified = split_path_pattern(pattern)
        if qualified is not None:
            if not pid_alive(pid):
                raise NoSuchProcessError(f"no such process: {pid}")
            path, pattern = qualified
            probes = require_match(probes_at_path(path), pattern, path)
            req = self._request(pattern, strings, "pid", where, fields, pid=pid, only_path=path)
            return self._add(self._with_agg(req, aggregate), probes)
        probes, why = matching_now(lambda: probes_of_process(pid, pattern), later)
        req = self._request(pattern, strings, "pid", where, fields, pid=pid, unmatched_why=why)
        req.seen_objects = inode_keys(o.open_path for o in process_objects(pid))
        return self._add(self._with_agg(req, aggregate), probes)

    def attach_command(self, argv: Union[Sequence[str], HeldProcess], pattern: str = "*",
                       strings: Sequence[int] = (), aggregate: AggregateArg = None,
                       later: bool = False, *, where: Optional[str] = None,
                       fields: Optional[str] = None) -> HeldProcess:
        """Starts `argv` held before exec (or reuses a HeldProcess from an earlier
        call); start() attaches its probes, then lets it run.  The probes of
        objects it loads later (dlopen) are attached as it loads them, before
        their code runs.  With `aggregate`, hits are aggregated in the kernel
        instead of streamed.  `pattern`, `later`, `where` and `fields` as for attach_pid."""
        from pyusdt.trace.launcher import HeldProcess

        held = argv if isinstance(argv, HeldProcess) else HeldProcess(argv)
        try:
            qualified = split_path_pattern(pattern)
            if qualified is not None:
                path, pattern = qualified
                probes = require_match(probes_at_path(path), pattern, path)
                req = self._request(pattern, strings, "command", where, fields, pid=held.pid, held=held,
                                    only_path=path)
                self._add(self._with_agg(req, aggregate), probes)
                return held
            found, objects = command_probes(held)
            probes, why = matching_now(lambda: require_match(found, pattern, f"command {held.argv[0]}"), later)
            req = self._request(pattern, strings, "command", where, fields, pid=held.pid, held=held,
                                unmatched_why=why)
            req.seen_objects = inode_keys(objects)
            self._add(self._with_agg(req, aggregate), probes)
        except BaseException:
            held.terminate()
            raise
        return held

    def attach_cgroup(self, cgroup: str, pattern: str = "*", strings: Sequence[int] = (),
                      aggregate: AggregateArg = None, *, objects: Optional[str] = None,
                      where: Optional[str] = None, fields: Optional[str] = None) -> list[Probe]:
        """Probes matching `pattern` in every process of cgroup (v2) `cgroup`
        and of the cgroups below it: those running now and those that join
        later (found by a rescan of the cgroup), whatever their mount
        namespace.  A hit counts only in the cgroup's processes (filtered
        in BPF by cgroup id).  `cgroup` is its path in the hierarchy
        ("/system.slice/x.service") or under the mount point.

        objects: only the objects with this file name (a glob;
            "libstdc++.so.6" takes "libstdc++.so.6.0.30" too) or GNU build-id.
        Nothing matching yet is no error: the pattern waits (see `waiting`).
        Other arguments as for attach_path."""
        from pyusdt.discover.cgroups import cgroup_at
        from pyusdt.trace.scan_targets import ScanTarget

        return self._attach_scan(ScanTarget(cgroup_at(_as_str(cgroup, "cgroup")), None, _objects(objects)),
                                 pattern, strings, aggregate, where, fields)

    def attach_container(self, container: str, pattern: str = "*", strings: Sequence[int] = (),
                         aggregate: AggregateArg = None, *, objects: Optional[str] = None,
                         where: Optional[str] = None, fields: Optional[str] = None) -> list[Probe]:
        """attach_cgroup for the cgroup of a running container, named by id,
        unique id prefix, or docker/podman name.  Docker, podman, containerd
        and CRI-O containers are found by the cgroup paths in /proc/*/cgroup:
        no daemon is asked."""
        from pyusdt.discover.containers import find_container
        from pyusdt.trace.scan_targets import ScanTarget

        found, cgroup = find_container(_as_str(container, "container"))
        return self._attach_scan(ScanTarget(cgroup, found, _objects(objects)), pattern, strings, aggregate,
                                 where, fields)

    def attach_object(self, objects: str, pattern: str = "*", strings: Sequence[int] = (),
                      aggregate: AggregateArg = None, *, where: Optional[str] = None,
                      fields: Optional[str] = None) -> list[Probe]:
        """Probes matching `pattern` in every copy of an object, wherever it
        is mapped on this host: each process, in any container, that maps
        a file named `objects` (a glob on the file name) or with that GNU
        build-id, now or later (found by a rescan of /proc).  Each distinct
        file is attached once, for every process that maps it.  Other
        arguments as for attach_path."""
        from pyusdt.trace.scan_targets import ScanTarget

        spec = _objects(objects)
        if spec is None:
            raise ConfigError("attach_object needs an object: a file name or a build-id")
        return self._attach_scan(ScanTarget(None, None, spec), pattern, strings, aggregate, where, fields)

    def _attach_scan(self, target: ScanTarget, pattern: str, strings: Sequence[int], aggregate: AggregateArg,
                     where: Optional[str], fields: Optional[str]) -> list[Probe]:
        from pyusdt.trace.scan_targets import Scanner, probes_of_objects

        if split_path_pattern(pattern) is not None:
            raise ConfigError(f"{target.describe()}: give a provider:name pattern, and name the file with "
                              f"objects= (got {pattern!r})")
        scanner = Scanner(target)
        req = self._request(pattern, strings, "scan", where, fields, scanner=scanner)
        probes = match(probes_of_objects(scanner.new_objects(req.seen_objects)), pattern)
        if not probes:
            req.unmatched_why = f"{target.describe()}: no probe matches '{pattern}'"
        return self._add(self._with_agg(req, aggregate), probes)

    def attach_latency(self, latency: Latency, *, path: Optional[PathArg] = None,
                       pid: Optional[int] = None,
                       command: Union[None, Sequence[str], HeldProcess] = None,
                       cgroup: Optional[str] = None, container: Optional[str] = None,
                       objects: Optional[str] = None) -> list[Probe]:
        """Times latency.start -> latency.done in the kernel, in one target:
        a path, a pid, a command (argv, or a HeldProcess to share one), a
        cgroup or a container (objects= narrows them), or objects= alone:
        that object in every process."""
        from pyusdt.aggregate.specs import Latency

        named = sum(x is not None for x in (path, pid, command, cgroup, container))
        if named > 1 or (named == 0 and objects is None) or (objects is not None and
                                                              (path, pid, command) != (None, None, None)):
            raise ConfigError("attach_latency needs exactly one target: path, pid, command, cgroup, container, "
                              "or objects (which may narrow a cgroup or container)")
        if not isinstance(latency, Latency):
            raise ConfigTypeError(f"attach_latency takes a Latency (got {latency!r})")
        latency.__post_init__()  # again: its fields may have changed since it was made
        self._attacher.agg_id(latency)
        found: list[Probe] = []
        for pattern, role in ((latency.start, _native.Role.START), (latency.done, _native.Role.DONE)):
            agg = RoleAgg(latency, role)
            if path is not None:
                found += self.attach_path(path, pattern, aggregate=agg)
            elif pid is not None:
                found += self.attach_pid(pid, pattern, aggregate=agg)
            elif cgroup is not None:
                found += self.attach_cgroup(cgroup, pattern, aggregate=agg, objects=objects)
            elif container is not None:
                found += self.attach_container(container, pattern, aggregate=agg, objects=objects)
            elif objects is not None:
                found += self.attach_object(objects, pattern, aggregate=agg)
            else:
                assert command is not None
                command = self.attach_command(command, pattern, aggregate=agg)
        return found

    def _request(self, pattern: str, strings: Sequence[int], kind: str, where: Optional[str],
                 fields: Optional[str], **target: Any) -> AttachRequest:
        """One attach call's request; its expressions' syntax checked now."""
        for text, what in ((where, "where"), (fields, "fields")):
            if text is not None and not isinstance(text, str):
                raise ConfigTypeError(f"{what} must be bpftrace expression text (got {text!r})")
        if where is not None:
            expr.parse(where)
        if fields is not None:
            if strings:
                raise ConfigError("with fields, read strings with str(argN) among them, not strings=")
            expr.parse_list(fields)
        return AttachRequest(pattern, tuple(strings), kind, where=where, fields=fields, str_len=self.str_len,
                             **target)

    def _with_agg(self, req: AttachRequest, aggregate: AggregateArg) -> AttachRequest:
        """Binds an aggregation to a request, giving it an id in this tracer."""
        if aggregate is None:
            return req
        if req.where is not None or req.fields is not None:
            raise ConfigError("where= and fields= are for streaming: an aggregation takes its predicate "
                              "and key in its Aggregate (where=, key=)")
        if isinstance(aggregate, RoleAgg):
            req.agg, req.role = aggregate.spec, aggregate.role
            return req
        if req.strings:
            raise ConfigError("string arguments are for streaming; aggregate with key=StrArg(i)")
        from pyusdt.aggregate.specs import Aggregate

        if not isinstance(aggregate, Aggregate):
            raise ConfigTypeError(f"aggregate must be an Aggregate (got {aggregate!r})")
        aggregate.validate(needs_value=True)  # again: its fields may have changed since it was made
        self._attacher.agg_id(aggregate)
        req.agg, req.role = aggregate, _native.Role.AGG
        return req

    def _add(self, req: AttachRequest, probes: list[Probe]) -> list[Probe]:
        if self._closed:
            raise SessionClosedError("the tracer is closed")
        if self._attacher.processes is None and _in_containers(req):
            from pyusdt.trace.process_table import ProcessTable  # with cgroups and containers: not for every trace

            self._attacher.processes = ProcessTable()
        # Each index once: a repeated one would take a second string slot and
        # leave the first empty (-s 2 -s 2 printed arg2="").
        req.strings = tuple(dict.fromkeys(limits.check_arg_index(i, "string argument") for i in req.strings))
        before = len(self.warnings)
        usable = check_probes(probes, req, True, self.warnings)
        if probes and not usable:
            raise UnsupportedArgumentError("; ".join(self.warnings[before:]))
        req.matched = bool(usable)
        if self._session is not None and req.agg is None and self._streams_nothing:
            raise ConfigError("this tracer started with aggregations only, so it has no room to "
                              "stream events: create it with ringbuf_bytes=... to do both")
        if self._session is not None and req.uses_expressions and not self._session.expressions:
            raise ConfigError("this tracer started without expressions, so its program cannot run them: "
                              "attach a request with expressions before start()")
        req.pending = usable
        self._requests.append(req)
        if self._session is not None:
            self._attacher.attach_checked(req)
        taken = {(view.path, view.fullname) for view, _ in usable}
        return [p for p in probes if (p.path, p.fullname) in taken]

    # -- running -----------------------------------------------------------

    def start(self) -> None:
        """Loads the BPF program, attaches every chosen probe, lets held commands run."""
        if self._closed:
            raise SessionClosedError("the tracer is closed")
        if self._session is not None:
            return
        if self.ringbuf_bytes is None:
            self.ringbuf_bytes, self._streams_nothing = default_ring(self._requests)
        if self.wakeup_bytes is None:
            self.wakeup_bytes = default_wakeup_bytes(self.ringbuf_bytes)
        opts = session_options(self._requests, self._attacher.aggs, ringbuf_bytes=self.ringbuf_bytes,
                               wakeup_bytes=self.wakeup_bytes, wakeup_interval=self.wakeup_interval,
                               str_len=self.str_len, max_sites=self.max_sites, max_agg_keys=self.max_agg_keys,
                               uprobe_multi=self.uprobe_multi)
        # The last probe id is the dynamic linker's notification site's.
        try:
            session = take_prefetched(opts) or _native.Session(opts)
        except PrivilegeError as e:
            if not str(e).startswith("permission denied loading BPF"):
                raise  # the verifier's refusal, said by the native side
            raise PrivilegeError(privileges.load_denied()) from None
        self._attacher.bind(session, opts.max_probes - 1, stacks=opts.max_stacks > 0)
        for req in self._requests:
            self._attacher.attach_checked(req)
        self._attacher.started = True
        for held in {id(r.held): r.held for r in self._requests if r.held is not None}.values():
            held.release()
        self._watcher.restart()

    @property
    def done(self) -> bool:
        """True once every traced process (pid and command targets) has exited."""
        return targets_done(self._requests)

    def poll(self, timeout: float = 0.1, max_events: int = DEFAULT_MAX_EVENTS) -> EventBatch:
        """Waits up to `timeout` seconds; returns the records that arrived (maybe none)."""
        timeout = limits.check_seconds(timeout, "timeout", zero_ok=True, most=limits.MAX_TIMEOUT_S)
        max_events = limits.MAX_EVENTS.check(max_events, "max_events")
        self._require_session()
        return self._reader.poll(timeout, max_events)

    def batches(self, timeout: float = 0.1, duration: Optional[float] = None,
                idle: bool = False, max_events: int = DEFAULT_MAX_EVENTS) -> Iterator[EventBatch]:
        """Non-empty batches (at most `max_events` records each) until the
        targets exit or `duration` seconds pass; with `idle`, empty ones too
        (one per `timeout` without events)."""
        # Checked now, not at the first next(): a generator runs nothing until then.
        timeout = limits.check_seconds(timeout, "timeout", zero_ok=True, most=limits.MAX_TIMEOUT_S)
        max_events = limits.MAX_EVENTS.check(max_events, "max_events")
        if duration is not None:
            duration = limits.check_seconds(duration, "duration", zero_ok=True)
        return self._checked_batches(timeout, duration, idle, max_events)

    def abatches(self, timeout: float = 0.1, duration: Optional[float] = None,
                 idle: bool = False, max_events: int = DEFAULT_MAX_EVENTS) -> AsyncIterator[EventBatch]:
        """batches() for asyncio: ``async for batch in tracer.abatches():``.
        Each poll runs in a worker thread, so the event loop goes on while
        the tracer waits; leaving the loop (or cancelling it) ends the
        iteration cleanly.  Arguments as for batches()."""
        return iterate_in_thread(self.batches(timeout, duration, idle, max_events))

    def _checked_batches(self, timeout: float, duration: Optional[float], idle: bool,
                         max_events: int) -> Iterator[EventBatch]:
        self._require_session()
        yield from self._reader.batches(timeout, duration, idle, max_events, lambda: self.done)

    def stop(self) -> None:
        """Ends streaming: from now on the probes neither count nor record a
        hit (they stay attached, and aggregations go on, until close()), so
        drain() then returns every record already in the ring buffer and
        ends, even under a flood of events.  Every hit counted before is then
        a record delivered or a loss counted."""
        self._require_session()
        self._reader.stop()

    def drain(self) -> Iterator[EventBatch]:
        """Whatever is still in the ring buffer, without waiting.  After
        stop() it also waits (briefly) for records a hit was writing as the
        trace stopped, so nothing counted is left unread."""
        self._require_session()
        return self._reader.drain()

    # -- results -----------------------------------------------------------

    @property
    def probes(self) -> list[TracedProbe]:
        """Every probe attached so far; a record's probe_id indexes this list."""
        return list(self._attacher.probes)

    @property
    def waiting(self) -> list[str]:
        """Why each pattern attached with later=True matched nothing when it
        was attached (it waits for objects loaded later)."""
        return [r.unmatched_why for r in self._requests if r.unmatched_why]

    @property
    def unmatched(self) -> list[str]:
        """Why each pattern attached with later=True that has matched no
        probe so far matched none when it was attached."""
        return [r.unmatched_why for r in self._requests if r.unmatched_why and not r.matched]

    def take_warnings(self) -> list[str]:
        """The warnings added since the last call (all of `warnings` the first
        time): what to show now, as attaching goes on during a trace."""
        new = self.warnings[self._warnings_taken:]
        self._warnings_taken = len(self.warnings)
        return new

    @property
    def probe_count(self) -> int:
        """Probes with a site attached so far, each counted once (`probes`
        has one entry per argument layout of a probe whose sites differ)."""
        linked = self._attacher.linked_ids
        return len({(tp.probe.path, tp.fullname) for tp in self._attacher.probes if tp.probe_id in linked})

    @property
    def identifies_processes(self) -> bool:
        """Whether batches say who each process is (EventBatch.processes:
        its pid in its own namespace, its container): with cgroup,
        container and object targets, and a pid or command in a container."""
        return self._attacher.processes is not None

    @property
    def traced_files(self) -> set[tuple[int, int]]:
        """(st_dev, st_ino) of every file with a probe site attached."""
        return self._attacher.traced_files()

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the batches this tracer delivers."""
        dtype: np.dtype = self._require_session().dtype
        return dtype

    def aggregation(self, spec: Union[Aggregate, Latency]) -> AggregationResult:
        """The current rows and counters of one aggregation, read from the kernel.
        After close() it returns them as they were at the end."""
        for i, known in enumerate(self._attacher.aggs):
            if known is spec:
                return self.aggregations()[i]
        raise ConfigError("that aggregation is not attached to this tracer")

    def aggregations(self) -> list[AggregationResult]:
        """Every aggregation's result, in agg_id order."""
        if self._closed and self._final_aggs is not None:
            return self._final_aggs
        # Its module imports numpy, which a trace that only streams need not.
        from pyusdt.trace.aggregations import read_aggregations

        return read_aggregations(self._require_session(), self._attacher.aggs, self._attacher.probes,
                                 self._attacher.key_fields, self._attacher.stacks)

    def stats(self) -> list[ProbeStats]:
        """Per-probe counters: delivered events, kernel hits, and every kind of loss.
        After close() it returns the counters as they were at the end."""
        if self._closed and self._final_stats is not None:
            return self._final_stats
        return read_stats(self._require_session(), self._attacher.probes, self._reader.events())

    @property
    def lost(self) -> int:
        """Records dropped in the kernel (ring buffer full), all probes."""
        if self._closed and self._final_stats is not None:
            return sum(s.lost_ringbuf for s in self._final_stats)
        lost: int = self._require_session().lost_ringbuf()
        return lost

    @property
    def late_wakeups(self) -> int:
        """Times the native reader slept its whole timeout (0.1 s) while at
        least wakeup_bytes were pending: wake-ups the BPF side did not send.
        A health figure: it stays 0, else the ring fills between reads."""
        late: int = self._require_session().late_wakeups
        return late

    @property
    def attached_sites(self) -> int:
        """Probe sites currently attached (a uprobe_multi link holds many)."""
        if self._session is None or self._session.closed:
            return 0
        loader = self._attacher.loader
        sites: int = self._session.attached_sites
        return sites - (loader.sites if loader is not None else 0)

    @property
    def _session(self) -> Any:
        """The _native.Session from start() (the attacher holds it), or None."""
        return self._attacher.session

    def _require_session(self) -> Any:
        if self._closed:
            raise SessionClosedError("the tracer is closed")
        if self._session is None:
            raise SessionClosedError("the tracer is not started: call start() first")
        return self._session

    # -- stopping ----------------------------------------------------------

    def close(self, detach_in_background: bool = False) -> None:
        """Detaches every probe (semaphores go back), frees the BPF objects; idempotent.

        detach_in_background: with many perf-event links (kernels before
        6.6, or uprobe_multi=False), each takes the kernel an RCU grace period
        to detach, one after another (minutes for a thousand): hand them to a
        background process that detaches them, and return at once.  The
        uprobes and semaphores are then gone a little later, not on return;
        `detaching_pid` is that process (None when close() detached itself)."""
        if self._closed:
            return
        if self._session is not None and not self._session.closed:
            self._final_stats = self.stats()
            self._final_aggs = self.aggregations() if self._attacher.aggs else []
            if detach_in_background and self._session.perf_links >= BACKGROUND_DETACH_MIN_LINKS:
                self.detaching_links = self._session.perf_links
                pid = self._session.detach_in_background()
                self.detaching_pid = pid if pid > 0 else None
            self._session.close()
        if self._attacher.loader is not None:
            self._attacher.loader.resume_all()  # no process stays stopped at a load we did not see
        self._closed = True
        for req in self._requests:
            if req.held is not None and not req.held.released:
                req.held.terminate()

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _as_str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ConfigTypeError(f"{what} must be a str (got {value!r})")
    return value


def _objects(objects: Optional[str]) -> Optional[str]:
    """An object filter, checked: a non-empty str, or None."""
    if objects is None:
        return None
    if not _as_str(objects, "objects").strip():
        raise ConfigError("objects must name a file (a glob on its name) or a build-id")
    return objects.strip()


def _in_containers(req: AttachRequest) -> bool:
    """Whether the request's processes may be in other namespaces: a scan
    target, or a process whose pid its own namespace numbers otherwise."""
    if req.scan is not None:
        return True
    return req.pid is not None and namespace_pid(req.pid) not in (None, req.pid)
