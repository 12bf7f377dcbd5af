"""From a MetricSpec to the Aggregate or Latency the Tracer runs in the kernel.

A key, value or predicate written in a plain form (argN, str(argN), pid,
tid, comm, probe, `argN OP number`) takes the plain route, as the aggregate
command's options do: as fast as before expressions existed, and the
session starts without loading the expression interpreter.
"""
from __future__ import annotations

from typing import Union

from pyusdt.aggregate.specs import Aggregate, Latency, plain_key, plain_value, plain_where
from pyusdt.serve.config import MetricSpec


def build_aggregation(metric: MetricSpec) -> Union[Aggregate, Latency]:
    """The aggregation `metric` exports.  Latency is timed in the metric's
    resolution (ns by default: exact seconds when exported)."""
    key = None if metric.by is None else plain_key(metric.by)
    where = None if metric.where is None else plain_where(metric.where)
    if metric.kind == "latency":
        assert metric.start is not None and metric.done is not None  # MetricSpec checked them
        return Latency(metric.start, metric.done, kind="lhist" if metric.lhist else "hist",
                       pair_by=metric.pair_by, key=key, unit=metric.resolution, lhist=metric.lhist, where=where)
    value = None if metric.value is None else plain_value(metric.value)
    return Aggregate(metric.kind, value=value, key=key, lhist=metric.lhist, where=where)
