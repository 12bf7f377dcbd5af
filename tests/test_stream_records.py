"""Records of every length the native reader copies into rows: every
length from 0 to 12 arguments, narrow negative and wide unsigned values,
and strings in slots out of argument order, in a whole record and in a short
one (3 arguments, its strings right after them), come back exactly as fired, with
the unused parts of each row zero (no byte of an earlier record in the ring
buffer shows through a short string's slot)."""
from __future__ import annotations

import numpy as np
import pytest

from pyusdt import Tracer

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

STR_LEN = 16
ROUNDS = 50
# rec:mixed's string arguments, in the order of their slots (not of the arguments).
MIXED_STRINGS = (9, 1, 3, 5, 7)
# rec:strs3's, likewise: the session's other three slots stay empty in its rows.
STRS3_STRINGS = (2, 0)


def ints(r: int) -> list[int]:
    """The integer values of round r, as stream_records.c computes them."""
    def wrap(v: int, bits: int, signed: bool) -> int:
        v &= (1 << bits) - 1
        return v - (1 << bits) if signed and v >> (bits - 1) else v
    return [wrap(-1 - r, 8, True), wrap(250 + r, 8, False), wrap(-30000 - r, 16, True),
            wrap(65000 + r, 16, False), wrap(-2000000000 - r, 32, True), wrap(4000000000 + r, 32, False),
            wrap(-9000000000000000000 - r, 64, True), wrap(18000000000000000000 + r, 64, False),
            1000 + r, 1001 + r, 1002 + r, 1003 + r]


def expected(rounds: int) -> list[tuple]:
    out = []
    for r in range(rounds):
        v = ints(r)
        out += [(f"rec:a{n}", tuple(v[:n])) for n in range(13)]
        mixed = (v[0], "", v[2], "ab", v[4], "fifteen-bytes!!", v[6], "sixteen-bytes!!", v[1],
                 "a string much l", v[3], v[8])
        out.append(("rec:mixed", mixed))
        out.append(("rec:strs3", ("a string much l", v[2], "ab")))
    return out


@pytest.fixture(scope="module")
def program(build):
    return build("stream_records.c", "stream_records")


def trace(program, rounds: int):
    rows, events = [], []
    with Tracer(str_len=STR_LEN) as t:
        held = t.attach_command([str(program), str(rounds)], "rec:a*")
        t.attach_command(held, "rec:mixed", strings=MIXED_STRINGS)
        t.attach_command(held, "rec:strs3", strings=STRS3_STRINGS)
        t.start()
        for batch in t.batches(timeout=0.1, duration=30):
            events.extend(batch)
            for i in range(len(batch)):
                rows.append((batch.probe_of(i).fullname, batch.array[i].copy()))
        stats = {s.probe: (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) for s in t.stats()}
    return events, rows, stats


def test_every_record_length_round_trips(bpf, program):
    events, rows, stats = trace(program, ROUNDS)
    assert [(e.probe.fullname, e.args) for e in events] == expected(ROUNDS)
    assert stats == {**{f"rec:a{n}": (ROUNDS, ROUNDS, 0, 0, 0) for n in range(13)},
                     "rec:mixed": (ROUNDS, ROUNDS, 0, 0, 0), "rec:strs3": (ROUNDS, ROUNDS, 0, 0, 0)}
    # The long string is cut at its slot and flagged; the one of exactly
    # str_len bytes is cut too (its last byte makes way for the NUL).
    assert {e.truncated for e in events if e.probe.fullname == "rec:mixed"} == {(7, 9)}
    assert {e.truncated for e in events if e.probe.fullname == "rec:strs3"} == {(0,)}


def test_unused_parts_of_rows_are_zero(bpf, program):
    _, rows, _ = trace(program, 3)
    for name, row in rows:
        if name in ("rec:mixed", "rec:strs3"):
            slots = row["strings"]
            if name == "rec:mixed":
                assert [bytes(s) for s in slots] == [b"a string much l", b"", b"ab", b"fifteen-bytes!!",
                                                     b"sixteen-bytes!!"]
            else:
                assert [bytes(s) for s in slots] == [b"ab", b"a string much l", b"", b"", b""]
                assert not np.any(row["args"][3:]), row["args"]
            # numpy's S dtype strips trailing NULs: look at the raw bytes of each slot.
            raw = row.tobytes()[row.dtype.fields["strings"][1]:]
            for k, s in enumerate(slots):
                slot = raw[k * STR_LEN:(k + 1) * STR_LEN]
                assert slot == bytes(s) + bytes(STR_LEN - len(bytes(s))), (k, slot)
        else:
            n = int(name[len("rec:a"):])
            args = row["args"]
            assert not np.any(args[n:]), (name, args)
            assert not np.any(row["strings"].view(np.uint8)), name
