"""pyusdt.provide.latency: latency tracers and the runtime switch.

The traced code runs in a separate Python process (tests/programs/
tracers_child.py, driven over stdin), traced with Tracer.attach_pid: the
exact sequence of latency(name, duration_ns) hits, durations bounded by the
known sleeps, nothing fired while the switch is off (even while traced), and
SIGPROF / enable() / disable() flipping it in the running process.  The
in-process tests check the decorator itself with a stand-in probe, and that
an untraced call never reads the clock.
"""
from __future__ import annotations

import asyncio
import signal
import time

import pytest

from pyusdt import Provider, Tracer
from pyusdt.provide import latency as tracers
from pyusdt.provide.latency import latency_block, trace_latency

from proc_helpers import Child, ask, events_within, start_tracers_child

# What one "latency" command of the child fires, in order: (name, its sleeps in ns).
LATENCY_EXPECTED = [
    ("__main__.sleepy", 20_000_000),
    ("db.query", 10_000_000),
    ("__main__.fetch", 30_000_000),
    ("block", 20_000_000),
    ("__main__.fails", 10_000_000),
    ("inner", 10_000_000),
    ("__main__.outer", 20_000_000),
]


def wait_state(c: Child, want: str, timeout: float = 5.0) -> None:
    """Asks until the switch reads `want`: a Python signal handler runs at the
    child's next bytecode boundary, not at once."""
    deadline = time.monotonic() + timeout
    while (got := ask(c, "state")) != want:
        assert time.monotonic() < deadline, f"the switch stayed {got!r}"
        time.sleep(0.01)


def timed_latency(c: Child) -> int:
    """Has the child run its "latency" command; returns how long that took
    as seen from here, which bounds every duration it measured."""
    asked = time.monotonic_ns()
    assert ask(c, "latency") == "done"
    return time.monotonic_ns() - asked


def check_latency(events: list, pid: int, within_ns: int) -> None:
    """Exactly LATENCY_EXPECTED, each at least its sleeps and at most the
    whole command (`within_ns`)."""
    assert [e.args[0] for e in events] == [name for name, _ in LATENCY_EXPECTED]
    for e, (name, slept) in zip(events, LATENCY_EXPECTED):
        assert e.probe.fullname == "pyusdt_app:latency"
        assert e.pid == pid
        assert slept <= e.args[1] <= within_ns, (name, e.args[1])
        assert e.truncated == () and e.read_failed == ()
    by_name = {e.args[0]: e.args[1] for e in events}
    assert by_name["__main__.outer"] >= by_name["inner"] + 10_000_000
    # Hits come in call order, each stamped after the one before.
    assert [e.ts_ns for e in events] == sorted(e.ts_ns for e in events)


def trace_app(pid: int) -> Tracer:
    t = Tracer()
    found = t.attach_pid(pid, "pyusdt_app:*", strings=[0])
    assert [p.fullname for p in found] == ["pyusdt_app:latency"]
    t.start()
    return t


# -- traced, in a separate process ------------------------------------------


def test_latency_sequence_and_durations(bpf):
    c = start_tracers_child()
    try:
        assert ask(c, "traced") == "0 0"
        assert ask(c, "latency") == "done"  # untraced: nothing to see, nothing kept
        with trace_app(c.pid) as t:
            assert ask(c, "traced") == "1 0"
            for _ in range(2):
                within = timed_latency(c)
                check_latency(events_within(t, len(LATENCY_EXPECTED)), c.pid, within)
            stats = t.stats()
        assert [(s.probe, s.hits, s.events, s.lost_ringbuf, s.str_fail) for s in stats] == \
            [("pyusdt_app:latency", 14, 14, 0, 0)]
        assert ask(c, "traced") == "0 0"  # detached: the semaphore is back to 0
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


def test_switch_off_by_env_then_sigprof_and_enable(bpf, monkeypatch):
    monkeypatch.setenv("PYUSDT_TRACING", "0")
    c = start_tracers_child()
    try:
        assert ask(c, "state") == "off"
        with trace_app(c.pid) as t:
            assert ask(c, "traced") == "1 0"  # traced, but switched off: nothing fires
            assert ask(c, "latency") == "done"
            assert events_within(t, 0) == []

            c.p.send_signal(signal.SIGPROF)
            wait_state(c, "on")
            within = timed_latency(c)
            check_latency(events_within(t, len(LATENCY_EXPECTED)), c.pid, within)

            c.p.send_signal(signal.SIGPROF)
            wait_state(c, "off")
            assert ask(c, "latency") == "done"
            assert events_within(t, 0) == []

            assert ask(c, "enable") == "on"
            within = timed_latency(c)
            check_latency(events_within(t, len(LATENCY_EXPECTED)), c.pid, within)

            assert ask(c, "disable") == "off"
            assert ask(c, "latency") == "done"
            assert events_within(t, 0) == []
            assert t.stats()[0].hits == 2 * len(LATENCY_EXPECTED)
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


def test_switching_on_loads_the_lazy_providers(bpf, monkeypatch):
    # Switched off from the start, nothing loads the providers, not even
    # calling the timed functions; SIGPROF turns the switch on and loads the
    # providers of the tracers in use, so they can be attached at once.
    monkeypatch.setenv("PYUSDT_TRACING", "0")
    c = start_tracers_child("--lazy")
    try:
        assert ask(c, "loaded") == "app=0 web=0"
        assert ask(c, "latency") == "done"
        assert ask(c, "loaded") == "app=0 web=0"
        c.p.send_signal(signal.SIGPROF)
        wait_state(c, "on")
        assert ask(c, "loaded") == "app=1 web=1"
        with trace_app(c.pid) as t:
            within = timed_latency(c)
            check_latency(events_within(t, len(LATENCY_EXPECTED)), c.pid, within)
        c.send("quit")
        assert c.wait() == 0
    finally:
        c.kill()


# -- the decorator, in this process (nothing traced) -------------------------


class FakeProbe:
    """Stands in for the latency probe: traced, recording what it is fired with."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.fired: list = []

    def fire(self, *args):
        self.fired.append(args)


@pytest.fixture
def switch():
    """Restores the runtime switch and the cached latency probe after a test."""
    was_on, probe = tracers.tracing_enabled(), tracers._latency_probe
    yield
    tracers.configure(enabled=was_on)
    tracers._latency_probe = probe


@pytest.fixture
def fake(switch, monkeypatch):
    p = FakeProbe()
    monkeypatch.setattr(tracers, "_latency_probe", p)
    tracers.enable()
    return p


@pytest.fixture
def clock(monkeypatch):
    """Counts the clock reads of the tracers."""
    calls = [0]
    real = tracers.perf_counter_ns

    def counting() -> int:
        calls[0] += 1
        return real()

    monkeypatch.setattr(tracers, "perf_counter_ns", counting)
    return calls


def test_untraced_calls_never_read_the_clock(switch, clock):
    @trace_latency
    def f(x):
        return x + 1

    @trace_latency
    async def g(x):
        return x * 2

    tracers.enable()
    provider = tracers.app_provider()  # loaded, nobody traces it
    assert isinstance(provider, Provider) and provider.name == "pyusdt_app"
    assert not provider.probes["latency"].enabled
    assert [f(i) for i in range(100)] == list(range(1, 101))
    assert asyncio.run(g(21)) == 42
    with latency_block("b"):
        pass
    assert clock[0] == 0
    tracers.disable()
    assert f(1) == 2 and clock[0] == 0


def test_switched_off_is_one_flag_check(switch, clock, monkeypatch):
    def boom():
        raise AssertionError("looked up the probe while switched off")

    monkeypatch.setattr(tracers, "_latency_probe", None)
    monkeypatch.setattr(tracers, "_latency", boom)

    @trace_latency
    def f():
        return "f"

    @trace_latency
    async def g():
        return "g"

    tracers.disable()
    assert f() == "f" and asyncio.run(g()) == "g"
    with latency_block("b"):
        pass
    assert clock[0] == 0


def test_decorator_fires_name_and_duration(fake, clock):
    @trace_latency
    def sleepy(x, *, y):
        time.sleep(0.01)
        return x + y

    @trace_latency(name="custom")
    async def fetch():
        await asyncio.sleep(0.01)
        return "ok"

    @trace_latency("positional")
    def fails():
        raise KeyError("k")

    @trace_latency()
    def bare():
        return None

    began = time.monotonic_ns()
    assert sleepy(1, y=2) == 3
    assert asyncio.run(fetch()) == "ok"
    with pytest.raises(KeyError):
        fails()
    bare()
    with latency_block("blk") as blk:
        time.sleep(0.01)
    assert blk.name == "blk"

    async def in_async():
        async with latency_block("ablk"):
            await asyncio.sleep(0.01)

    asyncio.run(in_async())
    names = [n for n, _ in fake.fired]
    here = f"{__name__}.test_decorator_fires_name_and_duration.<locals>"
    assert names == [f"{here}.sleepy", "custom", "positional", f"{here}.bare", "blk", "ablk"]
    elapsed = time.monotonic_ns() - began
    durations = dict(fake.fired)
    for name in (f"{here}.sleepy", "custom", "blk", "ablk"):
        assert 10_000_000 <= durations[name] <= elapsed
    assert all(isinstance(d, int) and d >= 0 for _, d in fake.fired)
    assert clock[0] == 2 * len(fake.fired)
    # functools.wraps, and async stays async
    assert sleepy.__name__ == "sleepy" and sleepy.__wrapped__ is not None
    assert asyncio.iscoroutinefunction(fetch) and not asyncio.iscoroutinefunction(sleepy)


def test_enabled_is_checked_once_at_entry(fake, clock):
    @trace_latency
    def f():
        fake.enabled = not fake.enabled

    f()  # traced at entry: fires, although no longer traced at exit (fire checks itself)
    assert len(fake.fired) == 1
    f()  # untraced at entry: nothing, although traced at exit
    assert len(fake.fired) == 1 and clock[0] == 2


def test_switched_off_during_a_call_does_not_fire(fake):
    @trace_latency
    def f():
        tracers.disable()

    f()
    assert fake.fired == []
    with latency_block("b"):
        tracers.enable()  # off at entry: stays silent
    assert fake.fired == []


def test_switch_and_signal_toggle(switch):
    previous = tracers.install_signal_toggle(signal.SIGUSR2)
    try:
        tracers.disable()
        assert tracers.tracing_enabled() is False
        signal.raise_signal(signal.SIGUSR2)
        assert tracers.tracing_enabled() is True
        signal.raise_signal(signal.SIGUSR2)
        assert tracers.tracing_enabled() is False
        assert tracers.toggle() is True and tracers.toggle() is False
        tracers.configure(enabled=True)
        assert tracers.tracing_enabled()
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_decorator_refuses_what_it_cannot_time():
    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(TypeError, match="generator"):
        trace_latency(gen)
    with pytest.raises(TypeError, match="generator"):
        trace_latency(name="x")(agen)
    with pytest.raises(TypeError):
        trace_latency(name=3)
    with pytest.raises(TypeError):
        latency_block(b"bytes")
    with pytest.raises(TypeError):
        trace_latency()(42)


def test_provider_name_is_fixed_once_loaded(switch):
    tracers.app_provider()
    tracers.configure(provider_name="pyusdt_app")  # the same name: fine
    from pyusdt.errors import ProviderError

    with pytest.raises(ProviderError, match="already in use"):
        tracers.configure(provider_name="other_app")
