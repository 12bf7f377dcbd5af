"""1,500 probes in one process: every one attached and counted, failures
said (grouped, naming the probes), and stopping does not wait for the
kernel to detach perf-event links one by one (~0.1 s each): the results
come first, and a background process (pyusdt-detach) detaches them.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from pyusdt import Tracer

from conftest import PYUSDT
from proc_helpers import Child, Cli

N = 1500
HANG_GUARD_S = 300


@pytest.fixture(scope="module")
def prog(build):
    return build("many_probes.c", "many_probes")


@pytest.fixture
def target(prog):
    child = Child([prog])
    try:
        assert int(child.readline()) == child.pid
        yield child
    finally:
        child.kill()


def wait_line(cli: Cli, prefix: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not any(line.startswith(prefix) for line in cli.err):
        assert cli.p.poll() is None and time.monotonic() < deadline, cli.err
        time.sleep(0.02)


def test_every_probe_is_attached_and_counted(bpf, target):
    cli = Cli("count", "--by", "probe", "-p", target.pid, "many:*")
    try:
        wait_line(cli, "pyusdt: aggregating ")
        target.send()
        assert target.readline() == "fired"
        cli.p.send_signal(signal.SIGINT)
        assert cli.wait(HANG_GUARD_S) == 0
    finally:
        cli.kill()
    assert f"pyusdt: aggregating {N} probe(s) at {N} site(s); Ctrl-C to stop" in cli.err
    assert sorted(cli.out) == sorted(f"@[many:p{i}]: 1" for i in range(100, 100 + N))


def test_attach_failures_are_said(bpf, target, prog):
    """Past max_sites: one line names the reason, how many sites and probes,
    and the first probes; the rest are traced."""
    with Tracer(max_sites=10) as t:
        t.attach_pid(target.pid, "many:*")
        t.start()
        # The probes first: the dynamic linker's site comes after them (at
        # the second poll, for a process pyusdt does not hold), and finds no room.
        assert (t.probe_count, t.attached_sites) == (10, 10)
        assert t.warnings == [f"not attached: {N - 10} site(s) of {N - 10} probe(s) (many:p110, many:p111, "
                              f"many:p112 and {N - 13} more) in {prog}: too many probe sites (limit 10)"]
        t.poll(0)
        t.poll(0)
        assert len(t.warnings) == 2 and t.warnings[1].startswith(
            "objects loaded later are found by a rescan every 0.2 s: ")


def perf_uprobes_of(pid: int, path) -> int:
    """Perf-event uprobes on `path` whose file descriptor process `pid` holds."""
    res = subprocess.run(["bpftool", "-j", "perf", "list"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return sum(1 for e in json.loads(res.stdout or "[]")
               if e.get("pid") == pid and e.get("filename") == str(path))


def test_perf_links_are_detached_in_the_background(bpf, target, prog):
    """30 perf-event links: the CLI prints its results and returns; a
    pyusdt-detach process holds the 30 links until the kernel has let go of
    each, then exits."""
    env = {**os.environ, "PYUSDT_UPROBE_MULTI": "0"}
    res = subprocess.run([PYUSDT,
                          "count", "--by", "probe", "-d", "1", "-p", str(target.pid), "many:p1[0-2]?"],
                         capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0] == "pyusdt: aggregating 30 probe(s) at 30 site(s); Ctrl-C to stop"
    # 30 probe sites and the dynamic linker's
    m = re.fullmatch(r"pyusdt: detaching 31 perf-event link\(s\) in the background \(pid (\d+); the kernel "
                     r"takes a moment for each\)", lines[-1])
    assert m, lines
    detacher = int(m.group(1))
    deadline = time.monotonic() + HANG_GUARD_S
    held = None
    while os.path.exists(f"/proc/{detacher}"):
        try:
            with open(f"/proc/{detacher}/comm") as f:
                assert f.read().strip() == "pyusdt-detach"
            held = perf_uprobes_of(detacher, prog) if held is None else held
        except FileNotFoundError:
            break
        assert time.monotonic() < deadline, "the background detach did not end"
        time.sleep(0.1)
    assert held in (None, *range(32))  # seen holding at most the 31 links (or already done)
    assert perf_uprobes_of(detacher, prog) == 0
    # The target is unharmed and no longer traced.
    target.send()
    assert target.readline() == "fired"
