"""The reading loop of a streaming trace, shared by stdout and file output.

Batches go to `write` until the targets exit, the duration passes or a stop
signal arrives (StopSignals: looked at between batches, so a batch read is
always written whole).  Then streaming stops in the kernel and the ring
buffer is drained, so every hit counted is written or counted as lost, even
under a flood of events.  New losses are reported while they happen.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Optional

from pyusdt.trace.events import EventBatch
from pyusdt.trace.loss_report import LossMonitor, LossReport
from pyusdt.trace.stop_signals import StopSignals

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.trace.tracer import Tracer


def stream(tracer: Tracer, write: Callable[[EventBatch], None], stop: StopSignals, *,
           duration: Optional[float] = None, timeout: float = 0.1, max_events: int = 1 << 16,
           on_loss: Optional[Callable[[LossReport], None]] = None) -> None:
    """Runs a started tracer's events into `write`; see the module docstring."""
    monitor = LossMonitor(tracer) if on_loss is not None else None

    def report_losses() -> None:
        if monitor is not None:
            report = monitor.check()
            if report is not None and on_loss is not None:
                on_loss(report)

    for batch in tracer.batches(timeout=timeout, duration=duration, idle=True, max_events=max_events):
        write(batch)  # empty ones too: a file writer flushes on time
        report_losses()
        if stop.requested:
            break
    tracer.stop()
    for batch in tracer.drain():
        write(batch)
    report_losses()
