"""Histograms of in-kernel aggregations, and bpftrace-identical text for them.

The BPF side counts values into buckets; this module is the pure Python half:
the bucket formulas (:func:`log2_bucket`, :func:`linear_bucket`, the reference
the BPF code follows), a :class:`Histogram` of bucket counts with bounds,
labels and percentile estimates, and renderers that print maps byte for byte
as bpftrace 0.17 prints them at exit (:func:`render_hist`,
:func:`render_scalar`).

Bucket indexes
--------------
log2 (bpftrace ``hist()``), :data:`LOG2_BUCKETS` buckets:

- 0: v < 0, label ``(..., 0)``
- 1: v == 0, label ``[0]``
- 2: v == 1, label ``[1]``
- k >= 3: 2^(k-2) <= v < 2^(k-1), labels ``[2, 4)`` ... ``[512, 1K)``,
  ``[1K, 2K)`` ... ``[2G, 4G)`` ... ``[1T, 2T)`` ...

Index 65 holds [2^63, 2^64), values only an unsigned 64-bit source has.
bpftrace 0.17 itself never goes past index 33 ([2G, 4G)): its in-kernel log2
only looks at the low 32 bits, so every value >= 2^31 lands at 33 (fixed in
bpftrace 0.20, "silent truncation of 64-bit values in hist()"). pyusdt does
not copy that bug.

linear (bpftrace ``lhist(v, min, max, step)``), with
``n = (max - min) // step``, has n + 2 buckets:

- 0: v < min, label ``(..., min)``
- i in 1..n: min + (i-1)*step <= v < min + i*step, label ``[lo, hi)``
  (``[5, 6)`` even when step is 1)
- n + 1: v >= min + n*step, label ``[max, ...)``

When (max - min) is not a multiple of step, bpftrace still makes only n
bounded buckets, and the values in [min + n*step, max) go to the last bucket,
the one labelled ``[max, ...)`` (``lhist(9, 0, 10, 3)`` is counted under
``[10, ...)``). :func:`linear_bucket` does the same, and :attr:`Histogram.lower`
gives that bucket its true lower bound, min + n*step.

Text format (bpftrace 0.17)
---------------------------
One row per bucket from the first non-empty bucket to the last non-empty one
(empty buckets in between are printed, those outside are not)::

    f"{label:<16}{count:>8} |{'@' * width:<52}|"

with ``width = int(float32(count) / float32(max_count) * 52)``, computed in
single precision and truncated, as bpftrace does (15 out of 26 draws 30 bars,
where double precision would draw 29). Labels of log2 buckets give powers of
two with the largest suffix K (2^10), M (2^20), G (2^30) or T (2^40) whose
exponent fits: ``[512, 1K)``, ``[1M, 2M)``, ``[1T, 2T)``, ``[1024T, 2048T)``
(bpftrace 0.17 has no P or E). Labels of linear buckets print a bound as
``{n // 2^20}M`` when it is a non-zero multiple of 2^20, ``{n // 1024}K`` when
it is one of 1024, and plainly otherwise, whatever the step is:
``[1000, 2000)``, ``[512, 1K)``, ``[1K, 1536)``, ``[2K, 3K)``, ``[1000K, 2000K)``.
The T labels come from bpftrace 0.17's source (``hist_index_label``): its
hist() cannot reach buckets above ``[2G, 4G)`` to show them.

Two deliberate differences, where bpftrace 0.17 is broken: it reads each count
through a C ``int`` to pick the rows and the bar scale, so a bucket with 2^31
or more values renders wrongly there (here counts are exact); and its min()
and max() maps lose some values (negative maxima, minima above 2^32), which
:func:`render_scalar` just prints.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, Hashable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from pyusdt import _native

__all__ = [
    "BAR_WIDTH",
    "LOG2_BUCKETS",
    "Histogram",
    "Key",
    "hist_label",
    "lhist_label",
    "linear_bucket",
    "linear_nbuckets",
    "log2_bucket",
    "render_hist",
    "render_scalar",
]

#: Buckets of a log2 histogram: indexes 0 (negative) to 65 ([2^63, 2^64)),
#: as the BPF side counts them (bpf/pyusdt_abi.h).
LOG2_BUCKETS: int = _native.LOG2_BUCKETS

#: Width of the bar column, between the two ``|``.
BAR_WIDTH = 52

#: A map key as rendered: None (a map without keys), one int or str, or a
#: tuple of them for a multi-key map (printed ``@m[1, abc]``).
# None, an int, a str, a tuple of them (several keys), or a value that
# prints itself (a user stack): what a key decodes to.
Key = Optional[Hashable]

_U64 = 1 << 64
_KINDS = ("log2", "linear")
_SCALAR_KINDS = ("count", "sum", "min", "max", "avg", "stats")
_STRING_KEY_BYTES = 64  # bpftrace's default string size, for key ordering


# --------------------------------------------------------------------------
# Bucket formulas


def log2_bucket(value: int) -> int:
    """The log2 bucket index of an integer value.

    0 for a negative value, 1 for 0, 2 for 1, and ``k`` for
    2^(k-2) <= value < 2^(k-1), that is ``value.bit_length() + 1``; at most
    65. Raises ValueError for a value of 2^64 or more.
    """
    v = int(value)
    if v < 0:
        return 0
    if v >= _U64:
        raise ValueError(f"value {v} does not fit in 64 bits")
    return v.bit_length() + 1


def linear_nbuckets(lmin: int, lmax: int, step: int) -> int:
    """The number of bounded buckets of a linear histogram, ``(lmax - lmin) // step``.

    The histogram has two more: below lmin (index 0) and the last one
    (index n + 1). Raises ValueError unless step >= 1 and
    lmin + step <= lmax. (bpftrace additionally wants lmin >= 0 and at most
    1000 buckets; pyusdt allows a negative lmin.)
    """
    lmin, lmax, step = int(lmin), int(lmax), int(step)
    if step < 1:
        raise ValueError(f"linear histogram step must be >= 1 (got {step})")
    if lmax <= lmin:
        raise ValueError(f"linear histogram min must be less than max (got min {lmin}, max {lmax})")
    if step > lmax - lmin:
        raise ValueError(f"linear histogram step {step} is larger than the range {lmax - lmin}")
    return (lmax - lmin) // step


def linear_bucket(value: int, lmin: int, lmax: int, step: int) -> int:
    """The linear bucket index of an integer value, as bpftrace's ``lhist()``.

    0 when value < lmin; n + 1 when value > lmax; otherwise
    ``1 + (value - lmin) // step``, which is n + 1 for value == lmax and, when
    (lmax - lmin) is not a multiple of step, for every value in
    [lmin + n*step, lmax) too (n = :func:`linear_nbuckets`).
    """
    n = linear_nbuckets(lmin, lmax, step)
    v = int(value)
    if v < lmin:
        return 0
    if v > lmax:
        return n + 1
    return 1 + (v - int(lmin)) // int(step)


# --------------------------------------------------------------------------
# Labels


def _power_label(power: int) -> str:
    """bpftrace 0.17's ``hist_index_label``: 2^power with a K/M/G/T suffix."""
    for suffix, exp in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if power >= exp:
            return f"{1 << (power - exp)}{suffix}"
    return str(1 << power)


def hist_label(index: int) -> str:
    """The bpftrace label of log2 bucket ``index``: ``(..., 0)``, ``[0]``, ``[1]``, ``[2, 4)``..."""
    if not 0 <= index < LOG2_BUCKETS:
        raise ValueError(f"log2 bucket index {index} out of range 0..{LOG2_BUCKETS - 1}")
    if index == 0:
        return "(..., 0)"
    if index == 1:
        return "[0]"
    if index == 2:
        return "[1]"
    return f"[{_power_label(index - 2)}, {_power_label(index - 1)})"


def _number_label(number: int) -> str:
    """bpftrace 0.17's ``lhist_index_label``: M or K only for exact multiples."""
    if number == 0:
        return "0"
    if number % (1 << 20) == 0:
        return f"{number // (1 << 20)}M"
    if number % 1024 == 0:
        return f"{number // 1024}K"
    return str(number)


def lhist_label(index: int, lmin: int, lmax: int, step: int) -> str:
    """The bpftrace label of linear bucket ``index``: ``(..., min)``, ``[lo, hi)``, ``[max, ...)``."""
    n = linear_nbuckets(lmin, lmax, step)
    if not 0 <= index <= n + 1:
        raise ValueError(f"linear bucket index {index} out of range 0..{n + 1}")
    if index == 0:
        return f"(..., {_number_label(lmin)})"
    if index == n + 1:
        return f"[{_number_label(lmax)}, ...)"
    return f"[{_number_label(lmin + (index - 1) * step)}, {_number_label(lmin + index * step)})"


# --------------------------------------------------------------------------
# Histogram


def _finite_or_none(x: float) -> Optional[float]:
    return x if math.isfinite(x) else None


class Histogram:
    """Bucket counts of one histogram (one key of one aggregation).

    Built from ``{bucket index: count}`` or from an array of counts indexed
    by bucket, with ``kind`` ``'log2'`` or ``'linear'`` (which needs lmin,
    lmax and step). Buckets not given count 0.

    Bounds are *inclusive* float64 value bounds, because the values counted
    are integers: bucket i holds the integers ``lower[i] <= v <= upper[i]``
    (``[4, 8)`` has lower 4 and upper 7, ``[0]`` has 0 and 0). The open ends
    are ``-inf`` (lower bound of the underflow bucket) and ``+inf`` (upper
    bound of a linear histogram's last bucket). Float64 is exact below 2^53;
    the top log2 bounds (2^63 - 1, 2^64 - 1) round up to the power of two.
    """

    kind: str
    lmin: Optional[int]
    lmax: Optional[int]
    step: Optional[int]

    def __init__(
        self,
        counts: Union[Mapping[int, int], Sequence[int], np.ndarray],
        kind: str = "log2",
        lmin: Optional[int] = None,
        lmax: Optional[int] = None,
        step: Optional[int] = None,
        extremes: Optional[Mapping[int, Tuple[int, int]]] = None,
    ) -> None:
        """`extremes`: {bucket index: (smallest, largest) value observed in
        it}, where the kernel kept them: percentiles and max then rest on
        observed values instead of bucket edges."""
        if kind not in _KINDS:
            raise ValueError(f"histogram kind must be one of {_KINDS} (got {kind!r})")
        self.kind = kind
        if kind == "linear":
            if lmin is None or lmax is None or step is None:
                raise ValueError("a linear histogram needs lmin, lmax and step")
            n = linear_nbuckets(lmin, lmax, step)
            self.lmin, self.lmax, self.step = int(lmin), int(lmax), int(step)
            size = n + 2
        else:
            if lmin is not None or lmax is not None or step is not None:
                raise ValueError("lmin, lmax and step are for linear histograms only")
            self.lmin = self.lmax = self.step = None
            size = LOG2_BUCKETS
        arr = np.zeros(size, dtype=np.uint64)
        items: Iterable[tuple[Any, Any]]
        if isinstance(counts, Mapping):
            items = counts.items()
        else:
            items = enumerate(np.asarray(counts).tolist())
        for index, count in items:
            index, count = int(index), int(count)
            if not 0 <= index < size:
                if count == 0:
                    continue
                raise ValueError(f"bucket index {index} out of range 0..{size - 1} for this {kind} histogram")
            if not 0 <= count < _U64:
                raise ValueError(f"bucket {index} has count {count}, not an unsigned 64-bit integer")
            arr[index] = count
        self._counts = arr
        self._counts.flags.writeable = False
        self._lower, self._upper = self._bounds()
        self._extremes = {int(i): (int(lo), int(hi)) for i, (lo, hi) in (extremes or {}).items()
                          if 0 <= int(i) < size and arr[int(i)]}

    @classmethod
    def from_values(
        cls,
        values: Iterable[int],
        kind: str = "log2",
        lmin: Optional[int] = None,
        lmax: Optional[int] = None,
        step: Optional[int] = None,
    ) -> "Histogram":
        """The histogram of individual values, bucketed with :func:`log2_bucket`
        or :func:`linear_bucket` (what the BPF side does in the kernel)."""
        cls({}, kind, lmin, lmax, step)  # validates kind and linear parameters
        counts: Dict[int, int] = {}
        for v in values:
            i = log2_bucket(v) if kind == "log2" else linear_bucket(v, lmin, lmax, step)  # type: ignore[arg-type]
            counts[i] = counts.get(i, 0) + 1
        return cls(counts, kind, lmin, lmax, step)

    def _bounds(self) -> Tuple[np.ndarray, np.ndarray]:
        bounds = [self._int_bounds(i) for i in range(len(self._counts))]
        lower = np.array([-math.inf if lo is None else float(lo) for lo, _ in bounds], dtype=np.float64)
        upper = np.array([math.inf if hi is None else float(hi) for _, hi in bounds], dtype=np.float64)
        lower.flags.writeable = False
        upper.flags.writeable = False
        return lower, upper

    # -- the buckets

    @property
    def counts(self) -> np.ndarray:
        """Count per bucket index (uint64, read-only)."""
        return self._counts

    @property
    def lower(self) -> np.ndarray:
        """Smallest value each bucket holds (float64, inclusive; -inf for the underflow bucket)."""
        return self._lower

    @property
    def upper(self) -> np.ndarray:
        """Largest value each bucket holds (float64, inclusive; +inf for a linear
        histogram's last bucket). The label's exclusive bound is upper + 1."""
        return self._upper

    @property
    def labels(self) -> List[str]:
        """bpftrace's label of every bucket, by index."""
        if self.kind == "log2":
            return [hist_label(i) for i in range(len(self._counts))]
        return [lhist_label(i, self.lmin, self.lmax, self.step) for i in range(len(self._counts))]  # type: ignore[arg-type]

    @property
    def total(self) -> int:
        """Number of values counted (sum of all buckets)."""
        return sum(int(c) for c in self._counts)

    # -- estimates

    def percentile(self, p: float) -> float:
        """Estimate of the p-th percentile (0 <= p <= 100) from the buckets.

        The bucket holding rank ``p / 100 * total`` (the first non-empty one
        for p = 0) is found from the cumulative counts, and the estimate
        interpolates linearly from its lower to its upper (inclusive) bound by
        the fraction of that bucket's count the rank reaches: a bucket holding
        a single value gives that value, ``[4, 8)`` gives 4 to 7. For an
        open-ended bucket the finite bound is returned (the upper one below
        the range, the lower one above it). NaN for an empty histogram.
        """
        p = float(p)
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0..100 (got {p})")
        counts = [int(c) for c in self._counts]
        total = sum(counts)
        if total == 0:
            return math.nan
        rank = p / 100.0 * total
        before = 0
        for i, c in enumerate(counts):
            if c == 0:
                continue
            if before + c >= rank:
                lo, hi = self._span(i)
                if math.isinf(lo):
                    return hi
                if math.isinf(hi):
                    return lo
                frac = (rank - before) / c
                return lo + max(0.0, min(1.0, frac)) * (hi - lo)
            before += c
        # rank rounded above the total: the last non-empty bucket's top.
        last = max(i for i, c in enumerate(counts) if c)
        lo, hi = self._span(last)
        return lo if math.isinf(hi) else hi

    def _span(self, i: int) -> Tuple[float, float]:
        """The values bucket i holds: those observed, where known, else its bounds."""
        known = self._extremes.get(i)
        if known is not None:
            return float(known[0]), float(known[1])
        return float(self._lower[i]), float(self._upper[i])

    @property
    def observed(self) -> bool:
        """Whether every non-empty bucket's extremes were observed (kept by the kernel)."""
        return all(int(i) in self._extremes for i in np.flatnonzero(self._counts))

    @property
    def min(self) -> float:
        """The smallest value: observed where the kernel kept it, else the
        lowest non-empty bucket's lower bound (-inf for the underflow
        bucket). NaN for an empty histogram."""
        nz = np.flatnonzero(self._counts)
        if len(nz) == 0:
            return math.nan
        return self._span(int(nz[0]))[0]

    @property
    def p50(self) -> float:
        """Estimated median, :meth:`percentile` (50)."""
        return self.percentile(50)

    @property
    def p90(self) -> float:
        """Estimated 90th percentile."""
        return self.percentile(90)

    @property
    def p99(self) -> float:
        """Estimated 99th percentile."""
        return self.percentile(99)

    @property
    def max(self) -> float:
        """The largest value: observed where the kernel kept it (every
        aggregation pyusdt reads), else an upper bound, the (inclusive) upper
        bound of the highest non-empty bucket (7 for ``[4, 8)``; +inf for a
        linear histogram's last, open-ended one). NaN for an empty histogram.
        Equals ``percentile(100)`` except for that open-ended case."""
        nz = np.flatnonzero(self._counts)
        if len(nz) == 0:
            return math.nan
        return self._span(int(nz[-1]))[1]

    def bpftrace_json(self) -> list[dict[str, int]]:
        """The buckets as bpftrace's -f json lists them: from the first
        non-empty one to the last, each {"min", "max", "count"} with exact
        integer bounds, "min" left out below the range and "max" above it."""
        nz = np.flatnonzero(self._counts)
        out: list[dict[str, int]] = []
        last = len(self._counts) - 1
        for i in range(int(nz[0]), int(nz[-1]) + 1) if len(nz) else ():
            lo, hi = self._int_bounds(i)
            if self.kind == "linear" and i == last:
                lo = self.lmax  # bpftrace names it by max, also when (max - min) / step has a remainder
            bucket = {} if lo is None else {"min": lo}
            if hi is not None:
                bucket["max"] = hi
            bucket["count"] = int(self._counts[i])
            out.append(bucket)
        return out

    def _int_bounds(self, i: int) -> tuple[Optional[int], Optional[int]]:
        """Bucket i's inclusive integer bounds (None: open at that end)."""
        if self.kind == "log2":
            return (None, -1) if i == 0 else (0, 0) if i == 1 else (1 << (i - 2), (1 << (i - 1)) - 1)
        assert self.lmin is not None and self.step is not None
        last = len(self._counts) - 1
        if i == 0:
            return None, self.lmin - 1
        if i == last:
            return self.lmin + (last - 1) * self.step, None
        return self.lmin + (i - 1) * self.step, self.lmin + i * self.step - 1

    # -- output

    def rows(self) -> str:
        """The bucket lines bpftrace prints for this histogram (each ending in
        a newline; empty string when every count is 0)."""
        nz = np.flatnonzero(self._counts)
        if len(nz) == 0:
            return ""
        first, last = int(nz[0]), int(nz[-1])
        counts = [int(c) for c in self._counts]
        top = np.float32(max(counts))
        labels = self.labels
        out = []
        for i in range(first, last + 1):
            width = int(np.float32(counts[i]) / top * np.float32(BAR_WIDTH))
            out.append(f"{labels[i]:<16}{counts[i]:>8} |{'@' * width:<{BAR_WIDTH}}|\n")
        return "".join(out)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: kind (and lmin/lmax/step), total, p50/p90/p99,
        max, and the non-empty buckets with index, label, inclusive lower and
        upper bounds and count. Infinite bounds and NaN estimates are None."""
        labels = self.labels
        obj: dict[str, Any] = {"kind": self.kind}
        if self.kind == "linear":
            obj.update(lmin=self.lmin, lmax=self.lmax, step=self.step)
        obj["total"] = self.total
        for key, val in (("p50", self.p50), ("p90", self.p90), ("p99", self.p99), ("min", self.min),
                         ("max", self.max)):
            obj[key] = _finite_or_none(val)
        obj["observed"] = self.observed
        obj["buckets"] = [
            {
                "index": int(i),
                "label": labels[i],
                "lower": _finite_or_none(float(self._lower[i])),
                "upper": _finite_or_none(float(self._upper[i])),
                "count": int(self._counts[i]),
            }
            for i in np.flatnonzero(self._counts)
        ]
        return obj

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return (self.kind, self.lmin, self.lmax, self.step) == (other.kind, other.lmin, other.lmax, other.step) and \
            np.array_equal(self._counts, other._counts)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        params = f", lmin={self.lmin}, lmax={self.lmax}, step={self.step}" if self.kind == "linear" else ""
        buckets = {int(i): int(self._counts[i]) for i in np.flatnonzero(self._counts)}
        return f"Histogram({buckets}, kind={self.kind!r}{params})"


# --------------------------------------------------------------------------
# Map rendering


def _map_name(name: str) -> str:
    return name if name.startswith("@") else "@" + name


def _key_text(key: Key) -> str:
    if key is None:
        return ""
    elems = key if isinstance(key, tuple) else (key,)
    return "[" + ", ".join(str(e) for e in elems) + "]"


def json_key(key: Key) -> str:
    """A key as bpftrace's -f json names it: elements joined by ","."""
    elems = key if isinstance(key, tuple) else (key,)
    return ",".join(str(e) for e in elems)


def _elem_bytes(e: object) -> bytes:
    if isinstance(e, (bytes, bytearray)):
        return bytes(e).ljust(_STRING_KEY_BYTES, b"\0")
    if isinstance(e, int):
        return (int(e) % _U64).to_bytes(8, "little")
    return str(e).encode("utf-8").ljust(_STRING_KEY_BYTES, b"\0")


def _key_bytes(key: Key) -> bytes:
    """The key as bpftrace stores it in the BPF map: ints as 8 little-endian
    bytes, strings NUL-padded to 64. bpftrace orders keys by these bytes
    (so @h[256] comes before @h[1], and @h[-1] last)."""
    if key is None:
        return b""
    elems = key if isinstance(key, tuple) else (key,)
    return b"".join(_elem_bytes(e) for e in elems)


def bpftrace_order(items: Mapping[Key, Any], sort_value: Callable[[Any], Any]) -> list[tuple[Key, Any]]:
    """(key, value) pairs as bpftrace prints a map: in key-byte order, then
    stably by sort_value ascending (the largest last)."""
    by_key = sorted(items.items(), key=lambda kv: _key_bytes(kv[0]))
    return sorted(by_key, key=lambda kv: sort_value(kv[1]))


def render_hist(name: str, hists: Mapping[Key, Histogram]) -> str:
    """A hist or lhist map, exactly as bpftrace 0.17 prints it.

    ``name`` is the map name, with or without the leading ``@``; ``hists``
    maps each key (None for a map without keys) to its histogram. Keys come
    out in ascending order of total count, ties in the order of their bytes
    in the BPF map (see :data:`Key`; bpftrace's sort is only stable up to 16
    keys). Each key prints ``@name[key]: `` (note the trailing space), a
    newline and its bucket rows (:meth:`Histogram.rows`), and every block is
    followed by an empty line::

        @h[1]: \\n<rows>\\n@h[2]: \\n<rows>\\n

    An empty map renders as a single newline.
    """
    head = _map_name(name)
    blocks = [
        f"{head}{_key_text(key)}: \n{hist.rows()}"
        for key, hist in bpftrace_order(hists, lambda h: h.total)
    ]
    return "\n".join(blocks) + "\n"


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def render_scalar(
    name: str,
    values: Mapping[Key, Union[int, Tuple[int, int]]],
    kind: str = "count",
) -> str:
    """A count/sum/min/max/avg/stats map, as bpftrace 0.17 prints it.

    For ``kind`` count, sum, min and max, ``values`` maps each key (None for
    a map without keys) to its integer value; lines are ``@c: 5`` or
    ``@c[1]: 5``, sorted by value ascending (bpftrace orders ties as its
    kernel hash map happens to return them; here ties follow the key bytes),
    joined by newlines, with one newline at the end.

    For ``avg`` and ``stats``, each value is a ``(count, total)`` pair;
    the average is total / count truncated toward zero as in C (0 when
    count is 0), lines are ``@a: -2`` and ``@s: count 2, average 15, total 31``,
    sorted by average ascending (ties in key-byte order), and the map ends
    with an empty line (two newlines).
    """
    if kind not in _SCALAR_KINDS:
        raise ValueError(f"scalar kind must be one of {_SCALAR_KINDS} (got {kind!r})")
    head = _map_name(name)
    lines = []
    if kind in ("avg", "stats"):
        def avg(v: Any) -> int:
            count, total = (int(x) for x in v)
            return _c_div(total, count) if count else 0

        for key, v in bpftrace_order(values, avg):
            a = avg(v)
            text = f"count {int(v[0])}, average {a}, total {int(v[1])}" if kind == "stats" else str(a)
            lines.append(f"{head}{_key_text(key)}: {text}")
        return "\n".join(lines) + "\n\n"
    for key, v in bpftrace_order(values, int):
        lines.append(f"{head}{_key_text(key)}: {int(v)}")
    return "\n".join(lines) + "\n"
