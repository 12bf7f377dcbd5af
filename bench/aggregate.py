#!/usr/bin/env python3
"""Aggregation benchmark: pyusdt's in-kernel count and hist against bpftrace's.

    python bench/aggregate.py [--n N] [--repeat R] [--json PATH] [--nop5]

One run measures, with the workload of bench/stream.py (bench/workload.c,
built here with gcc -O2 into a temporary directory; it fires
bench:fire(i, i*3, i & 0xffff) for i in 0..N-1):

  none            the workload alone, no tracer
  bpftrace-count  bpftrace -e 'usdt:W:bench:fire { @ = count(); }'
  pyusdt-count    Tracer.attach_command(..., aggregate=Aggregate("count"))
  bpftrace-hist   bpftrace -e 'usdt:W:bench:fire { @ = hist(arg0); }'
  pyusdt-hist     Tracer.attach_command(..., aggregate=Aggregate("hist", value=0))
  pyusdt-sum      Aggregate("sum", value=1, key=Arg(2)): the fixed path, 65536 keys
  pyusdt-sum-expr Aggregate("sum", value="arg1", key="arg2"): the same sums,
                  computed by the expression interpreter (what an expression
                  costs per hit, beyond the fixed path)
  bpftrace-expr   bpftrace -e 'usdt:W:bench:fire /arg2 % 3 != 1/ { @[arg0 % 8] = sum(arg1 / 3); }'
  pyusdt-expr     Aggregate("sum", value="arg1 / 3", key="arg0 % 8", where="arg2 % 3 != 1")

Nothing leaves the kernel per hit in any traced mode: the cost per fire is the
uprobe plus the BPF program.  The workload prints its own loop time per fire;
each mode's figure is the median of R repeats, run round-robin so that drift
in the machine hits every mode alike.  pyusdt reads with
`for _ in t.batches(timeout=0.1)` until the command exits (no batch comes:
its sites aggregate), then reads the aggregation.

Every traced run is checked exactly: bpftrace's and pyusdt's count must be N
(pyusdt's counters: hits N, nothing filtered, map_full 0, read_fail 0, no
event streamed); both histograms (bpftrace's parsed from its printed map)
must hold exactly the log2 buckets of 0..N-1, and pyusdt's must equal the
bpftrace histogram of the same round bucket for bucket.  Whether pyusdt's
rendering of the map is byte-identical to bpftrace's is reported too.
(bpftrace 0.17's hist() is wrong for values >= 2^31; arg0 < N keeps clear.)

Targets (reported as PASS/FAIL, never asserted):
  pyusdt-count per fire   <= 1.1x bpftrace-count
  pyusdt-hist per fire    <= 1.1x bpftrace-hist
  pyusdt-expr per fire    <= 1.1x bpftrace-expr
  every traced run exact

Needs root (BPF, uprobes), gcc, systemtap-sdt-dev (sys/sdt.h) and bpftrace.
Shared helpers (building the workload, tracefs, the background-load meter)
come from bench/stream.py, which this script imports unchanged.

Investigation: --bpf-stats turns on kernel.bpf_stats_enabled for the run
(restored afterwards) and reports, per traced mode, the BPF program's own
run time per hit (run_time_ns / run_cnt from the program's fdinfo), which
separates the program from the uprobe around it.  It adds two clock reads per
hit to every traced mode, so its ns/fire are not the benchmark's figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import stream  # noqa: E402  (bench/stream.py: workload build, tracefs, noise meter)
from stream import BenchError, NoiseMeter, background_line, build_workload, ensure_tracefs, finish, mark, parse_workload  # noqa: E402

PROBE = stream.PROBE
MODES = ("none", "bpftrace-count", "pyusdt-count", "bpftrace-hist", "pyusdt-hist", "pyusdt-sum",
         "pyusdt-sum-expr", "bpftrace-expr", "pyusdt-expr")
PAIRS = (("pyusdt-count", "bpftrace-count"), ("pyusdt-hist", "bpftrace-hist"), ("pyusdt-expr", "bpftrace-expr"),
         ("pyusdt-sum-expr", "pyusdt-sum"))
EXPR_COST = ("pyusdt-sum-expr", "pyusdt-sum")
# The expression modes' map: its predicate, key and value (bpftrace's syntax, both tools).
EXPR_WHERE, EXPR_KEY, EXPR_VALUE = "arg2 % 3 != 1", "arg0 % 8", "arg1 / 3"
# pyusdt-sum's keys: arg2 = i & 0xffff takes 65536 values.
SUM_KEYS = 1 << 16
TARGET_RATIO = 1.1  # pyusdt ns/fire <= 1.1 x bpftrace's, for count and for hist

HIST_ROW_RE = re.compile(r"^(\(\.\.\., 0\)|\[[^\]]*[\])])\s+(\d+) \|")


# -- exact expectations ----------------------------------------------------------


def expected_log2_hist(n: int) -> dict:
    """{bucket index: count} of the log2 histogram of 0..n-1 (pyusdt's indexes:
    1 is [0], 2 is [1], k >= 3 is [2^(k-2), 2^(k-1)))."""
    out = {1: 1} if n >= 1 else {}
    k = 2
    while (lo := 1 << (k - 2)) < n:
        hi = min(1 << (k - 1), n)
        out[k] = hi - lo
        k += 1
    return out


def parse_bpftrace_hist(text: str) -> dict:
    """bpftrace's printed hist() map -> {pyusdt bucket index: count}."""
    from pyusdt.aggregate.histogram import LOG2_BUCKETS, hist_label

    index = {hist_label(i): i for i in range(LOG2_BUCKETS)}
    out = {}
    for line in text.splitlines():
        m = HIST_ROW_RE.match(line)
        if not m:
            continue
        label = m.group(1)
        if label not in index:
            raise BenchError(f"bpftrace-hist: unknown bucket label {label!r}")
        count = int(m.group(2))
        if count:
            out[index[label]] = count
    return out


def bpftrace_map_text(text: str) -> str:
    """bpftrace's -o output from its first map line on (drops "Attaching 1 probe...")."""
    m = re.search(r"^@", text, re.M)
    return text[m.start():] if m else text


def _nonzero(counts) -> dict:
    return {i: int(c) for i, c in enumerate(counts) if int(c)}


# -- BPF program statistics (--bpf-stats) ---------------------------------------------


def prog_fd_stats(pid: int) -> dict:
    """{prog_id: (run_time_ns, run_cnt)} of every BPF program process `pid` holds an fd of."""
    out = {}
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return out
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
            out[int(info["prog_id"])] = (int(info["run_time_ns"]), int(info["run_cnt"]))
        except (OSError, KeyError, ValueError):
            continue
    return out


def busiest(stats: dict) -> dict:
    """The program that ran the most (the one at the probe): its ns per run."""
    if not stats:
        return {}
    pid_, (ns, cnt) = max(stats.items(), key=lambda kv: kv[1][1])
    return {"prog_id": pid_, "run_time_ns": ns, "run_cnt": cnt,
            "prog_ns_per_run": ns / cnt if cnt else float("nan")}


class FdPoller(threading.Thread):
    """Polls a process's BPF program fdinfo until stopped; keeps the last reading
    (bpftrace unloads its program when it exits, so it must be read while it runs)."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.last: dict = {}
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            s = prog_fd_stats(self.pid)
            if s and max(c for _, c in s.values()) >= max((c for _, c in self.last.values()), default=0):
                self.last = s
            self._halt.wait(self.interval)

    def stop(self) -> dict:
        self._halt.set()
        self.join()
        return self.last


def set_bpf_stats(on: bool) -> int:
    """Sets kernel.bpf_stats_enabled; returns the previous value."""
    path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(path) as f:
        prev = int(f.read().strip() or 0)
    with open(path, "w") as f:
        f.write("1" if on else "0")
    return prev


# -- one run of each mode -------------------------------------------------------------


def run_none(exe: str, n: int, tmp: str, opts) -> dict:
    return stream.run_none(exe, n, tmp)


def _bpftrace(exe: str, n: int, tmp: str, program: str, what: str, opts, **bpftrace) -> tuple:
    """Runs the workload under bpftrace; returns (ns/fire, bpftrace's -o output, wall s, prog stats).
    bpftrace: stream.run_under_bpftrace's bpftrace= and env= (which bpftrace runs)."""
    def watch(pid: int) -> FdPoller:
        poller = FdPoller(pid)
        poller.start()
        return poller

    ns, out_path, wall, seen = stream.run_under_bpftrace(exe, n, tmp, program, what,
                                                         watch if opts.bpf_stats else None, **bpftrace)
    with open(out_path) as f:
        text = f.read()
    os.unlink(out_path)
    return ns, text, wall, busiest(seen) if seen is not None else {}


def run_bpftrace_count(exe: str, n: int, tmp: str, opts, what: str = "bpftrace-count", **bpftrace) -> dict:
    program = f"usdt:{exe}:{PROBE} {{ @ = count(); }}"
    ns, text, wall, prog = _bpftrace(exe, n, tmp, program, what, opts, **bpftrace)
    m = re.search(r"^@: (\d+)$", text, re.M)
    if not m:
        raise BenchError(f"{what}: no '@: N' in its output: {text.strip()[:300]!r}")
    count = int(m.group(1))
    return {"ns_per_fire": ns, "fired": n, "total": count, "verified": count == n,
            "why": "" if count == n else f"count {count} != {n}", "wall_s": wall, "prog": prog}


def run_bpftrace_hist(exe: str, n: int, tmp: str, opts, what: str = "bpftrace-hist", **bpftrace) -> dict:
    program = f"usdt:{exe}:{PROBE} {{ @ = hist(arg0); }}"
    ns, text, wall, prog = _bpftrace(exe, n, tmp, program, what, opts, **bpftrace)
    buckets = parse_bpftrace_hist(text)
    ok = buckets == expected_log2_hist(n)
    return {"ns_per_fire": ns, "fired": n, "total": sum(buckets.values()), "verified": ok,
            "why": "" if ok else "buckets differ from the log2 histogram of 0..N-1",
            "buckets": buckets, "text": text, "wall_s": wall, "prog": prog}


def expected_expr_sums(n: int) -> dict:
    """{arg0 % 8: sum of arg1 / 3} over the fires where arg2 % 3 != 1: the
    expression modes' map, computed here."""
    import numpy as np

    i = np.arange(n, dtype=np.int64)
    keep = (i & 0xFFFF) % 3 != 1
    return {k: int(i[keep & (i % 8 == k)].sum()) for k in range(8) if (keep & (i % 8 == k)).any()}


def run_bpftrace_expr(exe: str, n: int, tmp: str, opts, what: str = "bpftrace-expr", **bpftrace) -> dict:
    program = f"usdt:{exe}:{PROBE} /{EXPR_WHERE}/ {{ @[{EXPR_KEY}] = sum({EXPR_VALUE}); }}"
    ns, text, wall, prog = _bpftrace(exe, n, tmp, program, what, opts, **bpftrace)
    sums = {int(k): int(v) for k, v in re.findall(r"^@\[(\d+)\]: (-?\d+)$", text, re.M)}
    ok = sums == expected_expr_sums(n)
    return {"ns_per_fire": ns, "fired": n, "total": sum(sums.values()), "verified": ok,
            "why": "" if ok else f"sums {sums} differ from the expected", "wall_s": wall, "prog": prog}


def run_pyusdt(exe: str, n: int, tmp: str, opts, kind: str) -> dict:
    from pyusdt import Tracer
    from pyusdt.aggregate.specs import Aggregate, Arg

    res_path = os.path.join(tmp, f"pyusdt-{kind}.result")
    if os.path.exists(res_path):
        os.unlink(res_path)
    spec = {"count": lambda: Aggregate("count"), "hist": lambda: Aggregate("hist", value=0),
            "sum": lambda: Aggregate("sum", value=1, key=Arg(2)),
            "sum-expr": lambda: Aggregate("sum", value="arg1", key="arg2"),
            "expr": lambda: Aggregate("sum", value=EXPR_VALUE, key=EXPR_KEY, where=EXPR_WHERE)}[kind]()
    w0 = time.monotonic()
    t = Tracer(max_agg_keys=2 * SUM_KEYS)
    try:
        held = t.attach_command([exe, str(n), res_path], PROBE, aggregate=spec)
        s0 = time.monotonic()
        t.start()
        start_s = time.monotonic() - s0
        c0 = time.process_time()
        batches = streamed = 0
        for batch in t.batches(timeout=0.1):  # returns when the command exits
            batches += 1
            streamed += len(batch)
        cpu_s = time.process_time() - c0
        r = t.aggregation(spec)
        hits = sum(s.hits for s in t.stats() if s.probe == PROBE)
        prog = busiest(prog_fd_stats(os.getpid())) if opts.bpf_stats else {}
        held.wait()
    finally:
        t.close()
    wall = time.monotonic() - w0
    if held.returncode != 0:
        raise BenchError(f"pyusdt-{kind}: the workload exited with {held.returncode}")
    with open(res_path) as f:
        ns = parse_workload(f.read(), n, f"pyusdt-{kind}")
    c = r.counters
    why = []
    passed = n
    if kind == "expr":
        expected = expected_expr_sums(n)
        passed = n - c.filtered
        got = {k: r.value(k) for k in r.keys}
        if got != expected:
            why.append(f"sums {got} differ from the expected {expected}")
    elif kind in ("sum", "sum-expr"):
        sums = {k: r.value(k) for k in r.keys}
        if len(sums) != min(n, SUM_KEYS) or sum(sums.values()) != 3 * (n * (n - 1) // 2):
            why.append(f"{len(sums)} keys summing to {sum(sums.values())}")
    elif r.total != n:
        why.append(f"total {r.total} != {n}")
    if c.map_full:
        why.append(f"map_full {c.map_full}")
    if c.hits != passed or hits != n:
        why.append(f"hits {c.hits} (probe {hits}) != {passed}")
    if (c.filtered and kind != "expr") or c.read_fail:
        why.append(f"filtered {c.filtered} read_fail {c.read_fail}")
    if streamed:
        why.append(f"{streamed} events streamed")
    out = {"ns_per_fire": ns, "fired": n, "total": r.total, "counters": dict(c.__dict__),
           "cpu_s": cpu_s, "start_s": start_s, "wall_s": wall, "prog": prog}
    if kind == "hist":
        buckets = _nonzero(r.hist().counts)
        if buckets != expected_log2_hist(n):
            why.append("buckets differ from the log2 histogram of 0..N-1")
        out["buckets"] = buckets
        out["text"] = r.render()
    out["verified"] = not why
    out["why"] = "; ".join(why)
    return out


# -- report ---------------------------------------------------------------------------


def cross_check(runs: dict, bpftrace_mode: str = "bpftrace-hist") -> None:
    """pyusdt-hist's buckets against those of `bpftrace_mode` (a bpftrace hist
    mode) of the same round; rendering too.  Each check is and-ed into the
    pyusdt run's verdict, so it can be called once per bpftrace peer."""
    py, bt = runs.get("pyusdt-hist", []), runs.get(bpftrace_mode, [])
    for p, b in zip(py, bt):
        same = p["buckets"] == b["buckets"]
        identical = p["text"].strip("\n") == bpftrace_map_text(b["text"]).strip("\n")
        p["same_buckets_as_bpftrace"] = p.get("same_buckets_as_bpftrace", True) and same
        p["render_identical"] = p.get("render_identical", True) and identical
        p.setdefault("same_buckets_as", {})[bpftrace_mode] = same
        p.setdefault("render_identical_to", {})[bpftrace_mode] = identical
        if not same:
            p["verified"] = False
            p["why"] = "; ".join(x for x in (p["why"], f"buckets differ from {bpftrace_mode}'s") if x)


def summarize(runs: dict) -> dict:
    out = {}
    for mode, rs in runs.items():
        ns = [r["ns_per_fire"] for r in rs]
        s = {"ns_per_fire_median": statistics.median(ns), "ns_per_fire_min": min(ns),
             "ns_per_fire_max": max(ns)}
        if mode != "none":
            s["verified"] = all(r["verified"] for r in rs)
            s["failures"] = [r["why"] for r in rs if not r["verified"]]
            s["wall_s_median"] = statistics.median(r["wall_s"] for r in rs)
            progs = [r["prog"]["prog_ns_per_run"] for r in rs if r.get("prog")]
            if progs:
                s["prog_ns_per_run_median"] = statistics.median(progs)
        if mode.startswith("pyusdt"):
            s["cpu_ms_median"] = statistics.median(r["cpu_s"] for r in rs) * 1000
            s["start_ms_median"] = statistics.median(r["start_s"] for r in rs) * 1000
            s["map_full_total"] = sum(r["counters"]["map_full"] for r in rs)
        if mode == "pyusdt-hist" and rs and "same_buckets_as_bpftrace" in rs[0]:
            s["same_buckets_as_bpftrace"] = all(r["same_buckets_as_bpftrace"] for r in rs)
            s["render_identical"] = all(r["render_identical"] for r in rs)
            for key in ("same_buckets_as", "render_identical_to"):
                s[key] = {bt: all(r[key][bt] for r in rs) for bt in rs[0].get(key, {})}
        # The bulky per-run fields stay out of the JSON.
        s["runs"] = [{k: v for k, v in r.items() if k not in ("text",)} for r in rs]
        out[mode] = s
    return out


def print_table(summary: dict, n: int, repeat: int, config: dict, background: dict) -> None:
    base = summary.get("none", {}).get("ns_per_fire_median")
    print(f"\npyusdt aggregation benchmark: probe {PROBE}, N={n} fires per run, median of {repeat} runs")
    print(f"config: {json.dumps(config)}")
    print(background_line(background))
    print()
    stats_col = any("prog_ns_per_run_median" in s for s in summary.values())
    hdr = (f"{'mode':<15} {'ns/fire':>9} {'min':>9} {'max':>9} {'+ns vs none':>11} {'check':>6} "
           f"{'setup+run s':>11} {'py CPU ms':>9}" + (f" {'BPF ns/run':>10}" if stats_col else ""))
    print(hdr)
    print("-" * len(hdr))
    for mode, s in summary.items():
        med = s["ns_per_fire_median"]
        tracer = mode != "none"
        chk = ("ok" if s["verified"] else "BAD") if tracer else "-"
        added = f"{med - base:.1f}" if (base is not None and tracer) else "-"
        wall = f"{s['wall_s_median']:.2f}" if tracer else "-"
        cpu = f"{s['cpu_ms_median']:.1f}" if mode.startswith("pyusdt") else "-"
        line = (f"{mode:<15} {med:>9.1f} {s['ns_per_fire_min']:>9.1f} {s['ns_per_fire_max']:>9.1f} "
                f"{added:>11} {chk:>6} {wall:>11} {cpu:>9}")
        if stats_col:
            p = s.get("prog_ns_per_run_median")
            line += f" {p:>10.1f}" if p is not None else f" {'-':>10}"
        print(line)
    for mode, s in summary.items():
        for why in s.get("failures", []):
            print(f"  {mode}: CHECK FAILED: {why}")
    if "pyusdt-hist" in summary and "render_identical" in summary["pyusdt-hist"]:
        s = summary["pyusdt-hist"]
        print(f"pyusdt-hist buckets == bpftrace-hist's, every round: {s['same_buckets_as_bpftrace']}; "
              f"rendered map byte-identical: {s['render_identical']}")
    for mode in ("pyusdt-count", "pyusdt-hist"):
        if mode in summary:
            print(f"{mode}: start() {summary[mode]['start_ms_median']:.0f} ms, "
                  f"map_full {summary[mode]['map_full_total']} over {repeat} runs")
    if stats_col:
        print("(--bpf-stats: kernel.bpf_stats_enabled was on, which adds its own clock reads "
              "to every hit; 'BPF ns/run' is run_time_ns/run_cnt of the program at the probe)")


def print_targets(summary: dict) -> dict:
    ratios, targets = {}, {}
    base = summary.get("none", {}).get("ns_per_fire_median")
    if any(py in summary and bt in summary for py, bt in PAIRS):
        print("\nratios (of median ns/fire):")
    for py, bt in PAIRS:
        if py in summary and bt in summary:
            r = summary[py]["ns_per_fire_median"] / summary[bt]["ns_per_fire_median"]
            ratios[f"{py}_over_{bt}"] = r
            line = f"  {py} / {bt}".ljust(34) + f"{r:.3f}"
            if base is not None:  # what the tracers add to the bare loop
                add_py = summary[py]["ns_per_fire_median"] - base
                add_bt = summary[bt]["ns_per_fire_median"] - base
                if add_bt > 0:
                    ratios[f"{py}_over_{bt}_added"] = add_py / add_bt
                    line += f"   (added cost: {add_py:.1f} / {add_bt:.1f} ns = {add_py / add_bt:.3f})"
            print(line)
            if (py, bt) == EXPR_COST:
                # A measurement, not a target: what the interpreter adds per hit.
                if base is not None:
                    ratios["expression_ns_per_hit"] = summary[py]["ns_per_fire_median"] - \
                        summary[bt]["ns_per_fire_median"]
                    print(f"  an expression costs {ratios['expression_ns_per_hit']:.1f} ns per hit "
                          f"(pyusdt-sum-expr - pyusdt-sum: the same sums, interpreted)")
                continue
            targets[f"{py} <= {TARGET_RATIO}x {bt}"] = (r <= TARGET_RATIO, f"{r:.3f}x")
    traced = [m for m in summary if m != "none"]
    targets["every traced run exact"] = (all(summary[m]["verified"] for m in traced),
                                         "counts == N, map_full 0, hist buckets == bpftrace's")
    print("\ntargets:")
    for name, (ok, value) in targets.items():
        print(f"  [{mark(ok)}] {name:<38} {value}")
    return {"ratios": ratios, "targets": {k: {"pass": ok, "value": v} for k, (ok, v) in targets.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="probe fires per run (default 1000000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per mode; the median is reported (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of: " + ", ".join(MODES) + " (default: all)")
    ap.add_argument("--nop5", action="store_true",
                    help="build the probe site as a 5-byte nop (optimizable uprobe) instead of sdt.h's 1-byte nop")
    ap.add_argument("--bpf-stats", action="store_true",
                    help="investigation: enable kernel.bpf_stats_enabled and report each BPF program's ns per run")
    ap.add_argument("--keep", metavar="DIR", help="build the workload in DIR and keep it (default: a temp dir)")
    opts = ap.parse_args(argv)
    modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or opts.n <= 0 or opts.repeat <= 0:
        ap.error(f"unknown mode(s) {bad}" if bad else "--n and --repeat must be positive")
    if opts.n >= 1 << 31:
        ap.error("--n must be below 2^31 (bpftrace 0.17's hist() is wrong for values >= 2^31)")

    if os.geteuid() != 0:
        print("aggregate.py: needs root (BPF and uprobes)", file=sys.stderr)
        return 2
    for tool in ("gcc", "bpftrace"):
        if shutil.which(tool) is None and (tool == "gcc" or any(m.startswith("bpftrace") for m in modes)):
            print(f"aggregate.py: {tool} not found", file=sys.stderr)
            return 2
    prev_stats = set_bpf_stats(True) if opts.bpf_stats else None
    try:
        ensure_tracefs()
        with tempfile.TemporaryDirectory(prefix="pyusdt-bench-") as tmp:
            outdir = opts.keep or tmp
            os.makedirs(outdir, exist_ok=True)
            exe = build_workload(outdir, opts.nop5)
            runners = {
                "none": lambda: run_none(exe, opts.n, tmp, opts),
                "bpftrace-count": lambda: run_bpftrace_count(exe, opts.n, tmp, opts),
                "pyusdt-count": lambda: run_pyusdt(exe, opts.n, tmp, opts, "count"),
                "bpftrace-hist": lambda: run_bpftrace_hist(exe, opts.n, tmp, opts),
                "pyusdt-hist": lambda: run_pyusdt(exe, opts.n, tmp, opts, "hist"),
                "pyusdt-sum": lambda: run_pyusdt(exe, opts.n, tmp, opts, "sum"),
                "pyusdt-sum-expr": lambda: run_pyusdt(exe, opts.n, tmp, opts, "sum-expr"),
                "bpftrace-expr": lambda: run_bpftrace_expr(exe, opts.n, tmp, opts),
                "pyusdt-expr": lambda: run_pyusdt(exe, opts.n, tmp, opts, "expr"),
            }
            runs = {m: [] for m in modes}
            noise = NoiseMeter()
            t0 = time.monotonic()
            for r in range(opts.repeat):
                for m in modes:
                    res = runners[m]()
                    runs[m].append(res)
                    extra = ""
                    if m != "none":
                        verdict = " ok" if res["verified"] else f" CHECK FAILED: {res['why']}"
                        extra = f" total={res['total']}" + verdict
                    if res.get("prog"):
                        extra += f" bpf={res['prog']['prog_ns_per_run']:.1f}ns/run"
                    print(f"run {r + 1}/{opts.repeat} {m:<15} {res['ns_per_fire']:9.1f} ns/fire{extra}",
                          flush=True)
            elapsed = time.monotonic() - t0
            background = noise.stop()
    except BenchError as e:
        print(f"aggregate.py: {e}", file=sys.stderr)
        return 1
    finally:
        if prev_stats is not None:
            set_bpf_stats(bool(prev_stats))

    import numpy as np

    import pyusdt
    cross_check(runs)
    summary = summarize(runs)
    config = {"n": opts.n, "repeat": opts.repeat, "nop5": opts.nop5, "bpf_stats": opts.bpf_stats,
              "modes": modes}
    result = {"config": config,
              "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "numpy": np.__version__,
                          "bpftrace": subprocess.run(["bpftrace", "--version"], capture_output=True,
                                                     text=True).stdout.strip() if shutil.which("bpftrace") else None,
                          "pyusdt": getattr(pyusdt, "__version__", None)},
              "elapsed_s": elapsed, "background": background, "modes": summary}
    print_table(summary, opts.n, opts.repeat, config, background)
    result.update(print_targets(summary))
    finish(result, elapsed, opts.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
