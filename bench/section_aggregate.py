"""Suite section "aggregate": in-kernel count and hist, pyusdt against bpftrace.

The modes, checks and cross-check are bench/aggregate.py's (imported):
none, bpftrace count(), pyusdt Aggregate("count"), bpftrace hist(arg0),
pyusdt Aggregate("hist", value=0), the same sums on the fixed path and
through the expression interpreter, and one map of expressions in both
tools, on the workload of bench/stream.py.
Round-robin, median of R runs; the ratios are of the medians.
"""
from __future__ import annotations

import argparse

import aggregate
import stream
from suite_common import bar_panel, compile_c

NAME = "aggregate"
TITLE = "In-kernel aggregation"
MODES = aggregate.MODES
SETTINGS = {"full": {"n": 1_000_000, "repeat": 5}, "quick": {"n": 200_000, "repeat": 3}}


def run(settings: dict, tmp: str, log) -> dict:
    n, repeat = settings["n"], settings["repeat"]
    exe = compile_c(stream.WORKLOAD_SRC, f"{tmp}/workload")
    opts = argparse.Namespace(bpf_stats=False)
    runners = {
        "none": lambda: aggregate.run_none(exe, n, tmp, opts),
        "bpftrace-count": lambda: aggregate.run_bpftrace_count(exe, n, tmp, opts),
        "pyusdt-count": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "count"),
        "bpftrace-hist": lambda: aggregate.run_bpftrace_hist(exe, n, tmp, opts),
        "pyusdt-hist": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "hist"),
        "pyusdt-sum": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "sum"),
        "pyusdt-sum-expr": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "sum-expr"),
        "bpftrace-expr": lambda: aggregate.run_bpftrace_expr(exe, n, tmp, opts),
        "pyusdt-expr": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "expr"),
    }
    runs = {m: [] for m in MODES}
    for r in range(repeat):
        for m in MODES:
            res = runners[m]()
            runs[m].append(res)
            extra = "" if m == "none" else (f" total={res['total']}"
                                             + (" ok" if res["verified"] else f" CHECK FAILED: {res['why']}"))
            log(f"aggregate round {r + 1}/{repeat} {m:<15} {res['ns_per_fire']:9.1f} ns/fire{extra}")
    aggregate.cross_check(runs)
    summary = aggregate.summarize(runs)
    med = {m: summary[m]["ns_per_fire_median"] for m in MODES}
    hist = summary["pyusdt-hist"]
    return {
        "n": n, "repeat": repeat, "ns_per_fire": med,
        "ns_per_fire_min": {m: summary[m]["ns_per_fire_min"] for m in MODES},
        "ns_per_fire_max": {m: summary[m]["ns_per_fire_max"] for m in MODES},
        "verified": {m: summary[m]["verified"] for m in MODES if m != "none"},
        "failures": {m: summary[m]["failures"] for m in MODES if m != "none" and summary[m]["failures"]},
        "same_buckets_as_bpftrace": hist.get("same_buckets_as_bpftrace"),
        "render_identical": hist.get("render_identical"),
        "map_full": {m: summary[m]["map_full_total"] for m in ("pyusdt-count", "pyusdt-hist")},
        "ratios": {
            "pyusdt-count / bpftrace-count": med["pyusdt-count"] / med["bpftrace-count"],
            "pyusdt-hist / bpftrace-hist": med["pyusdt-hist"] / med["bpftrace-hist"],
            "pyusdt-expr / bpftrace-expr": med["pyusdt-expr"] / med["bpftrace-expr"],
            "pyusdt-sum-expr / pyusdt-sum": med["pyusdt-sum-expr"] / med["pyusdt-sum"],
        },
        "expression_ns_per_hit": med["pyusdt-sum-expr"] - med["pyusdt-sum"],
        "per_round": {
            "count": [p["ns_per_fire"] / b["ns_per_fire"]
                      for p, b in zip(runs["pyusdt-count"], runs["bpftrace-count"])],
            "hist": [p["ns_per_fire"] / b["ns_per_fire"] for p, b in zip(runs["pyusdt-hist"], runs["bpftrace-hist"])],
        },
    }


def markdown(res: dict) -> str:
    med = res["ns_per_fire"]
    out = [f"Same workload as the streaming section, N = {res['n']:,} fires, median of {res['repeat']} "
           "round-robin rounds; nothing leaves the kernel per hit in any traced mode.", "",
           "| mode | ns/fire (median) | min | max | added vs none | checked |", "|---|---:|---:|---:|---:|---|"]
    for m in MODES:
        chk = "" if m == "none" else ("exact" if res["verified"][m] else "**FAILED**")
        added = "" if m == "none" else f"{med[m] - med['none']:.1f}"
        out.append(f"| {m} | {med[m]:.1f} | {res['ns_per_fire_min'][m]:.1f} | {res['ns_per_fire_max'][m]:.1f} | "
                   f"{added} | {chk} |")
    r = res["ratios"]
    out += ["",
            f"- pyusdt count / bpftrace count: **{r['pyusdt-count / bpftrace-count']:.3f}x** (per round: "
            f"{', '.join(f'{x:.2f}' for x in res['per_round']['count'])})",
            f"- pyusdt hist / bpftrace hist: **{r['pyusdt-hist / bpftrace-hist']:.3f}x** (per round: "
            f"{', '.join(f'{x:.2f}' for x in res['per_round']['hist'])})",
            f"- Checked every run: counts == N (pyusdt: hits N, map_full {res['map_full']['pyusdt-count']} / "
            f"{res['map_full']['pyusdt-hist']}, nothing streamed); both histograms are exactly the log2 "
            f"buckets of 0..N-1; pyusdt's equal to bpftrace's of the same round: "
            f"{res['same_buckets_as_bpftrace']}; rendered text byte-identical to bpftrace's: "
            f"{res['render_identical']}.",
            f"- Expressions: pyusdt's `@[{aggregate.EXPR_KEY}] = sum({aggregate.EXPR_VALUE})` where "
            f"`{aggregate.EXPR_WHERE}` / bpftrace's: **{r['pyusdt-expr / bpftrace-expr']:.3f}x**; the same sums "
            f"(65,536 keys) through the interpreter / on the fixed path: {r['pyusdt-sum-expr / pyusdt-sum']:.3f}x, "
            f"an expression costs **{res['expression_ns_per_hit']:.0f} ns per hit**."]
    for m, whys in res["failures"].items():
        out.append(f"- **{m} check failed**: {'; '.join(whys)}")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    r = res["ratios"]
    bar_panel(ax, ["pyusdt count\n/ bpftrace count", "pyusdt hist\n/ bpftrace hist"],
              [r["pyusdt-count / bpftrace-count"], r["pyusdt-hist / bpftrace-hist"]],
              "ns per fire, ratio of medians", "In-kernel aggregation: cost per fire", fmt="{:.3f}")


def headline(res: dict) -> list:
    r = res["ratios"]
    return [("pyusdt count / bpftrace count (ns per fire)", f"**{r['pyusdt-count / bpftrace-count']:.3f}x**"),
            ("pyusdt hist / bpftrace hist (ns per fire)", f"**{r['pyusdt-hist / bpftrace-hist']:.3f}x**"),
            ("pyusdt / bpftrace, the same map of expressions (ns per fire)",
             f"**{r['pyusdt-expr / bpftrace-expr']:.3f}x**" if "pyusdt-expr / bpftrace-expr" in r
             else "not measured (a result from before the expression modes)"),
            ("every run exact, histograms identical to bpftrace's",
             str(all(res["verified"].values()) and bool(res["same_buckets_as_bpftrace"])))]
