"""Saying that events are being lost while it happens, not only at the end.

The kernel counts each record it could not put in a full ring buffer; a
burst can lose most of its events in a second.  A LossMonitor looks at the
counters a few times a second and reports new losses at most once per
interval, so a flood of losses is one line a second, not one per batch.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, NamedTuple, Optional

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.trace.tracer import Tracer

CHECK_EVERY_S = 0.25  # counters read at most this often (one map lookup per probe)
REPORT_EVERY_S = 1.0  # at most one report per this long


class LossReport(NamedTuple):
    """New losses, as LossMonitor.check() reports them.  (A NamedTuple, not
    a dataclass: the reading loop imports this module before the first
    event, and a dataclass costs ~1 ms to create.)"""

    new: int  # records lost since the last report
    total: int  # records lost since the trace began
    seconds: float  # since the last report (or the start)


class LossMonitor:
    """Polled from the reading loop: check() returns a LossReport when the
    kernel has dropped records since the last one, at most once per interval."""

    def __init__(self, tracer: Tracer, report_every: float = REPORT_EVERY_S) -> None:
        self._tracer = tracer
        self._report_every = report_every
        self._reported = 0
        self._last_check = 0.0
        self._last_report = time.monotonic()

    def check(self) -> Optional[LossReport]:
        now = time.monotonic()
        if now - self._last_check < CHECK_EVERY_S:
            return None
        self._last_check = now
        if now - self._last_report < self._report_every and self._reported:
            return None
        lost = self._tracer.lost
        if lost <= self._reported:
            return None
        report = LossReport(lost - self._reported, lost, now - self._last_report)
        self._reported, self._last_report = lost, now
        return report
