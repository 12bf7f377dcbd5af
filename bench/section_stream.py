"""Suite section "stream": the cost of each fire when every event is streamed.

The modes and their checks are bench/stream.py's (imported, not copied):
none (the bare loop), bpftrace count() (in-kernel, the floor any tracer
pays for the uprobe), bpftrace printf (every event to user space, written to
a file) and pyusdt streaming every event into numpy.  Round-robin, median of
R runs; the ratios are of the medians.
"""
from __future__ import annotations

import argparse

import stream
from suite_common import bar_panel, compile_c

NAME = "stream"
TITLE = "Streaming every event"
MODES = ("none", "bpftrace-count", "bpftrace-printf", "pyusdt")
SETTINGS = {"full": {"n": 1_000_000, "repeat": 5}, "quick": {"n": 200_000, "repeat": 3}}


def run(settings: dict, tmp: str, log) -> dict:
    n, repeat = settings["n"], settings["repeat"]
    exe = compile_c(stream.WORKLOAD_SRC, f"{tmp}/workload")
    opts = argparse.Namespace(ringbuf_bytes=None, wakeup_bytes=None, timeout=0.1, pace=0.01)
    runners = {
        "none": lambda: stream.run_none(exe, n, tmp),
        "bpftrace-count": lambda: stream.run_bpftrace_count(exe, n, tmp),
        "bpftrace-printf": lambda: stream.run_bpftrace_printf(exe, n, tmp),
        "pyusdt": lambda: stream.run_pyusdt(exe, n, tmp, opts, paced=False),
    }
    runs = {m: [] for m in MODES}
    for r in range(repeat):
        for m in MODES:
            res = runners[m]()
            runs[m].append(res)
            extra = "" if m == "none" else (f" received={res['received']} lost={res['lost']}"
                                             + (" ok" if res["verified"] else " CHECK FAILED"))
            log(f"stream round {r + 1}/{repeat} {m:<15} {res['ns_per_fire']:9.1f} ns/fire{extra}")
    summary = stream.summarize(runs, n)
    med = {m: summary[m]["ns_per_fire_median"] for m in MODES}
    py = summary["pyusdt"]
    return {
        "n": n, "repeat": repeat,
        "ns_per_fire": med,
        "ns_per_fire_min": {m: summary[m]["ns_per_fire_min"] for m in MODES},
        "ns_per_fire_max": {m: summary[m]["ns_per_fire_max"] for m in MODES},
        "lost_max": {m: summary[m]["lost_max"] for m in MODES if m != "none"},
        "received_min": {m: summary[m]["received_min"] for m in MODES if m != "none"},
        "verified": {m: summary[m]["verified"] for m in MODES if m != "none"},
        # Events neither received nor reported lost (a tracer dropping silently).
        "unaccounted_max": {m: max(r["fired"] - r["received"] - r["lost"] for r in runs[m])
                            for m in MODES if m != "none"},
        "failed_runs": {m: sum(not r["verified"] for r in runs[m]) for m in MODES if m != "none"},
        "pyusdt_cpu_ns_per_event": py["cpu_ns_per_event_median"],
        "pyusdt_events_per_batch": py["events_per_batch_median"],
        "pyusdt_start_ms": py["start_s_median"] * 1000,
        "ratios": {
            "pyusdt / bpftrace-count": med["pyusdt"] / med["bpftrace-count"],
            "bpftrace-printf / bpftrace-count": med["bpftrace-printf"] / med["bpftrace-count"],
            "bpftrace-printf / pyusdt": med["bpftrace-printf"] / med["pyusdt"],
        },
        "added_ns": {m: med[m] - med["none"] for m in MODES if m != "none"},
        "per_round_ratio_pyusdt_over_count": [
            p["ns_per_fire"] / c["ns_per_fire"] for p, c in zip(runs["pyusdt"], runs["bpftrace-count"])],
        "pyusdt_cpu_ns_per_event_runs": [r["cpu_ns_per_event"] for r in runs["pyusdt"]],
    }


def _check_text(res: dict, m: str) -> str:
    if res["verified"][m]:
        return "exact"
    text = f"**{res['failed_runs'][m]} of {res['repeat']} runs failed**"
    missing = res["unaccounted_max"][m]
    if missing > 0:
        text += f": up to {missing:,} events missing, not reported as lost"
    elif res["lost_max"][m]:
        text += ": events lost (reported)"
    return text


def markdown(res: dict) -> str:
    med, added = res["ns_per_fire"], res["added_ns"]
    out = [f"The workload (bench/workload.c) fires `bench:fire(i, i*3, i & 0xffff)` "
           f"N = {res['n']:,} times in a tight loop and times its own loop; median of "
           f"{res['repeat']} round-robin rounds.", "",
           "| mode | ns/fire (median) | min | max | added vs none | events received (min) | lost (max) | checked |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for m in MODES:
        if m == "none":
            out.append(f"| none | {med[m]:.1f} | {res['ns_per_fire_min'][m]:.1f} | "
                       f"{res['ns_per_fire_max'][m]:.1f} | | | | |")
        else:
            out.append(f"| {m} | {med[m]:.1f} | {res['ns_per_fire_min'][m]:.1f} | "
                       f"{res['ns_per_fire_max'][m]:.1f} | {added[m]:.1f} | "
                       f"{res['received_min'][m]:,} / {res['n']:,} | {res['lost_max'][m]} | "
                       f"{_check_text(res, m)} |")
    r = res["ratios"]
    out += ["",
            f"- pyusdt / bpftrace count: **{r['pyusdt / bpftrace-count']:.2f}x** "
            f"(per round: {', '.join(f'{x:.2f}' for x in res['per_round_ratio_pyusdt_over_count'])})",
            f"- bpftrace printf / pyusdt: **{r['bpftrace-printf / pyusdt']:.2f}x**",
            f"- pyusdt reader CPU per event: **{res['pyusdt_cpu_ns_per_event']:.0f} ns** "
            f"(user + sys of the Python process from start() to the last batch; runs: "
            f"{', '.join(f'{x:.0f}' for x in res['pyusdt_cpu_ns_per_event_runs'])}), "
            f"{res['pyusdt_events_per_batch']:.0f} events per batch, "
            f"start() {res['pyusdt_start_ms']:.0f} ms",
            "- Checked: bpftrace's count equals N; its printf file holds N lines, the last one right, and "
            "no \"Lost N events\" message; pyusdt received N events minus the ones it reports lost, the "
            "kernel counted N hits and, with nothing lost, the three argument sums are exact.  Events "
            "\"missing, not reported as lost\" are fires that produced neither an output line nor a loss "
            "message."]
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    r = res["ratios"]
    labels = ["pyusdt\n/ bpftrace count", "bpftrace printf\n/ bpftrace count", "bpftrace printf\n/ pyusdt"]
    values = [r["pyusdt / bpftrace-count"], r["bpftrace-printf / bpftrace-count"], r["bpftrace-printf / pyusdt"]]
    bar_panel(ax, labels, values, "ns per fire, ratio of medians", "Streaming: cost per fire")



def headline(res: dict) -> list:
    r = res["ratios"]
    return [("ns/fire: none / bpftrace count / bpftrace printf / pyusdt",
             " / ".join(f"{res['ns_per_fire'][m]:.0f}" for m in MODES)),
            ("pyusdt / bpftrace count (ns per fire)", f"**{r['pyusdt / bpftrace-count']:.2f}x**"),
            ("bpftrace printf / pyusdt (ns per fire)", f"**{r['bpftrace-printf / pyusdt']:.2f}x**"),
            ("pyusdt reader CPU per event", f"{res['pyusdt_cpu_ns_per_event']:.0f} ns"),
            ("lost events (max per run): bpftrace printf / pyusdt",
             f"{res['lost_max']['bpftrace-printf']} / {res['lost_max']['pyusdt']}")]
