"""One metric's tracer: attaching its targets, trying again those that
failed, noticing those that went away, and reading what it counted.

Each metric has a Tracer (one BPF session) of its own, so a config reload
closes and starts only the metrics that changed; the others keep their
counts.  What is done for targets that come and go:
  - path: the kernel applies the uprobes to every process running the file,
    those started later included, so restarts and scaling cost nothing.  A
    file that does not exist yet is tried again every retry_interval; a
    file replaced by a new one (a deploy: new inode) is attached again, the
    old file's processes staying traced until they exit.
  - pid: a process that exits is reported (pyusdt_target_attached 0) and
    its counts are kept; it is not tried again (its pid may be another
    process's by then).  A pid that does not exist at the start is tried
    again like a missing file.
  - container, cgroup: tried again the same way when they fail.  Their
    processes, those started later included, are found by the tracer's
    rescan.  A container that stops reads pyusdt_target_attached 0 (its
    counts kept); when one of that id or name runs again (a restart: a new
    cgroup), it is attached again and counted on.
  - object: every process that maps the object, found by the rescan.
Nothing else is done: no process is followed to a new pid.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

from pyusdt.aggregate.results import AggregationResult
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.discover.cgroups import cgroup_at
from pyusdt.discover.containers import find_container
from pyusdt.errors import KernelSupportError, PrivilegeError, PyusdtError
from pyusdt.serve.aggregations import build_aggregation
from pyusdt.serve.config import MetricSpec, Target
from pyusdt.serve.defaults import RETRY_INTERVAL_S
from pyusdt.serve.series_cap import SeriesCap
from pyusdt.serve.target_calls import attach_target
from pyusdt.trace.requests import pid_alive
from pyusdt.trace.results import ProbeStats
from pyusdt.trace.tracer import Tracer

Log = Callable[[str], None]
# Errors no retry can mend: the exporter cannot trace at all.
FATAL_ERRORS = (PrivilegeError, KernelSupportError)


@dataclass
class TargetState:
    """Where one target of a metric stands."""

    target: Target
    attached: bool = False
    gone: bool = False  # a pid target whose process exited: not tried again
    next_try: float = 0.0
    error: Optional[str] = None  # the last failure, logged once per new message
    file_id: Optional[tuple[int, int]] = None  # path targets: (st_dev, st_ino) attached
    cgroup_id: Optional[int] = None  # container and cgroup targets: the cgroup attached


@dataclass
class MetricStatus:
    """A metric's state for the self-metrics, read under the exporter's lock."""

    name: str
    targets: list[TargetState]
    attached_sites: int
    attach_errors: int
    warnings: int
    probe_stats: list[ProbeStats]
    result: Optional[AggregationResult]
    series_dropped: int
    is_latency: bool = field(default=False)


class MetricRunner:
    """The tracer of one MetricSpec."""

    def __init__(self, spec: MetricSpec, log: Log, retry_interval: float = RETRY_INTERVAL_S) -> None:
        self.spec = spec
        self.log = log
        self.retry_interval = retry_interval
        self.aggregation: Union[Aggregate, Latency] = build_aggregation(spec)
        self.cap = SeriesCap(spec.max_series)
        self.targets = [TargetState(t) for t in spec.targets]
        self.attach_errors = 0
        self.tracer = Tracer()
        self.started = False

    # -- attaching -------------------------------------------------------------

    def maintain(self, now: Optional[float] = None) -> None:
        """Polls the tracer (objects loaded later are attached from the poll),
        notices exited pids, and tries again the targets that are due."""
        now = time.monotonic() if now is None else now
        if self.started:
            self.tracer.poll(timeout=0)
        for st in self.targets:
            if st.attached and st.target.kind == "pid" and not pid_alive(int(st.target.value)):
                st.attached, st.gone = False, True
                self.log(f"metric {self.spec.name!r}: {st.target.label} exited; its counts are kept")
            elif st.attached and st.target.kind in ("container", "cgroup") and now >= st.next_try:
                st.next_try = now + self.retry_interval
                if _cgroup_id(st.target) != st.cgroup_id:  # stopped, or restarted (a new cgroup)
                    st.attached = False
                    self.log(f"metric {self.spec.name!r}: {st.target.label} stopped; its counts are kept")
                    self._attach(st, now)
                    if st.attached:
                        self.log(f"metric {self.spec.name!r}: {st.target.label}: attached (it runs again)")
            elif st.attached and st.target.kind == "path" and now >= st.next_try:
                st.next_try = now + self.retry_interval
                if _file_id(str(st.target.value)) not in (None, st.file_id):
                    self._attach(st, now, replaced=True)
            elif not st.attached and not st.gone and now >= st.next_try:
                self._attach(st, now)
        if not self.started and any(st.attached for st in self.targets):
            self._start(now)

    def _attach(self, st: TargetState, now: float, replaced: bool = False) -> None:
        st.next_try = now + self.retry_interval
        file_id = _file_id(str(st.target.value)) if st.target.kind == "path" else None
        try:
            attach_target(self.tracer, st.target, self.aggregation, self.spec.probe)
        except FATAL_ERRORS:
            raise
        except PyusdtError as e:
            self.attach_errors += 1
            if replaced:
                return  # still attached to the file it replaced; tried again later
            message = str(e)
            if message != st.error:
                self.log(f"metric {self.spec.name!r}: {st.target.label}: {message} (trying again every "
                         f"{self.retry_interval:g} s)")
            st.error = message
            return
        if st.error is not None or replaced:
            self.log(f"metric {self.spec.name!r}: {st.target.label}: attached"
                     + (" (the file was replaced)" if replaced else ""))
        st.attached, st.error, st.file_id = True, None, file_id
        if st.target.kind in ("container", "cgroup"):
            st.cgroup_id = _cgroup_id(st.target)

    def _start(self, now: float) -> None:
        """Starts the session once a target is attached: a session started
        without any would lack what later attaches need (expressions)."""
        try:
            self.tracer.start()
        except FATAL_ERRORS:
            raise
        except PyusdtError as e:
            self.attach_errors += 1
            self.log(f"metric {self.spec.name!r}: cannot start: {e} (trying again every {self.retry_interval:g} s)")
            self.tracer.close()
            self.tracer = Tracer()
            for st in self.targets:
                st.attached, st.next_try, st.error = False, now + self.retry_interval, str(e)
            return
        self.started = True

    # -- reading ---------------------------------------------------------------

    def result(self) -> Optional[AggregationResult]:
        """The aggregation as the kernel has it now (None before the start)."""
        if not self.started:
            return None
        return self.tracer.aggregation(self.aggregation)

    def status(self, result: Optional[AggregationResult]) -> MetricStatus:
        return MetricStatus(
            name=self.spec.name, targets=self.targets,
            attached_sites=self.tracer.attached_sites if self.started else 0,
            attach_errors=self.attach_errors, warnings=len(self.tracer.warnings),
            probe_stats=self.tracer.stats() if self.started else [], result=result,
            series_dropped=self.cap.dropped, is_latency=self.spec.kind == "latency")

    def close(self) -> None:
        """Detaches every probe of this metric."""
        self.tracer.close()
        for st in self.targets:
            st.attached = False


def _file_id(path: str) -> Optional[tuple[int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _cgroup_id(target: Target) -> Optional[int]:
    """The id of the cgroup a container or cgroup target names now (None: none)."""
    try:
        if target.kind == "container":
            return find_container(str(target.value))[1].id
        return cgroup_at(str(target.value)).id
    except PyusdtError:
        return None
