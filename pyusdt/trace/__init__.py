"""Tracing: choose targets, attach, read event batches and counters.
Tracer (tracer) is the facade; each of its parts has a module of its own."""
from pyusdt.trace.events import Event, EventBatch, TracedProbe
from pyusdt.trace.launcher import HeldProcess
from pyusdt.trace.results import ProbeStats
from pyusdt.trace.tracer import Tracer

__all__ = ["Event", "EventBatch", "HeldProcess", "ProbeStats", "TracedProbe", "Tracer"]
