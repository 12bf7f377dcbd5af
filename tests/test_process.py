"""Processes: forked children followed with their own pids, and the lifetime
of the traced target as the CLI sees it (-p exiting, -p not existing, -c).

The programs (tests/programs/proc_*.c):
  proc_fork PIDFILE START NPARENT NCHILD
      forks; the child fires procfork:hit(2, i, 200 + i) NCHILD times, the
      parent procfork:hit(1, i, 100 + i) NPARENT times, then waits for the
      child and fires procfork:reaped(child pid, exit status); the parent
      writes "parent P\\nchild C\\n" to PIDFILE.
  proc_sem serve | run N     procsem:burst(k, 10*k + 3) on demand (see the source)
"""
from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import time

import pytest

from pyusdt import Tracer
from pyusdt.errors import NoSuchProcessError

from proc_helpers import Child, Cli, collect

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

NPARENT, NCHILD = 3, 5


@pytest.fixture(scope="module")
def forker(build):
    return build("proc_fork.c", "proc_fork")


@pytest.fixture(scope="module")
def semprog(build):
    return build("proc_sem.c", "proc_sem")


def read_pids(pidfile) -> tuple[int, int]:
    lines = pidfile.read_text().split("\n")
    assert lines[0].startswith("parent ") and lines[1].startswith("child "), lines
    return int(lines[0].split()[1]), int(lines[1].split()[1])


def check_fork_events(events, parent: int, child: int) -> None:
    hits = [e for e in events if e.probe.fullname == "procfork:hit"]
    assert collections.Counter(e.pid for e in hits) == {parent: NPARENT, child: NCHILD}
    assert [e.args for e in hits if e.pid == parent] == [(1, i, 100 + i) for i in range(NPARENT)]
    assert [e.args for e in hits if e.pid == child] == [(2, i, 200 + i) for i in range(NCHILD)]
    # Both are single-threaded: each hit's thread is its process.
    assert all(e.tid == e.pid for e in hits)
    reaped = [e for e in events if e.probe.fullname == "procfork:reaped"]
    assert [(e.pid, e.args) for e in reaped] == [(parent, (child, 0))]
    assert events[-1].probe.fullname == "procfork:reaped"


# -- forked children --------------------------------------------------------------


def test_fork_attach_command(bpf, forker, tmp_path):
    pidfile = tmp_path / "pids"
    with Tracer(follow_children=True) as t:
        held = t.attach_command([str(forker), str(pidfile), "0", str(NPARENT), str(NCHILD)],
                                "procfork:*")
        t.start()
        events = collect(t)
        assert held.poll() == 0
        stats = {s.probe: s for s in t.stats()}
    parent, child = read_pids(pidfile)
    assert parent == held.pid and child != parent
    check_fork_events(events, parent, child)
    s = stats["procfork:hit"]
    assert (s.events, s.hits, s.lost_ringbuf) == (NPARENT + NCHILD, NPARENT + NCHILD, 0)
    s = stats["procfork:reaped"]
    assert (s.events, s.hits, s.lost_ringbuf) == (1, 1, 0)


def test_fork_attach_pid(bpf, forker, tmp_path):
    """A running process, attached by pid, forks only after the attach."""
    pidfile = tmp_path / "pids"
    proc = Child([forker, pidfile, "stdin", NPARENT, NCHILD])
    try:
        assert proc.readline() == f"pid {proc.pid}"
        with Tracer(follow_children=True) as t:
            t.attach_pid(proc.pid, "procfork:*")
            t.start()
            proc.send()
            events = collect(t)
        assert proc.wait() == 0
    finally:
        proc.kill()
    parent, child = read_pids(pidfile)
    assert parent == proc.pid
    check_fork_events(events, parent, child)


def test_fork_not_followed(bpf, forker, tmp_path):
    """follow_children=False (the default): only the process itself, not the child it forks."""
    pidfile = tmp_path / "pids"
    proc = Child([forker, pidfile, "stdin", NPARENT, NCHILD])
    try:
        assert proc.readline() == f"pid {proc.pid}"
        with Tracer() as t:
            t.attach_pid(proc.pid, "procfork:*")
            t.start()
            proc.send()
            events = collect(t)
            hits = {s.probe: s.hits for s in t.stats()}
        assert proc.wait() == 0
    finally:
        proc.kill()
    parent, child = read_pids(pidfile)
    assert [(e.pid, e.probe.fullname, e.args) for e in events] == (
        [(parent, "procfork:hit", (1, i, 100 + i)) for i in range(NPARENT)]
        + [(parent, "procfork:reaped", (child, 0))])
    assert hits == {"procfork:hit": NPARENT, "procfork:reaped": 1}


def test_fork_cli_command(bpf, cli, forker, tmp_path):
    pidfile = tmp_path / "pids"
    res = cli("trace", "-f", "-c", f"{forker} {pidfile} 0 {NPARENT} {NCHILD}", "procfork:*",
              "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    parent, child = read_pids(pidfile)
    # The command shares the CLI's stdout: its own "pid P" line is there too.
    lines = res.stdout.splitlines()
    assert [line for line in lines if not line.startswith("{")] == [f"pid {parent}"]
    rows = [json.loads(line) for line in lines if line.startswith("{")]
    hits = [r for r in rows if r["probe"] == "hit"]
    assert collections.Counter(r["pid"] for r in hits) == {parent: NPARENT, child: NCHILD}
    assert [r["args"] for r in hits if r["pid"] == child] == [[2, i, 200 + i] for i in range(NCHILD)]
    assert [r["args"] for r in hits if r["pid"] == parent] == [[1, i, 100 + i] for i in range(NPARENT)]
    assert [(r["pid"], r["args"]) for r in rows if r["probe"] == "reaped"] == [(parent, [child, 0])]
    err = res.stderr.splitlines()
    assert f"pyusdt: {NPARENT + NCHILD + 1} events, 0 lost (ring buffer full), " \
           "0 unreadable strings, 0 unreadable arguments" in err
    counts = {line.split()[0]: int(line.split()[1]) for line in err if line.startswith("  procfork:")}
    assert counts == {"procfork:hit": NPARENT + NCHILD, "procfork:reaped": 1}


# -- the target's lifetime, as the CLI sees it -------------------------------------


BURST_LINE = re.compile(r"(\d+) (\d+)/(\d+) cpu(\d+) procsem:burst arg0=(\d+) arg1=(\d+)")


def test_cli_pid_exits_during_trace(bpf, semprog):
    proc = Child([semprog, "serve"])
    trace = None
    try:
        assert proc.readline() == f"pid {proc.pid}"
        trace = Cli("trace", "-p", proc.pid, "procsem:burst")
        trace.wait_tracing()
        proc.send("f 4")
        assert proc.readline() == "burst 4"
        proc.send("q")
        assert proc.wait() == 0
        # It notices the exit by itself (the timeout only turns a hang into a failure).
        rc = trace.wait(timeout=60)
        assert rc == 0  # a normal end, as bpftrace's
        hits = [BURST_LINE.fullmatch(line) for line in trace.out]
        assert all(hits), trace.out
        assert [(int(m[2]), int(m[3]), int(m[5]), int(m[6])) for m in hits] == [
            (proc.pid, proc.pid, k, 10 * k + 3) for k in range(4)]
        err = trace.err
        assert err[0] == "pyusdt: tracing 1 probe(s) at 1 site(s); Ctrl-C to stop"
        assert err[1] == ("pyusdt: 4 events, 0 lost (ring buffer full), 0 unreadable strings, "
                          "0 unreadable arguments")
        assert err[2].split() == ["procsem:burst", "4", "events", os.path.realpath(semprog)]
        assert err[3:] == [f"pyusdt: process {proc.pid} exited during the trace"]
    finally:
        proc.kill()
        if trace is not None:
            trace.kill()


def _free_pid() -> int:
    """A pid no process has: pid_max itself is never handed out."""
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read())
    assert not os.path.exists(f"/proc/{pid}")
    return pid


def test_loader_hook_of_a_process_gone_is_no_warning(bpf):
    """A -p target that exits before its dynamic-linker site is linked (that
    link waits for the first events) loads nothing more: no warning about a
    rescan, and no site (CI once saw that warning end a trace's output)."""
    from pyusdt import _native
    from pyusdt.trace.loader_hook import LoaderHook

    ld = os.path.realpath("/lib64/ld-linux-x86-64.so.2")
    opts = _native.SessionOptions()
    session = _native.Session(opts)
    try:
        hook = LoaderHook(session, opts.max_probes - 1)
        assert hook.hook([(ld, ld)], _free_pid(), follow=False, hold=False) is None
        assert hook.sites == 0
    finally:
        session.close()


def test_cli_pid_that_does_not_exist(bpf, cli):
    pid = _free_pid()
    res = cli("trace", "-p", str(pid))
    assert res.returncode == 1
    assert res.stdout == ""
    assert res.stderr == f"pyusdt: no such process: {pid}\n"


def test_api_pid_that_does_not_exist(bpf):
    pid = _free_pid()
    with Tracer() as t:
        with pytest.raises(NoSuchProcessError, match=f"^no such process: {pid}$"):
            t.attach_pid(pid, "*")


def test_api_pid_that_exited(bpf, semprog):
    """A zombie (exited, not yet reaped) counts as gone."""
    proc = subprocess.Popen([str(semprog), "run", "0"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{proc.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        with Tracer() as t:
            with pytest.raises(NoSuchProcessError):
                t.attach_pid(proc.pid, "*")
    finally:
        proc.kill()
        proc.wait()


def test_cli_command_ends_with_the_command(bpf, cli, semprog):
    res = cli("trace", "-c", f"{semprog} run 6", "procsem:burst", timeout=60)  # ends with the command
    assert res.returncode == 0, res.stderr
    hits = [BURST_LINE.fullmatch(line) for line in res.stdout.splitlines()]
    assert len(hits) == 6 and all(hits), res.stdout
    assert [(int(m[5]), int(m[6])) for m in hits] == [(k, 10 * k + 3) for k in range(6)]
    assert len({m[2] for m in hits}) == 1
    err = res.stderr.splitlines()
    assert err[0] == "pyusdt: tracing 1 probe(s) at 1 site(s); Ctrl-C to stop"
    assert err[1] == ("pyusdt: 6 events, 0 lost (ring buffer full), 0 unreadable strings, "
                      "0 unreadable arguments")
    assert err[2].split() == ["procsem:burst", "6", "events", os.path.realpath(semprog)]
    assert len(err) == 3


@pytest.fixture(scope="module")
def fork_worker(build):
    return build("fork_worker.c", "fork_worker")


@pytest.mark.parametrize("command", ["trace", "count"])
def test_no_hits_in_the_parent_hints_at_follow(bpf, fork_worker, command):
    """-p PARENT without -f, the work done in a child: no hit, and one line
    naming the child that maps the traced file and -f; with -f, the hits."""
    proc = Child([fork_worker, "3"])
    try:
        parent = int(proc.readline().split()[1])
        child = int(proc.readline().split()[1])
        for follow in ((), ("-f",)):
            cli = Cli(command, "-p", parent, "fork_worker:work", *follow)
            cli.wait_tracing()
            proc.send()
            assert proc.readline() == "worked 3"
            cli.p.send_signal(2)  # Ctrl-C
            assert cli.wait(60) == 0, cli.err
            hint = (f"pyusdt: hint: no hits in process {parent}, but 1 process(es) it forked ({child}) "
                    "map the traced file(s): -f (--follow-forks) traces them too")
            if follow:
                assert hint not in cli.err
                if command == "count":
                    assert cli.out == ["@[fork_worker:work]: 3"]
                else:
                    fields = [line.split() for line in cli.out]  # ts pid/tid cpuN probe args
                    assert [(f[1], f[3], f[4]) for f in fields] == [
                        (f"{child}/{child}", "fork_worker:work", f"arg0={i}") for i in range(3)]
            else:
                assert hint in cli.err
                assert [line for line in cli.out if line.strip()] == []
    finally:
        proc.kill()

