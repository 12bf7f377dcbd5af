"""What came out of an aggregation, read from the kernel maps: rows per key
(:class:`Stats`, histograms as :class:`~pyusdt.aggregate.histogram.Histogram`),
the counters of everything filtered out or lost, and bpftrace-identical text."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Union

import numpy as np

from pyusdt import _native
from pyusdt.aggregate.frame import aggregation_to_pandas
from pyusdt.aggregate.histogram import Histogram, Key, bpftrace_order, json_key, render_hist, render_scalar
from pyusdt.aggregate.specs import Aggregate, Arg, Latency

if TYPE_CHECKING:  # pragma: no cover - type names only
    import pandas


@dataclass
class Stats:
    """count, sum, min, max of one key; avg truncated toward zero as in C."""

    count: int
    sum: int
    min: int
    max: int

    @property
    def avg(self) -> int:
        if not self.count:
            return 0
        q = abs(self.sum) // self.count
        return q if self.sum >= 0 else -q


@dataclass
class Counters:
    """Everything that happened to an aggregation's hits, so nothing is lost
    silently.  All but `pending` are the kernel's counters, filled in by their
    names in bpf/pyusdt_abi.h (PYUSDT_AGG_COUNTERS)."""

    hits: int  # hits that passed the filters (for a latency: starts and dones)
    filtered: int  # hits the predicate or pid filter rejected
    map_full: int  # values dropped: the aggregation map was full
    starts: int  # latency starts recorded
    matched: int  # latency dones that found their start
    unmatched: int  # latency dones without a start (begun before the trace, filtered, or dropped)
    pending: int  # latency starts still waiting for their done
    read_fail: int  # value/key/filter arguments that could not be read

    @property
    def dropped(self) -> int:
        """Starts that will never be matched: replaced by a newer start with the
        same pairing key (thread or request id), or evicted from the LRU map."""
        return max(0, self.starts - self.matched - self.pending)




class AggregationResult:
    """One aggregation's rows, read from the kernel maps."""

    def __init__(self, spec: Union[Aggregate, Latency], rows: np.ndarray, counters: Counters,
                 probe_names: list[str], decode_key: Optional[Callable[[np.void], Key]] = None) -> None:
        """`decode_key`: a row's key, for rows keyed by expressions (their
        packed bytes); else the key kind of `spec` says."""
        self.spec = spec
        self.counters = counters
        agg = spec.aggregate() if isinstance(spec, Latency) else spec
        self.kind = agg.kind
        self._agg = agg
        self._probe_names = probe_names
        self._stats: Dict[Key, Stats] = {}
        self._buckets: Dict[Key, Dict[int, int]] = {}
        # per key: the sum of the values its histogram holds (each bucket row keeps its own sum)
        self._hist_sums: Dict[Key, int] = {}
        # per key and bucket: (min, max) of the values the bucket holds
        self._extremes: Dict[Key, Dict[int, tuple[int, int]]] = {}
        signed_key = isinstance(agg.key, Arg)  # integer argument keys print signed, as bpftrace does
        # Rows with the same decoded key are added up: keyed by probe, the
        # argument layouts of one probe (separate ids) are one probe.
        for r in rows:
            key = decode_key(r) if decode_key is not None else self._decode_key(r, signed_key)
            if int(r["bucket"]) == _native.STATS_ROW:
                row = Stats(int(r["count"]), int(r["sum"]), int(r["min"]), int(r["max"]))
                had = self._stats.get(key)
                self._stats[key] = row if had is None else Stats(
                    had.count + row.count, had.sum + row.sum, min(had.min, row.min), max(had.max, row.max))
            else:
                buckets = self._buckets.setdefault(key, {})
                b = int(r["bucket"])
                buckets[b] = buckets.get(b, 0) + int(r["count"])
                self._hist_sums[key] = self._hist_sums.get(key, 0) + int(r["sum"])
                seen = self._extremes.setdefault(key, {})
                lo, hi = int(r["min"]), int(r["max"])
                had_ext = seen.get(b)
                seen[b] = (lo, hi) if had_ext is None else (min(had_ext[0], lo), max(had_ext[1], hi))

    def _decode_key(self, r: np.void, signed: bool) -> Key:
        key = self._agg.key
        if key is None:
            return None
        if r["is_str"]:
            return bytes(r["str_key"]).split(b"\0", 1)[0].decode("utf-8", errors="replace")
        v = int(r["key"])
        if key == "probe":
            return self._probe_names[v] if v < len(self._probe_names) else str(v)
        if signed and v >= 1 << 63:
            v -= 1 << 64
        return v

    @property
    def keys(self) -> list[Key]:
        return sorted(set(self._stats) | set(self._buckets), key=lambda k: (k is None, str(k)))

    def hist(self, key: Key = None) -> Histogram:
        """The histogram of one key (None when the aggregation has no key)."""
        lmin, lmax, step = self._agg.lhist or (None, None, None)
        kind = "linear" if self.kind == "lhist" else "log2"
        return Histogram(self._buckets.get(key, {}), kind=kind, lmin=lmin, lmax=lmax, step=step,
                         extremes=self._extremes.get(key))

    def histograms(self) -> Dict[Key, Histogram]:
        return {k: self.hist(k) for k in self._buckets}

    def hist_sum(self, key: Key = None) -> int:
        """The sum of the values the histogram of one key counted (after the
        divisor), exact: what a Prometheus histogram's _sum needs."""
        return self._hist_sums.get(key, 0)

    def stats(self, key: Key = None) -> Stats:
        return self._stats.get(key, Stats(0, 0, 0, 0))

    def value(self, key: Key = None) -> int:
        """count / sum / min / max / avg of one key, by the aggregation's kind."""
        s = self.stats(key)
        return {"count": s.count, "sum": s.sum, "min": s.min, "max": s.max, "avg": s.avg,
                "stats": s.avg}[self.kind]

    @property
    def total(self) -> int:
        """Values aggregated, all keys."""
        if self.kind in ("hist", "lhist"):
            return sum(sum(b.values()) for b in self._buckets.values())
        return sum(s.count for s in self._stats.values())

    def minus(self, earlier: "AggregationResult") -> "AggregationResult":
        """What this result added since `earlier` (for per-interval output):
        exact for counts, sums and buckets; min and max stay cumulative."""
        out = AggregationResult.__new__(AggregationResult)
        out.__dict__.update(self.__dict__)
        out._buckets = {}
        for k, b in self._buckets.items():
            prev = earlier._buckets.get(k, {})
            diff = {i: c - prev.get(i, 0) for i, c in b.items() if c - prev.get(i, 0)}
            if diff:
                out._buckets[k] = diff
        out._hist_sums = {k: v - earlier._hist_sums.get(k, 0) for k, v in self._hist_sums.items()}
        out._stats = {}
        for k, s in self._stats.items():
            p = earlier._stats.get(k, Stats(0, 0, 0, 0))
            if s.count - p.count:
                out._stats[k] = Stats(s.count - p.count, s.sum - p.sum, s.min, s.max)
        return out

    def top_keys(self, n: Optional[int] = None) -> list[Key]:
        """The keys in the order bpftrace prints them (the largest value, or
        total count of a histogram, last); with `n`, the last n only, as
        bpftrace's print(@map, n) shows them."""
        if self.kind in ("hist", "lhist"):
            sizes: dict[Key, int] = {k: sum(b.values()) for k, b in self._buckets.items()}
        else:
            sizes = {k: self.value(k) for k in self._stats}
        order = [k for k, _ in bpftrace_order(sizes, int)]
        return order if n is None else order[max(0, len(order) - n):]

    def render(self, name: str = "@", top: Optional[int] = None) -> str:
        """Text as bpftrace prints the same map; with `top`, only the `top`
        keys printed last (the largest), as bpftrace's print(@map, top)."""
        keys = set(self.top_keys(top))
        if self.kind in ("hist", "lhist"):
            return render_hist(name, {k: h for k, h in self.histograms().items() if k in keys})
        if self.kind in ("avg", "stats"):
            return render_scalar(name, {k: (s.count, s.sum) for k, s in self._stats.items() if k in keys},
                                 self.kind)
        return render_scalar(name, {k: self.value(k) for k in self._stats if k in keys}, self.kind)

    def folded(self, top: Optional[int] = None) -> str:
        """One line per key, "part;part;... value", as flame-graph tools read
        stacks: a user stack's frames outermost first (its folded form), other
        key parts before it; a histogram's value is its count.  In print
        order; with `top`, the `top` largest only."""
        lines = []
        for k in self.top_keys(top):
            parts = k if isinstance(k, tuple) else (k,)
            text = ";".join(p.folded() if hasattr(p, "folded") else str(p) for p in parts if p is not None)
            value = self.hist(k).total if self.kind in ("hist", "lhist") else self.value(k)
            lines.append(f"{text} {value}\n")
        return "".join(lines)

    def to_bpftrace_json(self, name: str = "@", top: Optional[int] = None) -> dict[str, Any]:
        """The map as bpftrace -f json prints it at exit: {"type": "hist" |
        "map" | "stats", "data": {name: ...}}, keys in print order, as text
        strings (several joined by ","); with `top`, as render(top=...)."""
        keys = self.top_keys(top)
        keyed = self._agg.key is not None
        values: dict[Key, Any]
        if self.kind in ("hist", "lhist"):
            kind, values = "hist", {k: self.hist(k).bpftrace_json() for k in keys}
        elif self.kind == "stats":
            kind = "stats"
            values = {k: {"count": s.count, "average": s.avg, "total": s.sum}
                      for k, s in ((k, self.stats(k)) for k in keys)}
        else:  # avg is a "stats" map to bpftrace, with the average alone
            kind, values = ("stats" if self.kind == "avg" else "map"), {k: self.value(k) for k in keys}
        data: Any = {json_key(k): v for k, v in values.items()} if keyed else values.get(None, 0)
        return {"type": kind, "data": {name: data}}

    def to_pandas(self) -> pandas.DataFrame:
        """The rows as a pandas DataFrame (pyusdt.aggregate.frame); needs pandas."""
        return aggregation_to_pandas(self)

    def to_json(self, top: Optional[int] = None) -> dict[str, Any]:
        """The same data as plain JSON types: per key, histogram or stats
        (with `top`, the keys render(top=...) prints)."""
        data: dict[str, Any] = {}
        shown = set(self.top_keys(top))
        for k in (k for k in self.keys if k in shown):
            entry: dict[str, Any] = {}
            if k in self._buckets:
                entry["hist"] = self.hist(k).to_json()
            if k in self._stats:
                s = self.stats(k)
                entry.update(count=s.count, sum=s.sum, min=s.min, max=s.max, avg=s.avg)
            data["" if k is None else str(k)] = entry
        c = self.counters
        return {"kind": self.kind, "data": data,
                "counters": {**c.__dict__, "dropped": c.dropped}}
