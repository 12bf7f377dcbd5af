"""Suite section "aggregate": in-kernel count and hist, pyusdt against bpftrace.

The modes, checks and cross-check are bench/aggregate.py's (imported):
none, bpftrace count(), pyusdt Aggregate("count"), bpftrace hist(arg0),
pyusdt Aggregate("hist", value=0), the same sums on the fixed path and
through the expression interpreter, and one map of expressions in both
tools, on the workload of bench/stream.py; every bpftrace mode once per
bpftrace peer (bench/peers.py: 0.17 and 0.23), named bpftrace-P-KIND.
Round-robin, median of R runs; the ratios are of the medians.
"""
from __future__ import annotations

import argparse

import aggregate
import peers
import stream
from suite_common import bar_panel, compile_c

NAME = "aggregate"
TITLE = "In-kernel aggregation"
KINDS = ("count", "hist", "expr")  # what both tools do; pyusdt-KIND against bpftrace-P-KIND
# aggregate.py's modes with each bpftrace mode once per peer, in its place.
MODES = tuple(x for m in aggregate.MODES for x in (
    [peers.mode(p, m.split("-", 1)[1]) for p in peers.PEERS] if m.startswith("bpftrace-") else [m]))
SETTINGS = {"full": {"n": 1_000_000, "repeat": 5}, "quick": {"n": 200_000, "repeat": 3}}


def run(settings: dict, tmp: str, log) -> dict:
    n, repeat = settings["n"], settings["repeat"]
    exe = compile_c(stream.WORKLOAD_SRC, f"{tmp}/workload")
    opts = argparse.Namespace(bpf_stats=False)
    peers.ensure(log)
    runners = {
        "none": lambda: aggregate.run_none(exe, n, tmp, opts),
        "pyusdt-count": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "count"),
        "pyusdt-hist": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "hist"),
        "pyusdt-sum": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "sum"),
        "pyusdt-sum-expr": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "sum-expr"),
        "pyusdt-expr": lambda: aggregate.run_pyusdt(exe, n, tmp, opts, "expr"),
    }
    bpftrace_runs = {"count": aggregate.run_bpftrace_count, "hist": aggregate.run_bpftrace_hist,
                     "expr": aggregate.run_bpftrace_expr}
    for p in peers.PEERS:
        for kind, fn in bpftrace_runs.items():
            mode = peers.mode(p, kind)
            runners[mode] = lambda fn=fn, mode=mode, p=p: fn(exe, n, tmp, opts, mode, bpftrace=peers.argv(p),
                                                              env=peers.env())
    runs = {m: [] for m in MODES}
    for r in range(repeat):
        for m in MODES:
            res = runners[m]()
            runs[m].append(res)
            extra = "" if m == "none" else (f" total={res['total']}"
                                             + (" ok" if res["verified"] else f" CHECK FAILED: {res['why']}"))
            log(f"aggregate round {r + 1}/{repeat} {m:<15} {res['ns_per_fire']:9.1f} ns/fire{extra}")
    for p in peers.PEERS:
        aggregate.cross_check(runs, peers.mode(p, "hist"))
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
        "same_buckets_as": hist.get("same_buckets_as", {}),
        "render_identical_to": hist.get("render_identical_to", {}),
        "map_full": {m: summary[m]["map_full_total"] for m in ("pyusdt-count", "pyusdt-hist")},
        "bpftrace_versions": peers.versions(),
        "ratios": dict(
            {f"pyusdt-{k} / {peers.mode(p, k)}": med[f"pyusdt-{k}"] / med[peers.mode(p, k)]
             for p in peers.PEERS for k in KINDS},
            **{"pyusdt-sum-expr / pyusdt-sum": med["pyusdt-sum-expr"] / med["pyusdt-sum"]}),
        "expression_ns_per_hit": med["pyusdt-sum-expr"] - med["pyusdt-sum"],
        "per_round": {f"{k} / {peers.mode(p, k)}": [a["ns_per_fire"] / b["ns_per_fire"] for a, b in
                                                    zip(runs[f"pyusdt-{k}"], runs[peers.mode(p, k)])]
                      for p in peers.PEERS for k in ("count", "hist")},
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
    expr_ratios = {p: r[f"pyusdt-expr / {peers.mode(p, 'expr')}"] for p in peers.PEERS}
    out.append("")
    for p in peers.PEERS:
        for k in ("count", "hist"):
            bt = peers.mode(p, k)
            out.append(f"- pyusdt {k} / {peers.label(p, k)}: **{r[f'pyusdt-{k} / {bt}']:.3f}x** (per round: "
                       + ", ".join(f"{x:.2f}" for x in res["per_round"][f"{k} / {bt}"]) + ")")
    out += [f"- Checked every run: counts == N (pyusdt: hits N, map_full {res['map_full']['pyusdt-count']} / "
            f"{res['map_full']['pyusdt-hist']}, nothing streamed); every histogram is exactly the log2 "
            "buckets of 0..N-1; pyusdt's equal to bpftrace's of the same round: "
            + ", ".join(f"{peers.label(p)} {res['same_buckets_as'].get(peers.mode(p, 'hist'))}" for p in peers.PEERS)
            + "; rendered text byte-identical to bpftrace's: "
            + ", ".join(f"{peers.label(p)} {res['render_identical_to'].get(peers.mode(p, 'hist'))}"
                        for p in peers.PEERS) + ".",
            f"- Expressions: pyusdt's `@[{aggregate.EXPR_KEY}] = sum({aggregate.EXPR_VALUE})` where "
            f"`{aggregate.EXPR_WHERE}` / bpftrace's: "
            + ", ".join(f"{peers.label(p)} **{x:.3f}x**" for p, x in expr_ratios.items())
            + f"; the same sums (65,536 keys) through the interpreter / on the fixed path: "
            f"{r['pyusdt-sum-expr / pyusdt-sum']:.3f}x, an expression costs "
            f"**{res['expression_ns_per_hit']:.0f} ns per hit**.",
            "- The floor of every mode here is the uprobe hit with an empty program (the stream section's "
            "`floor-empty`): \"added vs none\" minus that is the program's own work."]
    for m, whys in res["failures"].items():
        out.append(f"- **{m} check failed**: {'; '.join(whys)}")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    r = res["ratios"]
    labels, values = [], []
    for k in ("count", "hist"):
        for p in peers.PEERS:
            labels.append(f"pyusdt {k}\n/ bt {p} {k}")
            values.append(r[f"pyusdt-{k} / {peers.mode(p, k)}"])
    bar_panel(ax, labels, values, "ns per fire, ratio of medians", "In-kernel aggregation: cost per fire",
              fmt="{:.3f}")


def headline(res: dict) -> list:
    r = res["ratios"]
    out = []
    for k, what in (("count", "count"), ("hist", "hist"), ("expr", "the same map of expressions")):
        for p in peers.PEERS:
            out.append((f"pyusdt / {peers.label(p)}, {what} (ns per fire)",
                        f"**{r[f'pyusdt-{k} / {peers.mode(p, k)}']:.3f}x**"))
    out.append(("every run exact, histograms identical to both bpftrace peers'",
                str(all(res["verified"].values()) and bool(res["same_buckets_as_bpftrace"]))))
    return out
