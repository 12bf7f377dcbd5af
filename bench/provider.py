#!/usr/bin/env python3
"""Run-time provider benchmark: what probe.fire() costs a Python program.

    python bench/provider.py [--n-fast N] [--n-traced N] [--repeat R] [--json PATH]

Measured per call, in this Python process (loops of the same call,
perf_counter_ns around each loop, GC off), median of R repeats run
round-robin so that drift hits every mode alike:

  empty loop        `for _ in range(n): pass`, subtracted to give the "net" cost
  noop method       obj.noop(1, 2, 3), a plain Python method that does nothing
  enabled           probe.enabled, nobody tracing
  fire off nop5     probe.fire(1, 2, 3), nobody tracing (Provider(nop5=True))
  fire off nop1     the same on a Provider(nop5=False)
  fire checked nopX probe.fire(1, 2, 3) with the probe's semaphore raised by
                      hand and no tracer (investigation): fire() takes its
                      traced path (arguments checked, probe function called)
                      but the nop is not probed
  fire count nop5   probe.fire(1, 2, 3) while a pyusdt Tracer in another process
  fire count nop1     counts it in the kernel: attach_pid(this pid, ...,
                      aggregate=Aggregate("count"))
  fire stream nop5  while that other process streams every event (attach_pid,
  fire stream nop1    then poll() until told to stop; args summed)
  ext off nopX      fire(1, 2, 3) of bench/provider_ext.c, a hand-written
  ext count nopX      CPython extension calling a sys/sdt.h probe function
                      (the floor: the least any Python provider can cost),
                      untraced and counted like `fire count`
  C count nop5      bench/provider_raw.c (built here with gcc -O2): a C loop
  C count nop1        firing a sys/sdt.h probe with the same three 64-bit
  C stream nop5       register arguments and a semaphore, traced the same way
  C stream nop1       (attach_pid on its pid, count or stream); its own loop
                      time per fire.  nop5: the site is a 5-byte nop, as a
                      Provider(nop5=True) site, which Linux 6.16+ on x86-64
                      turns into an optimized uprobe (a call, not a trap);
                      nop1: sys/sdt.h's 1-byte nop, as Provider(nop5=False).

The tracer runs in its own process (this script with `_tracer`), started for
each traced measurement and stopped after it: it attaches, says ready, and
this process fires W warm-up calls (the first hit of a nop5 site is where the
kernel optimizes it) and then the N timed ones.  Every traced run is checked:
the kernel count (or the events streamed, with exact argument sums and
nothing lost) must equal W + N.

Targets (PASS/FAIL, never asserted), on net ns per call (loop subtracted;
the C loop's own overhead is under 1 ns):
  fire off (nop5 and nop1)       <= 2x noop method
  fire count nopX                <= 1.2x C count nopX (the same uprobe hit from C)
And reported: nop5 against nop1, for Python and for C; the floor (ext count
against C count: the uprobe hit from under the interpreter, no pyusdt) and
pyusdt over the floor (fire count against ext count).

Needs root (BPF, uprobes), gcc and systemtap-sdt-dev (sys/sdt.h).  Run it
with the Python that has pyusdt installed; the machine's other load during
the run is reported (see bench/stream.py's NoiseMeter).
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import select
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RAW_SRC = os.path.join(HERE, "provider_raw.c")
EXT_SRC = os.path.join(HERE, "provider_ext.c")
sys.path.insert(0, HERE)

TARGET_OFF_VS_NOOP = 2.0
TARGET_TRACED_VS_C = 1.2
WARMUP = 1000


class BenchError(Exception):
    """A run that could not be made or whose results do not check out."""


# -- the tracer process ----------------------------------------------------------


def tracer_main(argv) -> int:
    """`provider.py _tracer PID PATTERN count|stream`: attach, print "ready",
    trace until a line comes on stdin, print the result as JSON."""
    from pyusdt import Tracer
    from pyusdt.aggregate.specs import Aggregate

    pid, pattern, kind = int(argv[0]), argv[1], argv[2]
    t = Tracer()
    spec = Aggregate("count") if kind == "count" else None
    t.attach_pid(pid, pattern, aggregate=spec)
    t.start()
    print("ready", flush=True)
    events = 0
    sums = [0, 0, 0]

    def consume(batch):
        nonlocal events
        a = batch.array["args"]
        s = a[:, :3].sum(axis=0)
        for i in range(3):
            sums[i] += int(s[i])
        events += len(a)

    if kind == "count":
        sys.stdin.readline()  # the kernel counts; nothing to do until told
    else:
        while not select.select([sys.stdin], [], [], 0)[0]:
            consume(t.poll(0.1))
        sys.stdin.readline()
        for batch in t.drain():
            consume(batch)
    out = {"kind": kind}
    st = t.stats()
    out["hits"] = sum(s.hits for s in st)
    out["lost"] = t.lost
    if kind == "count":
        r = t.aggregation(spec)
        c = r.counters
        out.update(total=r.total, map_full=c.map_full, read_fail=c.read_fail, filtered=c.filtered)
    else:
        out.update(events=events, sums=sums)
    t.close()
    print(json.dumps(out), flush=True)
    return 0


class TracerProcess:
    def __init__(self, pid: int, pattern: str, kind: str):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "_tracer", str(pid), pattern, kind],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        if line.strip() != "ready":
            self.p.kill()
            raise BenchError(f"tracer for {pattern} in {pid} did not start: {line!r}")

    def stop(self) -> dict:
        out, _ = self.p.communicate("stop\n", timeout=60)
        if self.p.returncode != 0:
            raise BenchError(f"tracer exited with {self.p.returncode}")
        return json.loads(out.strip().splitlines()[-1])


def check(res: dict, expected: int) -> tuple:
    """(ok, why) of a tracer's result for `expected` fires of (1, 2, 3)."""
    why = []
    if res["hits"] != expected:
        why.append(f"hits {res['hits']} != {expected}")
    if res["lost"]:
        why.append(f"lost {res['lost']}")
    if res["kind"] == "count":
        if res["total"] != expected:
            why.append(f"count {res['total']} != {expected}")
        if res["map_full"] or res["read_fail"] or res["filtered"]:
            why.append(f"counters {res}")
    else:
        if res["events"] != expected:
            why.append(f"events {res['events']} != {expected}")
        if res["sums"] != [expected, 2 * expected, 3 * expected]:
            why.append(f"sums {res['sums']}")
    return not why, "; ".join(why)


# -- the timed loops (in this process) --------------------------------------------


class Obj:
    def noop(self, a, b, c):
        pass


def loop_empty(n, _):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        pass
    return time.perf_counter_ns() - t0


def loop_noop(n, obj):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        obj.noop(1, 2, 3)
    return time.perf_counter_ns() - t0


def loop_enabled(n, probe):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        _ = probe.enabled  # the read being timed
    return time.perf_counter_ns() - t0


def loop_call(n, fn):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn(1, 2, 3)
    return time.perf_counter_ns() - t0


def loop_fire(n, probe):
    t0 = time.perf_counter_ns()
    for _ in range(n):
        probe.fire(1, 2, 3)
    return time.perf_counter_ns() - t0


def timed(loop, n: int, arg) -> float:
    gc.disable()
    try:
        return loop(n, arg) / n
    finally:
        gc.enable()


# -- the C reference ----------------------------------------------------------------


class RawProcess:
    """provider_raw running, fed round sizes on stdin."""

    def __init__(self, exe: str):
        self.p = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline().split()
        if not line or line[0] != "ready":
            raise BenchError(f"{exe} did not start")
        self.pid = int(line[1])

    def run(self, n: int) -> float:
        self.p.stdin.write(f"{n}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        fields = dict(f.split("=") for f in line.split())
        if int(fields.get("n", -1)) != n:
            raise BenchError(f"provider_raw: bad output {line!r}")
        return float(fields["ns_per_fire"])

    def close(self) -> None:
        if self.p.poll() is not None:
            return
        try:
            self.p.stdin.write("0\n")
            self.p.stdin.flush()
            self.p.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait()


def build_raw(outdir: str, nop5: bool) -> str:
    exe = os.path.join(outdir, "provider_raw_nop5" if nop5 else "provider_raw_nop1")
    cmd = ["gcc", "-O2", "-Wall", "-o", exe, RAW_SRC] + (["-DBENCH_NOP5"] if nop5 else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"building {RAW_SRC} failed:\n{r.stderr}")
    return exe


def build_ext(outdir: str, nop5: bool):
    """bench/provider_ext.c as an importable module; its probe is benchext{5,1}:fire."""
    import importlib.util
    import sysconfig

    tag = "5" if nop5 else "1"
    name = f"benchext_nop{tag}"
    so = os.path.join(outdir, name + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = ["gcc", "-O2", "-Wall", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
           f"-DMODULE={name}", f"-DPROVIDER=benchext{tag}", "-o", so, EXT_SRC] + (["-DBENCH_NOP5"] if nop5 else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"building {EXT_SRC} failed:\n{r.stderr}")
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, f"benchext{tag}:fire"


# -- one round ------------------------------------------------------------------------

MODES = [
    "empty loop", "noop method", "enabled", "fire off nop5", "fire off nop1",
    "fire checked nop5", "fire checked nop1",
    "fire count nop5", "fire count nop1", "fire stream nop5", "fire stream nop1",
    "ext off nop5", "ext off nop1", "ext count nop5", "ext count nop1",
    "C count nop5", "C count nop1", "C stream nop5", "C stream nop1",
]


def measure(mode: str, ctx: dict, opts) -> dict:
    if mode == "empty loop":
        return {"ns": timed(loop_empty, opts.n_fast, None)}
    if mode == "noop method":
        return {"ns": timed(loop_noop, opts.n_fast, ctx["obj"])}
    if mode == "enabled":
        return {"ns": timed(loop_enabled, opts.n_fast, ctx["probes"]["nop5"])}
    words = mode.split()
    site = words[-1]
    if words[0] == "fire" and words[1] == "off":
        probe = ctx["probes"][site]
        if probe.enabled:
            raise BenchError(f"{mode}: the probe is traced by someone else")
        return {"ns": timed(loop_fire, opts.n_fast, probe)}
    if words[1] == "checked":
        # The semaphore raised by hand, no tracer: fire() takes its traced
        # path (arguments checked and converted, the probe function called)
        # but the nop is not probed.  Traced minus this = the uprobe hit.
        probe = ctx["probes"][site]
        sem = ctx["semaphores"][site]
        sem.value = 1
        try:
            if not probe.enabled:
                raise BenchError(f"{mode}: raising the semaphore did not enable the probe")
            return {"ns": timed(loop_fire, opts.n_fast, probe)}
        finally:
            sem.value = 0
    if words[0] == "ext":
        fn, probe_name = ctx["ext"][site]
        if words[1] == "off":
            return {"ns": timed(loop_call, opts.n_fast, fn)}
        tr = TracerProcess(os.getpid(), probe_name, words[1])
        try:
            timed(loop_call, WARMUP, fn)
            ns = timed(loop_call, opts.n_traced, fn)
        finally:
            res = tr.stop()
        ok, why = check(res, WARMUP + opts.n_traced)
        return {"ns": ns, "verified": ok, "why": why, "tracer": res}
    kind = words[1]
    if words[0] == "fire":
        probe = ctx["probes"][site]
        tr = TracerProcess(os.getpid(), probe.fullname, kind)
        try:
            if not probe.enabled:
                raise BenchError(f"{mode}: the tracer is ready but the probe is not enabled")
            timed(loop_fire, WARMUP, probe)
            ns = timed(loop_fire, opts.n_traced, probe)
        finally:
            res = tr.stop()
        if probe.enabled:
            raise BenchError(f"{mode}: the probe is still enabled after the tracer stopped")
    else:
        raw = ctx["raw"][site]
        tr = TracerProcess(raw.pid, "benchraw:fire", kind)
        try:
            raw.run(WARMUP)
            ns = raw.run(opts.n_traced)
        finally:
            res = tr.stop()
    ok, why = check(res, WARMUP + opts.n_traced)
    return {"ns": ns, "verified": ok, "why": why, "tracer": res}


def interleaved(ctx: dict, opts, site: str) -> dict:
    """The traced target measured in short alternating chunks: probe.fire,
    the extension's fire (the floor) and the C loop, all three counted at
    once by three tracer processes, `opts.chunk` calls per chunk, the order
    rotated each cycle.  The VM's speed flips between states within seconds,
    often inside one round of the modes above; chunks of a few milliseconds
    side by side land in the same state, so the median of per-cycle ratios
    is steady where ratios of per-mode medians are not."""
    probe = ctx["probes"][site]
    fn, ext_name = ctx["ext"][site]
    raw = ctx["raw"][site]
    n = opts.chunk
    tracers = []
    try:
        for pid, pattern in ((os.getpid(), probe.fullname), (os.getpid(), ext_name), (raw.pid, "benchraw:fire")):
            tracers.append(TracerProcess(pid, pattern, "count"))
        timed(loop_fire, WARMUP, probe)
        timed(loop_call, WARMUP, fn)
        raw.run(WARMUP)
        steps = {
            "fire": lambda: timed(loop_fire, n, probe) - timed(loop_empty, n, None),
            "ext": lambda: timed(loop_call, n, fn) - timed(loop_empty, n, None),
            "C": lambda: raw.run(n),
        }
        order = list(steps)
        cycles = []
        for i in range(opts.cycles):
            k = i % len(order)
            cycle = {}
            for name in order[k:] + order[:k]:
                cycle[name] = steps[name]()
            cycles.append(cycle)
    finally:
        results = [t.stop() for t in tracers]
    checks = [check(r, WARMUP + opts.cycles * n) for r in results]
    ok = all(c[0] for c in checks)
    out = {"cycles": cycles, "verified": ok, "why": "; ".join(c[1] for c in checks if c[1])}
    for a, b in (("fire", "C"), ("ext", "C"), ("fire", "ext")):
        out[f"{a}/{b}"] = statistics.median(c[a] / c[b] for c in cycles)
    for name in order:
        out[f"{name} ns"] = statistics.median(c[name] for c in cycles)
    return out


# -- report ---------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def summarize(runs: dict) -> dict:
    out = {}
    empty = statistics.median(r["ns"] for r in runs["empty loop"])
    for mode, rs in runs.items():
        ns = [r["ns"] for r in rs]
        med = statistics.median(ns)
        s = {"ns_median": med, "ns_min": min(ns), "ns_max": max(ns), "runs": rs}
        # C modes time a C loop: nothing Python to subtract.
        s["net_median"] = med if mode.startswith("C ") or mode == "empty loop" else med - empty
        if "verified" in rs[0]:
            s["verified"] = all(r["verified"] for r in rs)
            s["why"] = [r["why"] for r in rs if r["why"]]
        out[mode] = s
    return out


def round_ratios(summary: dict, a: str, b: str) -> list:
    """a / b per round, each on its round's net ns: modes of one round run
    seconds apart, so the machine's drift between rounds (the VM's CPU speed
    moves by half) cancels out of these, not out of a ratio of medians."""
    empty = [r["ns"] for r in summary["empty loop"]["runs"]]

    def net(mode, i):
        ns = summary[mode]["runs"][i]["ns"]
        return ns if mode.startswith("C ") else ns - empty[i]

    n = min(len(summary[a]["runs"]), len(summary[b]["runs"]), len(empty))
    return [net(a, i) / net(b, i) for i in range(n)]


PAIRED = [("fire count nop5", "C count nop5"), ("fire count nop1", "C count nop1"),
          ("ext count nop5", "C count nop5"), ("ext count nop1", "C count nop1"),
          ("fire count nop5", "ext count nop5"), ("fire count nop1", "ext count nop1")]


def targets(summary: dict, inter: dict) -> dict:
    """The traced target is judged on the interleaved chunks (see
    interleaved()); the untraced one on the modes' medians."""
    net = {m: s["net_median"] for m, s in summary.items()}
    res = {}
    for site in ("nop5", "nop1"):
        r = net[f"fire off {site}"] / net["noop method"]
        res[f"fire off {site} <= {TARGET_OFF_VS_NOOP:g}x noop method"] = (r <= TARGET_OFF_VS_NOOP, r)
    for site, m in inter.items():
        r = m["fire/C"]
        res[f"fire count {site} <= {TARGET_TRACED_VS_C:g}x C count {site} (interleaved)"] = (
            r <= TARGET_TRACED_VS_C, r)
    res["every traced run checked"] = (all(s.get("verified", True) for s in summary.values())
                                       and all(m["verified"] for m in inter.values()), None)
    return res


def print_interleaved(inter: dict, opts) -> None:
    print(f"\ninterleaved, counted (chunks of {opts.chunk} calls, {opts.cycles} cycles; "
          "median of per-cycle ratios of net ns):")
    print(f"  {'site':<5} {'fire ns':>8} {'ext ns':>8} {'C ns':>8} {'fire/C':>7} {'ext/C':>7} "
          f"{'fire/ext':>8} {'check':>6}")
    for site, m in inter.items():
        print(f"  {site:<5} {m['fire ns']:>8.1f} {m['ext ns']:>8.1f} {m['C ns']:>8.1f} {m['fire/C']:>7.3f} "
              f"{m['ext/C']:>7.3f} {m['fire/ext']:>8.3f} {'ok' if m['verified'] else 'BAD':>6}")
        if m["why"]:
            print(f"  {site}: CHECK FAILED: {m['why']}")


def print_paired(summary: dict, ratios: dict) -> None:
    """The PAIRED ratios, per round, of the modes this run measured."""
    pairs = [(a, b) for a, b in PAIRED if a in summary and b in summary]
    if pairs:
        print("\nper-round ratios (same round, net ns), median first:")
    for a, b in pairs:
        rs = round_ratios(summary, a, b)
        ratios[f"{a} / {b}, median of rounds"] = statistics.median(rs)
        print(f"  {a + ' / ' + b:<36} {statistics.median(rs):.3f}   rounds: "
              + " ".join(f"{x:.2f}" for x in rs))


def print_report(summary: dict, inter: dict, opts, background: dict) -> dict:
    from stream import background_line  # bench/stream.py

    print(f"\npyusdt provider benchmark: median of {opts.repeat} runs; "
          f"untraced loops n={opts.n_fast}, traced n={opts.n_traced} (+{WARMUP} warm-up)")
    print(background_line(background))
    net = {m: s["net_median"] for m, s in summary.items()}
    print()
    hdr = f"{'mode':<18} {'ns/call':>9} {'min':>9} {'max':>9} {'net ns':>9} {'x noop':>7} {'x C':>6} {'check':>6}"
    print(hdr)
    print("-" * len(hdr))
    for mode, s in summary.items():
        xnoop = (f"{net[mode] / net['noop method']:.2f}"
                 if "noop method" in net and mode != "empty loop" and not mode.startswith("C ") else "-")
        c_ref = {"fire count nop5": "C count nop5", "fire count nop1": "C count nop1",
                 "ext count nop5": "C count nop5", "ext count nop1": "C count nop1",
                 "fire stream nop5": "C stream nop5", "fire stream nop1": "C stream nop1"}.get(mode)
        xc = f"{net[mode] / net[c_ref]:.3f}" if c_ref in net else "-"
        chk = ("ok" if s["verified"] else "BAD") if "verified" in s else "-"
        print(f"{mode:<18} {s['ns_median']:>9.1f} {s['ns_min']:>9.1f} {s['ns_max']:>9.1f} "
              f"{net[mode]:>9.1f} {xnoop:>7} {xc:>6} {chk:>6}")
    for mode, s in summary.items():
        for why in s.get("why", []):
            print(f"  {mode}: CHECK FAILED: {why}")
    if inter:
        print_interleaved(inter, opts)
    if set(net) != set(MODES) or not inter:  # an investigation run: its pairs only, no targets
        print_paired(summary, {})
        return {}
    ratios = {
        "python fire count nop5 / nop1": net["fire count nop5"] / net["fire count nop1"],
        "python fire stream nop5 / nop1": net["fire stream nop5"] / net["fire stream nop1"],
        "C count nop5 / nop1": net["C count nop5"] / net["C count nop1"],
        "C stream nop5 / nop1": net["C stream nop5"] / net["C stream nop1"],
        "fire count - C count, nop5 (ns)": net["fire count nop5"] - net["C count nop5"],
        "fire count - C count, nop1 (ns)": net["fire count nop1"] - net["C count nop1"],
        "fire count - fire checked, nop5 (ns)": net["fire count nop5"] - net["fire checked nop5"],
        "fire count - fire checked, nop1 (ns)": net["fire count nop1"] - net["fire checked nop1"],
        "floor: ext count / C count, nop5": net["ext count nop5"] / net["C count nop5"],
        "floor: ext count / C count, nop1": net["ext count nop1"] / net["C count nop1"],
        "pyusdt over the floor: fire count / ext count, nop5": net["fire count nop5"] / net["ext count nop5"],
        "pyusdt over the floor: fire count / ext count, nop1": net["fire count nop1"] / net["ext count nop1"],
        "hit from Python: ext count - ext off, nop5 (ns)": net["ext count nop5"] - net["ext off nop5"],
        "hit from Python: ext count - ext off, nop1 (ns)": net["ext count nop1"] - net["ext off nop1"],
    }
    print("\nnop5 against nop1 (net ns, lower is better for nop5); Python's extra cost per traced fire over\n"
          "the C hit; the hit as Python sees it (traced minus checked, to compare with C count):")
    for k, v in ratios.items():
        print(f"  {k:<52} {v:.3f}" if "(ns)" not in k else f"  {k:<52} {v:.1f}")
    print_paired(summary, ratios)
    for site, m in inter.items():
        for k in ("fire/C", "ext/C", "fire/ext"):
            ratios[f"interleaved {site} {k}"] = m[k]
    res = targets(summary, inter)
    print("\ntargets (net ns per call):")
    for name, (ok, value) in res.items():
        print(f"  [{mark(ok)}] {name:<40} {'' if value is None else f'{value:.3f}x'}")
    return {"ratios": ratios, "targets": {k: {"pass": ok, "value": v} for k, (ok, v) in res.items()}}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_tracer":
        return tracer_main(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-fast", type=int, default=2_000_000, help="calls per untraced loop (default 2000000)")
    ap.add_argument("--n-traced", type=int, default=200_000, help="calls per traced loop (default 200000)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per mode; the median is reported (default 5)")
    ap.add_argument("--chunk", type=int, default=20_000,
                    help="calls per chunk of the interleaved traced measurement (default 20000)")
    ap.add_argument("--cycles", type=int, default=120,
                    help="fire/ext/C cycles of the interleaved measurement, per site; 0 skips it (default 120)")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset, for investigation (the targets need them all; "
                         "'empty loop' is always measured)")
    opts = ap.parse_args(argv)
    modes = ["empty loop"] + [m.strip() for m in opts.modes.split(",") if m.strip() and m.strip() != "empty loop"]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}")
    if opts.n_fast <= 0 or opts.n_traced <= 0 or opts.repeat <= 0 or opts.chunk <= 0 or opts.cycles < 0:
        ap.error("--n-fast, --n-traced, --repeat and --chunk must be positive, --cycles not negative")
    if os.geteuid() != 0:
        print("provider.py: needs root (BPF and uprobes)", file=sys.stderr)
        return 2

    from pyusdt.provide.provider import Provider
    from stream import NoiseMeter  # bench/stream.py

    ctx: dict = {"obj": Obj(), "probes": {}, "raw": {}, "semaphores": {}, "ext": {}}
    providers = []
    try:
        with tempfile.TemporaryDirectory(prefix="pyusdt-bench-") as tmp:
            for site, nop5 in (("nop5", True), ("nop1", False)):
                prov = Provider(f"benchpy_{site}", nop5=nop5)
                ctx["probes"][site] = prov.probe("fire", ("a", "int64"), ("b", "int64"), ("c", "int64"))
                prov.load()
                providers.append(prov)
                ctx["semaphores"][site] = ctypes.c_uint16.in_dll(prov._lib, f"benchpy_{site}_fire_semaphore")
                ctx["raw"][site] = RawProcess(build_raw(tmp, nop5))
                module, probe_name = build_ext(tmp, nop5)
                ctx["ext"][site] = (module.fire, probe_name)
            runs = {m: [] for m in modes}
            noise = NoiseMeter()
            t0 = time.monotonic()
            for r in range(opts.repeat):
                for m in modes:
                    res = measure(m, ctx, opts)
                    runs[m].append(res)
                    ok = "" if "verified" not in res else (" ok" if res["verified"] else f" CHECK FAILED: {res['why']}")
                    print(f"run {r + 1}/{opts.repeat} {m:<18} {res['ns']:9.1f} ns/call{ok}", flush=True)
            inter = {}
            for site in ("nop5", "nop1") if opts.cycles else ():
                inter[site] = interleaved(ctx, opts, site)
                m = inter[site]
                print(f"interleaved {site}: fire/C {m['fire/C']:.3f} ext/C {m['ext/C']:.3f} "
                      f"fire/ext {m['fire/ext']:.3f}{'' if m['verified'] else ' CHECK FAILED: ' + m['why']}",
                      flush=True)
            elapsed = time.monotonic() - t0
            for raw in ctx["raw"].values():  # waited for: their CPU time is ours, not foreign
                raw.close()
            background = noise.stop()
    except BenchError as e:
        print(f"provider.py: {e}", file=sys.stderr)
        return 1
    finally:
        for raw in ctx["raw"].values():
            raw.close()
        for prov in providers:
            prov.unload()

    summary = summarize(runs)
    result = {"config": {"n_fast": opts.n_fast, "n_traced": opts.n_traced, "repeat": opts.repeat,
                         "warmup": WARMUP, "chunk": opts.chunk, "cycles": opts.cycles},
              "machine": {"kernel": platform.release(), "cpus": os.cpu_count(),
                          "python": platform.python_version()},
              "elapsed_s": elapsed, "background": background, "modes": summary, "interleaved": inter}
    result.update(print_report(summary, inter, opts, background))
    print(f"\n(total {elapsed:.0f} s)")
    if opts.json:
        with open(opts.json, "w") as f:
            json.dump(result, f, indent=2)
        print(f"results written to {opts.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
