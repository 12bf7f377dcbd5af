"""The reading loop of a streaming trace, shared by stdout and file output.

Batches go to `write` until the targets exit, the duration passes or a stop
signal arrives (StopSignals: looked at between batches, so a batch read is
always written whole).  Then streaming stops in the kernel and the ring
buffer is drained, so every hit counted is written or counted as lost, even
under a flood of events.  New losses are reported while they happen.

With give_way (the CLI: its process ends with the trace), once reading has
begun the thread that formats and writes gives way to the traced programs
(the lowest priority, nice 19), and is set back at the end: on a busy
machine the output then lags, instead of the traced program slowing down.  Nothing is
lost for it: the session's reader thread, started by the first poll at the
priority the trace began with, keeps emptying the ring buffer into memory.
"""
from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Callable, Optional

from pyusdt.trace.events import EventBatch
from pyusdt.trace.loss_report import LossMonitor, LossReport
from pyusdt.trace.stop_signals import StopSignals

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.trace.tracer import Tracer

# The formatting thread's nice value once reading has begun.
FORMATTER_NICE = 19


def _set_nice(nice: int) -> None:
    """This thread alone (Linux: a thread id is a PRIO_PROCESS target);
    never an error (going back up needs privilege a user may lack)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError:
        pass


def stream(tracer: Tracer, write: Callable[[EventBatch], None], stop: StopSignals, *,
           duration: Optional[float] = None, timeout: float = 0.1, max_events: int = 1 << 16,
           on_loss: Optional[Callable[[LossReport], None]] = None, give_way: bool = False) -> None:
    """Runs a started tracer's events into `write`; see the module docstring."""
    monitor = LossMonitor(tracer) if on_loss is not None else None

    def report_losses() -> None:
        if monitor is not None:
            report = monitor.check()
            if report is not None and on_loss is not None:
                on_loss(report)

    nice_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    gave_way = False
    try:
        for batch in tracer.batches(timeout=timeout, duration=duration, idle=True, max_events=max_events):
            if give_way and not gave_way:  # after the first poll: the reader thread it started keeps its priority
                _set_nice(max(nice_before, FORMATTER_NICE))
                gave_way = True
            write(batch)  # empty ones too: a file writer flushes on time
            report_losses()
            if stop.requested:
                break
        tracer.stop()
        for batch in tracer.drain():
            write(batch)
        report_losses()
    finally:
        if gave_way:
            _set_nice(nice_before)  # a caller in the same process (tests, a program) goes on as it was
