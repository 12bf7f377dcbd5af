"""16-byte arguments (a struct or __int128 passed by value): listed with
their size and a mark that a trace reads only their first 8 bytes, and
traced with exactly those bytes, the low half, little-endian.

bpftrace cannot be the reference here: 0.17 (bookworm) and 0.23.2 (trixie,
scripts/bpftrace-trixie) both stop on an assertion ("abs_size == 1 || 2 ||
4 || 8") for these probes, and refuse "g.0(%rip)" as a parse error.  The
program prints both halves of every value it fires instead.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from pyusdt import Tracer, probes_at_path

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

ROUNDS = 3
# probe -> (note's spec, kind, signed), as GCC -O2 writes them (the register one by hand).
PROBES = {
    "wide:mem_struct": ("16@-24(%rsp)", "mem", False),
    "wide:mem_int128": ("-16@-24(%rsp)", "mem", True),
    "wide:global_u128": ("16@g.0(%rip)", "mem_abs", False),
    "wide:reg_int128": ("-16@%rax", "reg", True),
}


def low_half(probe: str, i: int) -> int:
    """Round i's first 8 bytes of the probe's value, signed where the spec is."""
    low = {"wide:mem_struct": 0x1122334455667700 + i, "wide:mem_int128": 0xFEDCBA9876543210 + i,
           "wide:global_u128": 0x8000000000000001 + i, "wide:reg_int128": 2**64 - 1 - i}[probe]
    return low - 2**64 if PROBES[probe][2] and low >= 2**63 else low


def expected_hits(rounds: int) -> list[tuple]:
    return [(p, (low_half(p, i),)) for i in range(rounds)
            for p in ("wide:mem_struct", "wide:mem_int128", "wide:global_u128", "wide:reg_int128")]


def program_hits(text: str) -> list[tuple]:
    """(probe, (low half,)) from the program's "wide:name LOW HIGH" lines."""
    hits = []
    for line in text.splitlines():
        name, low, _high = line.split()
        value = int(low, 16)
        hits.append((name, (value - 2**64 if PROBES[name][2] and value >= 2**63 else value,)))
    return hits


@pytest.fixture(scope="module")
def wide(build):
    return build("args_wide.c", "args_wide")


def test_discovery_keeps_the_notes_size(wide):
    probes = {p.fullname: p for p in probes_at_path(wide)}
    assert sorted(probes) == sorted(PROBES)
    for name, (spec, kind, signed) in PROBES.items():
        (arg,) = probes[name].args
        assert (arg.spec, arg.kind, arg.size, arg.signed) == (spec, kind, 16, signed)
        assert (arg.bytes_read, arg.partial) == (8, True)
        assert probes[name].unsupported == ""


def test_list_text_says_first_8_bytes_read(wide, cli):
    res = cli("list", str(wide))
    assert res.returncode == 0, res.stderr
    lines = sorted(res.stdout.splitlines())
    assert lines == sorted(f"{wide} {name} sites=1 args=[{spec}(first 8 bytes read)]"
                           for name, (spec, _, _) in PROBES.items())


def test_list_json_has_partial_args(wide, cli):
    res = cli("list", "--json", str(wide))
    assert res.returncode == 0, res.stderr
    objs = {f"{o['provider']}:{o['name']}": o for o in map(json.loads, res.stdout.splitlines())}
    for name, (spec, _, _) in PROBES.items():
        assert objs[name]["args"] == [spec]
        assert objs[name]["partial_args"] == [{"index": 0, "spec": spec, "size": 16, "bytes_read": 8}]


def test_trace_reads_the_low_half_exactly(bpf, wide, cli, tmp_path):
    out = tmp_path / "fired.txt"
    res = cli("trace", "-c", f"{wide} {ROUNDS} {out}", "wide:*")
    assert res.returncode == 0, res.stderr
    events = [re.fullmatch(r"\d+ \d+/\d+ cpu\d+ (\S+) arg0=(-?\d+)", line) for line in res.stdout.splitlines()]
    assert all(events), res.stdout
    got = [(m.group(1), (int(m.group(2)),)) for m in events]
    assert got == expected_hits(ROUNDS)
    assert program_hits(out.read_text()) == expected_hits(ROUNDS)
    assert f"pyusdt: {4 * ROUNDS} events, 0 lost (ring buffer full), 0 unreadable strings, " \
           "0 unreadable arguments" in res.stderr


def test_batches_type_the_low_half(bpf, wide, tmp_path):
    """Columns hold the 8 bytes read: int64 for -16, uint64 for 16; the
    pandas table types them the same way."""
    out = tmp_path / "fired.txt"
    events, cols, frames = [], {}, []
    with Tracer() as t:
        t.attach_command([str(wide), str(ROUNDS), str(out)], "wide:*")
        t.start()
        for batch in t.batches(timeout=0.1, duration=20):
            events.extend(batch)
            for name in PROBES:
                cols.setdefault(name, []).append(batch.arg(0, name))
            frames.append(batch.to_pandas())

    assert program_hits(out.read_text()) == expected_hits(ROUNDS)
    assert [(e.probe.fullname, e.args) for e in events] == expected_hits(ROUNDS)
    assert all(e.read_failed == () for e in events)
    for name, (_, _, signed) in PROBES.items():
        assert {c.dtype for c in cols[name]} == {np.dtype(np.int64 if signed else np.uint64)}
        assert [int(v) for c in cols[name] for v in c] == [low_half(name, i) for i in range(ROUNDS)]
    import pandas as pd
    table = pd.concat(frames)
    assert [int(v) for v in table["arg0"]] == [v for _, (v,) in expected_hits(ROUNDS)]
