"""`pyusdt demo`, and string arguments that live in pages the program never touched."""
from __future__ import annotations

import os

import pyusdt
from pyusdt import Tracer

DEMO = os.path.join(os.path.dirname(pyusdt.__file__), "bin", "pyusdt-demo-target")
LABELS = ["alpha", "beta", "gamma", "delta"]


def test_demo_command_sees_every_hit(bpf, cli):
    res = cli("demo")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "pyusdt demo: saw every probe hit" in out
    assert "pyusdt: 40 events, 0 lost (ring buffer full), 0 unreadable strings, 0 unreadable arguments" in out
    ticks = [line for line in out.splitlines() if " demo:tick arg0=" in line]
    assert len(ticks) == 20
    assert ticks[0].endswith('demo:tick arg0=0 arg1=-10 arg2="alpha"')
    assert ticks[19].endswith('demo:tick arg0=19 arg1=351 arg2="delta"')


def test_strings_in_untouched_rodata_are_read(bpf):
    # The demo target passes pointers to string constants it never reads
    # itself: their .rodata page may not be faulted in yet, which a plain
    # bpf_probe_read_user_str cannot read (bpftrace prints "" there).  The
    # sleepable program pyusdt attaches to string sites faults them in.
    with Tracer() as t:
        t.attach_command([DEMO, "8", "1"], "demo:tick", strings=[2])
        t.start()
        events = [e for b in t.batches(timeout=0.1) for e in b]
        stats = t.stats()
    assert [e.args for e in events] == [(i, i * i - 10, LABELS[i % 4]) for i in range(8)]
    assert stats[0].str_fail == 0 and stats[0].events == 8 and stats[0].hits == 8


def test_string_keys_in_untouched_rodata(bpf):
    # The same untouched labels as aggregation keys: the aggregating program
    # for string keys is sleepable too, so every label is a key of its own.
    from pyusdt.aggregate.specs import Aggregate, StrArg

    spec = Aggregate("stats", value=1, key=StrArg(2))
    with Tracer() as t:
        t.attach_command([DEMO, "20", "1"], "demo:tick", aggregate=spec)
        t.start()
        for _ in t.batches(timeout=0.1):
            pass
        r = t.aggregation(spec)
    expected = {}
    for i in range(20):
        expected.setdefault(LABELS[i % 4], []).append(i * i - 10)
    assert set(r.keys) == set(LABELS)
    for label, values in expected.items():
        s = r.stats(label)
        assert (s.count, s.sum, s.min, s.max) == (len(values), sum(values), min(values), max(values))
    assert r.counters.read_fail == 0 and r.counters.hits == 20
