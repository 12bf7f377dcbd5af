"""One metric's aggregation, read from the kernel, as a Prometheus metric family.

count and sum are counters (one sample per key); hist, lhist and latency
are histograms: cumulative _bucket{le=...} samples, _sum and _count.

Bucket bounds are exact.  The kernel counts integers (the value after the
divisor), and Prometheus's `le` means "value <= le", so each bucket's `le`
is the largest integer it holds: log2 bucket [2^k, 2^(k+1)) has
le = 2^(k+1) - 1, [0] has le = 0, [1] le = 1, the negative bucket le = -1;
linear bucket [lo, lo + step) has le = lo + step - 1, and the one below
min has le = min - 1.  (The bound 2^(k+1) would wrongly count the value
2^(k+1) in the bucket below it.)  Latency is timed in integer units of its
resolution (ns by default) and exported in seconds: a bucket holding
u units at most holds at most (u + 1) * unit_ns - 1 nanoseconds, so
le = ((u + 1) * unit_ns - 1) / 1e9 (= u / 1e9 for ns); its _sum is the
units' sum times unit_ns / 1e9, exact for ns up to float64's 53 bits (with
a coarser resolution each value was already truncated to its unit).  `le`
values above 2^53 print exactly but Prometheus reads them as float64.

Buckets are emitted from [0] (log2; the negative bucket too once it has a
value) or from the one below min (linear) up to the highest non-empty one,
then +Inf: counts only grow, so a bucket once emitted stays.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

from pyusdt.aggregate.histogram import Key
from pyusdt.aggregate.results import AggregationResult
from pyusdt.aggregate.specs import UNITS as LATENCY_UNIT_NS
from pyusdt.serve.config import MetricSpec
from pyusdt.serve.defaults import NS_PER_SECOND, OVERFLOW_LABEL_VALUE
from pyusdt.serve.exposition import Labels, MetricFamily, Number, Sample, format_bound
from pyusdt.serve.series_cap import SeriesCap

INF = float("inf")


def label_values(key: Key) -> tuple[str, ...]:
    """A key's parts as label values: integers in decimal, strings as read."""
    parts = key if isinstance(key, tuple) else (key,)
    return tuple(str(p) for p in parts)


def metric_family(metric: MetricSpec, namespace: str, result: AggregationResult, cap: SeriesCap) -> MetricFamily:
    """The family of `metric` from its aggregation's current `result`; `cap`
    (kept across scrapes) decides which keys get a series of their own."""
    names = metric.label_names
    keys = [k for k in result.keys if k is not None or not names]
    kept, over = cap.split(keys)
    series: list[tuple[Labels, list[Key]]] = [(tuple(zip(names, label_values(k))), [k]) for k in kept]
    if over:
        series.append((tuple((n, OVERFLOW_LABEL_VALUE) for n in names), over))
    if not series and not names:
        series = [((), [None])]  # an unkeyed metric reads 0 before its first hit
    samples: list[Sample] = []
    for labels, group in series:
        if metric.is_counter:
            field = "count" if metric.kind == "count" else "sum"
            samples.append(Sample("_total", labels, sum(getattr(result.stats(k), field) for k in group)))
        else:
            samples.extend(histogram_samples(metric, result, labels, group))
    kind = "counter" if metric.is_counter else "histogram"
    return MetricFamily(metric.exported_base(namespace), kind, metric.help_text, tuple(samples))


def histogram_samples(metric: MetricSpec, result: AggregationResult, labels: Labels,
                      keys: Sequence[Key]) -> list[Sample]:
    """_bucket, _sum and _count of the keys' histograms added up."""
    counts: dict[int, int] = {}
    total_sum = 0
    for k in keys:
        for i, c in enumerate(int(c) for c in result.hist(k).counts):
            if c:
                counts[i] = counts.get(i, 0) + c
        total_sum += result.hist_sum(k)
    linear = metric.lhist is not None
    first = 0 if linear or counts.get(0) else 1
    last_bounded = _last_bounded(metric)
    top = max((i for i in counts if i <= last_bounded), default=None)
    out = []
    running = 0
    if top is not None:
        for i in range(first, top + 1):
            running += counts.get(i, 0)
            out.append(Sample("_bucket", labels + (("le", format_bound(_seconds_or_int(metric, _upper(metric, i)))),),
                              running))
    total = sum(counts.values())
    out.append(Sample("_bucket", labels + (("le", "+Inf"),), total))
    out.append(Sample("_sum", labels, _sum_value(metric, total_sum)))
    out.append(Sample("_count", labels, total))
    return out


def _last_bounded(metric: MetricSpec) -> int:
    """The last bucket index with a finite upper bound."""
    if metric.lhist is None:
        return 65  # log2: [2^63, 2^64) is the last
    lmin, lmax, step = metric.lhist
    return (lmax - lmin) // step  # n; bucket n + 1 is open above


def _upper(metric: MetricSpec, i: int) -> int:
    """The largest integer bucket i holds (in the kernel's units)."""
    if metric.lhist is None:
        return -1 if i == 0 else 0 if i == 1 else (1 << (i - 1)) - 1
    lmin, _, step = metric.lhist
    return lmin + i * step - 1


def _unit_ns(metric: MetricSpec) -> Optional[int]:
    return LATENCY_UNIT_NS[metric.resolution] if metric.kind == "latency" else None


def _seconds_or_int(metric: MetricSpec, upper: int) -> Number:
    unit_ns = _unit_ns(metric)
    if unit_ns is None:
        return upper
    return ((upper + 1) * unit_ns - 1) / NS_PER_SECOND


def _sum_value(metric: MetricSpec, total: int) -> Union[int, float]:
    unit_ns = _unit_ns(metric)
    return total if unit_ns is None else total * unit_ns / NS_PER_SECOND
