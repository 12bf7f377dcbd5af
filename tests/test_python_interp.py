"""A real USDT target: Debian's /usr/bin/python3.11 (CPython built with
--with-dtrace), whose probes are all guarded by semaphores.

Traced with attach_command, so the semaphores are set before the interpreter
runs its first instruction: python:import__find__load__start (arg0: module
name, char *) and python:gc__start (arg0: generation, int) fire only because
they are.  The script imports json, decimal and fractions (none imported at
start-up; fractions finds decimal already loaded), runs gc.collect(0), (1),
(2) with automatic collection off, then signals "ready" and waits, so the
semaphores can be read while traced and again after the tracer is closed.
"""
from __future__ import annotations

import collections
import os
import struct
import time

from pyusdt import Tracer, probes_at_path

from conftest import load_base, missing, read_u16

PYTHON = "/usr/bin/python3.11"
IMPORT = "python:import__find__load__start"
GC = "python:gc__start"

SCRIPT = r"""
import gc
gc.disable()
import os, sys, time
ready, release = sys.argv[1], sys.argv[2]
import json, decimal, fractions
gc.collect(0)
gc.collect(1)
gc.collect(2)
with open(ready + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(ready + ".tmp", ready)
deadline = time.monotonic() + 30
while not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.02)
"""


def _has_probes() -> str:
    if not os.path.exists(PYTHON):
        return f"{PYTHON} is not installed"
    names = {p.fullname for p in probes_at_path(PYTHON)}
    if not {IMPORT, GC} <= names:
        return f"{PYTHON} has no {IMPORT} / {GC} probes"
    return ""


def lowest_load_vaddr(path: str) -> int:
    """The p_vaddr of the first PT_LOAD segment (0 for PIE, 0x400000 for
    Debian's non-PIE python3.11): the runtime address of a link-time address
    A is A + load_base - this."""
    with open(path, "rb") as f:
        ehdr = f.read(64)
        assert ehdr[:4] == b"\x7fELF" and ehdr[4] == 2, "not a 64-bit ELF file"
        phoff, = struct.unpack_from("<Q", ehdr, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    loads = []
    for i in range(phnum):
        p_type, _flags, _off, p_vaddr = struct.unpack_from("<IIQQ", table, i * phentsize)
        if p_type == 1:
            loads.append(p_vaddr & ~0xFFF)
    return min(loads)


def semaphore_values(pid: int, probes) -> dict:
    bias = load_base(pid, PYTHON) - lowest_load_vaddr(PYTHON)
    return {p.fullname: read_u16(pid, bias + p.semaphore) for p in probes}


def test_python_imports_and_gc(bpf, tmp_path):
    reason = _has_probes()
    if reason:
        missing(reason)
    script = tmp_path / "script.py"
    script.write_text(SCRIPT)
    ready, release = tmp_path / "ready", tmp_path / "release"
    held = None
    try:
        with Tracer(str_len=64) as t:
            # -I: isolated, no PYTHON* environment or user site-packages.
            held = t.attach_command([PYTHON, "-I", str(script), str(ready), str(release)],
                                    IMPORT, strings=[0])
            t.attach_command(held, GC)
            t.start()
            events = []
            deadline = time.monotonic() + 20
            while not ready.exists():
                assert time.monotonic() < deadline, "the script did not get ready"
                assert held.poll() is None, f"python exited with {held.returncode}"
                events.extend(t.poll(0.05))
            # Every hit before "ready" is in the ring buffer by now.
            for batch in t.drain():
                events.extend(batch)
            assert int(ready.read_text()) == held.pid

            probes = [tp.probe for tp in t.probes]
            assert sorted(p.fullname for p in probes) == sorted([IMPORT, GC])
            assert all(p.semaphore for p in probes)
            traced = semaphore_values(held.pid, probes)
            stats = {s.probe: s for s in t.stats()}

        closed = semaphore_values(held.pid, probes)
        # The interpreter is unharmed by the detach: still running, exits cleanly.
        assert held.poll() is None
        release.touch()
        assert held.wait() == 0
    finally:
        if held is not None and held.poll() is None:
            held.terminate()

    # Semaphores: set while traced, back to zero after close().
    assert traced == {IMPORT: 1, GC: 1}
    assert closed == {IMPORT: 0, GC: 0}, (
        "semaphores still set after close (another tracer of python3.11 running?)")

    assert {e.pid for e in events} == {held.pid}
    imports = [e for e in events if e.probe.fullname == IMPORT]
    names = [e.args[0] for e in imports]
    assert all(isinstance(n, str) for n in names)
    assert all(e.truncated == () and e.read_failed == () for e in imports)
    counts = collections.Counter(names)
    assert (counts["json"], counts["decimal"], counts["fractions"]) == (1, 1, 1), names
    assert names.index("json") < names.index("decimal") < names.index("fractions")
    # json's submodules come with it, between json and decimal.
    assert {"json.decoder", "json.scanner", "json.encoder"} <= set(
        names[names.index("json"):names.index("decimal")])

    gcs = [e for e in events if e.probe.fullname == GC]
    assert all(isinstance(e.args[0], int) for e in gcs)
    assert {e.args[0] for e in gcs} <= {0, 1, 2}
    # Automatic collection is off from the script's first line, so after the
    # last import the only collections are the three explicit ones, in order.
    after = [e.args[0] for e in gcs if e.ts_ns > imports[names.index("fractions")].ts_ns]
    assert after == [0, 1, 2]

    assert stats[IMPORT].events == stats[IMPORT].hits == len(imports)
    assert stats[GC].events == stats[GC].hits == len(gcs)
    assert stats[IMPORT].path == stats[GC].path == PYTHON
    for s in stats.values():
        assert (s.lost_ringbuf, s.str_fail, s.arg_fail) == (0, 0, 0)
