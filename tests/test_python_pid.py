"""`-p` on Debian's non-PIE /usr/bin/python3.11: /proc/PID/maps pads its
addresses (00400000-0041f000) where /proc/PID/map_files does not
(400000-41f000).  Listing and tracing the running interpreter by pid must
find its python:* probes and read exact values."""
from __future__ import annotations

import os
import signal
import subprocess

import pytest

from conftest import PYUSDT, missing, pyusdt_cli

PYTHON = "/usr/bin/python3.11"

# Waits for `go`, then runs three collections with automatic ones off, then
# waits to be killed (its exit would collect again).
SCRIPT = r"""
import gc, os, sys, time
gc.disable()
go = sys.argv[1]
print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.02)
for gen in (0, 1, 2):
    gc.collect(gen)
time.sleep(60)
"""


@pytest.fixture
def interpreter(tmp_path):
    if not os.path.exists(PYTHON):
        missing(f"{PYTHON} is not installed")
    p = subprocess.Popen([PYTHON, "-c", SCRIPT, str(tmp_path / "go")], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    yield p, tmp_path / "go"
    p.kill()
    p.wait()


def test_list_by_pid_finds_the_executable(bpf, interpreter):
    p, _ = interpreter
    with open(f"/proc/{p.pid}/maps") as f:
        assert f.readline().startswith("00400000-"), "python3.11 is expected to be non-PIE"
    res = pyusdt_cli("list", "-p", str(p.pid), "python:gc__start")
    assert res.returncode == 0, res.stderr
    assert [line.split()[:2] for line in res.stdout.splitlines()] == [[PYTHON, "python:gc__start"]]


def test_trace_by_pid_reads_exact_values(bpf, interpreter):
    p, go = interpreter
    tr = subprocess.Popen([PYUSDT, "trace", "-p", str(p.pid), "python:gc__start"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert tr.stderr.readline().startswith("pyusdt: tracing "), "no 'tracing' line"
        go.touch()
        lines = [tr.stdout.readline() for _ in range(3)]
        tr.send_signal(signal.SIGINT)
        out, err = tr.communicate(timeout=60)
    finally:
        tr.kill()
    assert tr.returncode == 0, err
    got = [line.rstrip("\n").split(" ", 3)[3] for line in lines + out.splitlines()]
    assert got == [f"python:gc__start arg0={gen}" for gen in (0, 1, 2)], err
    assert "3 events, 0 lost" in err
