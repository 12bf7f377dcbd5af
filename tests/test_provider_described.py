"""Self-describing providers: `pyusdt list -p` and `trace -p` name the
arguments and decode the strings of a pyusdt Provider without being told."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from proc_helpers import Cli

SCRIPT = Path(__file__).parent / "programs" / "described_provider.py"


@pytest.fixture
def app():
    p = subprocess.Popen([sys.executable, str(SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        pid = int(p.stdout.readline())
        assert p.stdout.readline().strip() == "ready"
        yield p, pid
    finally:
        p.kill()
        p.wait()


def test_list_names_and_types(cli, app):
    _, pid = app
    res = cli("list", "-p", str(pid), "describedapp:*", "--json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["name"], r["path"]) for r in rows] == [
        ("hello", "/memfd:pyusdt-describedapp (deleted)"), ("bye", "/memfd:pyusdt-describedapp (deleted)")]
    hello = rows[0]
    assert hello["args"] == ["-4@%edi", "8@%rsi", "8@%rdx"]
    assert hello["arg_names"] == ["count", "msg", "big"]
    assert hello["arg_types"] == ["int32", "str", "uint64"]
    text = cli("list", "-p", str(pid), "describedapp:hello").stdout
    assert "args=[count:int32=-4@%edi msg:str=8@%rsi big:uint64=8@%rdx]" in text


def test_trace_decodes_without_being_told(bpf, app):
    proc, pid = app
    for fmt in ("jsonl", "text"):
        trace = Cli("trace", "-p", pid, "describedapp:hello", "--format", fmt)
        try:
            trace.wait_tracing()
            proc.stdin.write("3\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "fired 3"
            deadline = time.monotonic() + 5
            while len(trace.out) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            trace.p.send_signal(2)
            trace.wait()
        if fmt == "jsonl":
            rows = [json.loads(line) for line in trace.out]
            assert [r["args"] for r in rows] == [[-i, f"héllo {i}", 2**64 - 1 - i] for i in range(3)]
            assert all(r["arg_names"] == ["count", "msg", "big"] for r in rows)
        else:
            assert [line.split(" describedapp:hello ")[1] for line in trace.out] == [
                f'count={-i} msg="héllo {i}" big={2**64 - 1 - i}' for i in range(3)]


def test_bpftrace_lists_provider_probes(bpftrace, app):
    _, pid = app
    res = subprocess.run([bpftrace, "-l", "usdt:*:describedapp:*", "-p", str(pid)], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    probes = sorted(line.rsplit(":", 2)[1:] for line in res.stdout.splitlines() if line.startswith("usdt:"))
    assert probes == [["describedapp", "bye"], ["describedapp", "hello"]]
