"""Argument values: every width, signed and unsigned, boundary values, and
every operand form GCC emits (register, memory, constant, base+index*scale),
plus a probe with several sites.  Values are compared exactly with what the
traced program fired (it prints them too) and counts are exact."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from pyusdt import Tracer, probes_at_path

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

ROUNDS = 3

SIGNED_ROWS = [
    (-(2**7), -(2**15), -(2**31), -(2**63)),
    (2**7 - 1, 2**15 - 1, 2**31 - 1, 2**63 - 1),
    (0, 0, 0, 0),
    (-1, -1, -1, -1),
]
UNSIGNED_ROWS = [
    (0, 0, 0, 0),
    (2**8 - 1, 2**16 - 1, 2**32 - 1, 2**64 - 1),
    (1, 1, 1, 1),
    (0x80, 0x8000, 0x80000000, 2**63),
]
CONSTS = (5, -1, 0, -(2**63), 2**64 - 1)
INDEXED = [(i, (i - 3) * 1000000007, (-1 if i % 2 else 1) * (i + 1) * 100000) for i in range(6)]


def expected_hits(rounds: int) -> list[tuple]:
    """(probe, args) in the order args_widths fires them."""
    seq = []
    for _ in range(rounds):
        for k in range(4):
            seq += [
                ("args:reg_signed", SIGNED_ROWS[k]),
                ("args:reg_unsigned", UNSIGNED_ROWS[k]),
                ("args:mem_signed", SIGNED_ROWS[k]),
                ("args:mem_unsigned", UNSIGNED_ROWS[k]),
            ]
        seq.append(("args:consts", CONSTS))
        seq += [("args:indexed", row) for row in INDEXED]
    return seq


def readelf_notes(path) -> list[dict]:
    """The stapsdt notes as readelf prints them: provider, name, location, args."""
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    notes = []
    for m in re.finditer(
        r"Provider: (\S+)\s+Name: (\S+)\s+Location: (0x[0-9a-f]+), Base: (0x[0-9a-f]+), "
        r"Semaphore: (0x[0-9a-f]+)\s+Arguments:([^\n]*)",
        out,
    ):
        notes.append({
            "provider": m.group(1),
            "name": m.group(2),
            "location": int(m.group(3), 16),
            "semaphore": int(m.group(5), 16),
            "args": m.group(6).split(),
        })
    return notes


def note_args(path, name: str) -> list[str]:
    return next(n["args"] for n in readelf_notes(path) if n["name"] == name)


@pytest.fixture(scope="module")
def widths(build):
    return build("args_widths.c", "args_widths")


@pytest.fixture(scope="module")
def multisite(build):
    return build("args_multisite.c", "args_multisite")


def parse_program_output(text: str) -> list[tuple]:
    hits = []
    for line in text.splitlines():
        name, *vals = line.split()
        hits.append((name, tuple(int(v) for v in vals)))
    return hits


def run_traced(tracer: Tracer) -> list:
    events = []
    for batch in tracer.batches(timeout=0.1, duration=20):
        events.extend(batch)
    return events


# -- the compiled notes really have the operand forms under test ------------


def test_notes_have_every_operand_form(widths):
    reg = note_args(widths, "reg_signed")
    assert [a.split("@")[0] for a in reg] == ["-1", "-2", "-4", "-8"]
    assert all(re.fullmatch(r"-\d@%\w+", a) for a in reg), reg
    assert [a.split("@")[0] for a in note_args(widths, "reg_unsigned")] == ["1", "2", "4", "8"]

    for name, sizes in (("mem_signed", ["-1", "-2", "-4", "-8"]), ("mem_unsigned", ["1", "2", "4", "8"])):
        mem = note_args(widths, name)
        assert [a.split("@")[0] for a in mem] == sizes
        assert all(re.fullmatch(r"-?\d@-?\d*\(%\w+\)", a) for a in mem), mem

    assert note_args(widths, "consts") == ["-4@$5", "-4@$-1", "-4@$0", "-8@$-9223372036854775808", "8@$-1"]

    idx = note_args(widths, "indexed")
    assert re.fullmatch(r"-8@-?\d*\(%\w+,%\w+,8\)", idx[1]), idx
    assert re.fullmatch(r"-4@-?\d*\(%\w+,%\w+,4\)", idx[2]), idx


def test_discovery_kinds_sizes_signs(widths):
    probes = {p.fullname: p for p in probes_at_path(str(widths))}
    assert sorted(probes) == sorted(
        ["args:reg_signed", "args:reg_unsigned", "args:mem_signed", "args:mem_unsigned",
         "args:consts", "args:indexed"]
    )

    def shape(name):
        return [(a.kind, a.size, a.signed) for a in probes[name].args]

    assert shape("args:reg_signed") == [("reg", n, True) for n in (1, 2, 4, 8)]
    assert shape("args:reg_unsigned") == [("reg", n, False) for n in (1, 2, 4, 8)]
    assert shape("args:mem_signed") == [("mem", n, True) for n in (1, 2, 4, 8)]
    assert shape("args:mem_unsigned") == [("mem", n, False) for n in (1, 2, 4, 8)]
    assert shape("args:consts") == [("const", 4, True)] * 3 + [("const", 8, True), ("const", 8, False)]
    assert shape("args:indexed") == [("reg", 8, True), ("mem_index", 8, True), ("mem_index", 4, True)]
    for _name, p in probes.items():
        assert [a.spec for a in p.args] == note_args(widths, p.name)
        assert p.unsupported == ""


# -- values ------------------------------------------------------------------


def test_every_width_and_form_exact(bpf, widths, tmp_path):
    out = tmp_path / "fired.txt"
    with Tracer() as t:
        t.attach_command([str(widths), str(ROUNDS), str(out)], "args:*")
        t.start()
        events = run_traced(t)
        stats = {s.probe: s for s in t.stats()}

    expected = expected_hits(ROUNDS)
    fired = parse_program_output(out.read_text())
    assert fired == expected  # the program fired what this test expects
    assert [(e.probe.fullname, e.args) for e in events] == expected
    assert all(e.read_failed == () and e.truncated == () for e in events)
    assert all(isinstance(v, int) for e in events for v in e.args)
    # One traced process, one thread.
    assert len({(e.pid, e.tid) for e in events}) == 1

    counts = {"args:reg_signed": 4 * ROUNDS, "args:reg_unsigned": 4 * ROUNDS,
              "args:mem_signed": 4 * ROUNDS, "args:mem_unsigned": 4 * ROUNDS,
              "args:consts": ROUNDS, "args:indexed": 6 * ROUNDS}
    assert {k: (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) for k, s in stats.items()} == {
        k: (n, n, 0, 0, 0) for k, n in counts.items()
    }


def test_batch_arg_columns_typed(bpf, widths, tmp_path):
    """batch.arg(i, probe): int64 for signed specs, uint64 for unsigned, exact values."""
    cols: dict = {}
    with Tracer() as t:
        t.attach_command([str(widths), "1", str(tmp_path / "out")], "args:*")
        t.start()
        for batch in t.batches(timeout=0.1, duration=20):
            for name, nargs in (("args:reg_signed", 4), ("args:mem_unsigned", 4), ("args:consts", 5),
                                ("args:indexed", 3)):
                for i in range(nargs):
                    col = batch.arg(i, name)
                    cols.setdefault((name, i), []).append(col)

    def column(name, i):
        parts = cols[(name, i)]
        dtypes = {c.dtype for c in parts}
        assert len(dtypes) == 1
        return dtypes.pop(), [int(v) for c in parts for v in c]

    for i in range(4):
        dt, vals = column("args:reg_signed", i)
        assert dt == np.int64
        assert vals == [row[i] for row in SIGNED_ROWS]
        dt, vals = column("args:mem_unsigned", i)
        assert dt == np.uint64
        assert vals == [row[i] for row in UNSIGNED_ROWS]
    for i in range(5):
        dt, vals = column("args:consts", i)
        assert dt == (np.uint64 if i == 4 else np.int64)
        assert vals == [CONSTS[i]]
    for i in range(3):
        dt, vals = column("args:indexed", i)
        assert dt == np.int64
        assert vals == [row[i] for row in INDEXED]


def test_cli_text_values(bpf, widths, cli, tmp_path):
    """`pyusdt trace -c` prints every hit, from the first, with exact values."""
    out = tmp_path / "fired.txt"
    res = cli("trace", "-c", f"{widths} 2 {out}", "args:*")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stdout.splitlines()
    got = []
    for line in lines:
        m = re.fullmatch(r"(\d+) (\d+)/(\d+) cpu(\d+) (\S+)((?: arg\d+=-?\d+)*)", line)
        assert m, line
        vals = tuple(int(kv.split("=")[1]) for kv in m.group(6).split())
        assert [kv.split("=")[0] for kv in m.group(6).split()] == [f"arg{i}" for i in range(len(vals))]
        got.append((m.group(5), vals))
    assert got == expected_hits(2)
    assert parse_program_output(out.read_text()) == expected_hits(2)
    assert f"pyusdt: {len(expected_hits(2))} events, 0 lost" in res.stderr


def test_attach_path_sees_every_process(bpf, widths, tmp_path):
    """A path target traces every process running the file: two runs, two pids."""
    with Tracer() as t:
        t.attach_path(str(widths), "args:consts")
        t.start()
        for k in range(2):
            p = subprocess.run([str(widths), "2", str(tmp_path / f"o{k}")], timeout=10)
            assert p.returncode == 0
        events = []
        for batch in t.batches(timeout=0.1, duration=0.5):
            events.extend(batch)
        stats = t.stats()
    assert [e.args for e in events] == [CONSTS] * 4
    pids = [e.pid for e in events]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]
    assert [(s.probe, s.events, s.hits) for s in stats] == [("args:consts", 4, 4)]


# -- one probe, several sites ------------------------------------------------


def test_multisite_locations(multisite):
    notes = [n for n in readelf_notes(multisite) if n["name"] == "hit"]
    assert len(notes) >= 2
    probes = {p.fullname: p for p in probes_at_path(str(multisite))}
    assert sorted(probes) == ["multisite:done", "multisite:hit"]
    hit = probes["multisite:hit"]
    assert sorted(hit.locations) == sorted(n["location"] for n in notes)
    assert len(hit.locations) == len(notes) == 3
    assert len(probes["multisite:done"].locations) == 1
    assert probes["multisite:done"].args == []


def test_multisite_hits_from_every_site(bpf, multisite):
    rounds = 5
    with Tracer() as t:
        t.attach_command([str(multisite), str(rounds)], "multisite:*")
        t.start()
        assert t.attached_sites == 4  # three sites of hit, one of done
        events = run_traced(t)
        stats = {s.probe: (s.events, s.hits) for s in t.stats()}
    expected = []
    for i in range(rounds):
        expected += [("multisite:hit", (1, i)), ("multisite:hit", (2, i)), ("multisite:hit", (2, i + 1000))]
    expected.append(("multisite:done", ()))
    assert [(e.probe.fullname, e.args) for e in events] == expected
    # Site 1 (in first()) and the sites in second() each delivered their hits.
    assert sum(1 for e in events if e.args[:1] == (1,)) == rounds
    assert sum(1 for e in events if e.args[:1] == (2,)) == 2 * rounds
    assert stats == {"multisite:hit": (3 * rounds, 3 * rounds), "multisite:done": (1, 1)}
