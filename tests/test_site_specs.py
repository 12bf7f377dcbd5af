"""One probe name at several call sites with different arguments keeps each
site's own specs everywhere: list (text and JSON), trace, the API's batches
and tables, aggregations, the semaphore, PIE and non-PIE, and bpftrace reads
the same values.

tests/programs/args_site_specs.c fires sites:mixed at three sites: A with 1
argument, B with 3, C with 5 (every width, both signs, a string), then
sites:done(ROUNDS).
"""
from __future__ import annotations

import json
import subprocess

import pytest

from pyusdt import Tracer, probes_at_path
from pyusdt.aggregate.specs import Aggregate, Arg
from pyusdt.errors import ArgumentIndexError

from conftest import load_base, read_u16

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

ROUNDS = 3
SITE_A = (-5,)
SITE_B = (65535, -7, 2**64 - 1)
SITE_C = (-9000000000, 200, -300, 4000000000, "fifth")
NOTE_ARGS = [["-1@%dil"], ["2@%di", "-4@%esi", "8@%rdx"], ["-8@%rdi", "1@%sil", "-2@%dx", "4@%ecx", "8@%rax"]]


@pytest.fixture(scope="module", params=["pie", "nopie"])
def prog(request, build):
    extra = ("-no-pie", "-fno-pie") if request.param == "nopie" else ()
    return build("args_site_specs.c", f"args_site_specs_{request.param}", *extra)


def mixed(path):
    return next(p for p in probes_at_path(path) if p.fullname == "sites:mixed")


def test_notes_have_three_different_sites(prog):
    """The premise: gcc gave the three sites these specs (registers: the
    parameters of three noinline functions)."""
    p = mixed(str(prog))
    assert [s.args_text.split() for s in p.sites] == NOTE_ARGS
    assert not p.uniform
    assert [len(v.sites) for v in p.layouts()] == [1, 1, 1]
    assert [[(a.size, a.signed) for a in p.site_args(i)] for i in range(3)] == [
        [(1, True)], [(2, False), (4, True), (8, False)],
        [(8, True), (1, False), (2, True), (4, False), (8, False)]]


def test_list_shows_each_sites_specs(prog, cli):
    p = mixed(str(prog))
    res = cli("list", str(prog), "sites:mixed")
    assert res.returncode == 0, res.stderr
    per_site = " ".join(f"args@{loc:#x}=[{' '.join(a)}]" for loc, a in zip(p.locations, NOTE_ARGS))
    assert res.stdout == f"{prog} sites:mixed sites=3 semaphore={p.semaphore:#x} {per_site}\n"

    res = cli("list", str(prog), "sites:*", "--json")
    rows = {r["name"]: r for r in map(json.loads, res.stdout.splitlines())}
    assert rows["mixed"]["args"] is None  # no one spec serves every site
    assert rows["mixed"]["sites"] == [
        {"location": hex(loc), "semaphore": hex(p.semaphore), "args": a}
        for loc, a in zip(p.locations, NOTE_ARGS)]
    assert rows["done"]["args"] == ["-8@%rbx"]


def test_trace_reads_each_site_with_its_own_spec(prog, cli):
    res = cli("trace", "--format", "jsonl", "-s", "4", "-c", f"{prog} {ROUNDS}", "sites:*")
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(e["probe"], tuple(e["args"])) for e in events] == (
        [("mixed", SITE_A), ("mixed", SITE_B), ("mixed", SITE_C)] * ROUNDS + [("done", (ROUNDS,))])
    # One probe, however many layouts it has, in the count and the summary.
    assert "tracing 2 probe(s) at 4 site(s)" in res.stderr
    assert f"sites:mixed  {3 * ROUNDS:>10} events" in res.stderr


def test_api_batches_and_tables(prog):
    with Tracer() as t:
        t.attach_command([str(prog), str(ROUNDS)], "sites:mixed", strings=[4])
        t.start()
        batches = list(t.batches(timeout=0.1, duration=20))
        stats = t.stats()
    assert [e.args for b in batches for e in b] == [SITE_A, SITE_B, SITE_C] * ROUNDS
    assert len(t.probes) == 3 and t.probe_count == 1
    assert [(s.probe, s.events, s.hits) for s in stats] == [("sites:mixed", 9, 9)]
    arg0 = [v for b in batches for v in b.arg(0, "sites:mixed").tolist()]
    assert sorted(arg0) == sorted([SITE_A[0], SITE_B[0], SITE_C[0]] * ROUNDS)
    arg2 = [v for b in batches for v in b.arg(2, "sites:mixed").tolist()]
    # Sites B and C have an argument 2; A's records are left out.  B's is
    # unsigned 64-bit, C's a signed short: as one int64 column, B's is -1.
    assert sorted(arg2) == sorted([-1, SITE_C[2]] * ROUNDS)
    assert [s for b in batches for s in b.strings(4, "sites:mixed")] == ["fifth"] * ROUNDS
    with pytest.raises(ArgumentIndexError):
        batches[0].arg(5, "sites:mixed")

    pd = pytest.importorskip("pandas")
    from pyusdt.export.table import to_pandas

    df = to_pandas(batches)
    assert list(df["arg0"]) == [SITE_A[0], SITE_B[0], SITE_C[0]] * ROUNDS
    assert [None if pd.isna(v) else v for v in df["arg4"]] == [None, None, "fifth"] * ROUNDS


def test_aggregations_use_each_sites_spec(prog):
    total = Aggregate("sum", value=0)
    by_value = Aggregate("count", key=Arg(0))
    by_probe = Aggregate("count", key="probe")
    third = Aggregate("sum", value=2)
    with Tracer() as t:
        t.attach_command([str(prog), str(ROUNDS)], "sites:mixed", aggregate=total)
        held = t.attach_command([str(prog), str(ROUNDS)], "sites:mixed", aggregate=by_value)
        t.attach_command(held, "sites:*", aggregate=by_probe)
        t.attach_command(held, "sites:mixed", aggregate=third)
        t.start()
        list(t.batches(timeout=0.1, duration=20))
    assert t.aggregation(total).value() == ROUNDS * (SITE_A[0] + SITE_B[0] + SITE_C[0])
    assert {k: t.aggregation(by_value).value(k) for k in t.aggregation(by_value).keys} == {
        SITE_A[0]: ROUNDS, SITE_B[0]: ROUNDS, SITE_C[0]: ROUNDS}
    assert {k: t.aggregation(by_probe).value(k) for k in t.aggregation(by_probe).keys} == {
        "sites:mixed": 3 * ROUNDS, "sites:done": 1}
    # Site A has no argument 2: it is left out, and said so.
    assert t.aggregation(third).value() == ROUNDS * (-1 + SITE_C[2])
    assert t.aggregation(third).counters.hits == 2 * ROUNDS
    assert any("1 site(s) skipped (1 argument(s)): value argument 2 out of range" in w for w in t.warnings)


def test_cli_aggregate_skips_sites_without_the_argument(prog, cli):
    res = cli("sum", "-v", "2", "-c", f"{prog} {ROUNDS}", "sites:mixed")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"@: {ROUNDS * (-1 + SITE_C[2])}"
    assert (f"pyusdt: warning: sites:mixed in {prog}: 1 site(s) skipped (1 argument(s)): value argument 2 "
            "out of range: sites:mixed has 1 argument(s)") in res.stderr.splitlines()
    res = cli("sum", "-v", "5", "-c", f"{prog} {ROUNDS}", "sites:mixed")
    assert res.returncode == 1
    assert res.stderr == "pyusdt: value argument 5 out of range: sites:mixed has 1 argument(s)\n"


def test_every_site_raises_the_semaphore(prog):
    """Each site's uprobe counts in the semaphore, and each gives it back."""
    p = subprocess.Popen([str(prog), "1", "wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        probe = mixed(str(prog))
        sem = probe.semaphore + (load_base(p.pid, str(prog)) if prog.name.endswith("_pie") else 0)
        with Tracer() as t:
            t.attach_pid(p.pid, "sites:mixed")
            t.start()
            assert read_u16(p.pid, sem) == 3
        assert read_u16(p.pid, sem) == 0
        with Tracer() as t:
            t.attach_pid(p.pid, "sites:mixed", strings=[4])
            t.start()
            p.stdin.write("go\n")
            p.stdin.flush()
            events = [e.args for b in t.batches(timeout=0.1, duration=20) for e in b]
        assert events == [SITE_A, SITE_B, SITE_C]
    finally:
        p.wait(timeout=20)


def test_bpftrace_reads_the_same_values(prog, bpftrace):
    res = subprocess.run([bpftrace, "-e", f"usdt:{prog}:sites:mixed {{ @[arg0] = count(); @s = sum(arg0); }}",
                          "-c", f"{prog} {ROUNDS}"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stdout.splitlines() if line.startswith("@")]
    assert sorted(lines) == sorted([f"@[{v}]: {ROUNDS}" for v in (SITE_A[0], SITE_B[0], SITE_C[0])]
                                   + [f"@s: {ROUNDS * (SITE_A[0] + SITE_B[0] + SITE_C[0]) % 2**64}"])
