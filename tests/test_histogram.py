"""pyusdt.aggregate.histogram: bucket formulas, percentile estimates, and map text that
is byte for byte what bpftrace 0.17 prints for the same values.

The cross-check runs one bpftrace program whose BEGIN probe fills every map
below and exits; bpftrace then prints all maps, sorted by name. The same
values go through log2_bucket/linear_bucket and the renderers, and each map's
text must match bpftrace's at its place in the output.
"""
from __future__ import annotations

import json
import math
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest

from pyusdt.aggregate.histogram import (
    LOG2_BUCKETS,
    Histogram,
    hist_label,
    lhist_label,
    linear_bucket,
    linear_nbuckets,
    log2_bucket,
    render_hist,
    render_scalar,
)

# --------------------------------------------------------------------------
# The maps of the cross-check

@dataclass
class MapSpec:
    """One bpftrace map: its function and, per key, the values it gets."""

    name: str  # with the @
    func: str  # hist, lhist, count, sum, min, max, avg, stats
    values: Dict[object, List[int]]  # key (None: no key) -> values, in order
    lhist: Optional[Tuple[int, int, int]] = None  # (min, max, step)

    def call(self, v: int) -> str:
        if self.func == "lhist":
            lo, hi, step = self.lhist
            return f"lhist({v}, {lo}, {hi}, {step})"
        if self.func == "count":
            return "count()"
        return f"{self.func}({v})"


def _rep(v: int, n: int) -> List[int]:
    return [v] * n


POWERS = [1 << p for p in range(32)] + [(1 << p) - 1 for p in range(2, 33)]

MAPS = [
    # log2: negatives, zero, one, K, M, G
    MapSpec("@h_mixed", "hist", {None: [5, 0, -3, 1500, 3000000000, 1, 2000000, -1, 0, 7]}),
    # every label up to [2G, 4G): each power of two and the value just below it
    MapSpec("@h_powers", "hist", {None: POWERS}),
    # all values in one bucket
    MapSpec("@h_single", "hist", {None: [5, 6, 7, 4]}),
    MapSpec("@h_zero", "hist", {None: [0, 0]}),
    MapSpec("@h_neg", "hist", {None: [-1, -100, -(1 << 40)]}),
    MapSpec("@h_one", "hist", {None: [1]}),
    # gaps between non-empty buckets, K/M labels
    MapSpec("@h_gaps", "hist", {None: [1, 1024, 1048576, 1048577, 2047]}),
    # bar scaling: 15 of 26 is 30 bars in float32 (29 in double); 1/3, 2/3...
    MapSpec("@h_scale", "hist", {None: _rep(5, 15) + _rep(100, 26) + _rep(1000, 9) + _rep(70000, 1)}),
    MapSpec("@h_scale2", "hist", {None: _rep(2, 3) + _rep(4, 7) + _rep(16, 2) + _rep(64, 99)}),
    # int keys: order by total, ties by little-endian key bytes (256 before 1, -1 last)
    MapSpec("@hk", "hist", {256: [1], 1: [1, 2], -1: [3], 2: [1], 7: [0, 0, 0], 3: [-5, 9, 100]}),
    # string keys
    MapSpec("@hs", "hist", {"b": [1], "abc": [1], "ab": [2, 3], "a": [1], "": [64]}),
    # two-element keys
    MapSpec("@ht", "hist", {(1, "x"): [3], (2, "y"): [3, 4], (1, "a"): [3]}),
    # linear: out-of-range values on both sides, range not a multiple of step
    MapSpec("@l_nonmult", "lhist", {None: [-1, 0, 2, 3, 9, 10, 11, 100, 8]}, (0, 10, 3)),
    MapSpec("@l_thousands", "lhist", {None: [1500, 4999, 5000, 20000, -5, 0]}, (0, 5000, 1000)),
    MapSpec("@l_k", "lhist", {None: [600, 1100, 1024, 2047, 1536]}, (0, 2048, 512)),
    MapSpec("@l_kstep", "lhist", {None: [2048, 5000, 9000]}, (0, 20480, 1024)),
    MapSpec("@l_m", "lhist", {None: [-1, 1048576, 3000000]}, (0, 2097152, 1048576)),
    MapSpec("@l_big", "lhist", {None: [1024000, 4000000, 3071999]}, (0, 3072000, 1024000)),
    # only in the middle of the range
    MapSpec("@l_middle", "lhist", {None: [50, 70, 71]}, (10, 100, 10)),
    MapSpec("@l_step1", "lhist", {None: [5, 15, -1, 5]}, (0, 10, 1)),
    MapSpec("@l_over", "lhist", {None: [200, 300]}, (100, 150, 7)),
    MapSpec("@l_under", "lhist", {None: [0, 1, 2]}, (100, 150, 7)),
    MapSpec("@lk", "lhist", {1: [5, 5], 2: [95], 3: [-1, 200, 50]}, (0, 100, 10)),
    # scalars (distinct values per map: bpftrace orders ties by kernel hash order)
    MapSpec("@c", "count", {None: [0] * 5}),
    MapSpec("@ck", "count", {1: [0] * 3, 2: [0], 256: [0] * 7}),
    MapSpec("@cs", "count", {"abc": [0] * 2, "b": [0] * 4, "a": [0]}),
    MapSpec("@s", "sum", {None: [-3, 10, 20]}),
    MapSpec("@sk", "sum", {1: [-5], 2: [3], 3: [0], 4: [1 << 40]}),
    MapSpec("@mn", "min", {1: [3, 9], 2: [-4, 5], 3: [0]}),
    MapSpec("@mx", "max", {1: [7, 2], 3: [0], 4: [1000000]}),
    MapSpec("@v", "avg", {None: [-7, 2]}),
    MapSpec("@vk", "avg", {1: [10, 21], 2: [-5], 3: [1, 1, 2]}),
    MapSpec("@st", "stats", {None: [10, 21]}),
    MapSpec("@stk", "stats", {"x": [-5], "y": [-1, -2], "z": [100, 200, 301]}),
]


def _key_literal(key) -> str:
    elems = key if isinstance(key, tuple) else (key,)
    return ", ".join(json.dumps(e) for e in elems)


def bpftrace_program(maps: List[MapSpec]) -> str:
    stmts = []
    for m in maps:
        for key, vals in m.values.items():
            target = m.name if key is None else f"{m.name}[{_key_literal(key)}]"
            i = 0
            while i < len(vals):  # runs of one value become unroll(n)
                j = i
                while j < len(vals) and vals[j] == vals[i]:
                    j += 1
                stmt = f"{target} = {m.call(vals[i])};"
                stmts.append(stmt if j - i == 1 else f"unroll({j - i}) {{ {stmt} }}")
                i = j
    return "BEGIN {\n" + "\n".join(stmts) + "\nexit();\n}\n"


def pyusdt_text(m: MapSpec) -> str:
    if m.func in ("hist", "lhist"):
        kind, params = ("log2", ()) if m.func == "hist" else ("linear", m.lhist)
        return render_hist(m.name, {k: Histogram.from_values(v, kind, *params) for k, v in m.values.items()})
    if m.func == "count":
        return render_scalar(m.name, {k: len(v) for k, v in m.values.items()}, "count")
    if m.func in ("sum", "min", "max"):
        agg = {"sum": sum, "min": min, "max": max}[m.func]
        return render_scalar(m.name, {k: agg(v) for k, v in m.values.items()}, m.func)
    return render_scalar(m.name, {k: (len(v), sum(v)) for k, v in m.values.items()}, m.func)


# --------------------------------------------------------------------------
# Running bpftrace


def run_bpftrace(bpftrace: str, program: str) -> str:
    """bpftrace's map output: stdout without the "Attaching" line and the two
    newlines it prints before the maps at exit (warnings go to stderr)."""
    res = subprocess.run([bpftrace, "-e", program], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    head = "Attaching 1 probe...\n\n\n"
    assert res.stdout.startswith(head), res.stdout[:200]
    return res.stdout[len(head):]


@pytest.fixture(scope="module")
def bpftrace_maps(bpftrace) -> str:
    return run_bpftrace(bpftrace, bpftrace_program(MAPS))


def test_maps_match_bpftrace(bpftrace_maps):
    """Every map, in bpftrace's order (by name), renders exactly as bpftrace printed it."""
    out = bpftrace_maps
    pos = 0
    for m in sorted(MAPS, key=lambda m: m.name.encode()):
        ours = pyusdt_text(m)
        theirs = out[pos:pos + len(ours)]
        assert theirs == ours, f"{m.name}:\n--- bpftrace\n{out[pos:pos + len(ours) + 200]}\n--- pyusdt\n{ours}"
        pos += len(ours)
    assert out[pos:] == ""


def test_float32_bar_case_is_in_the_crosscheck(bpftrace_maps):
    """The 15-of-26 row draws 30 '@' (float32); double precision would give 29."""
    assert "[4, 8)                15 |" + "@" * 30 + " " * 22 + "|\n" in bpftrace_maps
    assert int(15 / 26 * 52) == 29


# --------------------------------------------------------------------------
# Bucket formulas and labels (no bpftrace)

@pytest.mark.parametrize("value,index", [
    (-(1 << 63), 0), (-1, 0), (0, 1), (1, 2), (2, 3), (3, 3), (4, 4), (7, 4), (8, 5),
    (1023, 11), (1024, 12), ((1 << 31) - 1, 32), (1 << 31, 33), ((1 << 32) - 1, 33),
    (1 << 32, 34), ((1 << 63) - 1, 64), (1 << 63, 65), ((1 << 64) - 1, 65),
])
def test_log2_bucket(value, index):
    assert log2_bucket(value) == index
    assert log2_bucket(np.int64(value) if -(1 << 63) <= value < (1 << 63) else value) == index


def test_log2_bucket_range():
    assert LOG2_BUCKETS == 66
    with pytest.raises(ValueError):
        log2_bucket(1 << 64)


def test_linear_bucket():
    # (0, 10, 3): n = 3 buckets [0,3) [3,6) [6,9), then "[10, ...)" holding 9 too
    assert linear_nbuckets(0, 10, 3) == 3
    assert [linear_bucket(v, 0, 10, 3) for v in (-100, -1, 0, 2, 3, 8, 9, 10, 11, 1 << 62)] == \
        [0, 0, 1, 1, 2, 3, 4, 4, 4, 4]
    assert [linear_bucket(v, 0, 10, 5) for v in (4, 5, 9, 10)] == [1, 2, 2, 3]
    assert [linear_bucket(v, -10, 10, 5) for v in (-11, -10, -6, -5, 9, 10)] == [0, 1, 1, 2, 4, 5]
    for bad in ((0, 10, 0), (10, 10, 1), (10, 5, 1), (0, 10, 11)):
        with pytest.raises(ValueError):
            linear_bucket(1, *bad)


def test_labels_beyond_what_bpftrace_017_hist_reaches():
    """bpftrace 0.17 hist() stops at [2G, 4G); above it its label code uses T as
    the last suffix."""
    assert hist_label(33) == "[2G, 4G)"
    assert hist_label(34) == "[4G, 8G)"
    assert hist_label(42) == "[1T, 2T)"
    assert hist_label(52) == "[1024T, 2048T)"
    assert hist_label(64) == "[4194304T, 8388608T)"
    assert hist_label(65) == "[8388608T, 16777216T)"
    with pytest.raises(ValueError):
        hist_label(66)


def test_lhist_labels_negative_min():
    """bpftrace rejects a negative lhist min; pyusdt labels it with the same rules."""
    labels = [lhist_label(i, -2048, 1024, 512) for i in range(8)]
    assert labels == ["(..., -2K)", "[-2K, -1536)", "[-1536, -1K)", "[-1K, -512)", "[-512, 0)",
                      "[0, 512)", "[512, 1K)", "[1K, ...)"]
    h = Histogram({1: 2, 5: 1}, "linear", -2048, 1024, 512)
    assert h.labels == labels
    assert render_hist("n", {None: h}) == (
        "@n: \n"
        "[-2K, -1536)           2 |" + "@" * 52 + "|\n"
        "[-1536, -1K)           0 |" + " " * 52 + "|\n"
        "[-1K, -512)            0 |" + " " * 52 + "|\n"
        "[-512, 0)              0 |" + " " * 52 + "|\n"
        "[0, 512)               1 |" + "@" * 26 + " " * 26 + "|\n\n"
    )


# --------------------------------------------------------------------------
# Histogram

def test_bounds_and_counts():
    h = Histogram({0: 1, 1: 2, 4: 3})
    assert h.counts.dtype == np.uint64 and len(h.counts) == LOG2_BUCKETS
    assert h.total == 6
    assert h.lower[:5].tolist() == [-math.inf, 0, 1, 2, 4]
    assert h.upper[:5].tolist() == [-1, 0, 1, 3, 7]
    assert h.labels[:5] == ["(..., 0)", "[0]", "[1]", "[2, 4)", "[4, 8)"]
    assert Histogram([1, 2, 0, 0, 3]) == h

    lin = Histogram({}, "linear", 0, 10, 3)
    assert len(lin.counts) == 5
    assert lin.lower.tolist() == [-math.inf, 0, 3, 6, 9]
    assert lin.upper.tolist() == [-1, 2, 5, 8, math.inf]
    assert lin.labels == ["(..., 0)", "[0, 3)", "[3, 6)", "[6, 9)", "[10, ...)"]


def test_histogram_rejects_bad_input():
    with pytest.raises(ValueError):
        Histogram({66: 1})
    with pytest.raises(ValueError):
        Histogram({5: 1}, "linear", 0, 10, 3)  # indexes 0..4
    with pytest.raises(ValueError):
        Histogram({1: -1})
    with pytest.raises(ValueError):
        Histogram({}, "linear")
    with pytest.raises(ValueError):
        Histogram({}, "log2", 0, 10, 1)
    with pytest.raises(ValueError):
        Histogram({}, "quantize")


def test_percentiles_log2():
    # [2, 4): 2 values, [4, 8): 2 values
    h = Histogram({3: 2, 4: 2})
    assert h.percentile(0) == 2.0
    assert h.percentile(25) == 2.5
    assert h.p50 == 3.0
    assert h.percentile(75) == 5.5
    assert h.p90 == pytest.approx(4 + 0.8 * 3)
    assert h.percentile(100) == 7.0
    assert h.max == 7.0
    with pytest.raises(ValueError):
        h.percentile(101)


def test_percentiles_single_value_buckets():
    zeros = Histogram({1: 10})
    assert (zeros.p50, zeros.p99, zeros.max) == (0.0, 0.0, 0.0)
    ones = Histogram.from_values([0, 1, 1, 1])
    assert (ones.percentile(25), ones.p50, ones.max) == (0.0, 1.0, 1.0)


def test_percentiles_linear():
    h = Histogram({1: 10, 2: 10}, "linear", 0, 100, 10)  # [0, 10): 10, [10, 20): 10
    assert h.p50 == 9.0
    assert h.p90 == pytest.approx(17.2)
    assert h.p99 == pytest.approx(18.82)
    assert h.max == 19.0


def test_percentiles_open_ended_buckets():
    """The finite bound of an open-ended bucket stands in for its values."""
    h = Histogram({0: 5, 5: 5})  # negatives, [8, 16)
    assert h.percentile(10) == -1.0
    assert h.p50 == -1.0
    assert h.percentile(100) == 15.0
    lin = Histogram({0: 1, 4: 3}, "linear", 0, 10, 3)  # below 0, "[10, ...)" (from 9)
    assert lin.percentile(0) == -1.0
    assert lin.p50 == 9.0
    assert lin.percentile(100) == 9.0
    assert lin.max == math.inf
    assert Histogram({0: 2}).max == -1.0


def test_observed_extremes_replace_bucket_edges():
    """Where the kernel kept each bucket's smallest and largest value, max,
    min and the percentiles rest on them: 1000 in [512, 1K) is 1000, not 1023;
    an open-ended bucket has its observed values instead of one finite edge."""
    h = Histogram({11: 3, 12: 1}, extremes={11: (600, 1000), 12: (1500, 1500)})
    assert (h.min, h.max, h.observed) == (600.0, 1500.0, True)
    assert h.percentile(0) == 600.0 and h.percentile(75) == 1000.0
    assert h.percentile(50) == 600 + (2 / 3) * 400
    lin = Histogram({0: 1, 4: 3}, "linear", 0, 10, 3, extremes={0: (-7, -7), 4: (12, 40)})
    assert (lin.min, lin.max, lin.percentile(100)) == (-7.0, 40.0, 40.0)
    # Buckets without observed values keep their edges.
    partial = Histogram({11: 3, 12: 1}, extremes={11: (600, 1000)})
    assert (partial.max, partial.observed) == (2047.0, False)


def test_empty_histogram():
    h = Histogram({})
    assert h.total == 0
    assert math.isnan(h.p50) and math.isnan(h.max)
    assert h.rows() == ""
    assert render_hist("e", {None: h}) == "@e: \n\n"
    assert render_hist("e", {}) == "\n"


def test_to_json():
    obj = Histogram({0: 1, 4: 3}, "linear", 0, 10, 3).to_json()
    assert json.loads(json.dumps(obj)) == obj
    assert obj == {
        "kind": "linear", "lmin": 0, "lmax": 10, "step": 3, "total": 4,
        "p50": 9.0, "p90": 9.0, "p99": 9.0, "min": None, "max": None, "observed": False,
        "buckets": [
            {"index": 0, "label": "(..., 0)", "lower": None, "upper": -1.0, "count": 1},
            {"index": 4, "label": "[10, ...)", "lower": 9.0, "upper": None, "count": 3},
        ],
    }
    assert Histogram({}).to_json()["p50"] is None


def test_render_scalar_formats():
    assert render_scalar("c", {None: 5}) == "@c: 5\n"
    assert render_scalar("@c", {2: 9, 1: 5}) == "@c[1]: 5\n@c[2]: 9\n"
    assert render_scalar("s", {None: (2, 30)}, "stats") == "@s: count 2, average 15, total 30\n\n"
    assert render_scalar("a", {None: (2, -5)}, "avg") == "@a: -2\n\n"
    assert render_scalar("a", {None: (0, 0)}, "avg") == "@a: 0\n\n"
    assert render_scalar("c", {}) == "\n"
    with pytest.raises(ValueError):
        render_scalar("c", {None: 1}, "hist")


def test_bpftrace_json_buckets():
    """Histogram.bpftrace_json: what bpftrace 0.17 -f json printed for
    `@h = hist(-5); @h = hist(0); @h = hist(1)` and for lhist(0, 100, 10) of
    -3, 150 and 55 (open ends without min or max; from the first non-empty
    bucket to the last)."""
    assert Histogram.from_values([-5, 0, 1]).bpftrace_json() == [
        {"max": -1, "count": 1}, {"min": 0, "max": 0, "count": 1}, {"min": 1, "max": 1, "count": 1}]
    lin = Histogram.from_values([-3, 150, 55], "linear", 0, 100, 10).bpftrace_json()
    assert lin == [{"max": -1, "count": 1}] + [
        {"min": lo, "max": lo + 9, "count": int(lo == 50)} for lo in range(0, 100, 10)] + [
        {"min": 100, "count": 1}]
    assert Histogram.from_values([5, 100]).bpftrace_json() == [
        {"min": 4, "max": 7, "count": 1}, {"min": 8, "max": 15, "count": 0}, {"min": 16, "max": 31, "count": 0},
        {"min": 32, "max": 63, "count": 0}, {"min": 64, "max": 127, "count": 1}]
    assert Histogram({}).bpftrace_json() == []
