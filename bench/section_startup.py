"""Suite section "startup": from starting a tracer to its first event on stdout,
and where pyusdt's start-up goes.

bench/ticker.c fires startup:tick(i) once per millisecond and runs through
the whole section.  Each round runs, in turn:

  python         PYTHON -c pass: the interpreter alone, spawn to exit
  python+import  PYTHON -c 'import pyusdt.cli.main': the CLI's imports, spawn to exit
  api            bench/startup_api.py PID startup:tick: pyusdt's API path, the
                 script timing its own steps (import, Tracer(), attach_pid(),
                 start(), first non-empty batch of batches())
  pyusdt         pyusdt trace -p PID 'startup:tick'
  bpftrace-P     bpftrace -p PID -e 'usdt:TICKER:startup:tick { printf("tick %d\\n", arg0); }'
                 for each bpftrace peer P (bench/peers.py: 0.17 and 0.23)

"First event" = the moment this benchmark reads the first event line from
the tracer's stdout, measured from just before the tracer was spawned
(time.monotonic() both).  The probe fires every ms, so at most about 1 ms of
it is waiting for the next hit.  Also recorded: when each tool said it was
attaching or attached (pyusdt: "pyusdt: tracing ..." on stderr, printed once
start() returned; bpftrace: "Attaching 1 probe..." on stdout, printed before
it attaches).  Then the tracer gets SIGINT.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import peers
from suite_common import (
    BenchError,
    LineWatcher,
    bar_panel,
    compile_c,
    interrupt,
    median,
    pyusdt_cli,
    stop,
)

NAME = "startup"
TITLE = "Start-up: time to the first event, and where pyusdt's goes"
HERE = os.path.dirname(os.path.abspath(__file__))
TICKER_SRC = os.path.join(HERE, "ticker.c")
API_SCRIPT = os.path.join(HERE, "startup_api.py")
PROBE = "startup:tick"
BPFTRACES = tuple(peers.mode(p) for p in peers.PEERS)
TRACERS = ("pyusdt",) + BPFTRACES
PARTS = ("python", "python+import", "api")  # pyusdt's start-up, piece by piece
MODES = PARTS + TRACERS
API_STEPS = ("import", "Tracer()", "attach_pid()", "start()", "first batch")
SETTINGS = {"full": {"repeat": 7}, "quick": {"repeat": 3}}


def time_to_exit(argv: list) -> dict:
    t0 = time.monotonic()
    subprocess.run(argv, check=True, cwd="/", stdout=subprocess.DEVNULL)
    return {"exit_s": time.monotonic() - t0}


def api_run(pid: int, tmp: str) -> dict:
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, API_SCRIPT, str(pid), PROBE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp)
    out, err = LineWatcher(proc.stdout), LineWatcher(proc.stderr)
    first = out.wait_for(lambda line: line == "first-event", 60)
    steps = out.wait_for(lambda line: line.startswith("{"), 60)
    rc = stop(proc, signal.SIGINT, 60) if steps is None else proc.wait(60)
    out.join(10)
    err.join(10)
    if first is None or steps is None or rc != 0:
        raise BenchError(f"api: no first event ({rc}): {err.text()[-500:]}")
    return {"first_event_s": first[0] - t0, "steps": json.loads(steps[1])}


def one_run(mode: str, ticker: str, pid: int, tmp: str) -> dict:
    if mode == "python":
        return time_to_exit([sys.executable, "-c", "pass"])
    if mode == "python+import":
        return time_to_exit([sys.executable, "-c", "import sys; sys.path.pop(0); import pyusdt.cli.main"])
    if mode == "api":
        return api_run(pid, tmp)
    if mode == "pyusdt":
        argv, env = pyusdt_cli() + ["trace", "-p", str(pid), PROBE], None
        is_event = lambda line: PROBE in line  # noqa: E731
        banner_stream, is_banner = "stderr", lambda line: line.startswith("pyusdt: tracing")  # noqa: E731
    else:
        argv, env = peers.command(peers.PEERS[BPFTRACES.index(mode)], "-p", str(pid), "-e",
                                  f'usdt:{ticker}:{PROBE} {{ printf("tick %d\\n", arg0); }}')
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


def run(settings: dict, tmp: str, log) -> dict:
    repeat = settings["repeat"]
    peers.ensure(log)
    ticker = compile_c(TICKER_SRC, os.path.join(tmp, "ticker"))
    tick = subprocess.Popen([ticker])
    try:
        time.sleep(0.2)
        runs = {m: [] for m in MODES}
        for r in range(repeat):
            for m in MODES:
                res = one_run(m, ticker, tick.pid, tmp)
                runs[m].append(res)
                if m in TRACERS:
                    banner = f"{res['banner_s']:.3f}" if res["banner_s"] is not None else "-"
                    log(f"startup round {r + 1}/{repeat} {m:<14} first event {res['first_event_s']:.3f} s "
                        f"(banner {banner} s), exit {res['exit_after_sigint_s']:.2f} s after SIGINT")
                elif m == "api":
                    log(f"startup round {r + 1}/{repeat} {m:<14} first event {res['first_event_s']:.3f} s; "
                        + ", ".join(f"{k} {v:.3f}" for k, v in res["steps"].items()))
                else:
                    log(f"startup round {r + 1}/{repeat} {m:<14} exit {res['exit_s']:.3f} s")
    finally:
        stop(tick, signal.SIGKILL, 10)
    med = {m: {"first_event_s": median([r["first_event_s"] for r in runs[m]]),
               "banner_s": median([r["banner_s"] for r in runs[m]]),
               "exit_after_sigint_s": median([r["exit_after_sigint_s"] for r in runs[m]])} for m in TRACERS}
    parts = {m: median([r["exit_s"] for r in runs[m]]) for m in ("python", "python+import")}
    parts["api first event"] = median([r["first_event_s"] for r in runs["api"]])
    api_steps = {k: median([r["steps"][k] for r in runs["api"]]) for k in API_STEPS}
    return {"repeat": repeat, "median": med, "runs": runs, "parts": parts, "api_steps": api_steps,
            "bpftrace_versions": peers.versions(),
            "missed_sigint": {m: sum(r["sigints"] > 1 for r in runs[m]) for m in TRACERS},
            "ratios": {bt: med["pyusdt"]["first_event_s"] / med[bt]["first_event_s"] for bt in BPFTRACES}}


def markdown(res: dict) -> str:
    med, parts, steps = res["median"], res["parts"], res["api_steps"]
    out = [f"A process firing `{PROBE}` every 1 ms; each tracer attached with `-p PID`; median of "
           f"{res['repeat']} rounds (every mode once per round, in turn).", "",
           "| | " + " | ".join(TRACERS) + " |", "|---|" + "---:|" * len(TRACERS),
           "| spawn -> first event line read (s) | "
           + " | ".join(f"{med[m]['first_event_s']:.3f}" for m in TRACERS) + " |",
           "| spawn -> tool's banner (s) | " + " | ".join(
               f"{med[m]['banner_s']:.3f}" + (" (attached)" if m == "pyusdt" else " (about to attach)")
               for m in TRACERS) + " |",
           "| exit after SIGINT (s) | " + " | ".join(f"{med[m]['exit_after_sigint_s']:.2f}" for m in TRACERS) + " |",
           "", "- pyusdt / bpftrace, spawn to first event: " + ", ".join(
               f"{peers.label(p)} **{res['ratios'][bt]:.2f}x**" for p, bt in zip(peers.PEERS, BPFTRACES))
           + " (target: <= 1.0x bpftrace 0.23).", "",
           "Where pyusdt's start-up goes (medians, s from spawn; the API steps are the script's own clock from "
           "its first line, so the interpreter's start comes before them):", "",
           "| step | s | this step |", "|---|---:|---:|",
           f"| `python -c pass` (interpreter alone, to exit) | {parts['python']:.3f} | {parts['python']:.3f} |",
           f"| `python -c 'import pyusdt.cli.main'` (to exit) | {parts['python+import']:.3f} | "
           f"{parts['python+import'] - parts['python']:.3f} |"]
    prev = 0.0
    for k in API_STEPS:
        out.append(f"| API: {k} (script clock) | {steps[k]:.3f} | {steps[k] - prev:.3f} |")
        prev = steps[k]
    out += [f"| API: spawn -> first event read | {parts['api first event']:.3f} | |",
            f"| CLI: spawn -> first event read (`pyusdt trace -p`) | {med['pyusdt']['first_event_s']:.3f} | "
            f"{med['pyusdt']['first_event_s'] - parts['api first event']:+.3f} vs the API |",
            "",
            f"- pyusdt prints its first event {med['pyusdt']['first_event_s'] - med['pyusdt']['banner_s']:.3f} s "
            "after it says it is attached (its banner).",
            "- Per round, first event (s): " + "; ".join(
                f"{m} " + ", ".join(f"{x['first_event_s']:.3f}" for x in res["runs"][m]) for m in TRACERS) + "."]
    for m, n in res.get("missed_sigint", {}).items():
        if n:
            out.append(f"- {m} ignored the first SIGINT in {n} of {res['repeat']} runs (stopped by another one "
                       "sent 10 s later).")
    return "\n".join(out)


def plot(ax, res: dict) -> None:
    bar_panel(ax, [f"pyusdt / bt {p}\nfirst event" for p in peers.PEERS],
              [res["ratios"][bt] for bt in BPFTRACES], "ratio of medians", "Start-up: spawn to first event")


def headline(res: dict) -> list:
    med = res["median"]
    out = [(f"time to first event (s) pyusdt / {peers.label(p)}",
            f"{med['pyusdt']['first_event_s']:.3f} / {med[bt]['first_event_s']:.3f} = **{res['ratios'][bt]:.2f}x**")
           for p, bt in zip(peers.PEERS, BPFTRACES)]
    p = res["parts"]
    out.append(("pyusdt start-up (s): python alone / + import pyusdt.cli.main / API first event / CLI first event",
                f"{p['python']:.3f} / {p['python+import']:.3f} / {p['api first event']:.3f} / "
                f"{med['pyusdt']['first_event_s']:.3f}"))
    return out
