"""pyusdt: USDT tracing for Linux with eBPF.

Find the USDT probes in ELF files and running processes, attach to them with
a precompiled CO-RE BPF program, and read every hit as numpy structured
arrays, with every drop counted; as pandas or Arrow tables with
:func:`to_pandas` / :func:`to_arrow` (optional extras).
"""
from __future__ import annotations

from .discovery import ArgSpec, Probe, probes_at_path, probes_in_process
from .errors import *  # noqa: F401,F403 - the public exception hierarchy
from .events import Event, EventBatch, TracedProbe
from .launcher import HeldProcess
from .provider import Provider
from .table import to_arrow, to_pandas
from .tracer import ProbeStats, Tracer

__version__ = "0.1.0"

__all__ = [
    "ArgSpec",
    "Event",
    "EventBatch",
    "HeldProcess",
    "Probe",
    "ProbeStats",
    "Provider",
    "TracedProbe",
    "Tracer",
    "probes_at_path",
    "probes_in_process",
    "to_arrow",
    "to_pandas",
]
