"""A burst of string events from a real program, read by a slow consumer:
nothing is lost at the default settings.

Debian's python3.11 fires python:function__entry and python:line (file and
function names as strings) a few hundred thousand times while it imports a
dozen modules, faster than Python code can format the events.  The reader's
native thread moves records out of the ring buffer as they come, so the
consumer's speed decides only how long it takes, not what is lost; the
extension modules it loads (dlopen, with the process held at each load)
have no probes and are let go by the reader itself.  Counts are exact: every
hit the kernel counted is a row delivered."""
from __future__ import annotations

import os

import pytest

from pyusdt import Tracer, probes_at_path

from conftest import missing

PYTHON = "/usr/bin/python3.11"
IMPORTS = "import json, decimal, fractions, email.parser, http.client, xml.dom.minidom, argparse, logging"
PROBES = ("python:function__entry", "python:line")


@pytest.fixture(scope="module")
def python():
    if not os.path.exists(PYTHON):
        missing(f"{PYTHON} is not installed (Debian's python3.11 has USDT probes)")
    names = {p.fullname for p in probes_at_path(PYTHON)}
    if not set(PROBES) <= names:
        missing(f"{PYTHON} has no {', '.join(PROBES)} probes")
    return PYTHON


def burst(python, consume, **tracer_kw) -> tuple[dict, dict, int]:
    """Events delivered by probe, (hits, lost, str_fail) by probe, and the
    traced program's exit status."""
    delivered = dict.fromkeys(PROBES, 0)
    with Tracer(**tracer_kw) as t:
        held = t.attach_command([python, "-B", "-c", IMPORTS], PROBES[0], strings=[0, 1])
        t.attach_command(held, PROBES[1], strings=[0, 1])
        t.start()
        for batch in t.batches(timeout=0.1):
            consume(batch)
            for e in batch:
                delivered[e.probe.fullname] += 1
        stats = {s.probe: (s.hits, s.lost_ringbuf, s.str_fail) for s in t.stats()}
        code = held.wait()
    return delivered, stats, code


def test_burst_at_defaults_loses_nothing(bpf, python):
    def format_each(batch):  # what a text writer does per event: far slower than the burst
        for e in batch:
            f"{e.ts_ns} {e.pid} {e.probe.fullname} {e.args}"
    delivered, stats, code = burst(python, format_each)
    assert code == 0
    assert all(stats[p][0] > 1000 for p in PROBES), stats  # a burst, not a trickle
    assert stats == {p: (delivered[p], 0, 0) for p in PROBES}

