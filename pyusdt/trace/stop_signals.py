"""Stopping a trace on SIGINT or SIGTERM without cutting anything short.

A Python signal handler that raises can do so between any two bytecodes: in
the middle of writing a batch already read from the ring buffer (its events
would be counted but never written), or inside a native call.  While a
StopSignals is active the first signal only sets `requested`; the loop looks
at it between batches, stops streaming and drains what is left.  A second
signal raises KeyboardInterrupt: the way out when stopping itself is stuck
(a reader that no longer reads our output).  Installed from the main thread
only (Python allows no other); elsewhere it is a no-op.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any, Optional

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While active, the first SIGINT/SIGTERM sets `requested` instead of raising."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}  # signal -> the handler it had

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.requested:
            raise KeyboardInterrupt()
        self.requested = True

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
