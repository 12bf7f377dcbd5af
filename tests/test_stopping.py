"""How a streaming trace stops: at once on one Ctrl-C or SIGTERM, even just
after attach or under a flood of events written to a pipe nobody reads;
every event the kernel delivered is written or counted as lost; losses are
reported while they happen; a second signal still prints the summary.

tests/programs/flood.c fires flood:tick(seq) with seq 0, 1, 2, ..., so a
missing event is a gap in the numbers.  No test here measures time: the
timeouts only turn a hang into a failure.
"""
from __future__ import annotations

import re
import signal
import subprocess
import threading
import time

import pytest

from pyusdt import Tracer

from conftest import PYUSDT
from proc_helpers import Child, Cli

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

HANG_GUARD_S = 60
SUMMARY = re.compile(r"^pyusdt: (\d+) events, (\d+) lost \(ring buffer full\)")
LOSS = re.compile(r"^pyusdt: warning: (\d+) event\(s\) lost in the last [\d.]+ s \((\d+) in all\): "
                  r"the ring buffer \(\d+ KiB\) is full; a bigger --ringbuf-size, or aggregating in the "
                  r"kernel \(pyusdt count, hist, \.\.\.\), keeps up$")


@pytest.fixture(scope="module")
def flood(build):
    return build("flood.c", "flood")


@pytest.fixture
def forever(flood):
    """flood firing as fast as it can, until the test ends."""
    child = Child([flood, "forever"])
    try:
        assert int(child.readline()) == child.pid
        yield child
    finally:
        child.kill()


def summary_counts(stderr: str) -> tuple:
    """(events, lost) from the summary line."""
    m = next(SUMMARY.match(line) for line in stderr.splitlines() if SUMMARY.match(line))
    return int(m.group(1)), int(m.group(2))


def seqs(stdout: str) -> list:
    return [int(line.rsplit("arg0=", 1)[1]) for line in stdout.splitlines()]


def assert_complete(stdout: str, stderr: str) -> None:
    """Every event counted was written, in order; without losses, no gap."""
    events, lost = summary_counts(stderr)
    got = seqs(stdout)
    assert len(got) == events
    assert got == sorted(set(got))
    if not lost and got:
        assert got == list(range(got[0], got[0] + len(got)))


class SlowReader:
    """`pyusdt trace ...` whose stdout pipe is not read until read_all():
    once the pipe is full, pyusdt blocks writing."""

    def __init__(self, *args: str):
        self.p = subprocess.Popen([PYUSDT, "trace", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.err: list[str] = []
        self._th = threading.Thread(target=lambda: self.err.extend(
            line.decode().rstrip("\n") for line in self.p.stderr), daemon=True)
        self._th.start()

    def wait_for(self, pattern: re.Pattern) -> re.Match:
        deadline = time.monotonic() + HANG_GUARD_S
        while time.monotonic() < deadline:
            for line in list(self.err):
                m = pattern.match(line)
                if m:
                    return m
            assert self.p.poll() is None, self.err
            time.sleep(0.01)
        pytest.fail(f"no {pattern.pattern!r} on stderr: {self.err}")

    def read_all(self) -> tuple:
        """(stdout, stderr, exit code) once pyusdt has exited."""
        out = self.p.stdout.read().decode()
        rc = self.p.wait(HANG_GUARD_S)
        self._th.join(HANG_GUARD_S)
        return out, "\n".join(self.err), rc

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


TRACING = re.compile(r"^pyusdt: tracing ")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_right_after_attach(bpf, forever, sig):
    """The first poll is where numpy's C API was first looked up; a signal
    then threw through a C frame: SIGABRT, 1 run in 3.  Six runs each."""
    for _ in range(6):
        cli = SlowReader("-p", str(forever.pid), "flood:tick")
        try:
            cli.wait_for(TRACING)
            cli.p.send_signal(sig)
            out, err, rc = cli.read_all()
        finally:
            cli.kill()
        assert rc == 0, err
        assert "Traceback" not in err and "Fatal Python error" not in err
        assert_complete(out, err)


def test_one_signal_stops_a_flood_into_a_full_pipe(bpf, forever):
    """The pipe is full and pyusdt blocked writing when SIGINT comes: it
    still stops, and writes every event it read (a signal during a blocked
    write once dropped part of a batch)."""
    cli = SlowReader("-p", str(forever.pid), "flood:tick")
    try:
        cli.wait_for(TRACING)
        time.sleep(1)  # the 64 KiB pipe fills within milliseconds
        cli.p.send_signal(signal.SIGINT)
        out, err, rc = cli.read_all()
    finally:
        cli.kill()
    assert rc == 0, err
    assert_complete(out, err)
    assert summary_counts(err)[0] > 0


def test_second_signal_still_prints_the_summary(bpf, forever):
    """Nobody reads the pipe: the drain cannot finish.  A second SIGINT ends
    it, and the summary still says what was read and what was left."""
    cli = SlowReader("-p", str(forever.pid), "flood:tick")
    try:
        cli.wait_for(TRACING)
        time.sleep(0.5)
        cli.p.send_signal(signal.SIGINT)
        time.sleep(0.5)
        cli.p.send_signal(signal.SIGINT)
        cli.wait_for(re.compile(r"^pyusdt: stopped by a second signal: \d+ event\(s\) left unread"))
        out, err, rc = cli.read_all()
    finally:
        cli.kill()
    assert rc == 130
    assert "Traceback" not in err
    events, _ = summary_counts(err)
    whole = out[:out.rfind("\n") + 1]  # the write the second signal cut may end mid-line
    assert 0 < len(seqs(whole)) <= events


def test_losses_are_reported_while_they_happen(bpf, flood):
    """A burst into a one-page ring buffer: the loss warning comes while
    the trace still runs, and in the end events + lost = what was fired."""
    child = Child([flood])
    try:
        assert int(child.readline()) == child.pid
        cli = Cli("trace", "-p", child.pid, "flood:tick", "--ringbuf-size", "4096")
        cli.wait_tracing()
        child.send("200000")
        assert child.readline() == "fired 200000"
        deadline = time.monotonic() + HANG_GUARD_S
        while not any(LOSS.match(line) for line in cli.err):
            assert time.monotonic() < deadline, cli.err
            time.sleep(0.02)
        assert cli.p.poll() is None  # reported while tracing, not at the end
        child.p.stdin.close()
        assert child.wait() == 0
        assert cli.wait(HANG_GUARD_S) == 0
    finally:
        child.kill()
        cli.kill()
    err = "\n".join(cli.err)
    events, lost = summary_counts(err)
    assert events + lost == 200000
    assert lost > 0
    reported = [LOSS.match(line) for line in cli.err if LOSS.match(line)]
    assert sum(int(m.group(1)) for m in reported) == int(reported[-1].group(2)) <= lost
    assert_complete("\n".join(cli.out), err)


def test_api_stop_then_drain_delivers_every_counted_hit(bpf, forever):
    """Tracer.stop() ends streaming in the kernel: drain() then ends even
    under a flood, and every hit counted is an event delivered or a loss."""
    with Tracer(ringbuf_bytes=1 << 16) as t:
        t.attach_pid(forever.pid, "flood:tick")
        t.start()
        got = []
        for batch in t.batches(timeout=0.05, duration=0.5):
            got.extend(batch.arg(0, "flood:tick").tolist())
        t.stop()
        for batch in t.drain():
            got.extend(batch.arg(0, "flood:tick").tolist())
        (s,) = t.stats()
    assert s.events == len(got) > 0
    assert s.hits == s.events + s.lost_ringbuf
    assert got == sorted(set(got))
