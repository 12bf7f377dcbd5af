"""From a MetricSpec to the Aggregate or Latency the Tracer runs in the kernel.

A key, value or predicate written in a plain form (argN, str(argN), pid,
tid, comm, probe, `argN OP number`) takes the plain route, as the aggregate
command's options do: as fast as before expressions existed, and the
session starts without loading the expression interpreter.
"""
from __future__ import annotations

from typing import Optional, Union

from pyusdt.aggregate.specs import Aggregate, Arg, KeySpec, Latency, StrArg, Where
from pyusdt.expr import PlainArg, PlainBuiltin, PlainCompare, PlainStr, parse, parse_list, simple_form
from pyusdt.serve.config import MetricSpec

_PLAIN_KEYS = ("pid", "tid", "comm", "probe")


def key_spec(text: Optional[str]) -> KeySpec:
    if text is None:
        return None
    nodes = parse_list(text)
    plain = simple_form(nodes[0]) if len(nodes) == 1 else None
    if isinstance(plain, PlainArg):
        return Arg(plain.index)
    if isinstance(plain, PlainStr):
        return StrArg(plain.index)
    if isinstance(plain, PlainBuiltin) and plain.name in _PLAIN_KEYS:
        return plain.name
    return text


def value_spec(text: Optional[str]) -> Union[None, int, str]:
    if text is None:
        return None
    plain = simple_form(parse(text))
    return plain.index if isinstance(plain, PlainArg) else text


def where_spec(text: Optional[str]) -> Union[None, Where, str]:
    if text is None:
        return None
    plain = simple_form(parse(text))
    return Where(plain.arg, plain.op, plain.value) if isinstance(plain, PlainCompare) else text


def build_aggregation(metric: MetricSpec) -> Union[Aggregate, Latency]:
    """The aggregation `metric` exports.  Latency is timed in the metric's
    resolution (ns by default: exact seconds when exported)."""
    key, where = key_spec(metric.by), where_spec(metric.where)
    if metric.kind == "latency":
        assert metric.start is not None and metric.done is not None  # MetricSpec checked them
        return Latency(metric.start, metric.done, kind="lhist" if metric.lhist else "hist",
                       pair_by=metric.pair_by, key=key, unit=metric.resolution, lhist=metric.lhist, where=where)
    return Aggregate(metric.kind, value=value_spec(metric.value), key=key, lhist=metric.lhist, where=where)
