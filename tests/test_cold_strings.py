"""A string in a page the traced process has never touched (a constant in
untouched .rodata) is read exactly, by each route a kernel can take: the
sleepable program faulting the page in (Linux 6.0+), and the reader reading
it from user space where uprobes cannot sleep (before 6.0, taken here with
PYUSDT_SLEEPABLE_UPROBES=0).  bpftrace 0.17 reads "" for the same string,
which proves it is cold."""
from __future__ import annotations

import os
import subprocess

import pytest

from conftest import PYUSDT

COLD_TEXT = "a constant in a page this process never touched"


@pytest.fixture(scope="module")
def program(build):
    return str(build("args_cold_string.c", "args_cold_string"))


def test_bpftrace_cannot_read_it(bpftrace, program):
    """The string really is cold: a plain read in the uprobe fails."""
    res = subprocess.run(
        [bpftrace, "-e", f'usdt:{program}:cold:text /arg0 == 0/ {{ printf("<%s>\\n", str(arg1)); }}',
         "-c", program], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    assert "<>" in res.stdout.splitlines(), res.stdout


@pytest.mark.parametrize("sleepable", ["1", "0"])
def test_cold_string_read_exactly(bpf, program, sleepable):
    """The program stays until its stdin closes, which this test does once
    both hits are printed: the reader of kernels before 6.0 reads the string
    from the live process (with the process gone, only kernels before 6.1
    say which file holds it: scripts/check-kernels proves that route)."""
    env = dict(os.environ, PYUSDT_SLEEPABLE_UPROBES=sleepable)
    p = subprocess.Popen([PYUSDT, "trace", "-c", program, "cold:text", "-s", "1"], env=env, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        got = [p.stdout.readline().rstrip("\n").split(" ", 3)[3] for _ in range(2)]
        p.stdin.close()
        err = p.stderr.read()
        assert p.wait(timeout=60) == 0, err
    finally:
        p.kill()
    assert got == [f'cold:text arg0={i} arg1="{COLD_TEXT}"' for i in range(2)]
    assert "2 events, 0 lost (ring buffer full), 0 unreadable strings, 0 unreadable arguments" in err
