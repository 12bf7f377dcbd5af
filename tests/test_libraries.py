"""Probes in shared libraries: linked at build time, dlopen'ed after the trace
started, loaded from a memfd, and loaded from a file deleted since.

The programs (tests/programs/proc_*.c):
  libproc_probes.so  proclib:fire(i, 1000*i + 7, label) from proclib_fire(),
                     proclibinit:ctor(4242) from its constructor
  proc_linked N      linked with -lproc_probes; calls proclib_fire(i, .., "linked-<i>")
                     for i < N first thing in main(), then proclinked:done(N)
  proc_dlopen LIB MODE START PRE COUNT END
                     dlopens the library (file, memfd or deleted copy), fires
                     proclib:loaded(mode, COUNT, path dlopen'ed), then COUNT proclib:fire(i, .., "dl-<i>")
                     50 ms apart, then proclib:done(COUNT)

The bound for libraries loaded while tracing: pyusdt rescans the mappings of
traced processes every 0.2 s inside poll(), and batches() polls at least every
0.1 s, so a dlopen'ed library is attached about 0.3 s after the dlopen at the
latest.  proc_dlopen waits PRE = 1000 ms between the dlopen and the first hit
it fires, so every hit of the new library must be seen.
"""
from __future__ import annotations

import json
import os
import re
import time

import pytest

from pyusdt import Tracer

from proc_helpers import Child, Cli, collect

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

PRE_MS = 1000  # between the dlopen and the first hit: > 0.3 s rescan bound
MODES = {"file": 1, "memfd": 2, "deleted": 3}
# The dlopen tests pin the traced program to one CPU, so that its records go
# through the same per-CPU scratch space one after the other: a string slot
# must hold that record's string only, never bytes left by an earlier one
# (proclib:loaded's long path, then proclib:fire's short label).
CPU = min(os.sched_getaffinity(0))


@pytest.fixture(scope="module")
def linked(build, lib):
    return build("proc_linked.c", "proc_linked", f"-L{lib.parent}", "-lproc_probes",
                 f"-Wl,-rpath,{lib.parent}")


def by_probe(events, fullname):
    return [e for e in events if e.probe.fullname == fullname]


def fire_args(prefix, n):
    return [(i, 1000 * i + 7, f"{prefix}-{i}") for i in range(n)]


def list_lines(cli, pid, *extra):
    res = cli("list", "-p", str(pid), *extra)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    return res.stdout.splitlines()


# -- a library linked by the program -------------------------------------------


def test_linked_library_first_hits_with_attach_command(bpf, lib, linked):
    """The library's probes are attached before it runs: its constructor's hit
    (before main) and the first hits of main are all seen, with their values."""
    with Tracer(str_len=64) as t:
        held = t.attach_command([str(linked), "5"], "proclib:fire", strings=[2])
        t.attach_command(held, "proclibinit:ctor")
        t.attach_command(held, "proclinked:done")
        t.start()
        events = collect(t)
        assert held.poll() == 0
        stats = {s.probe: s for s in t.stats()}

    assert [e.probe.fullname for e in events] == (
        ["proclibinit:ctor"] + ["proclib:fire"] * 5 + ["proclinked:done"])
    assert [e.args for e in by_probe(events, "proclib:fire")] == fire_args("linked", 5)
    assert by_probe(events, "proclibinit:ctor")[0].args == (4242,)
    assert by_probe(events, "proclinked:done")[0].args == (5,)
    assert {e.pid for e in events} == {held.pid}
    assert {e.tid for e in events} == {held.pid}
    assert all(isinstance(e.args[2], str) for e in by_probe(events, "proclib:fire"))
    assert [e.truncated for e in events] == [()] * 7
    assert [e.read_failed for e in events] == [()] * 7

    real_lib = os.path.realpath(lib)
    assert stats["proclib:fire"].path == real_lib
    assert stats["proclibinit:ctor"].path == real_lib
    assert stats["proclinked:done"].path == os.path.realpath(linked)
    for name, n in (("proclib:fire", 5), ("proclibinit:ctor", 1), ("proclinked:done", 1)):
        s = stats[name]
        assert (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) == (n, n, 0, 0, 0), s


def test_linked_library_with_cli_command(bpf, cli, lib, linked):
    res = cli("trace", "-c", f"{linked} 3", "proclib:fire", "-s", "2", "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["args"] for r in rows] == [list(a) for a in fire_args("linked", 3)]
    assert {(r["provider"], r["probe"]) for r in rows} == {("proclib", "fire")}
    assert len({r["pid"] for r in rows}) == 1
    err = res.stderr.splitlines()
    assert "pyusdt: 3 events, 0 lost (ring buffer full), 0 unreadable strings, 0 unreadable arguments" in err
    per_probe = [line.split() for line in err if line.strip().startswith("proclib:fire")]
    assert per_probe == [["proclib:fire", "3", "events", os.path.realpath(lib)]]
    assert "Traceback" not in res.stderr


# -- a library dlopen'ed after the trace started ---------------------------------


@pytest.mark.parametrize("mode", list(MODES))
def test_dlopen_after_attach_pid(bpf, lib, dlopener, mode):
    """attach_pid on a running process; the library comes later (dlopen from a
    file, from a memfd, from a file deleted at once) and the rescan attaches it."""
    child = Child([dlopener, lib, mode, "stdin", PRE_MS, 4, "exit"])
    try:
        assert child.readline() == f"pid {child.pid}"
        os.sched_setaffinity(child.pid, {CPU})
        with Tracer(str_len=64) as t:
            found = t.attach_pid(child.pid, "proclib:*", strings=[2])
            # Only the program's own probes exist yet: the library is not mapped.
            assert sorted(p.fullname for p in found) == ["proclib:done", "proclib:loaded"]
            t.start()
            assert t.attached_sites == 2
            child.send()
            events = collect(t)
            assert t.attached_sites == 3
            stats = {s.probe: s for s in t.stats()}
            paths = {tp.fullname: tp.probe.path for tp in t.probes}
        assert child.wait() == 0
    finally:
        child.kill()

    assert [e.probe.fullname for e in events] == (
        ["proclib:loaded"] + ["proclib:fire"] * 4 + ["proclib:done"])
    (loaded,) = by_probe(events, "proclib:loaded")
    assert loaded.args[:2] == (MODES[mode], 4)
    if mode == "file":
        assert loaded.args[2] == str(lib)
    elif mode == "memfd":
        assert re.fullmatch(r"/proc/self/fd/\d+", loaded.args[2])
    else:
        assert re.fullmatch(r"/tmp/proc_dlopen_del\.\w{6}", loaded.args[2])
    assert [e.args for e in by_probe(events, "proclib:fire")] == fire_args("dl", 4)
    assert by_probe(events, "proclib:done")[0].args == (4,)
    assert {e.pid for e in events} == {child.pid}
    s = stats["proclib:fire"]
    assert (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) == (4, 4, 0, 0, 0)
    if mode == "file":
        assert paths["proclib:fire"] == os.path.realpath(lib)
    elif mode == "memfd":
        assert paths["proclib:fire"] == "/memfd:probes (deleted)"
    else:
        # The program unlinks the file right after dlopen: a rescan in between
        # saw the name before it was deleted.
        assert re.fullmatch(r"/tmp/proc_dlopen_del\.\w{6}( \(deleted\))?", paths["proclib:fire"])


@pytest.mark.parametrize("mode", ["file", "memfd"])
def test_dlopen_with_attach_command(bpf, lib, dlopener, mode):
    """attach_command: the library is not among the linked ones; the program
    dlopens it first thing after exec and the rescan attaches it."""
    with Tracer(str_len=64) as t:
        held = t.attach_command([str(dlopener), str(lib), mode, "0", str(PRE_MS), "5", "exit"],
                                "proclib:*", strings=[2])
        os.sched_setaffinity(held.pid, {CPU})  # held before exec: the exec keeps it
        t.start()
        assert t.attached_sites == 2
        events = collect(t)
        assert held.poll() == 0
        assert t.attached_sites == 3
        stats = {s.probe: s for s in t.stats()}

    # proclib:loaded fires right after the dlopen, before the rescan can have
    # seen the library; it is in the executable, attached from the start.
    assert [e.probe.fullname for e in events] == (
        ["proclib:loaded"] + ["proclib:fire"] * 5 + ["proclib:done"])
    assert [e.args for e in by_probe(events, "proclib:fire")] == fire_args("dl", 5)
    (loaded,) = by_probe(events, "proclib:loaded")
    assert loaded.args[:2] == (MODES[mode], 5)
    assert loaded.args[2] == str(lib) if mode == "file" else loaded.args[2].startswith("/proc/self/fd/")
    assert by_probe(events, "proclib:done")[0].args == (5,)
    assert {e.pid for e in events} == {held.pid}
    s = stats["proclib:fire"]
    assert (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) == (5, 5, 0, 0, 0)


def test_rescan_with_string_argument(bpf, lib, dlopener):
    """With a string argument asked for, the rescans (every 0.2 s) go over
    objects that have no matching probe (libc, ld.so, the dlopen'ed library
    for this pattern): they are skipped, the trace goes on."""
    child = Child([dlopener, lib, "file", "stdin", 0, 0, "exit"])
    try:
        assert child.readline() == f"pid {child.pid}"
        with Tracer(str_len=64) as t:
            t.attach_pid(child.pid, "proclib:loaded", strings=[2])
            t.start()
            events = []
            deadline = time.monotonic() + 0.6  # three rescans at least
            while time.monotonic() < deadline:
                events.extend(t.poll(0.05))
            assert events == []
            child.send()
            events.extend(collect(t))
            assert t.attached_sites == 1
            assert t.warnings == []
        assert child.wait() == 0
    finally:
        child.kill()
    assert [(e.pid, e.args) for e in events] == [(child.pid, (1, 0, str(lib)))]


def test_list_pid_shows_dlopened_library(bpf, cli, lib, dlopener):
    child = Child([dlopener, lib, "file", "stdin", "stdin", 0, "exit"])
    try:
        assert child.readline() == f"pid {child.pid}"
        before = list_lines(cli, child.pid)
        assert not any("proclib:fire" in line or str(lib) in line for line in before)
        assert any(line.startswith(f"{os.path.realpath(dlopener)} proclib:loaded sites=1 ")
                   for line in before), before

        child.send()
        assert child.readline() == f"loaded {lib}"
        after = list_lines(cli, child.pid)
        real = os.path.realpath(lib)
        fire = [line for line in after if " proclib:fire " in line]
        assert len(fire) == 1 and fire[0].startswith(f"{real} proclib:fire sites=1 args=["), after
        ctor = [line for line in after if " proclibinit:ctor " in line]
        assert ctor == [f"{real} proclibinit:ctor sites=1 args=[-4@$4242]"]

        rows = [json.loads(line) for line in list_lines(cli, child.pid, "proclib:fire", "--json")]
        assert len(rows) == 1
        assert (rows[0]["path"], rows[0]["provider"], rows[0]["name"]) == (real, "proclib", "fire")
        assert len(rows[0]["args"]) == 3
        assert rows[0]["semaphore"] is None

        child.send()
        assert child.readline() == "fired"
        assert child.wait() == 0
    finally:
        child.kill()


# -- memfd-backed and deleted objects --------------------------------------------


@pytest.mark.parametrize("mode", ["memfd", "deleted"])
def test_list_and_trace_unlinked_object(bpf, cli, lib, dlopener, mode):
    """An object with no file name: `list -p` finds it through the process's
    mappings, and `trace -p` attaches to it and sees every hit."""
    child = Child([dlopener, lib, mode, "0", "stdin", 4, "exit"])
    trace = None
    try:
        assert child.readline() == f"pid {child.pid}"
        loaded = child.readline()
        assert loaded.startswith("loaded ")
        if mode == "memfd":
            assert re.fullmatch(r"loaded /proc/self/fd/\d+", loaded)
            shown = "/memfd:probes (deleted)"
        else:
            assert re.fullmatch(r"loaded /tmp/proc_dlopen_del\.\w{6}", loaded)
            assert not os.path.exists(loaded.split()[1])
            shown = loaded.split()[1] + " (deleted)"

        lines = list_lines(cli, child.pid)
        fire = [line for line in lines if " proclib:fire " in line]
        assert len(fire) == 1 and fire[0].startswith(f"{shown} proclib:fire sites=1 args=["), lines
        assert f"{shown} proclibinit:ctor sites=1 args=[-4@$4242]" in lines
        rows = [json.loads(line) for line in list_lines(cli, child.pid, "proclib:fire", "--json")]
        assert [r["path"] for r in rows] == [shown]

        trace = Cli("trace", "-p", child.pid, "proclib:fire", "-s", "2", "--format", "jsonl")
        trace.wait_tracing()
        child.send()  # fire 4 hits, then exit
        assert child.wait() == 0
        rc = trace.wait()
        assert rc == 0, trace.err  # the traced process exited during the trace: a normal end
        rows = [json.loads(line) for line in trace.out]
        assert [r["args"] for r in rows] == [list(a) for a in fire_args("dl", 4)]
        assert {r["pid"] for r in rows} == {child.pid}
        assert "pyusdt: 4 events, 0 lost (ring buffer full), 0 unreadable strings, " \
               "0 unreadable arguments" in trace.err
        per_probe = [line for line in trace.err if line.strip().startswith("proclib:fire")]
        assert len(per_probe) == 1
        assert per_probe[0].split(None, 3)[1:] == ["4", "events", shown]
        assert trace.err.count(f"pyusdt: process {child.pid} exited during the trace") == 1
    finally:
        child.kill()
        if trace is not None:
            trace.kill()
