"""Suite section "stream": the cost of each fire when every event is streamed,
and how far each tracer is from the physical floors.

The workload and the tracers' modes and checks are bench/stream.py's
(imported, not copied); the floors are bench/floor.py's:

  none                 the bare loop
  floor-empty          an empty BPF program at the site: the uprobe hit alone
  floor-ring-compact   a ring-buffer-only program: reserve + submit a record of
  floor-ring-record    pyusdt's size for this probe (header + 3 arguments) / of
                       a whole row (all 12 argument slots), a reader consuming
  floor-ring-ts        the compact record stamped with bpf_ktime_get_ns(), as
                       every pyusdt event is: the floor of a timestamped stream
  bpftrace-P-count     bpftrace P's count() (in the kernel), for each peer P
  bpftrace-P-printf    bpftrace P's printf of the three arguments, to a file
  pyusdt               pyusdt streaming every event into numpy

Round-robin, median of R runs; the ratios are of the medians.
"""
from __future__ import annotations

import argparse
import os

import floor
import peers
import stream
from suite_common import bar_panel, compile_c, median

NAME = "stream"
TITLE = "Streaming every event, against the floors"
FLOORS = ("floor-empty", "floor-ring-compact", "floor-ring-record", "floor-ring-ts")
COUNTS = tuple(peers.mode(p, "count") for p in peers.PEERS)
PRINTFS = tuple(peers.mode(p, "printf") for p in peers.PEERS)
MODES = ("none",) + FLOORS + COUNTS + PRINTFS + ("pyusdt",)
# 11 rounds in a full run: on this 2-CPU machine single rounds of pyusdt /
# count() spread from 0.9x to 1.5x, and two 5-round medians minutes apart
# differed by 0.14x.
SETTINGS = {"full": {"n": 1_000_000, "repeat": 11}, "quick": {"n": 200_000, "repeat": 3}}


def run_floor(loader: str, kind: str, exe: str, offset: int, n: int, tmp: str, record_bytes=None) -> dict:
    res_path = os.path.join(tmp, "floor.result")
    if os.path.exists(res_path):
        os.unlink(res_path)
    got = floor.run(loader, kind, exe, offset, [exe, str(n), res_path], record_bytes)
    with open(res_path) as f:
        ns = stream.parse_workload(f.read(), n, f"floor {kind}")
    if kind not in floor.RING_KINDS:  # nothing leaves the empty program: nothing to count
        return {"ns_per_fire": ns, "fired": n, "received": None, "lost": None, "verified": True}
    return {"ns_per_fire": ns, "fired": n, "received": got["consumed"], "lost": got["dropped"],
            "verified": got["consumed"] + got["dropped"] == n and got["dropped"] == 0}


def run(settings: dict, tmp: str, log) -> dict:
    n, repeat = settings["n"], settings["repeat"]
    peers.ensure(log)
    exe = compile_c(stream.WORKLOAD_SRC, f"{tmp}/workload")
    loader = floor.build(tmp)
    provider, probe = stream.PROBE.split(":")
    offset = floor.site_offset(exe, provider, probe)
    sizes = floor.record_sizes()
    opts = argparse.Namespace(ringbuf_bytes=None, wakeup_bytes=None, timeout=0.1, pace=0.01)
    runners = {
        "none": lambda: stream.run_none(exe, n, tmp),
        "floor-empty": lambda: run_floor(loader, "empty", exe, offset, n, tmp),
        "floor-ring-compact": lambda: run_floor(loader, "ring", exe, offset, n, tmp, sizes["compact"]),
        "floor-ring-record": lambda: run_floor(loader, "ring", exe, offset, n, tmp, sizes["record"]),
        "floor-ring-ts": lambda: run_floor(loader, "ring-ts", exe, offset, n, tmp, sizes["compact"]),
        "pyusdt": lambda: stream.run_pyusdt(exe, n, tmp, opts, paced=False),
    }
    for p in peers.PEERS:
        tool = {"bpftrace": peers.argv(p), "env": peers.env()}
        runners[peers.mode(p, "count")] = \
            lambda p=p, tool=tool: stream.run_bpftrace_count(exe, n, tmp, peers.mode(p, "count"), **tool)
        runners[peers.mode(p, "printf")] = \
            lambda p=p, tool=tool: stream.run_bpftrace_printf(exe, n, tmp, peers.mode(p, "printf"), **tool)
    runs = {m: [] for m in MODES}
    for r in range(repeat):
        for m in MODES:
            res = runners[m]()
            runs[m].append(res)
            extra = "" if res.get("received") is None else (
                f" received={res['received']} lost={res['lost']}" + (" ok" if res["verified"] else " CHECK FAILED"))
            log(f"stream round {r + 1}/{repeat} {m:<20} {res['ns_per_fire']:9.1f} ns/fire{extra}")
    return summarize(runs, n, repeat, sizes)


def summarize(runs: dict, n: int, repeat: int, sizes: dict) -> dict:
    med = {m: median([r["ns_per_fire"] for r in runs[m]]) for m in MODES}
    counted = [m for m in MODES if runs[m][0].get("received") is not None]
    py = runs["pyusdt"]
    bad = [m for m in MODES if m != "none" and not all(r["verified"] for r in runs[m])]
    ratios = {}
    for p in peers.PEERS:
        count, printf = peers.mode(p, "count"), peers.mode(p, "printf")
        ratios[f"pyusdt / {count}"] = med["pyusdt"] / med[count]
        ratios[f"{printf} / pyusdt"] = med[printf] / med["pyusdt"]
        # The floor beside that ratio: the least a streamer using a ring
        # buffer with pyusdt's record size (compact: pyusdt sizes a record
        # to its probe's arguments) could cost against this count().
        ratios[f"floor-ring-record / {count}"] = med["floor-ring-record"] / med[count]
        ratios[f"floor-ring-compact / {count}"] = med["floor-ring-compact"] / med[count]
        ratios[f"floor-ring-ts / {count}"] = med["floor-ring-ts"] / med[count]
    return {
        "n": n, "repeat": repeat, "record_bytes": sizes, "bpftrace_versions": peers.versions(),
        "ns_per_fire": med,
        "ns_per_fire_min": {m: min(r["ns_per_fire"] for r in runs[m]) for m in MODES},
        "ns_per_fire_max": {m: max(r["ns_per_fire"] for r in runs[m]) for m in MODES},
        "lost_max": {m: max(r["lost"] for r in runs[m]) for m in counted},
        "received_min": {m: min(r["received"] for r in runs[m]) for m in counted},
        "verified": {m: all(r["verified"] for r in runs[m]) for m in MODES if m != "none"},
        # Events neither received nor reported lost (a tracer dropping silently).
        "unaccounted_max": {m: max(r["fired"] - r["received"] - r["lost"] for r in runs[m]) for m in counted},
        "failed_runs": {m: sum(not r["verified"] for r in runs[m]) for m in MODES if m != "none"},
        "check_note": f"checks failed in: {', '.join(bad)}" if bad else "",
        "pyusdt_cpu_ns_per_event": median([r["cpu_ns_per_event"] for r in py]),
        "pyusdt_events_per_batch": median([r["received"] / max(r["batches"], 1) for r in py]),
        "pyusdt_start_ms": median([r["start_s"] for r in py]) * 1000,
        "ratios": ratios,
        "per_round_pyusdt_over_count": {
            c: [a["ns_per_fire"] / b["ns_per_fire"] for a, b in zip(py, runs[c])] for c in COUNTS},
        "pyusdt_cpu_ns_per_event_runs": [r["cpu_ns_per_event"] for r in py],
    }


def describe(res: dict) -> dict:
    """Mode -> what it is, for the table."""
    sizes = res["record_bytes"]
    out = {"none": "the bare loop",
           "floor-empty": "empty BPF program at the site: the uprobe hit alone",
           "floor-ring-compact": f"ring buffer only: reserve + submit {sizes['compact']} B (pyusdt's record for "
                                 "3 arguments), a reader consuming",
           "floor-ring-record": f"ring buffer only: reserve + submit {sizes['record']} B (a whole row, all 12 "
                                "argument slots), a reader consuming",
           "floor-ring-ts": f"ring buffer + timestamp: the {sizes['compact']} B record with bpf_ktime_get_ns() "
                            "in it, as every pyusdt event has",
           "pyusdt": "pyusdt: every event into numpy"}
    for p in peers.PEERS:
        out[peers.mode(p, "count")] = f"{peers.label(p)} `count()` in the kernel"
        out[peers.mode(p, "printf")] = f"{peers.label(p)} `printf` of the 3 arguments, to a file"
    return out


def _check_text(res: dict, m: str) -> str:
    if m == "floor-empty":
        return "n/a (nothing leaves it)"
    if res["verified"][m]:
        return "exact"
    text = f"**{res['failed_runs'][m]} of {res['repeat']} runs failed**"
    missing = res["unaccounted_max"].get(m, 0)
    if missing > 0:
        text += f": up to {missing:,} events missing, not reported as lost"
    elif res["lost_max"].get(m):
        text += ": events lost (reported)"
    return text


def markdown(res: dict) -> str:
    med = res["ns_per_fire"]
    what = describe(res)
    empty = med["floor-empty"]
    out = [f"The workload (bench/workload.c) fires `bench:fire(i, i*3, i & 0xffff)` "
           f"N = {res['n']:,} times in a tight loop and times its own loop; median of "
           f"{res['repeat']} round-robin rounds.  The floors (bench/floor.py) are bench-only BPF programs "
           "attached by a tiny libbpf loader at the same site, as a pid-filtered uprobe on the held "
           "command, as bpftrace and pyusdt attach.", "",
           "| mode | what | ns/fire (median) | min | max | added vs none | above the uprobe floor | "
           "events received (min) | lost (max) | checked |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in MODES:
        row = f"| {m} | {what[m]} | {med[m]:.1f} | {res['ns_per_fire_min'][m]:.1f} | {res['ns_per_fire_max'][m]:.1f}"
        if m == "none":
            out.append(row + " | | | | | |")
            continue
        above = "" if m == "floor-empty" else f"{med[m] - empty:.1f}"
        recv = (f"{res['received_min'][m]:,} / {res['n']:,}" if m in res["received_min"] else "")
        lost = str(res["lost_max"][m]) if m in res["lost_max"] else ""
        out.append(f"{row} | {med[m] - med['none']:.1f} | {above} | {recv} | {lost} | {_check_text(res, m)} |")
    r = res["ratios"]
    out.append("")
    for p in peers.PEERS:
        count, printf = peers.mode(p, "count"), peers.mode(p, "printf")
        out.append(f"- pyusdt / {peers.label(p, 'count')}: **{r[f'pyusdt / {count}']:.2f}x** (per round: "
                   + ", ".join(f"{x:.2f}" for x in res["per_round_pyusdt_over_count"][count])
                   + f"); the floor beside it, ring buffer only / {peers.label(p, 'count')}: "
                   f"{r[f'floor-ring-compact / {count}']:.2f}x at {res['record_bytes']['compact']} B (pyusdt's "
                   f"record), {r[f'floor-ring-record / {count}']:.2f}x at {res['record_bytes']['record']} B; "
                   f"with a timestamp, as pyusdt's records have: {r[f'floor-ring-ts / {count}']:.2f}x")
        out.append(f"- {peers.label(p, 'printf')} / pyusdt: **{r[f'{printf} / pyusdt']:.2f}x**")
    out += [f"- Distance to the floors: pyusdt costs {med['pyusdt'] - med['floor-ring-compact']:.0f} ns per fire "
            f"more than the ring buffer alone with its record size, "
            f"{med['pyusdt'] - empty:.0f} ns more than the uprobe hit alone; "
            f"the ring buffer itself costs {med['floor-ring-record'] - empty:.0f} ns "
            f"({res['record_bytes']['record']} B) / {med['floor-ring-compact'] - empty:.0f} ns "
            f"({res['record_bytes']['compact']} B) above the empty program, and reading the clock for the "
            f"record's timestamp {med['floor-ring-ts'] - med['floor-ring-compact']:.0f} ns more; pyusdt costs "
            f"{med['pyusdt'] - med['floor-ring-ts']:.0f} ns more than that timestamped record (finding the "
            "site, the pid filter, reading 3 arguments, the wake-up decision, counting).",
            f"- pyusdt reader CPU per event: **{res['pyusdt_cpu_ns_per_event']:.0f} ns** "
            f"(user + sys of the Python process from start() to the last batch; runs: "
            f"{', '.join(f'{x:.0f}' for x in res['pyusdt_cpu_ns_per_event_runs'])}), "
            f"{res['pyusdt_events_per_batch']:.0f} events per batch, "
            f"start() {res['pyusdt_start_ms']:.0f} ms",
            "- The ring floor's program submits without a wakeup and its reader drains every 1 ms (the "
            "cheapest arrangement for the producer); it stores one word of each record and the reader sums "
            "them, so it is checked like a tracer: records consumed + dropped == N, none dropped.",
            "- Checked: bpftrace's count equals N; its printf file holds N lines, the last one right, and "
            "no \"Lost N events\" message; pyusdt received N events minus the ones it reports lost, the "
            "kernel counted N hits and, with nothing lost, the three argument sums are exact.  Events "
            "\"missing, not reported as lost\" are fires that produced neither an output line nor a loss "
            "message."]
    below = [m for m in MODES if m not in ("none",) + FLOORS and med[m] < empty]
    if below or med["floor-ring-record"] < empty:
        # Nothing can cost less than the empty program at the same site.
        out.append("- **Not a result: " + ", ".join(below + (["a ring floor"] if med["floor-ring-record"] < empty
                                                             else []))
                   + " measured below the empty program's floor; the machine was not quiet (see the other load "
                   "above): re-run.**")
    if res.get("check_note"):
        out.append(f"- **{res['check_note']}**")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    r = res["ratios"]
    labels, values = [], []
    for p in peers.PEERS:
        labels.append(f"pyusdt\n/ bt {p} count")
        values.append(r[f"pyusdt / {peers.mode(p, 'count')}"])
    labels.append("floor: ring only\n/ bt 0.23 count")
    values.append(r[f"floor-ring-compact / {peers.mode('0.23', 'count')}"])
    for p in peers.PEERS:
        labels.append(f"bt {p} printf\n/ pyusdt")
        values.append(r[f"{peers.mode(p, 'printf')} / pyusdt"])
    bar_panel(ax, labels, values, "ns per fire, ratio of medians", "Streaming: cost per fire", log=True)


def headline(res: dict) -> list:
    r, med = res["ratios"], res["ns_per_fire"]
    shown = ("none", "floor-empty", "floor-ring-compact", "floor-ring-record") + COUNTS + ("pyusdt",)
    sizes = res["record_bytes"]
    out = [(f"ns/fire: none / empty BPF program / ring only {sizes['compact']} B / {sizes['record']} B / "
            + " / ".join(peers.label(p, "count") for p in peers.PEERS) + " / pyusdt",
            " / ".join(f"{med[m]:.0f}" for m in shown))]
    for p in peers.PEERS:
        count = peers.mode(p, "count")
        out.append((f"pyusdt / {peers.label(p, 'count')} (ns per fire; floor: ring only {sizes['compact']} B "
                    f"/ {peers.label(p, 'count')})",
                    f"**{r[f'pyusdt / {count}']:.2f}x** (floor {r[f'floor-ring-compact / {count}']:.2f}x; "
                    f"with a timestamp {r[f'floor-ring-ts / {count}']:.2f}x)"))
    for p, printf in zip(peers.PEERS, PRINTFS):
        out.append((f"{peers.label(p, 'printf')} / pyusdt (ns per fire)", f"**{r[f'{printf} / pyusdt']:.2f}x**"))
    out += [("pyusdt reader CPU per event", f"{res['pyusdt_cpu_ns_per_event']:.0f} ns"),
            ("lost events (max per run): " + " / ".join(peers.label(p, "printf") for p in peers.PEERS) + " / pyusdt",
             " / ".join(str(res["lost_max"][m]) for m in PRINTFS + ("pyusdt",)))]
    return out
