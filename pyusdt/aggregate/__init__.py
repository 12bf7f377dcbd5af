"""In-kernel aggregation: what the kernel computes for each hit (specs), what
came out (results), and the histograms both share (histogram)."""
from pyusdt.aggregate.histogram import Histogram
from pyusdt.aggregate.results import AggregationResult, Counters, Stats
from pyusdt.aggregate.specs import KINDS, UNITS, Aggregate, Arg, Latency, StrArg, Where

__all__ = ["KINDS", "UNITS", "Aggregate", "AggregationResult", "Arg", "Counters", "Histogram", "Latency",
           "Stats", "StrArg", "Where"]
