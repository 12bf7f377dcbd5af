"""Latency in the kernel: Latency(start, done) pairs a start probe with a
done probe (by thread, or by a request id) and aggregates the time between.

tests/programs/agg_latency.c fires lat:start(id, cls) / lat:done(id, cls)
around sleeps (1.2, 5, 10, 20, 50 ms), and reports the clock just before and
just after each probe.  The kernel's timestamp of a hit lies between the two,
so the test pairs the reported probes as the kernel pairs them (by thread or
by id, a start replacing an earlier one) and computes every expected bucket
from those bounds: however long a loaded machine oversleeps, the expected
histogram is exact (when a bucket boundary falls inside a pair's few
microseconds of uncertainty, either side is accepted for that pair).
The PostgreSQL tests time postgresql:query__start -> query__done in a
private cluster (tests/pg.py), for a known number of statements.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from pyusdt import HeldProcess, Tracer
from pyusdt.aggregate.specs import Arg, Latency, StrArg, Where
from pyusdt.errors import ArgumentIndexError, ConfigError, PyusdtError

from latency_report import assert_hist, bounds, pairs_of, read_report
from pg import POSTGRES, pg_cluster

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

START, DONE = "lat:start", "lat:done"
MS = 1_000_000


@pytest.fixture(scope="module")
def prog(build):
    return build("agg_latency.c", "agg_latency", "-pthread")


def run(prog, tmp_path: Path, mode: str, rounds: int, specs: list, **tracer_kw) -> tuple:
    """Runs `agg_latency MODE ROUNDS REPORT` as one held command under one
    Tracer with every Latency of `specs`; returns (pid, fired, results)."""
    report = tmp_path / f"{mode}.txt"
    held = HeldProcess([str(prog), mode, str(rounds), str(report)])
    try:
        with Tracer(**tracer_kw) as t:
            for spec in specs:
                t.attach_latency(spec, command=held)
            t.start()
            deadline = time.monotonic() + 60  # a hang fails, however slow the machine
            while not t.done:
                assert time.monotonic() < deadline, "the workload did not exit"
                t.poll(timeout=0.05)
            assert held.returncode == 0
            results = [t.aggregation(s) for s in specs]
            assert t.warnings == []
    finally:
        held.terminate()
    pid, fired = read_report(report)
    return pid, fired, results


def counters(r) -> dict:
    c = r.counters
    return dict(starts=c.starts, matched=c.matched, unmatched=c.unmatched, pending=c.pending,
                dropped=c.dropped, filtered=c.filtered, map_full=c.map_full, read_fail=c.read_fail)


def expect_counters(starts, matched, unmatched=0, pending=0, dropped=0, filtered=0) -> dict:
    return dict(starts=starts, matched=matched, unmatched=unmatched, pending=pending,
                dropped=dropped, filtered=filtered, map_full=0, read_fail=0)


# --------------------------------------------------------------------------
# Sequential pairs, paired by thread

SEQ_ROUNDS = 2
US = 1_000


def test_sequential_pairs(bpf, prog, tmp_path):
    """1.2 ms, 5 ms and 20 ms requests, SEQ_ROUNDS times: each lands in its
    bucket, in several units and histogram kinds, keyed or not."""
    specs = [
        Latency(START, DONE, unit="us"),
        Latency(START, DONE, unit="ms", kind="lhist", lhist=(0, 50, 10)),
        Latency(START, DONE, unit="ms", key=Arg(1)),
        Latency(START, DONE, unit="us", key=Arg(1), key_from="start", kind="count"),
        Latency(START, DONE, unit="us", kind="stats"),
        Latency(START, DONE, unit="ms", where=Where(1, "==", 1)),  # the 5 ms requests only
    ]
    pid, fired, (r_us, r_lin, r_cls, r_cls_start, r_stats, r_5) = run(prog, tmp_path, "seq", SEQ_ROUNDS, specs)
    n = SEQ_ROUNDS
    pairs = pairs_of(fired)
    assert len(pairs) == 3 * n

    assert_hist(r_us.hist(), pairs, US)
    assert_hist(r_lin.hist(), pairs, MS, "linear", 0, 50, 10)
    assert set(r_cls.keys) == {0, 1, 2}
    for cls in (0, 1, 2):
        assert_hist(r_cls.hist(cls), [p for p in pairs if p[0].cls == cls], MS)
    assert {k: r_cls_start.value(k) for k in r_cls_start.keys} == {0: n, 1: n, 2: n}

    s = r_stats.stats()
    assert s.count == 3 * n
    us = bounds(pairs, US)
    assert min(lo for lo, _ in us) <= s.min <= min(hi for _, hi in us)
    assert max(lo for lo, _ in us) <= s.max <= max(hi for _, hi in us)
    assert sum(lo for lo, _ in us) <= s.sum <= sum(hi for _, hi in us)

    for r in (r_us, r_lin, r_cls, r_cls_start, r_stats):
        assert counters(r) == expect_counters(3 * n, 3 * n)
        assert r.counters.hits == 6 * n  # starts and dones that passed the filters

    # The predicate runs at the start: the other requests are not timed and
    # their dones find no start.
    assert_hist(r_5.hist(), pairs_of(fired, where=lambda e: e.cls == 1), MS)
    assert counters(r_5) == expect_counters(n, n, unmatched=2 * n, filtered=2 * n)


# --------------------------------------------------------------------------
# Two threads interleaving

THREAD_ROUNDS = 3


def test_two_threads_paired_per_thread(bpf, prog, tmp_path):
    """A starts, B starts, A is done (~10 ms), B is done (~50 ms), both with
    the same id: paired by thread each gets its own duration; paired by the
    id, B's start replaces A's, A's done takes it and B's done is unmatched."""
    specs = [Latency(START, DONE, unit="ms"),
             Latency(START, DONE, unit="ms", key="tid"),
             Latency(START, DONE, unit="ms", pair_by=0)]
    pid, fired, (r_thread, r_tid, r_id) = run(prog, tmp_path, "threads", THREAD_ROUNDS, specs)
    n = THREAD_ROUNDS
    by_thread = pairs_of(fired)
    assert len(by_thread) == 2 * n

    assert_hist(r_thread.hist(), by_thread, MS)
    assert counters(r_thread) == expect_counters(2 * n, 2 * n)

    a_tids = Counter(s.tid for s, _ in by_thread if s.cls == 0)
    b_tids = Counter(s.tid for s, _ in by_thread if s.cls == 1)
    assert not set(a_tids) & set(b_tids)
    assert pid not in a_tids and pid not in b_tids
    assert set(r_tid.keys) == set(a_tids) | set(b_tids)
    for tid in r_tid.keys:
        assert_hist(r_tid.hist(tid), [p for p in by_thread if p[1].tid == tid], MS)
    assert counters(r_tid) == expect_counters(2 * n, 2 * n)

    # By id 7: A's done takes B's start (made just before A's sleep).
    by_id = pairs_of(fired, key=lambda e: e.id)
    assert [(s.cls, d.cls) for s, d in by_id] == [(1, 0)] * n
    assert_hist(r_id.hist(), by_id, MS)
    assert counters(r_id) == expect_counters(2 * n, n, unmatched=n, dropped=n)


# --------------------------------------------------------------------------
# Pairing by a request id on one thread

ID_ROUNDS = 2


def test_pair_by_request_id(bpf, prog, tmp_path):
    """start(1), start(2), done(1) after 10 ms, done(2) after 50 ms, on one
    thread: by id, two buckets; by thread, start(2) replaces start(1)
    and done(2) finds nothing."""
    specs = [Latency(START, DONE, unit="ms", pair_by=0),
             Latency(START, DONE, unit="ms", pair_by=(0, 0)),
             Latency(START, DONE, unit="ms", pair_by=0, key=Arg(1), key_from="start"),
             Latency(START, DONE, unit="ms")]
    pid, fired, (r_id, r_pair, r_key, r_thread) = run(prog, tmp_path, "ids", ID_ROUNDS, specs)
    n = ID_ROUNDS
    assert len({e.tid for e in fired}) == 1
    by_id = pairs_of(fired, key=lambda e: e.id)
    assert len(by_id) == 2 * n

    for r in (r_id, r_pair):
        assert_hist(r.hist(), by_id, MS)
        assert counters(r) == expect_counters(2 * n, 2 * n)
    assert set(r_key.keys) == {0, 1}
    for cls in (0, 1):
        assert_hist(r_key.hist(cls), [p for p in by_id if p[0].cls == cls], MS)

    by_thread = pairs_of(fired)
    assert [(s.id % 1000, d.id % 1000) for s, d in by_thread] == [(2, 1)] * n
    assert_hist(r_thread.hist(), by_thread, MS)
    assert counters(r_thread) == expect_counters(2 * n, n, unmatched=n, dropped=n)


# --------------------------------------------------------------------------
# Dones without a start, starts without a done

ORPHANS = 10


def test_unmatched_and_pending(bpf, prog, tmp_path):
    """Three dones with no start are unmatched; ORPHANS starts that never
    complete stay pending; the one complete pair is timed."""
    specs = [Latency(START, DONE, unit="us", pair_by=0), Latency(START, DONE, unit="us")]
    pid, fired, (r_id, r_thread) = run(prog, tmp_path, "orphans", ORPHANS, specs)
    complete = pairs_of(fired, key=lambda e: e.id)
    assert [(s.id, d.id) for s, d in complete] == [(5000, 5000)]
    assert_hist(r_id.hist(), complete, US)
    assert counters(r_id) == expect_counters(ORPHANS + 1, 1, unmatched=3, pending=ORPHANS)
    # One thread: every start replaces the previous one.
    assert pairs_of(fired) == complete
    assert_hist(r_thread.hist(), complete, US)
    assert counters(r_thread) == expect_counters(ORPHANS + 1, 1, unmatched=3, dropped=ORPHANS)


@pytest.mark.parametrize("max_pending", [4, ORPHANS])
def test_max_pending_evicts_the_oldest(bpf, prog, tmp_path, max_pending):
    """At most max_pending outstanding starts are kept, the oldest evicted
    beyond: when start(5000) comes, ORPHANS + 1 are outstanding; its done then
    removes it.  The kernel's LRU frees entries in per-CPU batches, so it may
    evict a few before the map is full: the exact promise is the bound and the
    accounting (every start is matched, pending or dropped)."""
    specs = [Latency(START, DONE, unit="us", pair_by=0, max_pending=max_pending)]
    pid, fired, (r,) = run(prog, tmp_path, "orphans", ORPHANS, specs)
    kept = min(ORPHANS + 1, max_pending) - 1
    assert_hist(r.hist(), pairs_of(fired, key=lambda e: e.id), US)
    c = counters(r)
    assert (c["starts"], c["matched"], c["unmatched"]) == (ORPHANS + 1, 1, 3)
    assert c["pending"] + c["dropped"] == ORPHANS
    assert c["pending"] <= kept and c["dropped"] >= ORPHANS - kept
    if max_pending <= 4:  # far below the kernel's batch: exact
        assert c["pending"] == kept


def test_latency_spec_errors(prog):
    with pytest.raises(ConfigError):
        Latency(START, DONE, unit="minutes")
    with pytest.raises(ConfigError):
        Latency(START, DONE, key_from="middle")
    with pytest.raises(ConfigError):
        Latency(START, DONE, kind="lhist")
    with pytest.raises(ConfigError):
        Latency(START, DONE, kind="lhist", lhist=(0, 10, 0))
    cases = [
        (Latency(START, DONE, pair_by=2), "pairing argument 2 out of range"),
        (Latency(START, DONE, key=Arg(5)), "key argument 5 out of range"),
        (Latency(START, DONE, key=StrArg(1), key_from="start"), "4-byte integer"),
        (Latency(START, DONE, where=Where(3, ">", 0)), "filter argument 3 out of range"),
    ]
    for spec, message in cases:
        t = Tracer()
        try:
            with pytest.raises(ArgumentIndexError, match=message):
                t.attach_latency(spec, path=prog)
        finally:
            t.close()
    t = Tracer()
    try:
        with pytest.raises(PyusdtError, match="no probe matches"):
            t.attach_latency(Latency("lat:begin", DONE), path=prog)
        with pytest.raises(ConfigError):
            t.attach_latency(Latency(START, DONE), path=prog, pid=1)
    finally:
        t.close()


# --------------------------------------------------------------------------
# PostgreSQL

PG_START, PG_DONE = "postgresql:query__start", "postgresql:query__done"


@pytest.fixture(scope="module")
def cluster(bpf):
    with pg_cluster() as c:
        yield c


def statements(tag: str, n: int) -> list:
    """n distinct statements, shorter than the 64-byte string key."""
    return [f"SELECT {i} AS {tag}_{i}" for i in range(1, n + 1)]


def settle(t: Tracer, spec, expected: int, limit: float = 60.0):
    """The result once `expected` requests matched (the limit only turns a
    hang into a failure), and 0.3 s more so that an extra one would be seen
    too."""
    deadline = time.monotonic() + limit
    while t.aggregation(spec).counters.matched < expected and time.monotonic() < deadline:
        t.poll(timeout=0.05)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        t.poll(timeout=0.05)
    return t.aggregation(spec)


def check_queries(r, n: int) -> None:
    """n statements timed, all matched, nothing else."""
    assert r.total == n
    if r.keys == [None]:
        assert r.hist().total == n
    c = r.counters
    assert (c.starts, c.matched, c.unmatched, c.pending, c.dropped) == (n, n, 0, 0, 0), c
    assert (c.filtered, c.map_full, c.read_fail) == (0, 0, 0), c


def test_postgres_queries_by_path(cluster):
    sent = statements("lat_path", 15)
    spec = Latency(PG_START, PG_DONE, unit="us")
    with Tracer() as t:
        t.attach_latency(spec, path=POSTGRES)
        t.start()
        cluster.run_sql(sent)
        check_queries(settle(t, spec, len(sent)), len(sent))


def test_postgres_queries_by_postmaster_pid(cluster):
    sent = statements("lat_pid", 11)
    spec = Latency(PG_START, PG_DONE, unit="us")
    with Tracer(follow_children=True) as t:
        t.attach_latency(spec, pid=cluster.postmaster_pid)
        t.start()
        cluster.run_sql(sent)
        check_queries(settle(t, spec, len(sent)), len(sent))
    assert cluster.backend_pids() == []


def test_postgres_keyed_by_query_text(cluster):
    """key=StrArg(0) read at the start: every statement is a key seen once."""
    sent = statements("lat_key", 9)
    hist = Latency(PG_START, PG_DONE, unit="us", key=StrArg(0), key_from="start")
    count = Latency(PG_START, PG_DONE, unit="us", key=StrArg(0), key_from="start", kind="count")
    with Tracer() as t:
        t.attach_latency(hist, path=POSTGRES)
        t.attach_latency(count, path=POSTGRES)
        t.start()
        cluster.run_sql(sent)
        r_hist = settle(t, hist, len(sent))
        r_count = settle(t, count, len(sent))
    assert sorted(r_hist.keys) == sorted(sent)
    assert {k: r_hist.hist(k).total for k in r_hist.keys} == {q: 1 for q in sent}
    assert {k: r_count.value(k) for k in r_count.keys} == {q: 1 for q in sent}
    for r in (r_hist, r_count):
        check_queries(r, len(sent))
