"""An aggregation's rows as a pandas DataFrame (AggregationResult.to_pandas);
pandas is imported only when called."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from pyusdt.extras import require

if TYPE_CHECKING:  # pragma: no cover - type names only
    import pandas

    from pyusdt.aggregate.results import AggregationResult


def aggregation_to_pandas(result: "AggregationResult") -> "pandas.DataFrame":
    """An aggregation's rows as a DataFrame.

    hist / lhist: one row per non-empty bucket: ``key`` (when the aggregation
    has one), ``bucket`` (index), ``label`` (as bpftrace prints it), ``lower``
    and ``upper`` (inclusive bounds, float; -inf/inf at the open ends) and
    ``count``.  count: ``key`` and ``count``.  sum, min, max, avg, stats:
    ``key``, ``value`` (what bpftrace prints for the kind), ``count``, ``sum``,
    ``min``, ``max``, ``avg``.  Integers are exact (int64, uint64, or Python
    ints when neither holds them).  ``df.attrs["counters"]`` has the
    aggregation's counters (filtered, lost, ...).
    """
    pd = require("pandas", "pandas conversion")
    keyed = result.spec.key is not None
    rows: dict[str, list[Any]] = {}
    vals: list[Any]
    if result.kind in ("hist", "lhist"):
        names = ["key"] * keyed + ["bucket", "label", "lower", "upper", "count"]
        hists = result.histograms()
        for key in (k for k in result.keys if k in hists):
            h = hists[key]
            labels = h.labels
            for i in np.flatnonzero(h.counts):
                vals = [key] * keyed + [int(i), labels[i], float(h.lower[i]), float(h.upper[i]),
                                        int(h.counts[i])]
                for n, v in zip(names, vals):
                    rows.setdefault(n, []).append(v)
    else:
        names = ["key"] * keyed + (["count"] if result.kind == "count" else
                                   ["value", "count", "sum", "min", "max", "avg"])
        for key in result.keys:
            s = result.stats(key)
            vals = [key] * keyed + ([s.count] if result.kind == "count" else
                                    [result.value(key), s.count, s.sum, s.min, s.max, s.avg])
            for n, v in zip(names, vals):
                rows.setdefault(n, []).append(v)
    df = pd.DataFrame({n: pd.Series(rows.get(n, []), dtype=_pandas_dtype(n, rows.get(n, [])))
                       for n in names})
    c = result.counters
    df.attrs["counters"] = {**c.__dict__, "dropped": c.dropped}
    return df


def _pandas_dtype(name: str, values: list[Any]) -> Any:
    """Exact dtypes: int64 or uint64 when the integers fit, else Python ints."""
    if name == "label":
        return object
    if name in ("lower", "upper"):
        return np.float64
    if name == "key":
        return None if values else object  # ints or strs, as the key is
    if not values:
        return np.int64
    lo, hi = min(values), max(values)
    if -(1 << 63) <= lo and hi < 1 << 63:
        return np.int64
    if lo >= 0 and hi < 1 << 64:
        return np.uint64
    return object
