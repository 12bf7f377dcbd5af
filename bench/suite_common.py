"""Helpers the suite's sections share: tools to run, processes to watch, memory to read.

Nothing here measures anything by itself; the sections (section_*.py) do.
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from stream import BenchError, NoiseMeter, ensure_tracefs  # noqa: E402,F401  (re-exported for the sections)


def pyusdt_cli() -> list:
    """argv prefix running the installed `pyusdt` command of this Python.

    The console script next to the interpreter is preferred; `-m` would put
    the current directory first on sys.path, and from the repository root
    the source tree (which has no native module) would shadow the package."""
    script = os.path.join(os.path.dirname(sys.executable), "pyusdt")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-c", "import sys; sys.path.pop(0); from pyusdt.cli.entry import main; sys.exit(main())"]


def need_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise BenchError(f"missing tool(s): {', '.join(missing)}")


def compile_c(src: str, exe: str, *extra: str) -> str:
    r = subprocess.run(["gcc", "-O2", "-Wall", *extra, "-o", exe, src], capture_output=True, text=True)
    if r.returncode != 0:
        raise BenchError(f"building {src} failed:\n{r.stderr}")
    return exe


def median(xs: Sequence[float]) -> float:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def loadavg() -> list:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# -- watching a child's output ---------------------------------------------------


class LineWatcher(threading.Thread):
    """Reads a pipe line by line in the background, stamping each line with
    time.monotonic() when it was read; wait_for() blocks until a line matches."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.lines: list = []  # (monotonic time, text)
        self._cond = threading.Condition()
        self.closed = False
        self.start()

    def run(self) -> None:
        for raw in iter(self.pipe.readline, b""):
            t = time.monotonic()
            with self._cond:
                self.lines.append((t, raw.decode(errors="replace").rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[str], bool], timeout: float) -> Optional[tuple]:
        """(time, line) of the first line matching pred, or None at timeout or EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for t, line in self.lines[seen:]:
                    if pred(line):
                        return t, line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    return None
                self._cond.wait(left)

    def text(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)


def interrupt(proc: subprocess.Popen, timeout: float = 600, resend_every: float = 10) -> tuple:
    """Ctrl-C for a tracer we started: SIGINT, again every `resend_every` s
    while it runs (bpftrace 0.17 now and then misses one and waits forever, as
    a user would press Ctrl-C again); SIGKILL past `timeout`.
    Returns (exit status, SIGINTs sent)."""
    deadline = time.monotonic() + timeout
    sent = 0
    while proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise BenchError(f"{proc.args[0]} did not stop within {timeout:.0f} s of {sent} SIGINT(s)")
        try:
            proc.send_signal(signal.SIGINT)
            sent += 1
        except ProcessLookupError:
            break
        try:
            proc.wait(min(resend_every, max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
    return proc.wait(), sent


def stop(proc: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 300) -> Optional[int]:
    """Sends `sig` to one child we started and waits for it; kills it past timeout."""
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise BenchError(f"{proc.args[0]} did not stop within {timeout:.0f} s of signal {sig}") from None


# -- memory of a tracer process ------------------------------------------------------


def proc_status_kb(pid: int) -> dict:
    """VmHWM, VmRSS, VmLck, VmPin of a process, in KiB ({} when it is gone)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "VmLck", "VmPin"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def perf_ring_kb(pid: int) -> int:
    """KiB of perf event ring buffers process `pid` has mapped (its [perf_event] mappings)."""
    total = 0
    try:
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                if line.rstrip().endswith("[perf_event]"):
                    lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                    total += hi - lo
    except OSError:
        pass
    return total // 1024


def bpf_objects(pid: int) -> dict:
    """The BPF programs and maps process `pid` holds fds of, each counted once
    (by id), with the kernel memory charged to them (fdinfo "memlock"), and
    how many BPF links and perf events it holds."""
    progs, maps = {}, {}
    links = perf = 0
    fd_dir = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return {}
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target == "anon_inode:[perf_event]":
            perf += 1
            continue
        if target == "anon_inode:bpf_link":
            links += 1
            continue
        if target not in ("anon_inode:bpf-prog", "anon_inode:bpf-map"):
            continue
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        memlock = int(info.get("memlock", "0").strip() or 0)
        if target == "anon_inode:bpf-prog" and "prog_id" in info:
            progs[int(info["prog_id"])] = memlock
        elif target == "anon_inode:bpf-map" and "map_id" in info:
            maps[int(info["map_id"])] = memlock
    return {"progs": len(progs), "prog_memlock": sum(progs.values()),
            "maps": len(maps), "map_memlock": sum(maps.values()),
            "links": links, "perf_events": perf}


# -- plotting ------------------------------------------------------------------------


def bar_panel(ax, labels, values, ylabel: str, title: str, fmt: str = "{:.2f}", log: bool = False) -> None:
    """Bars of ratios with a line at 1 and the value written on each bar
    (log: a log y axis, for ratios far apart)."""
    # pyusdt's own figures (ratio numerators) in blue, bpftrace's in orange.
    colors = ["#4c72b0" if "pyusdt" in lab.split("/")[0] else "#dd8452" for lab in labels]
    finite = [v for v in values if v == v and v not in (float("inf"), float("-inf"))]
    bars = ax.bar(range(len(values)), [v if v in finite else 0 for v in values], color=colors)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.set_title(title, fontsize=9)
    top = max(finite + [1.0])
    if log:
        from matplotlib.ticker import FormatStrFormatter
        ax.set_yscale("log")
        ax.set_ylim(min(finite + [1.0]) / 2, top * 2.5)
        ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    else:
        ax.set_ylim(0, top * 1.18)
    for b, v in zip(bars, values):
        if v in finite:
            ax.text(b.get_x() + b.get_width() / 2, v, fmt.format(v), ha="center", va="bottom", fontsize=7)
