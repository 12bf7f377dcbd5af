"""The tracing API: choose targets and probes, start, read batches, stop.

    with Tracer() as t:
        t.attach_pid(1234, "python:gc__start")
        t.start()
        for batch in t.batches(duration=5):
            print(batch.array["args"][:, 0])
        print(t.stats())

Targets are a path (every process running that file), a pid (every object it
maps, its children too), or a command started held until the probes are in.
"""
from __future__ import annotations

import os
import time
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from pyusdt import _native
from pyusdt import limits
from pyusdt.discover.probes import Probe, as_path, probes_at_path
from pyusdt.discover.process import probes_in_object, process_objects
from pyusdt.discover.patterns import require_match, match, split_path_pattern
from pyusdt.errors import AttachError, ConfigError, ConfigTypeError, ELFNotFoundError, ELFReadError, NoMatchError, NoProbesError, NoSuchProcessError, NotELFError, PyusdtError, SessionClosedError, UnsupportedArgumentError
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.aggregate.results import AggregationResult
from pyusdt.trace.requests import AttachRequest, RoleAgg, check_probes, inode_key, inode_keys, pid_alive, probes_of_process
from pyusdt.trace.events import EventBatch, TracedProbe
from pyusdt.trace.launcher import HeldProcess, linked_libraries
from pyusdt.trace.loader_hook import LoaderHook
from pyusdt.trace.results import ProbeStats, read_aggregations, read_stats

DEFAULT_RINGBUF_BYTES = 16 << 20
# The ring of a tracer that only aggregates: nothing is streamed, so the
# smallest ring the kernel takes (one page) instead of 16 MiB of locked memory.
AGGREGATE_ONLY_RINGBUF_BYTES = 4096
REFRESH_INTERVAL_S = 0.2
# From this many perf-event links (~0.1 s each to detach), a CLI close()
# leaves the detaching to a background process.
BACKGROUND_DETACH_MIN_LINKS = 16
# Attach failures: reasons shown one per line (beyond, a count), and the
# probes named in each.
MAX_FAILURE_LINES = 5
MAX_NAMES_SHOWN = 3
# Probe ids a session has room for at least (see start()).
MIN_PROBE_SLOTS = 1024
# After stop(), how long drain() waits at most for records being written.
STOP_DRAIN_WAIT_S = 1.0
# A trickle of events is seen within this long (one reader wake-up at most per interval).
DEFAULT_WAKEUP_INTERVAL_S = 0.01


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
        max_sites: int = 4096,
        max_agg_keys: int = 10240,
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
            uprobe_multi = os.environ.get("PYUSDT_UPROBE_MULTI", "1") != "0"
        self.uprobe_multi = uprobe_multi
        self.warnings: list[str] = []
        self._warnings_taken = 0
        self._requests: list[AttachRequest] = []
        self._probes: list[TracedProbe] = []
        self._probe_ids: dict[tuple, int] = {}
        self._attached: set[tuple] = set()  # (inode key, file offset, agg id) of every attached site
        self._aggs: list = []  # Aggregate / Latency specs, indexed by agg_id
        self._flat_aggs = 0  # aggregations with rows in the flat per-CPU array
        self._events = np.zeros(0, dtype=np.uint64)
        self._session = None
        self._closed = False
        self._final_stats: Optional[list[ProbeStats]] = None
        self._final_aggs: Optional[list[AggregationResult]] = None
        self._last_refresh = 0.0
        self._streams_nothing = False  # set at start(): only aggregations, a one-page ring
        self._stopped = False  # stop(): streaming sites no longer record hits
        self._linked_ids: set[int] = set()  # probe ids with at least one site attached
        self.detaching_pid: Optional[int] = None  # close(detach_in_background=True)'s process
        self.detaching_links = 0
        self._started = False  # start() has attached what was asked before it
        self._loader: Optional[LoaderHook] = None  # the dynamic linker's site, from start()
        self._max_probe_ids = _native.MAX_PROBES

    # -- choosing what to trace -------------------------------------------

    def attach_path(self, path: Union[str, bytes, os.PathLike], pattern: str = "*",
                    strings: Sequence[int] = (), aggregate: Optional[Aggregate] = None) -> list[Probe]:
        """Probes matching `pattern` in the ELF file at `path`, in every process running it.
        With `aggregate`, hits are aggregated in the kernel instead of streamed."""
        path = as_path(path)
        probes = require_match(probes_at_path(path), pattern, path)
        req = AttachRequest(pattern, tuple(strings), "path", path=path)
        return self._add(self._with_agg(req, aggregate), probes)

    def attach_pid(self, pid: int, pattern: str = "*", strings: Sequence[int] = (),
                   aggregate: Optional[Aggregate] = None, later: bool = False) -> list[Probe]:
        """Probes matching `pattern` in every object mapped into process `pid`,
        and in objects it maps later (dlopen).  With `aggregate`, hits are
        aggregated in the kernel instead of streamed.

        `pattern` may name a file, as bpftrace does: PATH:provider:name
        attaches to that file's probes in this process whether or not it has
        mapped it yet (the kernel applies them when it does).  later: a
        pattern that matches nothing yet is no error: it waits for objects
        loaded later (see unmatched)."""
        pid = limits.as_int(pid, "pid")
        qualified = split_path_pattern(pattern)
        if qualified is not None:
            if not pid_alive(pid):
                raise NoSuchProcessError(f"no such process: {pid}")
            path, pattern = qualified
            probes = require_match(probes_at_path(path), pattern, path)
            req = AttachRequest(pattern, tuple(strings), "pid", pid=pid, only_path=path)
            return self._add(self._with_agg(req, aggregate), probes)
        probes, why = self._matching_now(lambda: probes_of_process(pid, pattern), later)
        req = AttachRequest(pattern, tuple(strings), "pid", pid=pid, unmatched_why=why)
        req.seen_objects = inode_keys(o.open_path for o in process_objects(pid))
        return self._add(self._with_agg(req, aggregate), probes)

    @staticmethod
    def _matching_now(find, later: bool) -> tuple[list[Probe], str]:
        """(find()'s probes, ""); with `later`, ([], why) when none match yet."""
        try:
            return find(), ""
        except (NoProbesError, NoMatchError) as e:
            if not later:
                raise
            return [], str(e)

    def attach_command(self, argv: Union[Sequence[str], HeldProcess], pattern: str = "*",
                       strings: Sequence[int] = (), aggregate: Optional[Aggregate] = None,
                       later: bool = False) -> HeldProcess:
        """Starts `argv` held before exec (or reuses a HeldProcess from an earlier
        call); start() attaches its probes, then lets it run.  The probes of
        objects it loads later (dlopen) are attached as it loads them, before
        their code runs.  With `aggregate`, hits are aggregated in the kernel
        instead of streamed.  `pattern` and `later` as for attach_pid."""
        held = argv if isinstance(argv, HeldProcess) else HeldProcess(argv)
        try:
            qualified = split_path_pattern(pattern)
            if qualified is not None:
                path, pattern = qualified
                probes = require_match(probes_at_path(path), pattern, path)
                req = AttachRequest(pattern, tuple(strings), "command", pid=held.pid, held=held, only_path=path)
                self._add(self._with_agg(req, aggregate), probes)
                return held
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
                # Nothing to trace, and the program itself is not an ELF file
                # pyusdt reads (another architecture...): that is the reason.
                raise unreadable
            found = probes
            probes, why = self._matching_now(lambda: require_match(found, pattern, f"command {held.argv[0]}"),
                                             later)
            req = AttachRequest(pattern, tuple(strings), "command", pid=held.pid, held=held, unmatched_why=why)
            req.seen_objects = inode_keys(objects)
            self._add(self._with_agg(req, aggregate), probes)
        except BaseException:
            held.terminate()
            raise
        return held

    def attach_latency(self, latency: Latency, *, path: Union[None, str, os.PathLike] = None,
                       pid: Optional[int] = None,
                       command: Union[None, Sequence[str], HeldProcess] = None) -> list[Probe]:
        """Times latency.start -> latency.done in the kernel, in one target:
        a path, a pid, or a command (argv, or a HeldProcess to share one)."""
        if sum(x is not None for x in (path, pid, command)) != 1:
            raise ConfigError("attach_latency needs exactly one of path, pid, command")
        if not isinstance(latency, Latency):
            raise ConfigTypeError(f"attach_latency takes a Latency (got {latency!r})")
        latency.__post_init__()  # again: its fields may have changed since it was made
        self._agg_id(latency)
        found = []
        for pattern, role in ((latency.start, _native.ROLE_START), (latency.done, _native.ROLE_DONE)):
            agg = RoleAgg(latency, role)
            if path is not None:
                found += self.attach_path(path, pattern, aggregate=agg)
            elif pid is not None:
                found += self.attach_pid(pid, pattern, aggregate=agg)
            else:
                command = self.attach_command(command, pattern, aggregate=agg)
        return found

    def _with_agg(self, req: AttachRequest, aggregate) -> AttachRequest:
        """Binds an aggregation to a request, giving it an id in this tracer."""
        if aggregate is None:
            return req
        if isinstance(aggregate, RoleAgg):
            req.agg, req.role = aggregate.spec, aggregate.role
            return req
        if req.strings:
            raise ConfigError("string arguments are for streaming; aggregate with key=StrArg(i)")
        if not isinstance(aggregate, Aggregate):
            raise ConfigTypeError(f"aggregate must be an Aggregate (got {aggregate!r})")
        aggregate.validate(needs_value=True)  # again: its fields may have changed since it was made
        self._agg_id(aggregate)
        req.agg, req.role = aggregate, _native.ROLE_AGG
        return req

    def _agg_id(self, spec) -> int:
        """This tracer's number for an aggregation spec (specs are matched by
        identity, so one spec object can serve several tracers)."""
        for i, known in enumerate(self._aggs):
            if known is spec:
                return i
        if len(self._aggs) >= _native.MAX_AGGS:
            raise ConfigError(f"at most {_native.MAX_AGGS} aggregations per tracer")
        self._aggs.append(spec)
        return len(self._aggs) - 1

    def _add(self, req: AttachRequest, probes: list[Probe]) -> list[Probe]:
        if self._closed:
            raise SessionClosedError("the tracer is closed")
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
        req.pending = usable
        self._requests.append(req)
        if self._session is not None:
            self._attach_checked(req)
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
            self._streams_nothing = bool(self._requests) and all(r.agg is not None for r in self._requests)
            self.ringbuf_bytes = (AGGREGATE_ONLY_RINGBUF_BYTES if self._streams_nothing
                                  else DEFAULT_RINGBUF_BYTES)
        if self.wakeup_bytes is None:
            self.wakeup_bytes = self.ringbuf_bytes // 64
        opts = _native.SessionOptions()
        opts.ringbuf_bytes = self.ringbuf_bytes
        opts.str_len = self.str_len
        # What the probes found need, and what a pattern waiting for objects
        # loaded later asked for (their probes come after the session is made).
        opts.string_slots = max([len(strings) for r in self._requests for _, strings in r.pending]
                                + [len(set(r.strings)) for r in self._requests if r.agg is None], default=0)
        opts.wakeup_bytes = self.wakeup_bytes
        opts.wakeup_interval_ns = int((self.wakeup_interval or 0) * 1e9)
        opts.max_sites = self.max_sites
        # Probe ids (one per probe and argument layout) index a per-CPU
        # counter array: sized for the probes known now, with room for as
        # many again found later (dlopen), within the ABI's limit.
        known = {(p.open_path, p.fullname, p.layout) for r in self._requests for p, _ in r.pending}
        opts.max_probes = min(_native.MAX_PROBES, max(MIN_PROBE_SLOTS, 2 * len(known)))
        # The last probe id is the dynamic linker's notification site's.
        self._max_probe_ids = opts.max_probes - 1
        opts.aggregate = bool(self._aggs)
        opts.max_agg_keys = self.max_agg_keys
        # The aggregations known now get rows in the flat per-CPU array.
        self._flat_aggs = len(self._aggs)
        opts.flat_aggs = self._flat_aggs
        opts.max_starts = max([a.max_pending for a in self._aggs if isinstance(a, Latency)], default=1)
        opts.uprobe_multi = self.uprobe_multi
        self._session = _native.Session(opts)
        self._loader = LoaderHook(self._session, self._max_probe_ids)
        for req in self._requests:
            self._attach_checked(req)
        self._started = True
        for held in {id(r.held): r.held for r in self._requests if r.held is not None}.values():
            held.release()
        self._last_refresh = 0.0

    def _probe_id(self, probe: Probe, strings: tuple) -> int:
        # One id per argument layout of a probe (pending holds layouts).
        key = (inode_key(probe.open_path), probe.provider, probe.name, probe.layout)
        if key in self._probe_ids and self._probes[self._probe_ids[key]].strings != strings:
            raise ConfigError(f"{probe.fullname} is already traced with other string arguments")
        if key not in self._probe_ids:
            if len(self._probes) >= self._max_probe_ids:
                raise AttachError(f"too many probes (limit {self._max_probe_ids})")
            self._probe_ids[key] = len(self._probes)
            self._probes.append(TracedProbe(len(self._probes), probe, strings))
        return self._probe_ids[key]

    def _attach_pending(self, req: AttachRequest) -> None:
        follow = req.kind != "path" and self.follow_children
        if req.pid is not None and follow:
            self._session.add_tgid(req.pid)
        pid = req.pid if (req.kind != "path" and not follow) else -1
        pending, req.pending = req.pending, []
        agg_id = self._agg_id(req.agg) if req.agg is not None else -1
        spec = req.agg.native_spec(req.role, agg_id) if req.agg is not None else None
        if spec is not None:
            flat_kind = spec.key_kind == _native.KEY_NONE and spec.hist_kind != _native.HIST_LINEAR
            spec.flat = int(flat_kind and agg_id < self._flat_aggs)
        if req.kind != "path" and req.only_path is None and not req.loader_hooked:
            req.loader_hooked = True
            why = self._loader.hook(req.loader_objects(), req.pid, follow, hold=req.held is not None)
            if why:
                self.warnings.append(why)
        slots = self._session.string_slots
        failed: list[AttachError] = []
        for probe, strings in pending:
            if len(strings) > slots:
                self.warnings.append(f"{probe.fullname}: only its first {slots} string argument(s) "
                                     "are read (the session was started with fewer)")
                strings = strings[:slots]
            inode = inode_key(probe.open_path)
            req.seen_objects.add(inode)
            probe_id = self._probe_id(probe, strings)
            for site in probe.sites:
                # Two requests matching the same site (overlapping patterns on
                # one target) must not attach it twice: that would double events.
                if (inode, site.pc_offset, agg_id) in self._attached:
                    continue
                self._attached.add((inode, site.pc_offset, agg_id))
                try:
                    self._session.attach(probe.open_path, site, probe_id, list(strings), pid, follow, spec)
                except AttachError as e:
                    if probe.fullname not in str(e):
                        e = _named(e, probe)
                    failed.append(e)
                    continue
                self._linked_ids.add(probe_id)
        # With uprobe_multi links, attach() only queued the sites: link them.
        for err, message in self._session.commit():
            e = AttachError(message)
            e.os_errno = err
            failed.append(e)
        if failed:
            self._attach_failed(req, failed)

    def _attach_checked(self, req: AttachRequest) -> None:
        """_attach_pending, for targets that can vanish meanwhile: a file or a
        process's mapping gone between discovery and attach is an OSError
        there; it becomes the error a person can act on."""
        warned = len(self.warnings)
        gone = NoSuchProcessError(f"process {req.pid} exited before its probes were attached")
        try:
            self._attach_pending(req)
        except OSError as e:
            if isinstance(e, PyusdtError):
                raise
            if req.kind == "path":
                cls = ELFNotFoundError if isinstance(e, FileNotFoundError) else ELFReadError
                raise cls(f"{e.filename}: {e.strerror}") from None
            if pid_alive(req.pid):
                raise AttachError(f"process {req.pid}: {e.filename}: {e.strerror}") from None
            if not self._started:
                raise gone from None
            return  # exited during the trace: a normal end, which `done` reports
        # Its objects refused to attach (warnings) because it has gone: that is the one error.
        if req.kind == "pid" and not self._started and len(self.warnings) > warned and not pid_alive(req.pid):
            raise gone

    def _attach_failed(self, req: AttachRequest, failed: list) -> None:
        """A file the caller named fails loudly; the objects of a process
        (some may be gone already) leave warnings and the rest are traced.
        Many failures (a limit reached) are a few lines, not one per site."""
        if req.held is None and req.kind == "path":
            raise failed[0]
        by_reason: dict = {}
        for e in failed:
            by_reason.setdefault(getattr(e, "reason", str(e)), []).append(e)
        for reason, errors in list(by_reason.items())[:MAX_FAILURE_LINES]:
            probes = list({id(p): p for p in (getattr(e, "probe", None) for e in errors)}.values())
            if len(errors) == 1 or None in probes:
                self.warnings.extend(f"not attached: {e}" for e in errors[:MAX_FAILURE_LINES])
                continue
            names = ", ".join(p.fullname for p in probes[:MAX_NAMES_SHOWN])
            more = f" and {len(probes) - MAX_NAMES_SHOWN} more" if len(probes) > MAX_NAMES_SHOWN else ""
            self.warnings.append(f"not attached: {len(errors)} site(s) of {len(probes)} probe(s) "
                                 f"({names}{more}) in {probes[0].path}: {reason}")
        if len(by_reason) > MAX_FAILURE_LINES:
            self.warnings.append(f"{len(failed)} probe site(s) not attached in all "
                                 f"({len(by_reason) - MAX_FAILURE_LINES} more reason(s) not shown)")

    def _refresh(self) -> None:
        """Attaches probes in objects that appeared since: dlopen, exec, forked children."""
        self._last_refresh = time.monotonic()
        for req in self._requests:
            if req.kind == "path" or req.only_path is not None:
                continue
            pids = self._session.tgids() if self.follow_children else [req.pid]
            for pid in pids:
                try:
                    objects = process_objects(pid)
                except PyusdtError:
                    if self.follow_children and not pid_alive(pid):
                        self._session.remove_tgid(pid)
                    continue
                for obj in objects:
                    try:
                        key = inode_key(obj.open_path)
                    except OSError:
                        continue
                    if key in req.seen_objects:
                        continue
                    req.seen_objects.add(key)
                    found = check_probes(match(probes_in_object(obj), req.pattern), req, False, self.warnings)
                    req.matched = req.matched or bool(found)
                    req.pending.extend(found)
            self._attach_checked(req)

    def _on_objects_loaded(self, pids: set) -> None:
        """The dynamic linker of these processes mapped objects: attach their
        probes now, then let the processes the hook holds go on."""
        try:
            if not self._stopped:
                self._refresh()
        finally:
            self._loader.resume(pids)

    @property
    def done(self) -> bool:
        """True once every traced process (pid and command targets) has exited."""
        roots = [r for r in self._requests if r.kind != "path"]
        if not roots:
            return False
        for r in roots:
            if r.held is not None:
                if r.held.poll() is None:
                    return False
            elif pid_alive(r.pid):
                return False
        return True

    def poll(self, timeout: float = 0.1, max_events: int = 1 << 16) -> EventBatch:
        """Waits up to `timeout` seconds; returns the records that arrived (maybe none)."""
        timeout = limits.check_seconds(timeout, "timeout", zero_ok=True, most=limits.MAX_TIMEOUT_S)
        max_events = limits.MAX_EVENTS.check(max_events, "max_events")
        session = self._require_session()
        if not self._stopped and time.monotonic() - self._last_refresh >= REFRESH_INTERVAL_S:
            self._refresh()
        arr = session.poll(int(timeout * 1000), max_events)
        if len(arr) and self._loader is not None:
            arr, loaded = self._loader.take(arr)
            if loaded:
                self._on_objects_loaded(loaded)
        if len(arr):
            counts = np.bincount(arr["probe_id"], minlength=len(self._probes))
            if len(counts) > len(self._events):
                self._events = np.pad(self._events, (0, len(counts) - len(self._events)))
            self._events[: len(counts)] += counts.astype(np.uint64)
        return EventBatch(arr, self._probes)

    def batches(self, timeout: float = 0.1, duration: Optional[float] = None,
                idle: bool = False, max_events: int = 1 << 16) -> Iterator[EventBatch]:
        """Non-empty batches (at most `max_events` records each) until the
        targets exit or `duration` seconds pass; with `idle`, empty ones too
        (one per `timeout` without events)."""
        # Checked now, not at the first next(): a generator runs nothing until then.
        limits.check_seconds(timeout, "timeout", zero_ok=True, most=limits.MAX_TIMEOUT_S)
        if duration is not None:
            duration = limits.check_seconds(duration, "duration", zero_ok=True)
        return self._batches(timeout, duration, idle, max_events)

    def _batches(self, timeout: float, duration: Optional[float], idle: bool,
                 max_events: int) -> Iterator[EventBatch]:
        deadline = None if duration is None else time.monotonic() + duration
        while True:
            ended = self.done
            batch = self.poll(timeout if not ended else 0, max_events)
            if len(batch) or idle:
                yield batch
            if deadline is not None and time.monotonic() >= deadline:
                return
            if ended and not len(batch):
                return

    def stop(self) -> None:
        """Ends streaming: from now on the probes neither count nor record a
        hit (they stay attached, and aggregations go on, until close()), so
        drain() then returns every record already in the ring buffer and
        ends, even under a flood of events.  Every hit counted before is then
        a record delivered or a loss counted."""
        session = self._require_session()
        session.stop_streaming()
        self._stopped = True

    def drain(self) -> Iterator[EventBatch]:
        """Whatever is still in the ring buffer, without waiting.  After
        stop() it also waits (briefly) for records a hit was writing as the
        trace stopped, so nothing counted is left unread."""
        session = self._require_session()
        deadline = None
        while True:
            batch = self.poll(0)
            if len(batch):
                yield batch
                continue
            if not self._stopped:
                return
            # A hit that passed the stop check just before it may still be
            # writing its record (reserved, not committed: pending but not
            # readable): wait for it, for a while at most.
            deadline = deadline or time.monotonic() + STOP_DRAIN_WAIT_S
            if session.pending_bytes and time.monotonic() < deadline:
                time.sleep(0.001)
                continue
            # Nothing pending: one last look once in-flight hits have surely ended.
            time.sleep(0.01)
            batch = self.poll(0)
            if not len(batch):
                return
            yield batch

    # -- results -----------------------------------------------------------

    @property
    def probes(self) -> list[TracedProbe]:
        """Every probe attached so far; a record's probe_id indexes this list."""
        return list(self._probes)

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
        return len({(tp.probe.path, tp.fullname) for tp in self._probes if tp.probe_id in self._linked_ids})

    @property
    def dtype(self) -> np.dtype:
        """The numpy dtype of the batches this tracer delivers."""
        return self._require_session().dtype

    def aggregation(self, spec: Union[Aggregate, Latency]) -> AggregationResult:
        """The current rows and counters of one aggregation, read from the kernel.
        After close() it returns them as they were at the end."""
        for i, known in enumerate(self._aggs):
            if known is spec:
                return self.aggregations()[i]
        raise ConfigError("that aggregation is not attached to this tracer")

    def aggregations(self) -> list[AggregationResult]:
        """Every aggregation's result, in agg_id order."""
        if self._closed and self._final_aggs is not None:
            return self._final_aggs
        return read_aggregations(self._require_session(), self._aggs, self._probes)

    def stats(self) -> list[ProbeStats]:
        """Per-probe counters: delivered events, kernel hits, and every kind of loss.
        After close() it returns the counters as they were at the end."""
        if self._closed and self._final_stats is not None:
            return self._final_stats
        return read_stats(self._require_session(), self._probes, self._events)

    @property
    def lost(self) -> int:
        """Records dropped in the kernel (ring buffer full), all probes."""
        return sum(s.lost_ringbuf for s in self.stats())

    @property
    def attached_sites(self) -> int:
        """Probe sites currently attached (a uprobe_multi link holds many)."""
        if self._session is None or self._session.closed:
            return 0
        return self._session.attached_sites - (self._loader.sites if self._loader is not None else 0)

    def _require_session(self):
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
            self._final_aggs = self.aggregations() if self._aggs else []
            if detach_in_background and self._session.perf_links >= BACKGROUND_DETACH_MIN_LINKS:
                self.detaching_links = self._session.perf_links
                pid = self._session.detach_in_background()
                self.detaching_pid = pid if pid > 0 else None
            self._session.close()
        if self._loader is not None:
            self._loader.resume_all()  # no process stays stopped at a load we did not see
        self._closed = True
        for req in self._requests:
            if req.held is not None and not req.held.released:
                req.held.terminate()

    def __enter__(self) -> "Tracer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _named(e: AttachError, probe: Probe) -> AttachError:
    """The same failure, its message naming the probe; `reason` and `probe`
    let failures be grouped."""
    named = AttachError(f"{probe.fullname} in {probe.path}: {e}")
    named.os_errno = getattr(e, "os_errno", 0)
    named.reason = str(e)
    named.probe = probe
    return named
