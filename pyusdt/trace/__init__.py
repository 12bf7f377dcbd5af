"""Tracing: choose targets, attach, read event batches and counters.
Tracer (tracer) is the facade; each of its parts has a module of its own.

The names below are loaded when first used: a module of this package (the
CLI's sizing, say) can be imported without the whole tracer."""
from __future__ import annotations

from pyusdt._lazy import TYPE_CHECKING, lazy_names

_HOMES = {
    "Event": "pyusdt.trace.events",
    "EventBatch": "pyusdt.trace.events",
    "TracedProbe": "pyusdt.trace.events",
    "HeldProcess": "pyusdt.trace.launcher",
    "ProbeStats": "pyusdt.trace.results",
    "Tracer": "pyusdt.trace.tracer",
}

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from pyusdt.trace.events import Event as Event
    from pyusdt.trace.events import EventBatch as EventBatch
    from pyusdt.trace.events import TracedProbe as TracedProbe
    from pyusdt.trace.launcher import HeldProcess as HeldProcess
    from pyusdt.trace.results import ProbeStats as ProbeStats
    from pyusdt.trace.tracer import Tracer as Tracer

__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
