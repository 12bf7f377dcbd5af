"""Semaphore-guarded probes: the semaphore in the traced process's memory is
0 before attach, counts the attached tracers while attached, and is 0 again
after close(); the guarded probe fires (and is seen) only while attached."""
from __future__ import annotations

import subprocess

import pytest

from pyusdt import Tracer, probes_at_path

from conftest import load_base, read_u16

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes


@pytest.fixture(scope="module")
def program(build):
    return build("args_semaphore.c", "args_semaphore")


class Target:
    """args_semaphore running, talked to line by line; killed at the end."""

    def __init__(self, path):
        self.path = str(path)
        self.proc = subprocess.Popen([self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        assert self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid
        base = load_base(self.pid, self.path)
        probes = {p.name: p for p in probes_at_path(self.path)}
        self.hit_sem = base + probes["hit"].semaphore
        self.plain_sem = base + probes["plain"].semaphore

    def send(self, n: int) -> str:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def semaphore(self) -> int:
        return read_u16(self.pid, self.hit_sem)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def target(program):
    t = Target(program)
    try:
        yield t
    finally:
        t.stop()


def collect(tracer, seconds=0.3) -> list:
    return [(e.probe.fullname, e.args) for b in tracer.batches(timeout=0.05, duration=seconds) for e in b]


def test_semaphore_in_the_note(program):
    probes = {p.fullname: p for p in probes_at_path(str(program))}
    assert probes["semprov:hit"].semaphore != 0
    assert probes["semprov:plain"].semaphore != 0
    assert probes["semprov:hit"].semaphore != probes["semprov:plain"].semaphore
    assert probes["semprov:hit"].args[1].size == 4


def test_semaphore_lifecycle_pid(bpf, target):
    assert target.semaphore() == 0
    assert target.send(1) == "skipped 1"

    t = Tracer()
    try:
        t.attach_pid(target.pid, "semprov:*")
        assert target.semaphore() == 0  # nothing attached before start()
        t.start()
        assert target.semaphore() == 1
        assert read_u16(target.pid, target.plain_sem) == 1
        assert target.send(2) == "fired 2"
        assert target.send(3) == "fired 3"
        seen = collect(t)
        assert target.semaphore() == 1
    finally:
        t.close()
    assert target.semaphore() == 0
    assert read_u16(target.pid, target.plain_sem) == 0
    assert target.send(4) == "skipped 4"

    # arg1 is the semaphore value the program saw when it fired.
    assert seen == [("semprov:plain", (2,)), ("semprov:hit", (2, 1)),
                    ("semprov:plain", (3,)), ("semprov:hit", (3, 1))]
    stats = {s.probe: (s.events, s.hits) for s in t.stats()}
    assert stats == {"semprov:plain": (2, 2), "semprov:hit": (2, 2)}


def test_semaphore_two_tracers(bpf, target):
    """Two tracers on one probe: the semaphore stays set until the last one
    closes, and the remaining tracer still sees the hits.  (The kernel's
    uprobe reference counter counts the installed breakpoint, not the
    tracers: it is 1 for any number of them.)"""
    a, b = Tracer(), Tracer()
    try:
        for t in (a, b):
            t.attach_pid(target.pid, "semprov:hit")
        a.start()
        assert target.semaphore() == 1
        b.start()
        sem = target.semaphore()
        assert sem >= 1
        assert target.send(10) == "fired 10"
        assert collect(a) == [("semprov:hit", (10, sem))]
        assert collect(b) == [("semprov:hit", (10, sem))]
        a.close()
        assert target.semaphore() >= 1
        assert target.send(11) == "fired 11"
        assert collect(b) == [("semprov:hit", (11, target.semaphore()))]
    finally:
        a.close()
        b.close()
    assert target.semaphore() == 0
    assert target.send(12) == "skipped 12"


def test_semaphore_path_target_running_and_new_process(bpf, program):
    """A path target sets the semaphore of a process already running the file
    and of one started after start()."""
    first = Target(program)
    second = None
    try:
        assert first.semaphore() == 0
        with Tracer() as t:
            t.attach_path(str(program), "semprov:hit")
            t.start()
            assert first.semaphore() == 1
            second = Target(program)
            assert second.semaphore() == 1
            assert first.send(20) == "fired 20"
            assert second.send(21) == "fired 21"
            seen = collect(t)
        assert first.semaphore() == 0
        assert second.semaphore() == 0
        assert first.send(22) == "skipped 22"
        assert second.send(23) == "skipped 23"
        assert seen == [("semprov:hit", (20, 1)), ("semprov:hit", (21, 1))]
    finally:
        first.stop()
        if second is not None:
            second.stop()
