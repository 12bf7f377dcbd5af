"""Helpers shared by the process tests: running test programs and the CLI in
the background, and collecting a trace's events."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyusdt import Tracer

from conftest import PYUSDT


def collect(t: Tracer, limit: float = 60.0) -> list:
    """Every event until the traced targets exit (`limit` seconds only turn a
    hang into a failure)."""
    events = []
    for batch in t.batches(timeout=0.1, duration=limit):
        events.extend(batch)
    assert t.done, f"the traced target had not exited after {limit} s"
    return events


class Child:
    """A test program run with pipes on stdin and stdout; always killed at the end."""

    def __init__(self, argv):
        self.p = subprocess.Popen([str(a) for a in argv], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.pid = self.p.pid

    def readline(self, timeout=10.0) -> str:
        box = []
        th = threading.Thread(target=lambda: box.append(self.p.stdout.readline()), daemon=True)
        th.start()
        th.join(timeout)
        assert box, f"no output from {self.p.args} within {timeout}s"
        return box[0].rstrip("\n")

    def send(self, line="") -> None:
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def wait(self, timeout=10.0) -> int:
        return self.p.wait(timeout)

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


class Cli:
    """`pyusdt ARGS` in the background; stdout and stderr read by threads."""

    def __init__(self, *args, sigint_ignored: bool = False):
        """sigint_ignored: started as a shell without job control starts a
        background job, with SIGINT ignored (inherited through exec)."""
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.p = subprocess.Popen([PYUSDT, *map(str, args)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
        self.pid = self.p.pid
        self.out: list[str] = []
        self.err: list[str] = []
        self._threads = [threading.Thread(target=self._read, args=(s, d), daemon=True)
                         for s, d in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for th in self._threads:
            th.start()

    @staticmethod
    def _read(stream, dest):
        for line in stream:
            dest.append(line.rstrip("\n"))

    def wait_tracing(self, timeout=20.0) -> None:
        """Until pyusdt says it is tracing (or, for an aggregating command, aggregating)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line.startswith(("pyusdt: tracing ", "pyusdt: aggregating ")) for line in self.err):
                return
            if self.p.poll() is not None:
                time.sleep(0.1)
                pytest.fail(f"pyusdt exited with {self.p.returncode} before tracing: {self.err}")
            time.sleep(0.02)
        pytest.fail(f"pyusdt did not start tracing within {timeout}s: {self.err}")

    def wait(self, timeout=20.0) -> int:
        rc = self.p.wait(timeout)
        for th in self._threads:
            th.join(5)
        return rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


TRACERS_CHILD = str(Path(__file__).parent / "programs" / "tracers_child.py")


def start_tracers_child(*args: str) -> Child:
    """tests/programs/tracers_child.py, started and past its pid line."""
    c = Child([sys.executable, TRACERS_CHILD, *args])
    try:
        assert int(c.readline()) == c.pid
    except BaseException:
        c.kill()
        raise
    return c


def ask(c: Child, cmd: str) -> str:
    """Sends one command line to a child and returns its one-line answer."""
    c.send(cmd)
    return c.readline()


def events_within(t: Tracer, n: int, timeout: float = 60.0) -> list:
    """n events (the timeout only turns a hang into a failure), or for n=0,
    whatever comes within 0.2 s; then whatever else is already in the ring
    buffer."""
    out: list = []
    deadline = time.monotonic() + (timeout if n else 0.2)
    while time.monotonic() < deadline and (len(out) < n or not n):
        out.extend(e for e in t.poll(0.05))
    out.extend(e for b in t.drain() for e in b)
    return out


def fdinfos(pid: int) -> list[dict]:
    """/proc/PID/fdinfo of every open fd of process `pid` (key: value, stripped)."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                lines = f.read().splitlines()
        except OSError:
            continue  # closed meanwhile
        out.append({k: v.strip() for k, _, v in (line.partition(":") for line in lines) if _})
    return out


def bpf_links(pid: int) -> list[dict]:
    """The fdinfo of every BPF link process `pid` holds."""
    return [info for info in fdinfos(pid) if "link_type" in info]


def linked_sites(pid: int) -> int:
    """Probe sites the links of process `pid` hold: a uprobe_multi link its
    uprobe_cnt, a perf-event link one."""
    return sum(int(lk["uprobe_cnt"]) if lk["link_type"] == "uprobe_multi" else lk["link_type"] == "perf"
               for lk in bpf_links(pid))


def wait_until(cond, timeout=10.0, what="condition"):
    """Polls `cond` until it holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)
