"""A real USDT target: PostgreSQL 15's postgresql:query__start/query__done
(semaphore-guarded, a `const char *query` each), traced in the backend that a
psql session forks off the postmaster, both ways pyusdt can reach a process
that does not exist yet: by path, and by the postmaster's pid with
follow_children.

tests/pg.py starts a private cluster per test and documents what psql sends:
one Query message per statement, its text as given, and no query of its own
(pg.PSQL_STARTUP_QUERIES is empty), so every count below is exact.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time

import pytest

from pyusdt import Tracer, probes_at_path
from pyusdt.aggregate import Aggregate

from conftest import load_base, read_u16
from pg import POSTGRES, PSQL_STARTUP_QUERIES, pg_cluster
from proc_helpers import wait_until

START, DONE = "postgresql:query__start", "postgresql:query__done"


@pytest.fixture
def cluster(bpf):
    with pg_cluster() as c:
        yield c


def statements(tag: str, n: int = 12) -> list[str]:
    """n distinct statements, each shorter than the default 64-byte string slot."""
    return [f"SELECT {i} AS {tag}_{i}" for i in range(1, n + 1)]


def attach_queries(t: Tracer, attach, target) -> None:
    attach(target, START, strings=[0])
    attach(target, DONE, strings=[0])


def collect(t: Tracer, expected: int, limit: float = 5.0) -> list:
    """Events until `expected` arrived (bounded by `limit` s), then 0.3 s more
    so that an extra event would be seen too."""
    events = []
    deadline = time.monotonic() + limit
    while len(events) < expected and time.monotonic() < deadline:
        for batch in t.batches(timeout=0.05, duration=0.1):
            events.extend(batch)
    for batch in t.batches(timeout=0.05, duration=0.3):
        events.extend(batch)
    return sorted(events, key=lambda e: e.ts_ns)


def check_session(t: Tracer, cluster, sent: list[str]) -> None:
    """Exactly one start/done pair per statement, in order, with the statement's
    text, from the backend that served the psql session; nothing lost."""
    expected = PSQL_STARTUP_QUERIES + sent
    events = collect(t, 2 * len(expected))
    starts = [e for e in events if e.probe.fullname == START]
    dones = [e for e in events if e.probe.fullname == DONE]
    assert [e.args[0] for e in starts] == expected
    assert [e.args[0] for e in dones] == expected
    assert len(dones) == len(starts)
    # Strictly nested: start(q1) done(q1) start(q2) done(q2) ...
    assert [(e.probe.fullname, e.args[0]) for e in events] == \
        [(p, q) for q in expected for p in (START, DONE)]
    assert all(e.truncated == () and e.read_failed == () for e in events)

    backend = cluster.last_backend_pid
    assert backend is not None, "the backend's connection is not in the server log"
    assert backend != cluster.postmaster_pid
    assert backend not in cluster.auxiliary_pids()
    assert {(e.pid, e.tid) for e in events} == {(backend, backend)}

    stats = {s.probe: s for s in t.stats()}
    assert set(stats) == {START, DONE}
    for s in stats.values():
        assert (s.hits, s.events) == (len(expected), len(expected)), s
        assert (s.lost_ringbuf, s.str_fail, s.arg_fail) == (0, 0, 0), s
    assert t.lost == 0


def test_psql_session_traced_by_path(cluster):
    """attach_path on the postgres binary: the backend forked for psql after
    start() is traced.  Both probes sit behind semaphores: in the running
    postmaster they read 0 before start(), 1 while attached (and the backend
    forked from it inherits that), 0 again after close()."""
    probes = {p.fullname: p for p in probes_at_path(cluster.postgres)}
    assert probes[START].semaphore and probes[DONE].semaphore
    base = load_base(cluster.postmaster_pid, cluster.postgres)
    sems = [base + probes[n].semaphore for n in (START, DONE)]

    assert [read_u16(cluster.postmaster_pid, a) for a in sems] == [0, 0]
    cluster.run_sql(["SELECT 'before tracing'"])  # not traced: nothing attached yet

    sent = statements("by_path")
    with Tracer() as t:
        attach_queries(t, t.attach_path, str(POSTGRES))
        t.start()
        assert [read_u16(cluster.postmaster_pid, a) for a in sems] == [1, 1]
        cluster.run_sql(sent)
        check_session(t, cluster, sent)
    assert [read_u16(cluster.postmaster_pid, a) for a in sems] == [0, 0]
    # The backend exited with psql; no client is left connected.
    assert cluster.backend_pids() == []


def test_psql_session_traced_by_postmaster_pid(cluster):
    """attach_pid on the postmaster with follow_children: the backend it forks
    for psql is followed, and only that backend's queries are seen."""
    sent = statements("by_pid")
    with Tracer(follow_children=True) as t:
        attach_queries(t, t.attach_pid, cluster.postmaster_pid)
        t.start()
        cluster.run_sql(sent)
        check_session(t, cluster, sent)
    assert cluster.backend_pids() == []


def test_failed_statement_has_no_done(cluster):
    """A statement that fails fires query__start but not query__done, and
    psql stops there (ON_ERROR_STOP): the counts follow exactly."""
    sent = ["SELECT 'ok'", "SELECT 1/0", "SELECT 'never sent'"]
    with Tracer() as t:
        attach_queries(t, t.attach_path, str(POSTGRES))
        t.start()
        with pytest.raises(RuntimeError, match="division by zero"):
            cluster.run_sql(sent)
        events = collect(t, 3)
        assert [(e.probe.fullname, e.args[0]) for e in events] == [
            (START, "SELECT 'ok'"), (DONE, "SELECT 'ok'"), (START, "SELECT 1/0")]
        assert {e.pid for e in events} == {cluster.last_backend_pid}
        stats = {s.probe: s for s in t.stats()}
        assert (stats[START].hits, stats[DONE].hits) == (2, 1)
        assert t.lost == 0


def test_symbol_relative_arguments(cluster):
    """postgresql:checkpoint__done reads globals through operands such as
    `-4@NBuffers(%rip)` and `-4@40+CheckpointStats(%rip)`: link-time symbol
    addresses moved by the load bias.  NBuffers is shared_buffers in 8 kB
    pages: 128MB, the default, is 16384."""
    probe = next(p for p in probes_at_path(POSTGRES) if p.name == "checkpoint__done")
    assert [a.spec for a in probe.args][:2] == ["-4@40+CheckpointStats(%rip)", "-4@NBuffers(%rip)"]
    assert [a.kind for a in probe.args] == ["mem_abs"] * 5
    with Tracer() as t:
        t.attach_path(POSTGRES, "postgresql:checkpoint__done")
        t.start()
        cluster.run_sql(["CHECKPOINT"])
        events = collect(t, 1)
    assert len(events) == 1
    assert events[0].args[1] == 16384
    assert events[0].read_failed == ()


SORTS = [
    "SELECT g FROM generate_series(1,1000) g ORDER BY g DESC LIMIT 1",
    "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY g) FROM generate_series(1,1000) g",
    "CREATE TABLE t AS SELECT g FROM generate_series(1,1000) g",
    "CREATE UNIQUE INDEX ON t(g)",
    "CLUSTER t USING t_g_idx",
]
# postgresql:sort__start(sort type, unique, keys, work memory in kB, random
# access, parallel) from tuplesort.c: a single-column ORDER BY and the
# ordered-set aggregate are datum sorts (2) in work_mem (4096); the unique
# index build sorts its index tuples (1) with enforceUnique in
# maintenance_work_mem (65536), and a second spool for dead tuples in
# work_mem; CLUSTER rebuilds the index with one more index sort.
SORT_STARTS = [(2, 0, 1, 4096, 0, 0), (2, 0, 1, 4096, 0, 0), (1, 1, 1, 65536, 0, 0),
               (1, 0, 1, 4096, 0, 0), (1, 0, 1, 65536, 0, 0)]


def test_sites_with_different_specs(cluster, bpftrace):
    """postgresql:sort__start has four sites, each with its own argument
    specs (the sort type a constant at each; `unique` a constant at three
    sites but a 1-byte unsigned variable at the index sort's): every hit is
    read with its own site's specs, as bpftrace reads it."""
    probe = next(p for p in probes_at_path(POSTGRES) if p.name == "sort__start")
    assert not probe.uniform
    assert [s.args_text.split()[:2] for s in probe.sites] == [
        ["-4@$0", "-4@$0"], ["-4@$3", "-4@$0"], ["-4@$1", probe.sites[2].args_text.split()[1]], ["-4@$2", "-4@$0"]]
    assert probe.site_args(2)[1].size == 1 and not probe.site_args(2)[1].signed
    with Tracer() as t:
        t.attach_path(POSTGRES, "postgresql:sort__start")
        t.start()
        cluster.run_sql(SORTS)
        events = collect(t, len(SORT_STARTS))
    assert [e.args for e in events] == SORT_STARTS
    assert len(t.probes) == 2 and t.probe_count == 1  # two argument layouts, one probe

    cluster.run_sql(["DROP TABLE t"])
    # bpftrace says "Attaching" before it attaches: the statements run once
    # the kernel has raised the probe's semaphore in the postmaster (which
    # its backends inherit), that is once the uprobe is in; its lines are
    # read as they come, and it is stopped once all are there.
    semaphore = load_base(cluster.postmaster_pid, cluster.postgres) + probe.semaphore
    assert read_u16(cluster.postmaster_pid, semaphore) == 0
    bt = subprocess.Popen([bpftrace, "-e", f"usdt:{POSTGRES}:postgresql:sort__start "
                           '{ printf("%d %d %d %d %d %d\\n", arg0, arg1, arg2, arg3, arg4, arg5); }'],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(bt.stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: read_u16(cluster.postmaster_pid, semaphore) > 0 or bt.poll() is not None,
                   60, "bpftrace attached")
        cluster.run_sql(SORTS)
        wait_until(lambda: len(lines) > len(SORT_STARTS) or bt.poll() is not None, 60, "bpftrace's lines")
    finally:
        bt.send_signal(signal.SIGINT)
        _, err = bt.communicate(timeout=60)
        reader.join(10)
    assert lines[0].startswith("Attaching"), err
    theirs = [tuple(int(v) for v in line.split()) for line in lines[1:] if line.strip()]
    assert theirs == SORT_STARTS, err



def test_queries_keyed_by_text_and_filtered_by_a_string(cluster, bpftrace):
    """count keyed by the query text, filtered by a string predicate in the
    kernel: the same counts as bpftrace's for the same expressions."""
    key, where = "str(arg0)", 'str(arg0) == "SELECT 1" || str(arg0) == "SELECT 2"'
    sent = ["SELECT 1", "SELECT 2", "SELECT 1", "SELECT 3", "SELECT 1", "SELECT 22"]
    expected = ["@[SELECT 2]: 1", "@[SELECT 1]: 3"]
    spec = Aggregate("count", key=key, where=where)
    with Tracer() as t:
        t.attach_path(POSTGRES, START, aggregate=spec)
        t.start()
        cluster.run_sql(sent)
        result = t.aggregation(spec)
    assert result.render().splitlines() == expected
    assert (result.counters.hits, result.counters.filtered, result.counters.read_fail) == (4, 2, 0)

    probe = next(p for p in probes_at_path(POSTGRES) if p.fullname == START)
    semaphore = load_base(cluster.postmaster_pid, cluster.postgres) + probe.semaphore
    bt = subprocess.Popen([bpftrace, "-e", f"usdt:{POSTGRES}:{START} /{where}/ {{ @[{key}] = count(); }}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: read_u16(cluster.postmaster_pid, semaphore) > 0 or bt.poll() is not None,
                   60, "bpftrace attached")
        cluster.run_sql(sent)
    finally:
        bt.send_signal(signal.SIGINT)
        out, err = bt.communicate(timeout=60)
    assert [line for line in out.splitlines() if line.startswith("@")] == expected, err
