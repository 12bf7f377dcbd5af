"""String arguments: empty, plain, non-ASCII UTF-8, exactly str_len-1 bytes,
exactly str_len bytes and longer, read with str_len=16; the truncated flag
is set only where the string goes on past the slot; an unreadable pointer
is flagged and counted, never mistaken for a string."""
from __future__ import annotations

import json

import pytest

from pyusdt import Tracer

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

STR_LEN = 16
ROUNDS = 3
STRINGS = [
    "",
    "hello",
    "h\u00e9llo \u2713",  # 10 bytes of UTF-8
    "fifteen-bytes!!",  # str_len - 1 bytes: fits exactly
    "sixteen-bytes!!!",  # str_len bytes: its last byte is cut
    "a string much longer than sixteen bytes, to be cut",
]
ENCODED = [s.encode() for s in STRINGS]
# What a 16-byte slot holds: at most 15 bytes and the NUL.
READ = [b[: STR_LEN - 1].decode() for b in ENCODED]
TRUNCATED = [i for i, b in enumerate(ENCODED) if len(b) > STR_LEN - 1]  # [4, 5]


@pytest.fixture(scope="module")
def program(build):
    return build("args_strings.c", "args_strings")


def test_expected_table_is_what_this_test_means():
    assert len(ENCODED[2]) == 10 and not STRINGS[2].isascii()
    assert len(ENCODED[3]) == STR_LEN - 1 and len(ENCODED[4]) == STR_LEN
    assert TRUNCATED == [4, 5]
    assert READ[5] == "a string much l"


def trace(program, rounds, *requests):
    """Traces args_strings with str_len=16; each request is (pattern, strings).
    Returns (events, [(probe name, raw record)], stats by probe)."""
    events, records = [], []
    with Tracer(str_len=STR_LEN) as t:
        held = [str(program), str(rounds)]
        for pattern, strings in requests:
            held = t.attach_command(held, pattern, strings=strings)
        t.start()
        for batch in t.batches(timeout=0.1, duration=20):
            events.extend(batch)
            for i in range(len(batch)):
                records.append((batch.probe_of(i).fullname, batch.array[i]))
        stats = {s.probe: s for s in t.stats()}
    return events, records, stats


ALL = ("strs:all", [1, 2, 3, 4, 5, 6])
ONE = ("strs:one", [1])
BAD = ("strs:bad", [1])


def test_string_values_exact(bpf, program):
    events, _, stats = trace(program, ROUNDS, ALL, ONE)
    expected = []
    for r in range(ROUNDS):
        expected.append(("strs:all", (r, *READ), tuple(i + 1 for i in TRUNCATED), ()))
        for i in range(len(STRINGS)):
            expected.append(("strs:one", (i, READ[i]), (1,) if i in TRUNCATED else (), ()))
    got = [(e.probe.fullname, e.args, e.truncated, e.read_failed) for e in events]
    assert got == expected
    assert {k: (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) for k, s in stats.items()} == {
        "strs:all": (ROUNDS, ROUNDS, 0, 0, 0),
        "strs:one": (len(STRINGS) * ROUNDS, len(STRINGS) * ROUNDS, 0, 0, 0),
    }


def test_short_string_after_long_one(bpf, program):
    """Round 2's "" and "hello" come right after round 1's 15-byte cut string
    in the same slot: nothing of the earlier string may show through."""
    events, _, _ = trace(program, 2, ONE)
    assert [e.args for e in events] == [(i, READ[i]) for i in range(len(STRINGS))] * 2


def test_unreadable_string(bpf, program):
    """A NULL string pointer: flagged read_failed, counted as str_fail, value ""."""
    events, _, stats = trace(program, ROUNDS, BAD)
    assert [(e.args, e.truncated, e.read_failed) for e in events] == [((r, ""), (), (1,)) for r in range(ROUNDS)]
    s = stats["strs:bad"]
    assert (s.events, s.hits, s.lost_ringbuf, s.str_fail, s.arg_fail) == (ROUNDS, ROUNDS, 0, ROUNDS, 0)


def test_batch_strings_column(bpf, program):
    """batch.strings(i, probe) decodes each slot exactly."""
    got: dict = {}
    with Tracer(str_len=STR_LEN) as t:
        t.attach_command([str(program), str(ROUNDS)], "strs:all", strings=[1, 2, 3, 4, 5, 6])
        t.start()
        for batch in t.batches(timeout=0.1, duration=20):
            for i in range(1, 7):
                got.setdefault(i, []).extend(batch.strings(i, "strs:all"))
    assert got == {i + 1: [READ[i]] * ROUNDS for i in range(len(STRINGS))}


def test_raw_string_slots(bpf, program):
    """The numpy `strings` field holds exactly the bytes read: the string, cut
    at str_len-1 bytes, NUL-padded (so numpy shows the string itself),
    whatever the slot held for an earlier hit."""
    _, records, _ = trace(program, ROUNDS, ALL, ONE)
    assert len(records) == ROUNDS * (1 + len(STRINGS))
    for name, rec in records:
        slots = [bytes(s) for s in rec["strings"]]
        assert len(rec["strings"]) == 6  # slots = the most strings any probe asked for
        if name == "strs:all":
            assert slots == [b[: STR_LEN - 1] for b in ENCODED]
        else:
            assert slots[0] == ENCODED[int(rec["args"][0])][: STR_LEN - 1]


def test_cli_strings_jsonl(bpf, program, cli):
    res = cli("trace", "-c", f"{program} 2", "strs:all", "-s", "1", "-s", "2", "-s", "3", "-s", "4",
              "-s", "5", "-s", "6", "--str-len", str(STR_LEN), "--format", "jsonl")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    objs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [o["args"] for o in objs] == [[r, *READ] for r in range(2)]
    assert [o["truncated"] for o in objs] == [[5, 6]] * 2
    assert all("read_failed" not in o for o in objs)


def test_cli_strings_text(bpf, program, cli):
    """Text output: JSON-quoted strings, "..." after a cut one, arg1=? for an unreadable one."""
    res = cli("trace", "-c", f"{program} 1", "strs:[ob]*", "-s", "1", "--str-len", str(STR_LEN))
    assert res.returncode == 0, res.stderr
    tails = [line.split(" ", 3)[3] for line in res.stdout.splitlines()]
    expected = [f"strs:one arg0={i} arg1={json.dumps(READ[i], ensure_ascii=False)}"
                + ("..." if i in TRUNCATED else "") for i in range(len(STRINGS))]
    expected.append("strs:bad arg0=0 arg1=?")
    assert tails == expected
    assert "1 unreadable strings" in res.stderr


def test_default_str_len_reads_whole_strings(bpf, program):
    """With the default slot length every test string fits, none is flagged."""
    with Tracer() as t:
        assert t.str_len > len(ENCODED[5])
        t.attach_command([str(program), "2"], "strs:all", strings=[1, 2, 3, 4, 5, 6])
        t.start()
        events = [e for b in t.batches(timeout=0.1, duration=20) for e in b]
    assert [(e.args, e.truncated, e.read_failed) for e in events] == [
        ((r, *STRINGS), (), ()) for r in range(2)
    ]


def test_strings_with_pid_target_survive_new_mappings(bpf, build):
    """A pid target keeps tracing string arguments after the process maps a new
    file that has no matching probes (a data file here; dlopen and the
    loader's ld.so.cache are the same case)."""
    import subprocess

    prog = build("args_mapfile.c", "args_mapfile")
    p = subprocess.Popen([str(prog), "/etc/passwd"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, bufsize=1)
    try:
        assert p.stdout.readline() == "ready\n"
        with Tracer(str_len=STR_LEN) as t:
            t.attach_pid(p.pid, "mapfile:mapped", strings=[0])
            t.start()
            events = []
            for n in (1, 2):
                p.stdin.write("go\n")
                p.stdin.flush()
                assert p.stdout.readline() == f"mapped {n}\n"
                # Long enough for the tracer to look at the process's new mappings.
                for batch in t.batches(timeout=0.1, duration=0.5):
                    events.extend(batch)
            stats = t.stats()
        assert [(e.args, e.truncated) for e in events] == [(("/etc/passwd", 1), ()), (("/etc/passwd", 2), ())]
        assert [(s.probe, s.events, s.hits) for s in stats] == [("mapfile:mapped", 2, 2)]
    finally:
        p.kill()
        p.wait()
