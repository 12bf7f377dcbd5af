"""Reader wake-ups: a single event wakes a reader that sleeps in poll().

The BPF side wakes the reader when wakeup_bytes of data are pending (a
quarter MiB with the default ring) and, below that, when the last wake-up is
older than wakeup_interval, so one event after a quiet spell is seen at once
instead of at poll()'s timeout.  Here poll() is given an hour: it can only
return with the event if the event woke it.  The join below only keeps a
broken build from hanging the suite; it measures nothing.
"""
from __future__ import annotations

import os
import threading

import pytest

from pyusdt import Tracer
from pyusdt.provide.provider import Provider

from proc_helpers import Child

HANG_GUARD_S = 120


def test_one_event_wakes_a_sleeping_reader(bpf):
    prov = Provider("pyusdt_wake")
    tick = prov.probe("tick", ("n", "int64"))
    prov.load()
    try:
        with Tracer() as t:
            t.attach_pid(os.getpid(), "pyusdt_wake:tick")
            t.start()
            assert tick.enabled
            got = []
            reader = threading.Thread(target=lambda: got.append(t.poll(timeout=3600)), daemon=True)
            reader.start()
            tick.fire(7)
            reader.join(HANG_GUARD_S)
            woken = not reader.is_alive()
            if not woken:  # unblock the reader (cross the byte mark) before failing
                for _ in range(20000):
                    tick.fire(0)
                reader.join(HANG_GUARD_S)
            assert woken, "one event did not wake the reader"
            assert [e.args for e in got[0]] == [(7,)]
            assert [(s.events, s.hits, s.lost_ringbuf) for s in t.stats()] == [(1, 1, 0)]
    finally:
        prov.unload()


@pytest.fixture(scope="module")
def thread_flood(build):
    return build("thread_flood.c", "thread_flood", "-pthread")


def test_two_producers_past_the_mark_wake_the_reader(bpf, thread_flood):
    """Two threads flooding the one ring from both CPUs: past wakeup_bytes
    each stretch of reading is started by a wake-up, never by the reader's
    own timeout.  (A policy that woke only the record crossing the mark
    missed the crossing whenever the other CPU reserved in between; the
    reader then slept 0.1 s while the ring filled: several late wake-ups in
    two seconds, and lost events.)"""
    child = Child([thread_flood])
    try:
        assert int(child.readline()) == child.pid
        with Tracer() as t:
            t.attach_pid(child.pid, "thread_flood:tick")
            t.start()
            received = sum(len(b) for b in t.batches(timeout=0.1, duration=2.0))
            t.stop()
            received += sum(len(b) for b in t.drain())
            (s,) = t.stats()
            assert received > 100_000  # both CPUs took the ring past the mark many times
            assert received + s.lost_ringbuf == s.hits
            assert t.late_wakeups == 0
    finally:
        child.kill()
