"""pyusdt: USDT tracing for Linux with eBPF.

Find the USDT probes in ELF files and running processes, attach to them with
a precompiled CO-RE BPF program, and read every hit as numpy structured
arrays, with every drop counted; as pandas or Arrow tables with
:func:`to_pandas` / :func:`to_arrow` (optional extras).

The names below are loaded when first used, so that ``from pyusdt import
Provider`` (or ``import pyusdt.provide``) in a web worker loads what firing a
probe needs and nothing else: not numpy, not the tracer, not libbpf.
"""
from __future__ import annotations

from pyusdt._lazy import TYPE_CHECKING, lazy_names
from pyusdt.errors import *  # noqa: F403 - the public exception hierarchy

__version__ = "0.1.0"

# public name -> the module that defines it
_HOMES = {
    "ArgSpec": "pyusdt.discover.probes",
    "Probe": "pyusdt.discover.probes",
    "probes_at_path": "pyusdt.discover.probes",
    "probes_in_process": "pyusdt.discover.process",
    "Event": "pyusdt.trace.events",
    "EventBatch": "pyusdt.trace.events",
    "TracedProbe": "pyusdt.trace.events",
    "HeldProcess": "pyusdt.trace.launcher",
    "ProbeStats": "pyusdt.trace.results",
    "Tracer": "pyusdt.trace.tracer",
    "Aggregate": "pyusdt.aggregate.specs",
    "Latency": "pyusdt.aggregate.specs",
    "Arg": "pyusdt.aggregate.specs",
    "StrArg": "pyusdt.aggregate.specs",
    "Where": "pyusdt.aggregate.specs",
    "AggregationResult": "pyusdt.aggregate.results",
    "to_arrow": "pyusdt.export.table",
    "to_pandas": "pyusdt.export.table",
    "Provider": "pyusdt.provide.provider",
}

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from pyusdt.aggregate.results import AggregationResult as AggregationResult
    from pyusdt.aggregate.specs import Aggregate as Aggregate
    from pyusdt.aggregate.specs import Arg as Arg
    from pyusdt.aggregate.specs import Latency as Latency
    from pyusdt.aggregate.specs import StrArg as StrArg
    from pyusdt.aggregate.specs import Where as Where
    from pyusdt.discover.probes import ArgSpec as ArgSpec
    from pyusdt.discover.probes import Probe as Probe
    from pyusdt.discover.probes import probes_at_path as probes_at_path
    from pyusdt.discover.process import probes_in_process as probes_in_process
    from pyusdt.export.table import to_arrow as to_arrow
    from pyusdt.export.table import to_pandas as to_pandas
    from pyusdt.provide.provider import Provider as Provider
    from pyusdt.trace.events import Event as Event
    from pyusdt.trace.events import EventBatch as EventBatch
    from pyusdt.trace.events import TracedProbe as TracedProbe
    from pyusdt.trace.launcher import HeldProcess as HeldProcess
    from pyusdt.trace.results import ProbeStats as ProbeStats
    from pyusdt.trace.tracer import Tracer as Tracer

__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
