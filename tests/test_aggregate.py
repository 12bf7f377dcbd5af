"""In-kernel aggregation through the API (Aggregate, Arg, StrArg, Where),
with exact values.

tests/programs/agg_values.c fires agg:value(i, v, label, u, grp) for a fixed
list of values (negatives, 0, 1, powers of two and 2^k - 1, values above
1K, 1M and 1G, all below 2^31) and agg:other(k) five times a round, and
writes every hit and its own count/sum/min/max/avg (overall and per label)
to a report.  Every expectation here comes from that report; bpftrace, run
on the same program, is the reference for bucket counts and map text.
"""
from __future__ import annotations

import operator
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyusdt import HeldProcess, Tracer
from pyusdt.aggregate.histogram import Histogram, render_hist, render_scalar
from pyusdt.aggregate.specs import Aggregate, Arg, StrArg, Where
from pyusdt.errors import ArgumentIndexError, ConfigError, PyusdtError

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

ROUNDS = 3
PER_ROUND = 39  # values in agg_values.c's kValues
OTHER_PER_ROUND = 5
LABELS = ("alpha", "beta", "gamma-3", "delta")
COMM = "agg_values"


# --------------------------------------------------------------------------
# The workload and its report

@dataclass
class Hit:
    i: int
    v: int  # signed 64-bit
    label: str
    u: int  # unsigned 32-bit
    grp: int  # signed 32-bit


@dataclass
class Report:
    pid: int
    hits: list  # of Hit, in order
    other: int
    labels: dict  # label -> (count, sum, min, max, avg)
    all: tuple  # (count, sum, min, max, avg)

    def values(self, label=None) -> list:
        return [h.v for h in self.hits if label is None or h.label == label]


def read_report(path: Path) -> Report:
    pid, hits, other, labels, everything = 0, [], 0, {}, None
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f[0] == "PID":
            pid = int(f[1])
        elif f[0] == "VALUE":
            hits.append(Hit(int(f[1]), int(f[2]), f[3], int(f[4]), int(f[5])))
        elif f[0] == "OTHER":
            other = int(f[1])
        elif f[0] == "LABEL":
            labels[f[1]] = tuple(int(x) for x in f[2:])
        elif f[0] == "ALL":
            everything = tuple(int(x) for x in f[1:])
    assert pid and everything is not None, f"incomplete report {path}"
    return Report(pid, hits, other, labels, everything)


def c_avg(total: int, count: int) -> int:
    """C's total / count: truncated toward zero."""
    q = abs(total) // count
    return q if total >= 0 else -q


def c_div(v: int, d: int) -> int:
    return c_avg(v, d)


def summary(values: list) -> tuple:
    return (len(values), sum(values), min(values), max(values), c_avg(sum(values), len(values)))


@pytest.fixture(scope="module")
def prog(build):
    return build("agg_values.c", "agg_values")


def wait_done(t: Tracer, limit: float = 20.0) -> None:
    deadline = time.monotonic() + limit
    while not t.done:
        assert time.monotonic() < deadline, "the workload did not exit in time"
        t.poll(timeout=0.05)


def run(prog, tmp_path: Path, specs: list, rounds: int = ROUNDS, name: str = "report.txt",
        **tracer_kw) -> tuple:
    """Runs agg_values under one Tracer with every (pattern, Aggregate) of
    `specs` on one held command (so the first hit is seen); returns the
    report and the results, in the order of `specs`."""
    report = tmp_path / name
    argv = [str(prog), "-r", str(rounds), "-o", str(report)]
    with Tracer(**tracer_kw) as t:
        held = argv
        for pattern, spec in specs:
            held = t.attach_command(held, pattern, aggregate=spec)
        t.start()
        wait_done(t)
        assert held.returncode == 0
        results = [t.aggregation(spec) for _, spec in specs]
        assert t.warnings == []
    return read_report(report), results


def assert_clean(c, hits: int, filtered: int = 0) -> None:
    """Counters of a plain aggregation: nothing lost, no latency activity."""
    assert (c.hits, c.filtered, c.map_full, c.read_fail) == (hits, filtered, 0, 0), c
    assert (c.starts, c.matched, c.unmatched, c.pending, c.dropped) == (0, 0, 0, 0, 0), c


# --------------------------------------------------------------------------
# One run, many aggregations over the same probe

SPECS = {
    "count": ("agg:value", Aggregate("count")),
    "sum": ("agg:value", Aggregate("sum", value=1)),
    "min": ("agg:value", Aggregate("min", value=1)),
    "max": ("agg:value", Aggregate("max", value=1)),
    "avg": ("agg:value", Aggregate("avg", value=1)),
    "stats": ("agg:value", Aggregate("stats", value=1)),
    "hist": ("agg:value", Aggregate("hist", value=1)),
    "lhist": ("agg:value", Aggregate("lhist", value=1, lhist=(0, 1000, 100))),
    "lhist_nonmult": ("agg:value", Aggregate("lhist", value=1, lhist=(0, 1000, 300))),
    "lhist_neg": ("agg:value", Aggregate("lhist", value=1, lhist=(-10, 10, 5))),
    "hist_grp": ("agg:value", Aggregate("hist", value=4)),
    "hist_u": ("agg:value", Aggregate("hist", value=3)),
    "by_label": ("agg:value", Aggregate("count", key=StrArg(2))),
    "sum_by_label": ("agg:value", Aggregate("sum", value=1, key=StrArg(2))),
    "avg_by_label": ("agg:value", Aggregate("avg", value=1, key=StrArg(2))),
    "stats_by_label": ("agg:value", Aggregate("stats", value=1, key=StrArg(2))),
    "min_by_label": ("agg:value", Aggregate("min", value=1, key=StrArg(2))),
    "max_by_label": ("agg:value", Aggregate("max", value=1, key=StrArg(2))),
    "hist_by_label": ("agg:value", Aggregate("hist", value=1, key=StrArg(2))),
    "by_index": ("agg:value", Aggregate("count", key=Arg(0))),
    "by_grp": ("agg:value", Aggregate("sum", value=1, key=Arg(4))),
    "by_u": ("agg:value", Aggregate("count", key=Arg(3))),
    "by_pid": ("agg:value", Aggregate("count", key="pid")),
    "by_tid": ("agg:value", Aggregate("count", key="tid")),
    "by_comm": ("agg:value", Aggregate("count", key="comm")),
    "by_probe": ("agg:*", Aggregate("count", key="probe")),
    "sum_div": ("agg:value", Aggregate("sum", value=1, divisor=1000)),
    "stats_div": ("agg:value", Aggregate("stats", value=1, divisor=7)),
    "hist_div": ("agg:value", Aggregate("hist", value=1, divisor=1000)),
}


@pytest.fixture(scope="module")
def main_run(bpf, prog, tmp_path_factory):
    names = list(SPECS)
    report, results = run(prog, tmp_path_factory.mktemp("main"), [SPECS[n] for n in names])
    return report, dict(zip(names, results))


def test_report_is_consistent(main_run):
    """The workload's own aggregates agree with its list of hits."""
    report, _ = main_run
    n = ROUNDS * PER_ROUND
    assert len(report.hits) == n
    assert report.other == ROUNDS * OTHER_PER_ROUND
    assert report.all == summary(report.values())
    assert set(report.labels) == set(LABELS)
    for label in LABELS:
        assert report.labels[label] == summary(report.values(label)), label
    counts = sorted(report.labels[lab][0] for lab in LABELS)
    assert len(set(counts)) == len(counts)  # distinct: no ties in bpftrace's ordering
    assert [h.i for h in report.hits] == list(range(PER_ROUND)) * ROUNDS
    assert max(abs(v) for v in report.values()) < 1 << 31
    assert all(h.u == h.v % (1 << 32) for h in report.hits)


def test_scalars_equal_what_the_workload_printed(main_run):
    report, res = main_run
    count, total, lo, hi, avg = report.all
    assert res["count"].value() == count
    assert res["sum"].value() == total
    assert res["min"].value() == lo
    assert res["max"].value() == hi
    assert res["avg"].value() == avg
    assert res["stats"].value() == avg
    assert res["count"].stats().count == count
    for name in ("count", "sum", "min", "max", "avg", "stats"):
        r = res[name]
        assert r.keys == [None], name
        if name != "count":  # a count has no value; the others keep the whole row
            s = r.stats()
            assert (s.count, s.sum, s.min, s.max, s.avg) == report.all, name
        assert r.total == count
        assert_clean(r.counters, count)
    assert res["count"].render("@c") == f"@c: {count}\n"
    assert res["sum"].render("@s") == f"@s: {total}\n"
    assert res["min"].render("@mn") == f"@mn: {lo}\n"
    assert res["max"].render("@mx") == f"@mx: {hi}\n"
    assert res["avg"].render("@a") == f"@a: {avg}\n\n"
    assert res["stats"].render("@st") == f"@st: count {count}, average {avg}, total {total}\n\n"


def test_histograms_equal_the_bucketed_values(main_run):
    """The kernel's buckets are exactly those of the values, bucketed in Python."""
    report, res = main_run
    vals = report.values()
    assert res["hist"].hist() == Histogram.from_values(vals)
    assert res["lhist"].hist() == Histogram.from_values(vals, "linear", 0, 1000, 100)
    assert res["lhist_nonmult"].hist() == Histogram.from_values(vals, "linear", 0, 1000, 300)
    assert res["lhist_neg"].hist() == Histogram.from_values(vals, "linear", -10, 10, 5)
    assert res["hist_grp"].hist() == Histogram.from_values([h.grp for h in report.hits])
    # The unsigned argument: -1 is 4294967295, in [2G, 4G).
    assert res["hist_u"].hist() == Histogram.from_values([h.u for h in report.hits])
    assert int(res["hist_u"].hist().counts[33]) == 3 * ROUNDS
    for name in ("hist", "lhist", "lhist_nonmult", "lhist_neg", "hist_grp", "hist_u"):
        r = res[name]
        assert r.keys == [None]
        assert r.total == len(vals), name
        assert_clean(r.counters, len(vals))
    # A few buckets spelled out: (..., 0), [0], [1], [1G, 2G).
    h = res["hist"].hist()
    assert [int(h.counts[i]) for i in (0, 1, 2, 32)] == [3 * ROUNDS, 2 * ROUNDS, 2 * ROUNDS, 3 * ROUNDS]
    lin = res["lhist_nonmult"].hist()  # [0,300) [300,600) [600,900), then 999 with [1000, ...)
    assert lin.counts.tolist() == [3 * ROUNDS, 20 * ROUNDS, 2 * ROUNDS, 0, 14 * ROUNDS]
    # Each bucket row keeps the smallest and largest value it holds: the
    # histograms' min and max are the values' own, not bucket edges.
    for name in ("hist", "lhist", "lhist_nonmult", "lhist_neg"):
        hh = res[name].hist()
        assert (hh.min, hh.max, hh.observed) == (min(vals), max(vals), True), name
        assert hh.percentile(100) == max(vals) and hh.percentile(0) == min(vals), name
    assert res["hist_u"].hist().max == max(h.u for h in report.hits)


def test_string_keys(main_run):
    """Keyed by the label (a heap string): each key's rows are exact."""
    report, res = main_run
    assert res["by_label"].keys == sorted(LABELS)
    for label in LABELS:
        count, total, lo, hi, avg = report.labels[label]
        assert res["by_label"].value(label) == count, label
        assert res["sum_by_label"].value(label) == total, label
        assert res["min_by_label"].value(label) == lo, label
        assert res["max_by_label"].value(label) == hi, label
        assert res["avg_by_label"].value(label) == avg, label
        s = res["stats_by_label"].stats(label)
        assert (s.count, s.sum, s.min, s.max, s.avg) == report.labels[label], label
        assert res["hist_by_label"].hist(label) == Histogram.from_values(report.values(label)), label
    for name in ("by_label", "sum_by_label", "stats_by_label", "hist_by_label"):
        assert_clean(res[name].counters, ROUNDS * PER_ROUND)
    assert res["by_label"].render("@k") == render_scalar(
        "@k", {lab: report.labels[lab][0] for lab in LABELS}, "count")
    assert res["stats_by_label"].render("@kst") == render_scalar(
        "@kst", {lab: report.labels[lab][:2] for lab in LABELS}, "stats")
    assert res["hist_by_label"].render("@hk") == render_hist(
        "@hk", {lab: Histogram.from_values(report.values(lab)) for lab in LABELS})
    assert res["by_label"].render("@k") == (
        f"@k[delta]: {3 * ROUNDS}\n@k[gamma-3]: {8 * ROUNDS}\n"
        f"@k[beta]: {12 * ROUNDS}\n@k[alpha]: {16 * ROUNDS}\n")


def test_integer_keys(main_run):
    """Keyed by an integer argument: 8-byte index, signed 4-byte (negative
    keys stay negative), unsigned 4-byte (-1 is 4294967295)."""
    report, res = main_run
    r = res["by_index"]
    assert r.keys == sorted(range(PER_ROUND), key=str)
    assert {k: r.value(k) for k in r.keys} == {i: ROUNDS for i in range(PER_ROUND)}

    r = res["by_grp"]
    expect = {}
    for h in report.hits:
        expect[h.grp] = expect.get(h.grp, 0) + h.v
    assert set(r.keys) == {-1, 0, 1}
    assert {k: r.value(k) for k in r.keys} == expect
    assert {k: r.stats(k).count for k in r.keys} == {-1: 13 * ROUNDS, 0: 13 * ROUNDS, 1: 13 * ROUNDS}
    assert "@g[-1]: " in r.render("@g")

    r = res["by_u"]
    assert {k: r.value(k) for k in r.keys} == dict(Counter(h.u for h in report.hits))
    assert r.value(4294967295) == ROUNDS
    for name in ("by_index", "by_grp", "by_u"):
        assert_clean(res[name].counters, ROUNDS * PER_ROUND)


def test_process_and_probe_keys(main_run):
    report, res = main_run
    n = ROUNDS * PER_ROUND
    assert {k: res["by_pid"].value(k) for k in res["by_pid"].keys} == {report.pid: n}
    # Single-threaded: the thread id is the pid.
    assert {k: res["by_tid"].value(k) for k in res["by_tid"].keys} == {report.pid: n}
    assert {k: res["by_comm"].value(k) for k in res["by_comm"].keys} == {COMM: n}
    assert res["by_comm"].render("@") == f"@[{COMM}]: {n}\n"
    r = res["by_probe"]
    assert {k: r.value(k) for k in r.keys} == {"agg:value": n, "agg:other": report.other}
    assert r.render("@") == f"@[agg:other]: {report.other}\n@[agg:value]: {n}\n"
    assert_clean(r.counters, n + report.other)


def test_divisor_rounds_toward_zero(main_run):
    report, res = main_run
    vals = report.values()
    assert res["sum_div"].value() == sum(c_div(v, 1000) for v in vals)
    scaled = [c_div(v, 7) for v in vals]
    s = res["stats_div"].stats()
    assert (s.count, s.sum, s.min, s.max) == (len(scaled), sum(scaled), min(scaled), max(scaled))
    assert res["hist_div"].hist() == Histogram.from_values([c_div(v, 1000) for v in vals])


def test_to_json_has_exact_counts(main_run):
    report, res = main_run
    obj = res["by_label"].to_json()
    assert obj["kind"] == "count"
    assert {k: v["count"] for k, v in obj["data"].items()} == {lab: report.labels[lab][0] for lab in LABELS}
    assert obj["counters"]["hits"] == ROUNDS * PER_ROUND
    h = res["hist"].to_json()["data"][""]["hist"]
    assert h["total"] == ROUNDS * PER_ROUND
    assert {b["index"]: b["count"] for b in h["buckets"]} == \
        {i: int(c) for i, c in enumerate(Histogram.from_values(report.values()).counts) if c}


# --------------------------------------------------------------------------
# bpftrace, the reference


# bpftrace map -> the pyusdt aggregation computing the same.  No min()/max():
# bpftrace 0.17's lose values (see pyusdt/aggregate/histogram.py).
BPFTRACE_MAPS = {
    "@a": ("avg(arg1)", "avg"),
    "@c": ("count()", "count"),
    "@g": ("hist(arg4)", "hist_grp"),
    "@h": ("hist(arg1)", "hist"),
    "@k[str(arg2)]": ("count()", "by_label"),
    "@kst[str(arg2)]": ("stats(arg1)", "stats_by_label"),
    "@ks[str(arg2)]": ("sum(arg1)", "sum_by_label"),
    "@l": ("lhist(arg1, 0, 1000, 100)", "lhist"),
    "@m": ("lhist(arg1, 0, 1000, 300)", "lhist_nonmult"),
    "@s": ("sum(arg1)", "sum"),
    "@st": ("stats(arg1)", "stats"),
}


def test_same_maps_as_bpftrace(bpftrace, prog, main_run, tmp_path):
    """The same program under bpftrace: every map, printed by bpftrace at exit,
    is byte for byte what pyusdt renders for its aggregation."""
    report, res = main_run
    theirs_report = tmp_path / "bpftrace-report.txt"
    body = " ".join(f"{m} = {call};" for m, (call, _) in BPFTRACE_MAPS.items())
    script = f"usdt:{prog}:agg:value {{ {body} }}"
    out = subprocess.run([bpftrace, "-e", script, "-c", f"{prog} -r {ROUNDS} -o {theirs_report}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    head = "Attaching 1 probe...\n\n\n"
    assert out.stdout.startswith(head), out.stdout[:300]
    theirs = out.stdout[len(head):]
    # The workload is deterministic: bpftrace's run saw the same hits.
    assert read_report(theirs_report).hits == report.hits

    names = sorted(BPFTRACE_MAPS, key=lambda m: m.split("[")[0])
    ours = "".join(res[BPFTRACE_MAPS[m][1]].render(m.split("[")[0]) for m in names)
    assert theirs == ours, f"--- bpftrace\n{theirs}\n--- pyusdt\n{ours}"


# --------------------------------------------------------------------------
# Filters

def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >= 1 << (bits - 1) else v


OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
       ">": operator.gt, ">=": operator.ge}
# (argument, op, constant): arg1 signed 64-bit, arg3 unsigned 32-bit,
# arg4 signed 32-bit, arg0 the index.
WHERES = [
    (1, "==", 0), (1, "!=", 0), (1, "<", 0), (1, "<=", 1), (1, ">", 1023), (1, ">=", 1024),
    (1, "<", -1), (1, ">", -6), (1, "==", -1000000), (1, ">=", 2147483647), (1, "<=", -1000001),
    (3, ">", 2147483647), (3, "<", 256), (3, "<=", 255), (3, ">=", 4294967291),
    (3, "==", 4294967295), (3, "!=", 4294967295),
    (4, "<", 0), (4, "==", -1), (4, ">=", 0), (4, "!=", 1),
    (0, "<", 10),
]


def _field(h: Hit, arg: int) -> int:
    return {0: h.i, 1: h.v, 3: h.u, 4: h.grp}[arg]


def test_where_each_operator(bpf, prog, tmp_path):
    """Where(arg, op, value) on a signed 64-bit, an unsigned 32-bit and a
    signed 32-bit argument: the count is the workload's hits for which the
    predicate holds, everything else counted as filtered."""
    specs = [("agg:value", Aggregate("count", where=Where(a, op, c))) for a, op, c in WHERES]
    sum_spec = Aggregate("sum", value=1, key=StrArg(2), where=Where(1, ">", 100))
    specs.append(("agg:value", sum_spec))
    report, results = run(prog, tmp_path, specs)
    n = len(report.hits)
    problems = []
    for (a, op, c), r in zip(WHERES, results):
        want = sum(1 for h in report.hits if OPS[op](_field(h, a), c))
        c_ = r.counters
        got = (r.value() if r.keys else 0, c_.hits, c_.filtered, c_.map_full, c_.read_fail)
        if got != (want, want, n - want, 0, 0):
            problems.append(f"arg{a} {op} {c}: (value, hits, filtered, map_full, read_fail) "
                            f"= {got}, expected {(want, want, n - want, 0, 0)}")
    assert problems == []
    # The unsigned comparison is unsigned: the three negatives are above 2^31.
    r = results[WHERES.index((3, ">", 2147483647))]
    assert r.value() == 3 * ROUNDS
    # A predicate with a key and a value.
    r = results[-1]
    expect = {}
    for h in report.hits:
        if h.v > 100:
            expect[h.label] = expect.get(h.label, 0) + h.v
    assert {k: r.value(k) for k in r.keys} == expect
    assert r.counters.filtered == sum(1 for h in report.hits if not h.v > 100)


def test_where_rejects_unknown_operator():
    with pytest.raises(ConfigError):
        Where(1, "=", 3)
    with pytest.raises(ConfigError):
        Where(1, "=>", 3)


def test_where_constant_out_of_range_is_a_config_error(bpf, prog):
    """A constant that fits no 64-bit comparison is refused as a ConfigError
    (one line in the CLI), not a TypeError from the native module at start()."""
    with pytest.raises(ConfigError):
        with Tracer() as t:
            t.attach_path(prog, "agg:value", aggregate=Aggregate("count", where=Where(1, ">", 1 << 70)))
            t.start()


def test_filter_pid(bpf, prog, tmp_path):
    """Aggregate(pid=P) on a path target: two processes run the program, only
    P's hits are aggregated, the other's are counted as filtered."""
    reports = [tmp_path / "a.txt", tmp_path / "b.txt"]
    rounds = (2, 3)
    helds = [HeldProcess([str(prog), "-r", str(r), "-o", str(p)]) for r, p in zip(rounds, reports)]
    try:
        only = Aggregate("count", pid=helds[0].pid)
        by_pid = Aggregate("count", key="pid")
        other_only = Aggregate("sum", value=1, pid=helds[1].pid)
        with Tracer() as t:
            for spec in (only, by_pid, other_only):
                t.attach_path(prog, "agg:value", aggregate=spec)
            t.start()
            for h in helds:
                h.release()
            deadline = time.monotonic() + 20
            while any(h.poll() is None for h in helds):
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert [h.returncode for h in helds] == [0, 0]
            r_only, r_by, r_other = (t.aggregation(s) for s in (only, by_pid, other_only))
    finally:
        for h in helds:
            h.terminate()
    a, b = (read_report(p) for p in reports)
    assert (a.pid, b.pid) == (helds[0].pid, helds[1].pid)
    assert r_only.value() == len(a.hits) == 2 * PER_ROUND
    assert_clean(r_only.counters, len(a.hits), filtered=len(b.hits))
    assert {k: r_by.value(k) for k in r_by.keys} == {a.pid: len(a.hits), b.pid: len(b.hits)}
    assert r_other.value() == b.all[1]
    assert_clean(r_other.counters, len(b.hits), filtered=len(a.hits))


# --------------------------------------------------------------------------
# Limits and errors

def test_map_full_is_counted(bpf, prog, tmp_path):
    """With room for 4 rows, keys 0..3 (the first seen) are kept exactly and
    every other value is counted as map_full, none silently lost."""
    spec = Aggregate("count", key=Arg(0))
    report, (r,) = run(prog, tmp_path, [("agg:value", spec)], max_agg_keys=4)
    assert {k: r.value(k) for k in r.keys} == {0: ROUNDS, 1: ROUNDS, 2: ROUNDS, 3: ROUNDS}
    n = len(report.hits)
    c = r.counters
    assert (c.hits, c.map_full, c.filtered, c.read_fail) == (n, n - 4 * ROUNDS, 0, 0)


def test_spec_reused_in_a_second_tracer(bpf, prog, tmp_path):
    """An Aggregate used by one Tracer, then by another where it is attached
    before a new one: each aggregation of the second tracer has its own exact
    rows (the reused spec must not share the new one's id there)."""
    shared = Aggregate("count", where=Where(1, "<", 0))
    _, (r1,) = run(prog, tmp_path, [("agg:value", shared)], rounds=1, name="r1.txt")
    assert r1.value() == 3

    fresh = Aggregate("count", key="probe")
    report = tmp_path / "r2.txt"
    with Tracer() as t:
        held = t.attach_command([str(prog), "-r", "2", "-o", str(report)], "agg:value", aggregate=shared)
        t.attach_command(held, "agg:*", aggregate=fresh)
        t.start()
        wait_done(t)
        r_fresh = t.aggregation(fresh)
        assert {k: r_fresh.value(k) for k in r_fresh.keys} == \
            {"agg:value": 2 * PER_ROUND, "agg:other": 2 * OTHER_PER_ROUND}
        assert_clean(r_fresh.counters, 2 * (PER_ROUND + OTHER_PER_ROUND))
        r_shared = t.aggregation(shared)
        assert r_shared.value() == 2 * 3
        assert_clean(r_shared.counters, 2 * 3, filtered=2 * (PER_ROUND - 3))


def test_bad_specs_are_refused(prog):
    for kw in ({"kind": "lhist", "value": 1, "lhist": (0, 100, 0)},
               {"kind": "lhist", "value": 1, "lhist": (0, 100, -5)},
               {"kind": "lhist", "value": 1, "lhist": (100, 100, 1)},
               {"kind": "lhist", "value": 1, "lhist": (200, 100, 1)},
               {"kind": "lhist", "value": 1},
               {"kind": "sum"},
               {"kind": "median", "value": 1},
               {"kind": "count", "divisor": 0},
               {"kind": "count", "key": "uid"}):
        with pytest.raises(ConfigError):
            Aggregate(**kw)
    cases = [
        (Aggregate("sum", value=5), "value argument 5 out of range"),
        (Aggregate("count", key=Arg(9)), "key argument 9 out of range"),
        (Aggregate("count", key=StrArg(4)), "4-byte integer"),
        (Aggregate("count", key=StrArg(3)), "4-byte integer"),
        (Aggregate("count", where=Where(5, "==", 1)), "filter argument 5 out of range"),
    ]
    for spec, message in cases:
        t = Tracer()
        try:
            with pytest.raises(ArgumentIndexError, match=message):
                t.attach_path(prog, "agg:value", aggregate=spec)
        finally:
            t.close()
    t = Tracer()
    try:
        with pytest.raises(PyusdtError, match="no probe matches"):
            t.attach_path(prog, "agg:nothing", aggregate=Aggregate("count"))
    finally:
        t.close()


def _my_ringbuf_sizes() -> list:
    """max_entries of every BPF ring buffer map this process holds an fd of."""
    sizes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        if fields.get("map_type", "").strip() == "27":  # BPF_MAP_TYPE_RINGBUF
            sizes.append(int(fields["max_entries"]))
    return sizes


def test_aggregate_only_tracer_locks_one_page_of_ring(bpf, prog, tmp_path):
    """A tracer that only aggregates streams nothing: its ring is one page, not
    16 MiB of locked kernel memory; the counts stay exact, and a streaming
    attach after start() is refused with a ConfigError, not silently lost."""
    spec = Aggregate("count")
    report = tmp_path / "r.txt"
    with Tracer() as t:
        held = t.attach_command([str(prog), "-r", "1", "-o", str(report)], "agg:value", aggregate=spec)
        t.start()
        assert _my_ringbuf_sizes() == [4096]
        with pytest.raises(ConfigError, match="aggregations only"):
            t.attach_path(str(prog), "agg:other")
        wait_done(t)
        assert held.returncode == 0
        assert t.aggregation(spec).value() == PER_ROUND
    with Tracer() as t:  # streaming: the default ring
        t.attach_path(str(prog), "agg:other")
        t.start()
        assert _my_ringbuf_sizes() == [16 << 20]
