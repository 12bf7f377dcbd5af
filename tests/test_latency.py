"""Latency in the kernel: Latency(start, done) pairs a start probe with a
done probe (by thread, or by a request id) and aggregates the time between.

tests/programs/agg_latency.c fires lat:start(id, cls) / lat:done(id, cls)
around sleeps whose log2 or linear bucket is robust to the usual oversleep
(1.2 ms -> [1K, 2K) us, 5 ms -> [4K, 8K) us, 10 ms -> [8, 16) ms, 20 ms ->
[16, 32) ms, 50 ms -> [32, 64) ms), and writes every pair's duration as it measured it, so a
machine too slow for the buckets is told apart from a pyusdt error.
The PostgreSQL tests time postgresql:query__start -> query__done in a
private cluster (tests/pg.py), for a known number of statements.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from pg import POSTGRES, pg_cluster
from pyusdt import HeldProcess, Tracer
from pyusdt.aggregate.specs import Arg, Latency, StrArg, Where
from pyusdt.errors import ArgumentIndexError, ConfigError, PyusdtError
from pyusdt.aggregate.histogram import Histogram, log2_bucket

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

START, DONE = "lat:start", "lat:done"
MS = 1_000_000


@pytest.fixture(scope="module")
def prog(build):
    return build("agg_latency.c", "agg_latency", "-pthread")


def read_pairs(path: Path) -> tuple:
    """(pid, [(id, cls, tid, ns)]) from the workload's report."""
    pid, pairs = 0, []
    for line in Path(path).read_text().splitlines():
        f = line.split()
        if f[0] == "PID":
            pid = int(f[1])
        elif f[0] == "PAIR":
            pairs.append(tuple(int(x) for x in f[1:]))
    return pid, pairs


ATTEMPTS = 3


def run(prog, tmp_path: Path, mode: str, rounds: int, make_specs, expected: dict, **tracer_kw) -> tuple:
    """Runs `agg_latency MODE ROUNDS REPORT` as one held command under one
    Tracer with every Latency of make_specs(); returns (pid, pairs, results).

    `expected` maps a request class to the range [lo, hi) of nanoseconds
    where every bucket the test expects for it holds: a run in which the
    program's own measurement of a request falls outside (the machine
    overslept that much) says nothing about pyusdt and is run again, up to
    ATTEMPTS times.  The kernel's interval lies inside the program's, and
    contains the whole sleep."""
    seen = []
    for attempt in range(ATTEMPTS):
        report = tmp_path / f"{mode}-{attempt}.txt"
        specs = make_specs()
        held = HeldProcess([str(prog), mode, str(rounds), str(report)])
        try:
            with Tracer(**tracer_kw) as t:
                for spec in specs:
                    t.attach_latency(spec, command=held)
                t.start()
                deadline = time.monotonic() + 20
                while not t.done:
                    assert time.monotonic() < deadline, "the workload did not exit in time"
                    t.poll(timeout=0.05)
                assert held.returncode == 0
                results = [t.aggregation(s) for s in specs]
                assert t.warnings == []
        finally:
            held.terminate()
        pid, pairs = read_pairs(report)
        outside = [p for p in pairs if not expected[p[1]][0] <= p[3] < expected[p[1]][1]]
        if not outside:
            return pid, pairs, results
        seen.append(outside)
    pytest.fail(f"environment: in {ATTEMPTS} runs some requests took longer than their bucket "
                f"(id, class, tid, ns): {seen}")


def counters(r) -> dict:
    c = r.counters
    return dict(starts=c.starts, matched=c.matched, unmatched=c.unmatched, pending=c.pending,
                dropped=c.dropped, filtered=c.filtered, map_full=c.map_full, read_fail=c.read_fail)


def expect_counters(starts, matched, unmatched=0, pending=0, dropped=0, filtered=0) -> dict:
    return dict(starts=starts, matched=matched, unmatched=unmatched, pending=pending,
                dropped=dropped, filtered=filtered, map_full=0, read_fail=0)


# log2 bucket indexes
B_1K_US = log2_bucket(1024)  # [1K, 2K) us
B_4K_US = log2_bucket(4096)  # [4K, 8K) us
B_16K_US = log2_bucket(16384)  # [16K, 32K) us
B_4_MS = log2_bucket(4)  # [4, 8) ms
B_8_MS = log2_bucket(8)  # [8, 16) ms
B_16_MS = log2_bucket(16)  # [16, 32) ms
B_32_MS = log2_bucket(32)  # [32, 64) ms


# --------------------------------------------------------------------------
# Sequential pairs, paired by thread

SEQ_ROUNDS = 2


def test_sequential_pairs(bpf, prog, tmp_path):
    """1.2 ms, 5 ms and 20 ms requests, SEQ_ROUNDS times: each lands in its
    bucket, in several units and histogram kinds, keyed or not."""
    def specs():
        return [
            Latency(START, DONE, unit="us"),
            Latency(START, DONE, unit="ms", kind="lhist", lhist=(0, 50, 10)),
            Latency(START, DONE, unit="ms", key=Arg(1)),
            Latency(START, DONE, unit="us", key=Arg(1), key_from="start", kind="count"),
            Latency(START, DONE, unit="us", kind="stats"),
            Latency(START, DONE, unit="ms", where=Where(1, "==", 1)),  # the 5 ms requests only
        ]
    pid, pairs, (r_us, r_lin, r_cls, r_cls_start, r_stats, r_5) = run(
        prog, tmp_path, "seq", SEQ_ROUNDS, specs,
        # [1K, 2K) us and [1] ms; [4K, 8K) us and [4, 8) ms; [16K, 32K) us, [16, 32) ms, [20, 30) ms
        {0: (1_024_000, 2 * MS), 1: (4_096_000, 8 * MS), 2: (16_384_000, 30 * MS)})
    n = SEQ_ROUNDS
    assert len(pairs) == 3 * n

    assert r_us.hist() == Histogram({B_1K_US: n, B_4K_US: n, B_16K_US: n})
    assert r_lin.hist() == Histogram({1: 2 * n, 3: n}, "linear", 0, 50, 10)  # [0, 10), [20, 30)
    assert set(r_cls.keys) == {0, 1, 2}
    assert r_cls.hist(0) == Histogram({log2_bucket(1): n})  # 1.2 ms is 1 ms
    assert r_cls.hist(1) == Histogram({B_4_MS: n})
    assert r_cls.hist(2) == Histogram({B_16_MS: n})
    assert {k: r_cls_start.value(k) for k in r_cls_start.keys} == {0: n, 1: n, 2: n}

    s = r_stats.stats()
    assert s.count == 3 * n
    assert 1200 <= s.min < 2048 and 20000 <= s.max < 32768
    measured_us = sum(ns // 1000 for *_, ns in pairs)
    assert s.sum <= measured_us + 3 * n  # the kernel's interval is inside the program's

    for r in (r_us, r_lin, r_cls, r_cls_start, r_stats):
        assert counters(r) == expect_counters(3 * n, 3 * n)
        assert r.counters.hits == 6 * n  # starts and dones that passed the filters

    # The predicate runs at the start: the other requests are not timed and
    # their dones find no start.
    assert r_5.hist() == Histogram({B_4_MS: n})
    assert counters(r_5) == expect_counters(n, n, unmatched=2 * n, filtered=2 * n)


# --------------------------------------------------------------------------
# Two threads interleaving

THREAD_ROUNDS = 3


def test_two_threads_paired_per_thread(bpf, prog, tmp_path):
    """A starts, B starts, A is done (~10 ms), B is done (~50 ms), both with
    the same id: paired by thread each gets its own duration; paired by the
    id, B's start replaces A's, A's done takes it and B's done is unmatched."""
    def specs():
        return [Latency(START, DONE, unit="ms"),
                Latency(START, DONE, unit="ms", key="tid"),
                Latency(START, DONE, unit="ms", pair_by=0)]
    pid, pairs, (r_thread, r_tid, r_id) = run(prog, tmp_path, "threads", THREAD_ROUNDS, specs,
                                              {0: (8 * MS, 16 * MS), 1: (32 * MS, 64 * MS)})
    n = THREAD_ROUNDS
    assert len(pairs) == 2 * n

    assert r_thread.hist() == Histogram({B_8_MS: n, B_32_MS: n})
    assert counters(r_thread) == expect_counters(2 * n, 2 * n)

    a_tids = Counter(tid for _, cls, tid, _ in pairs if cls == 0)
    b_tids = Counter(tid for _, cls, tid, _ in pairs if cls == 1)
    assert not set(a_tids) & set(b_tids)
    assert pid not in a_tids and pid not in b_tids
    assert set(r_tid.keys) == set(a_tids) | set(b_tids)
    for tid, k in a_tids.items():
        assert r_tid.hist(tid) == Histogram({B_8_MS: k}), tid
    for tid, k in b_tids.items():
        assert r_tid.hist(tid) == Histogram({B_32_MS: k}), tid
    assert counters(r_tid) == expect_counters(2 * n, 2 * n)

    # By id 7: A's done takes B's start (~10 ms before it).
    assert r_id.hist() == Histogram({B_8_MS: n})
    assert counters(r_id) == expect_counters(2 * n, n, unmatched=n, dropped=n)


# --------------------------------------------------------------------------
# Pairing by a request id on one thread

ID_ROUNDS = 2


def test_pair_by_request_id(bpf, prog, tmp_path):
    """start(1), start(2), done(1) after 10 ms, done(2) after 50 ms, on one
    thread: by id, two exact buckets; by thread, start(2) replaces start(1)
    and done(2) finds nothing."""
    def specs():
        return [Latency(START, DONE, unit="ms", pair_by=0),
                Latency(START, DONE, unit="ms", pair_by=(0, 0)),
                Latency(START, DONE, unit="ms", pair_by=0, key=Arg(1), key_from="start"),
                Latency(START, DONE, unit="ms")]
    pid, pairs, (r_id, r_pair, r_key, r_thread) = run(
        prog, tmp_path, "ids", ID_ROUNDS, specs, {0: (8 * MS, 16 * MS), 1: (32 * MS, 64 * MS)})
    n = ID_ROUNDS
    assert len({tid for *_, tid, _ in pairs}) == 1

    for r in (r_id, r_pair):
        assert r.hist() == Histogram({B_8_MS: n, B_32_MS: n})
        assert counters(r) == expect_counters(2 * n, 2 * n)
    assert set(r_key.keys) == {0, 1}
    assert r_key.hist(0) == Histogram({B_8_MS: n})
    assert r_key.hist(1) == Histogram({B_32_MS: n})

    assert r_thread.hist() == Histogram({B_8_MS: n})
    assert counters(r_thread) == expect_counters(2 * n, n, unmatched=n, dropped=n)


# --------------------------------------------------------------------------
# Dones without a start, starts without a done

ORPHANS = 10


def test_unmatched_and_pending(bpf, prog, tmp_path):
    """Three dones with no start are unmatched; ORPHANS starts that never
    complete stay pending; the one complete pair is timed."""
    def specs():
        return [Latency(START, DONE, unit="us", pair_by=0), Latency(START, DONE, unit="us")]
    pid, pairs, (r_id, r_thread) = run(prog, tmp_path, "orphans", ORPHANS, specs, {2: (1_024_000, 2_048_000)})
    assert r_id.hist() == Histogram({B_1K_US: 1})
    assert counters(r_id) == expect_counters(ORPHANS + 1, 1, unmatched=3, pending=ORPHANS)
    # One thread: every start replaces the previous one.
    assert r_thread.hist() == Histogram({B_1K_US: 1})
    assert counters(r_thread) == expect_counters(ORPHANS + 1, 1, unmatched=3, dropped=ORPHANS)


@pytest.mark.parametrize("max_pending", [4, ORPHANS])
def test_max_pending_evicts_the_oldest(bpf, prog, tmp_path, max_pending):
    """At most max_pending outstanding starts are kept, the oldest evicted
    beyond: when start(5000) comes, ORPHANS + 1 are outstanding; its done then
    removes it.  The kernel's LRU frees entries in per-CPU batches, so it may
    evict a few before the map is full: the exact promise is the bound and the
    accounting (every start is matched, pending or dropped)."""
    def specs():
        return [Latency(START, DONE, unit="us", pair_by=0, max_pending=max_pending)]
    pid, pairs, (r,) = run(prog, tmp_path, "orphans", ORPHANS, specs, {2: (1_024_000, 2_048_000)})
    kept = min(ORPHANS + 1, max_pending) - 1
    assert r.hist() == Histogram({B_1K_US: 1})
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


def settle(t: Tracer, spec, expected: int, limit: float = 5.0):
    """The result once `expected` requests matched (bounded), and 0.3 s more
    so that an extra one would be seen too."""
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
