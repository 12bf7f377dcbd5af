"""Suite section "startup": from starting a tracer to its first event on stdout.

bench/ticker.c fires startup:tick(i) once per millisecond and runs through
the whole section.  Each run spawns one tracer on it and reads its stdout
through a pipe:

  pyusdt    pyusdt trace -p PID 'startup:tick'
  bpftrace  bpftrace -p PID -e 'usdt:TICKER:startup:tick { printf("tick %d\\n", arg0); }'

"First event" = the moment this benchmark reads the first event line from
the tracer's stdout, measured from just before the tracer was spawned
(time.monotonic() both).  The probe fires every ms, so at most about 1 ms of
it is waiting for the next hit.  Also recorded: when each tool said it was
attaching or attached (pyusdt: "pyusdt: tracing ..." on stderr, printed once
start() returned; bpftrace: "Attaching 1 probe..." on stdout, printed before
it attaches), and, as context for pyusdt, how long the same Python takes to
start and import pyusdt.cli.main alone.  Then the tracer gets SIGINT.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from suite_common import (
    BenchError,
    LineWatcher,
    bar_panel,
    bpftrace_env,
    compile_c,
    interrupt,
    median,
    pyusdt_cli,
    stop,
)

NAME = "startup"
TITLE = "Start-up: time to the first event"
HERE = os.path.dirname(os.path.abspath(__file__))
TICKER_SRC = os.path.join(HERE, "ticker.c")
MODES = ("pyusdt", "bpftrace")
SETTINGS = {"full": {"repeat": 7}, "quick": {"repeat": 3}}


def one_run(mode: str, ticker: str, pid: int, tmp: str) -> dict:
    if mode == "pyusdt":
        argv, env = pyusdt_cli() + ["trace", "-p", str(pid), "startup:tick"], None
        is_event = lambda line: "startup:tick" in line  # noqa: E731
        banner_stream, is_banner = "stderr", lambda line: line.startswith("pyusdt: tracing")  # noqa: E731
    else:
        argv = ["bpftrace", "-p", str(pid), "-e", f'usdt:{ticker}:startup:tick {{ printf("tick %d\\n", arg0); }}']
        env = bpftrace_env()
        is_event = lambda line: line.startswith("tick ")  # noqa: E731
        banner_stream, is_banner = "stdout", lambda line: line.startswith("Attaching")  # noqa: E731
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp)
    watchers = {"stdout": LineWatcher(proc.stdout), "stderr": LineWatcher(proc.stderr)}
    try:
        first = watchers["stdout"].wait_for(is_event, 60)
        banner = watchers[banner_stream].wait_for(is_banner, 5)
    finally:
        t_int = time.monotonic()
        _rc, sigints = interrupt(proc, 120)
        t_exit = time.monotonic()
    for w in watchers.values():
        w.join(10)
    if first is None:
        raise BenchError(f"{mode}: no event within 60 s: {watchers['stderr'].text()[-400:]}")
    return {"first_event_s": first[0] - t0, "banner_s": banner[0] - t0 if banner else None,
            "exit_after_sigint_s": t_exit - t_int, "first_line": first[1], "sigints": sigints}


def import_time(repeat: int) -> float:
    """Median seconds for this Python to start and import pyusdt.cli.main (nothing else)."""
    times = []
    for _ in range(repeat):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import sys; sys.path.pop(0); import pyusdt.cli.main"],
                       check=True, cwd="/")
        times.append(time.monotonic() - t0)
    return median(times)


def run(settings: dict, tmp: str, log) -> dict:
    repeat = settings["repeat"]
    ticker = compile_c(TICKER_SRC, os.path.join(tmp, "ticker"))
    tick = subprocess.Popen([ticker])
    try:
        time.sleep(0.2)
        runs = {m: [] for m in MODES}
        for r in range(repeat):
            for m in MODES:
                res = one_run(m, ticker, tick.pid, tmp)
                runs[m].append(res)
                banner = f"{res['banner_s']:.3f}" if res["banner_s"] is not None else "-"
                log(f"startup round {r + 1}/{repeat} {m:<8} first event {res['first_event_s']:.3f} s "
                    f"(banner {banner} s), exit {res['exit_after_sigint_s']:.2f} s after SIGINT")
        imports = import_time(repeat)
    finally:
        stop(tick, signal.SIGKILL, 10)
    med = {m: {"first_event_s": median([r["first_event_s"] for r in runs[m]]),
               "banner_s": median([r["banner_s"] for r in runs[m]]),
               "exit_after_sigint_s": median([r["exit_after_sigint_s"] for r in runs[m]])} for m in MODES}
    return {"repeat": repeat, "median": med, "runs": runs, "python_import_s": imports,
            "missed_sigint": {m: sum(r["sigints"] > 1 for r in runs[m]) for m in MODES},
            "ratio": med["pyusdt"]["first_event_s"] / med["bpftrace"]["first_event_s"]}


def markdown(res: dict) -> str:
    med = res["median"]
    p, b = med["pyusdt"], med["bpftrace"]
    out = [f"A process firing `startup:tick` every 1 ms; each tracer attached with `-p PID`; median of "
           f"{res['repeat']} rounds (alternating).", "",
           "| | pyusdt | bpftrace | pyusdt / bpftrace |", "|---|---:|---:|---:|",
           f"| spawn -> first event line read (s) | {p['first_event_s']:.3f} | {b['first_event_s']:.3f} | "
           f"**{res['ratio']:.2f}** |",
           f"| spawn -> tool's banner (s) | {p['banner_s']:.3f} (attached) | {b['banner_s']:.3f} (about to attach) | |",
           f"| exit after SIGINT (s) | {p['exit_after_sigint_s']:.2f} | {b['exit_after_sigint_s']:.2f} | |",
           "",
           f"- Python start + `import pyusdt.cli.main` alone: {res['python_import_s']:.3f} s "
           "(part of pyusdt's figure).",
           f"- pyusdt prints its first event {p['first_event_s'] - p['banner_s']:.3f} s after it is attached: "
           "`pyusdt trace` reads with `batches(timeout=0.1)` and the ring buffer wakes the reader only "
           "once 1/64 of it is full, so at a low event rate the first batch waits for the 100 ms poll "
           "timeout.  bpftrace's perf buffer wakes its reader on every event.",
           "- Per round, first event (s): pyusdt "
           + ", ".join(f"{x['first_event_s']:.3f}" for x in res["runs"]["pyusdt"]) + "; bpftrace "
           + ", ".join(f"{x['first_event_s']:.3f}" for x in res["runs"]["bpftrace"]) + "."]
    for m, n in res.get("missed_sigint", {}).items():
        if n:
            out.append(f"- {m} ignored the first SIGINT in {n} of {res['repeat']} runs (stopped by another one "
                       "sent 10 s later).")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    bar_panel(ax, ["pyusdt / bpftrace\ntime to first event"], [res["ratio"]], "ratio of medians",
              "Start-up: spawn to first event")


def headline(res: dict) -> list:
    med = res["median"]
    return [("time to first event (s) pyusdt / bpftrace",
             f"{med['pyusdt']['first_event_s']:.3f} / {med['bpftrace']['first_event_s']:.3f} = "
             f"**{res['ratio']:.2f}x**")]
