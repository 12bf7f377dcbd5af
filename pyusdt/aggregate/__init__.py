"""In-kernel aggregation: what the kernel computes for each hit (specs), what
came out (results), and the histograms both share (histogram).

The names below are loaded when first used: a trace that only takes specs
(pyusdt.aggregate.specs) does not import numpy, which results need."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pyusdt._lazy import lazy_names

_HOMES = {
    "Histogram": "pyusdt.aggregate.histogram",
    "AggregationResult": "pyusdt.aggregate.results",
    "Counters": "pyusdt.aggregate.results",
    "Stats": "pyusdt.aggregate.results",
    "KINDS": "pyusdt.aggregate.specs",
    "UNITS": "pyusdt.aggregate.specs",
    "Aggregate": "pyusdt.aggregate.specs",
    "Arg": "pyusdt.aggregate.specs",
    "Latency": "pyusdt.aggregate.specs",
    "StrArg": "pyusdt.aggregate.specs",
    "Where": "pyusdt.aggregate.specs",
}

__all__ = sorted(_HOMES)

if TYPE_CHECKING:
    from pyusdt.aggregate.histogram import Histogram as Histogram
    from pyusdt.aggregate.results import AggregationResult as AggregationResult
    from pyusdt.aggregate.results import Counters as Counters
    from pyusdt.aggregate.results import Stats as Stats
    from pyusdt.aggregate.specs import KINDS as KINDS
    from pyusdt.aggregate.specs import UNITS as UNITS
    from pyusdt.aggregate.specs import Aggregate as Aggregate
    from pyusdt.aggregate.specs import Arg as Arg
    from pyusdt.aggregate.specs import Latency as Latency
    from pyusdt.aggregate.specs import StrArg as StrArg
    from pyusdt.aggregate.specs import Where as Where

__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
