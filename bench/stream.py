#!/usr/bin/env python3
"""Streaming benchmark: pyusdt against bpftrace on one USDT probe fired in a tight loop.

    python bench/stream.py [--n N] [--repeat R] [--json PATH]

One run measures, with the same workload binary (bench/workload.c, built here
with gcc -O2 into a temporary directory):

  none             the workload alone, no tracer
  bpftrace-count   bpftrace -e 'usdt:W:bench:fire { @ = count(); }'     (in-kernel count)
  bpftrace-printf  bpftrace printf("%d %d %d\\n", arg0, arg1, arg2) to a file (-o)
  pyusdt           Tracer.attach_command + batches(): every event streamed into
                   numpy; each batch's args column is summed and its rows counted
  pyusdt-paced     (optional, --modes) the same, but reading with one
                   Tracer.poll(0) every --pace seconds instead of batches(): what
                   a reader that lets records pile up into big batches costs
  pyusdt-fields    (optional, --modes) the same records, their three values
                   computed by the expression interpreter (fields="arg0, arg1,
                   arg2"): what an expression costs per hit when streaming

The workload prints its own loop time per fire; each mode's figure is the
median of R repeats, run round-robin so that drift in the machine hits every
mode alike.  pyusdt's CPU cost per event is the process CPU time (user + sys,
all threads) of this Python process from the return of start() until the last
batch, divided by the events received.  Every traced run is checked: bpftrace's
count must equal N, its printf file must hold N lines, and pyusdt must have
received N events minus the ones it reports lost, with argument sums exact.

Targets (reported, never asserted):
  pyusdt per-fire cost        <= 1.3x bpftrace count()
  bpftrace printf per fire    >= 4x pyusdt
  pyusdt CPU per event        <= 300 ns
  pyusdt lost events          == 0

Needs root (BPF, uprobes), gcc, systemtap-sdt-dev (sys/sdt.h) and bpftrace.
Investigation options (--ringbuf-bytes, --wakeup-bytes, --timeout, --modes
with pyusdt-paced, --pace, --nop5) change how pyusdt is driven or the probe
site; the defaults are pyusdt's own.

The machine has few CPUs and may be shared: the report gives the CPU time
other processes used during the run and the hypervisor's steal time, so a
noisy run can be recognised.
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
import time
from typing import Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD_SRC = os.path.join(HERE, "workload.c")
PROBE = "bench:fire"
MODES = ("none", "bpftrace-count", "bpftrace-printf", "pyusdt")  # the default run
EXTRA_MODES = ("pyusdt-paced", "pyusdt-fields")
FIELDS = "arg0, arg1, arg2"  # pyusdt-fields: the arguments, through the interpreter
RESULT_RE = re.compile(r"ns_per_fire=([0-9.]+) n=([0-9]+) total_ns=([0-9]+)")

TARGET_PYUSDT_VS_COUNT = 1.3  # pyusdt ns/fire <= 1.3 x bpftrace count()
TARGET_PRINTF_VS_PYUSDT = 4.0  # bpftrace printf ns/fire >= 4 x pyusdt
TARGET_CPU_NS_PER_EVENT = 300.0
TARGET_LOST = 0


class BenchError(Exception):
    """A run that could not be made or whose results do not check out."""


# -- setup -------------------------------------------------------------------


def ensure_tracefs() -> None:
    """bpftrace attaches uprobes through tracefs; mount it if it is missing."""
    if os.path.exists("/sys/kernel/tracing/uprobe_events"):
        return
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                       capture_output=True, text=True)
    if r.returncode != 0 or not os.path.exists("/sys/kernel/tracing/uprobe_events"):
        raise BenchError(f"cannot mount tracefs on /sys/kernel/tracing: {r.stderr.strip()}")


def build_workload(outdir: str, nop5: bool) -> str:
    exe = os.path.join(outdir, "workload")
    cmd = ["gcc", "-O2", "-Wall", "-o", exe, WORKLOAD_SRC]
    if nop5:
        cmd.insert(1, "-DBENCH_NOP5")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"building {WORKLOAD_SRC} failed:\n{r.stderr}")
    return exe


def parse_workload(text: str, n: int, what: str) -> float:
    m = RESULT_RE.search(text)
    if not m:
        raise BenchError(f"{what}: no ns_per_fire line in the workload output: {text.strip()[:300]!r}")
    if int(m.group(2)) != n:
        raise BenchError(f"{what}: the workload fired {m.group(2)} times, not {n}")
    return float(m.group(1))


# -- one run of each mode -----------------------------------------------------


def run_none(exe: str, n: int, tmp: str) -> dict:
    r = subprocess.run([exe, str(n)], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise BenchError(f"workload failed ({r.returncode}): {r.stderr.strip()}")
    return {"ns_per_fire": parse_workload(r.stdout, n, "none"), "fired": n}


def run_under_bpftrace(exe: str, n: int, tmp: str, program: str, what: str, watch=None,
                       bpftrace: Sequence[str] = ("bpftrace",), env: Optional[dict] = None) -> tuple:
    """Runs the workload under `bpftrace -c` with `program`; returns (ns/fire,
    the path of bpftrace's -o output, wall s, what `watch` saw).  watch: None,
    or a function given bpftrace's pid that returns a started watcher whose
    stop() returns its observations (bench/aggregate.py polls BPF program
    stats with one).  bpftrace, env: the command running bpftrace and its
    environment (the suite's two peers, bench/peers.py; default: the host's)."""
    out_path = os.path.join(tmp, f"{what}.out")
    res_path = os.path.join(tmp, f"{what}.result")
    for p in (out_path, res_path):
        if os.path.exists(p):
            os.unlink(p)
    cmd = [*bpftrace, "-o", out_path, "-e", program, "-c", f"{exe} {n} {res_path}"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    watcher = watch(proc.pid) if watch else None
    try:
        out, err = proc.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"{what}: bpftrace timed out") from None
    finally:
        seen = watcher.stop() if watcher else None
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not os.path.exists(res_path):
        raise BenchError(f"{what}: bpftrace failed ({proc.returncode}): {(err or out).strip()[-500:]}")
    with open(res_path) as f:
        ns = parse_workload(f.read(), n, what)
    return ns, out_path, wall, seen


def run_bpftrace_count(exe: str, n: int, tmp: str, what: str = "bpftrace-count", **bpftrace) -> dict:
    """bpftrace: run_under_bpftrace's bpftrace= and env=."""
    program = f"usdt:{exe}:{PROBE} {{ @ = count(); }}"
    ns, out_path, wall, _ = run_under_bpftrace(exe, n, tmp, program, what, **bpftrace)
    with open(out_path) as f:
        text = f.read()
    m = re.search(r"^@: (\d+)$", text, re.M)
    if not m:
        raise BenchError(f"{what}: no '@: N' in its output: {text.strip()[:300]!r}")
    count = int(m.group(1))
    return {"ns_per_fire": ns, "fired": n, "received": count, "lost": 0,
            "verified": count == n, "wall_s": wall}


def run_bpftrace_printf(exe: str, n: int, tmp: str, what: str = "bpftrace-printf", **bpftrace) -> dict:
    """bpftrace: run_under_bpftrace's bpftrace= and env=."""
    program = f'usdt:{exe}:{PROBE} {{ printf("%d %d %d\\n", arg0, arg1, arg2); }}'
    ns, out_path, wall, _ = run_under_bpftrace(exe, n, tmp, program, what, **bpftrace)
    lines = lost = 0
    last = None
    with open(out_path, "rb") as f:
        for line in f:
            if line[:1].isdigit():
                lines += 1
                last = line
            else:
                m = re.search(rb"Lost (\d+) events", line)
                if m:
                    lost += int(m.group(1))
    ok = lines + lost == n and lost == 0
    if last is not None and lost == 0:  # the last line carries the last i
        i = n - 1
        ok = ok and last.split() == [str(i).encode(), str(3 * i).encode(), str(i & 0xFFFF).encode()]
    os.unlink(out_path)
    return {"ns_per_fire": ns, "fired": n, "received": lines, "lost": lost,
            "verified": ok, "wall_s": wall}


def run_pyusdt(exe: str, n: int, tmp: str, opts: argparse.Namespace, paced: bool,
               fields: Optional[str] = None) -> dict:
    from pyusdt import Tracer

    res_path = os.path.join(tmp, "pyusdt.result")
    if os.path.exists(res_path):
        os.unlink(res_path)
    kwargs = {}
    if opts.ringbuf_bytes is not None:
        kwargs["ringbuf_bytes"] = opts.ringbuf_bytes
    if opts.wakeup_bytes is not None:
        kwargs["wakeup_bytes"] = opts.wakeup_bytes
    t = Tracer(**kwargs)
    try:
        held = t.attach_command([exe, str(n), res_path], PROBE, **({"fields": fields} if fields else {}))
        s0 = time.monotonic()
        t.start()
        start_s = time.monotonic() - s0
        # From here on: only draining and consuming counts.
        c0 = time.process_time()
        w0 = time.monotonic()
        rows = batches = 0
        sum0 = sum1 = sum2 = 0
        if not paced:
            for batch in t.batches(timeout=opts.timeout):
                a = batch.array["args"]
                s = a[:, :3].sum(axis=0)  # touches every record's arguments
                sum0 += int(s[0])
                sum1 += int(s[1])
                sum2 += int(s[2])
                rows += len(a)
                batches += 1
        else:  # "paced": one non-blocking poll every --pace seconds, the ring fills between
            while True:
                ended = t.done
                batch = t.poll(0, max_events=1 << 20)
                if len(batch):
                    a = batch.array["args"]
                    s = a[:, :3].sum(axis=0)
                    sum0 += int(s[0])
                    sum1 += int(s[1])
                    sum2 += int(s[2])
                    rows += len(a)
                    batches += 1
                elif ended:
                    break
                if not ended:
                    time.sleep(opts.pace)
        cpu_s = time.process_time() - c0
        wall_s = time.monotonic() - w0
        st = [s for s in t.stats() if s.probe == PROBE]
        hits = sum(s.hits for s in st)
        events = sum(s.events for s in st)
        lost = t.lost
        held.wait()
    finally:
        t.close()
    if held.returncode != 0:
        raise BenchError(f"pyusdt: the workload exited with {held.returncode}")
    with open(res_path) as f:
        ns = parse_workload(f.read(), n, "pyusdt")
    ok = rows == events and rows + lost == n and hits == n
    if lost == 0:  # every argument arrived, with its value
        tri = n * (n - 1) // 2
        ok = ok and (sum0, sum1, sum2) == (tri, 3 * tri, _sum_low16(n))
    return {"ns_per_fire": ns, "fired": n, "received": rows, "lost": lost, "hits": hits,
            "verified": ok, "batches": batches, "cpu_s": cpu_s, "wall_s": wall_s,
            "start_s": start_s, "cpu_ns_per_event": cpu_s * 1e9 / rows if rows else float("nan")}


def _sum_low16(n: int) -> int:
    """sum(i & 0xffff for i in range(n)) in closed form."""
    full, rest = divmod(n, 1 << 16)
    return full * ((1 << 16) * ((1 << 16) - 1) // 2) + rest * (rest - 1) // 2


# -- report --------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summarize(runs: dict, n: int) -> dict:
    out = {}
    for mode, rs in runs.items():
        ns = [r["ns_per_fire"] for r in rs]
        s = {"ns_per_fire_median": statistics.median(ns), "ns_per_fire_min": min(ns),
             "ns_per_fire_max": max(ns), "runs": rs}
        if mode != "none":
            s["received_min"] = min(r["received"] for r in rs)
            s["lost_total"] = sum(r["lost"] for r in rs)
            s["lost_max"] = max(r["lost"] for r in rs)
            s["verified"] = all(r["verified"] for r in rs)
        if mode.startswith("pyusdt"):
            s["cpu_ns_per_event_median"] = statistics.median(r["cpu_ns_per_event"] for r in rs)
            s["events_per_batch_median"] = statistics.median(r["received"] / max(r["batches"], 1) for r in rs)
            s["start_s_median"] = statistics.median(r["start_s"] for r in rs)
        out[mode] = s
    return out


def print_table(summary: dict, n: int, repeat: int, config: dict, background: dict) -> None:
    base = summary.get("none", {}).get("ns_per_fire_median")
    print(f"\npyusdt streaming benchmark: probe {PROBE}, N={n} fires per run, median of {repeat} runs")
    print(f"config: {json.dumps(config)}")
    print(background_line(background))
    print()
    hdr = (f"{'mode':<16} {'ns/fire':>9} {'min':>9} {'max':>9} {'x none':>8} {'received/fired':>17} "
           f"{'lost':>6} {'check':>6} {'CPU ns/ev':>10} {'ev/batch':>9}")
    print(hdr)
    print("-" * len(hdr))
    for mode, s in summary.items():
        med = s["ns_per_fire_median"]
        tracer = mode != "none"
        recv = f"{s['received_min']}/{n}" if tracer else "-"
        lost = str(s["lost_max"]) if tracer else "-"
        chk = ("ok" if s["verified"] else "BAD") if tracer else "-"
        py = mode.startswith("pyusdt")
        cpu = f"{s['cpu_ns_per_event_median']:.0f}" if py else "-"
        per_batch = f"{s['events_per_batch_median']:.0f}" if py else "-"
        xnone = f"{med / base:.0f}" if base else "-"
        print(f"{mode:<16} {med:>9.1f} {s['ns_per_fire_min']:>9.1f} {s['ns_per_fire_max']:>9.1f} "
              f"{xnone:>8} {recv:>17} {lost:>6} {chk:>6} {cpu:>10} {per_batch:>9}")
    for mode, s in summary.items():
        if mode.startswith("pyusdt"):
            print(f"{mode}: start() took {s['start_s_median'] * 1000:.0f} ms (median; not in CPU ns/ev)")


def print_targets(summary: dict, repeat: int) -> dict:
    base = summary["none"]["ns_per_fire_median"]
    py = summary["pyusdt"]["ns_per_fire_median"]
    cnt = summary["bpftrace-count"]["ns_per_fire_median"]
    pf = summary["bpftrace-printf"]["ns_per_fire_median"]
    ps = summary["pyusdt"]
    ratios = {
        "pyusdt_over_bpftrace_count": py / cnt,
        "bpftrace_printf_over_pyusdt": pf / py,
        "pyusdt_over_none": py / base,
        "bpftrace_count_over_none": cnt / base,
        "bpftrace_printf_over_none": pf / base,
    }
    targets = {
        "pyusdt <= 1.3x bpftrace count": (ratios["pyusdt_over_bpftrace_count"] <= TARGET_PYUSDT_VS_COUNT,
                                          f"{ratios['pyusdt_over_bpftrace_count']:.2f}x"),
        "bpftrace printf >= 4x pyusdt": (ratios["bpftrace_printf_over_pyusdt"] >= TARGET_PRINTF_VS_PYUSDT,
                                         f"{ratios['bpftrace_printf_over_pyusdt']:.2f}x"),
        "pyusdt CPU <= 300 ns/event": (ps["cpu_ns_per_event_median"] <= TARGET_CPU_NS_PER_EVENT,
                                       f"{ps['cpu_ns_per_event_median']:.0f} ns"),
        "pyusdt lost == 0": (ps["lost_max"] == TARGET_LOST, f"{ps['lost_total']} over {repeat} runs"),
        "every traced run checked": (all(s["verified"] for m, s in summary.items() if m != "none"),
                                     "counts, lines, sums"),
    }
    print("\nratios (of median ns/fire):")
    print(f"  pyusdt / bpftrace-count        {ratios['pyusdt_over_bpftrace_count']:.2f}")
    print(f"  bpftrace-printf / pyusdt       {ratios['bpftrace_printf_over_pyusdt']:.2f}")
    print(f"  pyusdt / none                  {ratios['pyusdt_over_none']:.0f}")
    print(f"  bpftrace-count / none          {ratios['bpftrace_count_over_none']:.0f}")
    print(f"  bpftrace-printf / none         {ratios['bpftrace_printf_over_none']:.0f}")
    print(f"  (the bare loop costs {base:.1f} ns per iteration: 'x none' is roughly what the tracer adds, in ns)")
    if "pyusdt-fields" in summary:
        added = summary["pyusdt-fields"]["ns_per_fire_median"] - py
        ratios["pyusdt_fields_over_pyusdt"] = summary["pyusdt-fields"]["ns_per_fire_median"] / py
        ratios["expression_ns_per_hit"] = added
        print(f"  pyusdt-fields / pyusdt         {ratios['pyusdt_fields_over_pyusdt']:.2f}"
              f"   (the interpreter adds {added:.0f} ns per hit for three fields)")
    print("\ntargets:")
    for name, (ok, value) in targets.items():
        print(f"  [{mark(ok)}] {name:<32} {value}")
    return {"ratios": ratios,
            "targets": {k: {"pass": ok, "value": v} for k, (ok, v) in targets.items()}}


class NoiseMeter:
    """Busy CPU time of the whole machine minus the CPU time of this process and the
    children it waited for (other processes, and kernel work charged to no one of
    ours), and steal time, between creation and stop(): a shared or overcommitted
    machine shows up here."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK")
        self.t0 = time.monotonic()
        self.busy0, self.steal0 = self._stat()
        self.own0 = self._own()

    @staticmethod
    def _stat() -> tuple:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = v[0] + v[1] + v[2] + v[5] + v[6]
        return busy, v[7] if len(v) > 7 else 0

    @staticmethod
    def _own() -> float:
        import resource
        a = resource.getrusage(resource.RUSAGE_SELF)
        b = resource.getrusage(resource.RUSAGE_CHILDREN)
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        busy, steal = self._stat()
        busy_s = (busy - self.busy0) / self.tick
        steal_s = (steal - self.steal0) / self.tick
        own_s = self._own() - self.own0
        foreign = max(0.0, busy_s - own_s)
        return {"wall_s": wall, "busy_cpu_s": busy_s, "own_cpu_s": own_s, "foreign_cpu_s": foreign,
                "foreign_cpu_pct": 100 * foreign / wall if wall else 0.0,
                "steal_pct": 100 * steal_s / wall if wall else 0.0}


def background_line(background: dict) -> str:
    """The one-line verdict on a NoiseMeter reading that every benchmark prints."""
    noisy = background["foreign_cpu_pct"] > 10 or background["steal_pct"] > 10
    return (f"background: CPU time outside this benchmark's processes {background['foreign_cpu_pct']:.0f}% "
            f"of one CPU on average, steal {background['steal_pct']:.0f}%"
            + ("  <- results are noisy" if noisy else ""))


def finish(result: dict, elapsed: float, json_path) -> None:
    """The closing line of every bench script, and the JSON file when asked for."""
    print(f"\n(total {elapsed:.0f} s)")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {json_path}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="probe fires per run (default 1000000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per mode; the median is reported (default 5)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated, from: " + ", ".join(MODES + EXTRA_MODES)
                         + " (default: the first four; ratios and targets need them all)")
    ap.add_argument("--ringbuf-bytes", type=int, help="pyusdt Tracer(ringbuf_bytes=...) (default: pyusdt's)")
    ap.add_argument("--wakeup-bytes", type=int, help="pyusdt Tracer(wakeup_bytes=...) (default: pyusdt's)")
    ap.add_argument("--timeout", type=float, default=0.1, help="pyusdt batches(timeout=...) (default 0.1)")
    ap.add_argument("--pace", type=float, default=0.01,
                    help="seconds between polls in mode pyusdt-paced (default 0.01)")
    ap.add_argument("--nop5", action="store_true",
                    help="build the probe site as a 5-byte nop (optimizable uprobe) instead of sdt.h's 1-byte nop")
    ap.add_argument("--keep", metavar="DIR", help="build the workload in DIR and keep it (default: a temp dir)")
    opts = ap.parse_args(argv)
    modes = [m.strip() for m in opts.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES + EXTRA_MODES]
    if bad or opts.n <= 0 or opts.repeat <= 0:
        ap.error(f"unknown mode(s) {bad}" if bad else "--n and --repeat must be positive")

    if os.geteuid() != 0:
        print("stream.py: needs root (BPF and uprobes)", file=sys.stderr)
        return 2
    for tool in ("gcc", "bpftrace"):
        if shutil.which(tool) is None and (tool == "gcc" or any(m.startswith("bpftrace") for m in modes)):
            print(f"stream.py: {tool} not found", file=sys.stderr)
            return 2
    try:
        ensure_tracefs()
        tmpctx = tempfile.TemporaryDirectory(prefix="pyusdt-bench-")
        with tmpctx as tmp:
            outdir = opts.keep or tmp
            os.makedirs(outdir, exist_ok=True)
            exe = build_workload(outdir, opts.nop5)
            runners = {
                "none": lambda: run_none(exe, opts.n, tmp),
                "bpftrace-count": lambda: run_bpftrace_count(exe, opts.n, tmp),
                "bpftrace-printf": lambda: run_bpftrace_printf(exe, opts.n, tmp),
                "pyusdt": lambda: run_pyusdt(exe, opts.n, tmp, opts, paced=False),
                "pyusdt-paced": lambda: run_pyusdt(exe, opts.n, tmp, opts, paced=True),
                "pyusdt-fields": lambda: run_pyusdt(exe, opts.n, tmp, opts, paced=False, fields=FIELDS),
            }
            runs = {m: [] for m in modes}
            noise = NoiseMeter()
            t0 = time.monotonic()
            for r in range(opts.repeat):
                for m in modes:
                    res = runners[m]()
                    runs[m].append(res)
                    extra = ""
                    if m.startswith("pyusdt"):
                        extra = (f" cpu={res['cpu_ns_per_event']:.0f}ns/ev batches={res['batches']}"
                                 f" lost={res['lost']}")
                    elif m != "none":
                        extra = f" received={res['received']} lost={res['lost']}"
                    ok = "" if m == "none" else (" ok" if res["verified"] else " CHECK FAILED")
                    print(f"run {r + 1}/{opts.repeat} {m:<16} {res['ns_per_fire']:9.1f} ns/fire{extra}{ok}",
                          flush=True)
            elapsed = time.monotonic() - t0
            background = noise.stop()
    except BenchError as e:
        print(f"stream.py: {e}", file=sys.stderr)
        return 1

    import numpy as np

    import pyusdt
    summary = summarize(runs, opts.n)
    config = {"n": opts.n, "repeat": opts.repeat, "nop5": opts.nop5, "timeout": opts.timeout,
              "ringbuf_bytes": opts.ringbuf_bytes, "wakeup_bytes": opts.wakeup_bytes}
    if "pyusdt-paced" in modes:
        config["pace"] = opts.pace
    result = {"config": config,
              "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "numpy": np.__version__,
                          "bpftrace": subprocess.run(["bpftrace", "--version"], capture_output=True,
                                                     text=True).stdout.strip() if shutil.which("bpftrace") else None,
                          "pyusdt": getattr(pyusdt, "__version__", None)},
              "elapsed_s": elapsed, "background": background, "modes": summary}
    print_table(summary, opts.n, opts.repeat, config, background)
    if all(m in summary for m in MODES):
        result.update(print_targets(summary, opts.repeat))
    finish(result, elapsed, opts.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
