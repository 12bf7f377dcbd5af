"""Run-time USDT providers (pyusdt.provide), traced for real.

The traced code runs in its own Python process (tests/programs/
provider_target.py, started with sys.executable): it prints its pid and
executes one JSON command per line (declare, load, unload, fire, enabled,
fork).  The tests trace it with pyusdt (Tracer.attach_pid) and with
bpftrace -p, and check that both see exactly the values fired: integers at
the limits of every width in registers and on the stack (arguments 7..12),
empty and non-ASCII strings, bytes read as strings up to their first NUL;
that `enabled` follows attach and detach; two providers, unload, reload
with a new probe, the errors; and fork.

The checks that need no tracing (names, argument counts, load/unload state)
build providers in this process.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pyusdt import Tracer
from pyusdt.aggregate.specs import Aggregate
from pyusdt.errors import ProbeArgumentError, ProviderError
from pyusdt.provide.provider import Provider

from proc_helpers import Child

# make test runs this module again on the routes of older kernels (pyproject.toml).
pytestmark = pytest.mark.older_kernel_routes

SCRIPT = Path(__file__).parent / "programs" / "provider_target.py"

INT_TYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
BITS = {t: int(t.lstrip("uint")) for t in INT_TYPES}


def lo(t: str) -> int:
    return -(1 << (BITS[t] - 1)) if t[0] == "i" else 0


def hi(t: str) -> int:
    return (1 << (BITS[t] - 1)) - 1 if t[0] == "i" else (1 << BITS[t]) - 1


# Each width appears both in a register (arguments 1..6) and on the stack
# (arguments 7..12), in one probe or the other.
LOHI = ["int8", "uint8", "int16", "uint16", "int32", "uint32",
        "int64", "uint64", "int8", "uint8", "int16", "uint16"]
HILO = ["int64", "uint64", "int8", "uint8", "int16", "uint16",
        "int32", "uint32", "int32", "uint32", "int64", "uint64"]
assert {*LOHI[:6], *HILO[:6]} == {*LOHI[6:], *HILO[6:]} == set(INT_TYPES)


def int_rows(types: list) -> list:
    """Rows of values: every minimum, every maximum, zeros, -1 (1 when
    unsigned), and min+1 (the top bit alone when unsigned)."""
    return [
        [lo(t) for t in types],
        [hi(t) for t in types],
        [0 for t in types],
        [-1 if t[0] == "i" else 1 for t in types],
        [lo(t) + 1 if t[0] == "i" else 1 << (BITS[t] - 1) for t in types],
        # Either side of CPython 3.11's one-digit ("compact") ints, |v| < 2**30,
        # which fire() reads in place; the others go through libpython.
        [(1 << 30) - 1 if BITS[t] >= 32 else hi(t) - 1 for t in types],
        [1 << 30 if BITS[t] >= 32 else lo(t) + 2 for t in types],
        [(-(1 << 30) + 1 if t[0] == "i" else (1 << 30) + 1) if BITS[t] >= 32 else 2 for t in types],
        [(-(1 << 30) if t[0] == "i" else 1 << 31) if BITS[t] >= 32 else -2 if t[0] == "i" else 3
         for t in types],
    ]


# Strings in registers and on the stack, between integers.
STRS = ["str", "int8", "str", "uint64", "str", "int16",
        "str", "str", "int32", "str", "uint8", "str"]
STR_IDX = [i for i, t in enumerate(STRS) if t == "str"]  # [0, 2, 4, 6, 7, 9, 11]
STR_ROWS = [
    ["", -128, "h\u00e9llo \u2713", 2**64 - 1, "a", 32767,
     "h\u00e9llo \u2713", "", -2**31, "x" * 60, 255, "\u2713"],
    ["h\u00e9llo \u2713", 127, "", 0, "\u00e9", -32768,
     "", "stack \u00e9", 2**31 - 1, "", 0, "last one"],
]

# bytes: the pointer is passed; read as a string, they end at the first NUL.
BLOB = ["bytes", "uint32", "bytes"]
BLOB_ROWS = [
    [b"ab\x00cd", 5, b"\xff\xfe\x00\x01"],
    [b"", 0, b"plain"],
    [b"\x00hidden", 7, "caf\u00e9".encode()],
]


def blob_read(b: bytes) -> bytes:
    """What a reader of a bytes argument as a string gets: up to the first NUL."""
    return b.split(b"\0", 1)[0]


def enc(v):
    return {"bytes": v.hex()} if isinstance(v, bytes) else v


def decl(types: list) -> list:
    return [[f"a{i}", t] for i, t in enumerate(types)]


# -- the traced process ------------------------------------------------------


class Target(Child):
    """provider_target.py running; commands are JSON lines, answers too."""

    def __init__(self):
        super().__init__([sys.executable, SCRIPT])
        assert int(self.readline()) == self.pid

    def cmd(self, op: str, **kw) -> dict:
        self.send(json.dumps({"op": op, **kw}))
        line = self.readline()
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise AssertionError(f"{op}: answer {line!r}, target exit status {self.p.poll()}") from None

    def ok(self, op: str, **kw):
        res = self.cmd(op, **kw)
        assert "ok" in res, res
        return res["ok"]

    def err(self, op: str, **kw) -> tuple:
        res = self.cmd(op, **kw)
        assert "error" in res, res
        return res["error"], res["message"]

    def declare(self, provider: str, probes: dict, nop5: bool = True, load: bool = True) -> None:
        self.ok("declare", provider=provider, nop5=nop5, probes=probes)
        if load:
            assert self.ok("load", provider=provider) is True

    def fire(self, provider: str, probe: str, *rows, child: bool = False):
        kw = {"in": "child"} if child else {}
        return self.ok("fire", provider=provider, probe=probe, rows=[[enc(v) for v in r] for r in rows], **kw)

    def enabled(self, provider: str, probe: str, child: bool = False) -> bool:
        kw = {"in": "child"} if child else {}
        return self.ok("enabled", provider=provider, probe=probe, **kw)

    def close(self) -> None:
        if self.p.poll() is None:
            try:
                self.send(json.dumps({"op": "exit"}))
                self.p.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()


@pytest.fixture
def target():
    t = Target()
    try:
        yield t
    finally:
        t.close()


class Bpftrace:
    """bpftrace -p PID -e PROGRAM in the background; stdout lines kept as bytes."""

    def __init__(self, path: str, pid: int, program: str):
        self.p = subprocess.Popen([path, "-p", str(pid), "-e", program],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list = []
        self.err = b""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip(b"\n"))

    def with_prefix(self, prefix: bytes) -> list:
        return [ln[len(prefix):] for ln in list(self.lines) if ln.startswith(prefix)]

    def wait_lines(self, prefix: bytes, n: int, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.with_prefix(prefix)
            if len(got) >= n:
                return got
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"bpftrace printed {len(self.with_prefix(prefix))} of {n} {prefix!r} lines; "
                    f"stderr: {self.err.decode(errors='replace')[-600:]}")

    def sync(self, target: Target, provider: str, probes: list, timeout: float = 15.0) -> None:
        """Returns once bpftrace is attached to every probe (their semaphores
        are up) and printing (a fired `sync` probe came out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                break
            if all(target.enabled(provider, p) for p in probes):
                target.fire(provider, "sync", [])
                if self.with_prefix(b"SYNC"):
                    return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"bpftrace did not attach: {self.err.decode(errors='replace')[-600:]}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._out.join(5)
        self.err = self.p.stderr.read() or b""


FMT = {"str": "%s"}
FMT.update({t: "%lld" if t[0] == "i" else "%llu" for t in INT_TYPES})


def bt_expr(i: int, t: str) -> str:
    """Argument i as bpftrace 0.17 reads it.  Its argN builtins stop at arg5
    ("x86_64 doesn't support arg6"), so arguments 7..12 are read straight
    from the caller's stack slots: at the probe site (the function's first
    instruction) 0(%rsp) is the return address, argument 7 is at 8(%rsp)."""
    if i < 6:
        v = f"arg{i}"
        return f"str({v})" if t in ("str", "bytes") else v
    at = f'(reg("sp") + {8 * (i - 5)})'
    if t in ("str", "bytes"):
        return f"str(*(uint64 *){at})"
    return f"*({t} *){at}"


def bt_printf(provider: str, probe: str, types: list, tag: str, first: int = 0) -> str:
    """A bpftrace probe printing arguments first.. (typed `types`) as TAG|v|v|..."""
    fmts = "|".join("%s" if t == "bytes" else FMT[t] for t in types)
    args = ", ".join(bt_expr(first + i, t) for i, t in enumerate(types))
    return f'usdt:*:{provider}:{probe} {{ printf("{tag}|{fmts}\\n", {args}); }}'


def bt_parse(line: bytes, types: list) -> list:
    out = []
    for field, t in zip(line.split(b"|"), types):
        if t == "bytes":
            out.append(field)
        elif t == "str":
            out.append(field.decode())
        else:
            out.append(int(field))
    return out


def pyusdt_events(t: Tracer, expected: int, timeout: float = 10.0) -> list:
    """(probe name, pid, args) of the events, once `expected` have arrived."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(got) < expected:
        for e in t.poll(0.05):
            got.append((e.probe.fullname, e.pid, list(e.args)))
    for batch in t.drain():
        for e in batch:
            got.append((e.probe.fullname, e.pid, list(e.args)))
    return got


# -- 1, 2, 5: pyusdt and bpftrace see exactly the fired values -----------------

XPROBES = {"lohi": decl(LOHI), "hilo": decl(HILO), "strs": decl(STRS), "blob": decl(BLOB), "sync": []}


@pytest.fixture(scope="module", params=[True, False], ids=["nop5", "nop1"])
def crosscheck(request, bpftrace):
    """One process, one provider (5-byte or 1-byte nop sites); bpftrace
    attaches, then pyusdt too; every row is fired once and seen by both.
    Records `enabled` at each stage."""
    tgt = Target()
    try:
        tgt.declare("xprov", XPROBES, nop5=request.param)
        names = ["lohi", "hilo", "strs", "blob"]
        enabled = {"before": [tgt.enabled("xprov", p) for p in names]}
        program = " ".join([
            bt_printf("xprov", "lohi", LOHI, "L"), bt_printf("xprov", "hilo", HILO, "H"),
            # Seven 64-byte strings overflow one BPF program's 512-byte
            # stack: two programs on the same probe, registers and stack.
            bt_printf("xprov", "strs", STRS[:6], "S"), bt_printf("xprov", "strs", STRS[6:], "T", 6),
            # the blob's pointers as numbers too: bytes pass a pointer
            'usdt:*:xprov:blob { printf("B|%s|%u|%s|%llu\\n", str(arg0), arg1, str(arg2), arg0); }',
            'usdt:*:xprov:sync { printf("SYNC\\n"); }',
        ])
        bt = Bpftrace(bpftrace, tgt.pid, program)
        try:
            bt.sync(tgt, "xprov", names + ["sync"])
            enabled["bpftrace"] = [tgt.enabled("xprov", p) for p in names]
            with Tracer() as t:
                t.attach_pid(tgt.pid, "xprov:lohi")
                t.attach_pid(tgt.pid, "xprov:hilo")
                t.attach_pid(tgt.pid, "xprov:strs", strings=STR_IDX)
                t.attach_pid(tgt.pid, "xprov:blob", strings=[0, 2])
                t.start()
                enabled["both"] = [tgt.enabled("xprov", p) for p in names]
                fired = {"lohi": int_rows(LOHI), "hilo": int_rows(HILO), "strs": STR_ROWS, "blob": BLOB_ROWS}
                for probe, rows in fired.items():
                    assert tgt.fire("xprov", probe, *rows) == len(rows)
                total = sum(len(r) for r in fired.values())
                ours = pyusdt_events(t, total)
                stats = {s.probe: s for s in t.stats()}
            enabled["bpftrace_after_pyusdt"] = [tgt.enabled("xprov", p) for p in names]
            for tag, probe in ((b"L|", "lohi"), (b"H|", "hilo"), (b"S|", "strs"), (b"T|", "strs"), (b"B|", "blob")):
                bt.wait_lines(tag, len(fired[probe]))
        finally:
            bt.stop()
        # Everything bpftrace printed, read after it exited: nothing more, nothing less.
        theirs = {
            "lohi": [bt_parse(x, LOHI) for x in bt.with_prefix(b"L|")],
            "hilo": [bt_parse(x, HILO) for x in bt.with_prefix(b"H|")],
            "strs": [bt_parse(x, STRS[:6]) + bt_parse(y, STRS[6:])
                     for x, y in zip(bt.with_prefix(b"S|"), bt.with_prefix(b"T|"), strict=True)],
            "blob": [bt_parse(x, BLOB + ["uint64"]) for x in bt.with_prefix(b"B|")],
        }
        enabled["after"] = [tgt.enabled("xprov", p) for p in names]
        assert bt.p.returncode == 0, bt.err
        assert not [ln for ln in bt.lines if b"Lost" in ln] and b"Lost" not in bt.err
        yield {"fired": fired, "ours": ours, "theirs": theirs, "enabled": enabled, "pid": tgt.pid,
               "stats": stats}
    finally:
        tgt.close()


def ours_by_probe(cc) -> dict:
    out: dict = {}
    for name, pid, args in cc["ours"]:
        assert pid == cc["pid"]
        out.setdefault(name, []).append(args)
    return out


@pytest.mark.parametrize("probe", ["lohi", "hilo"])
def test_int_limits_registers_and_stack(bpf, crosscheck, probe):
    """INT8_MIN..UINT64_MAX, 0, -1 in every width, as arguments 1..6
    (registers) and 7..12 (stack): pyusdt and bpftrace read exactly them."""
    fired = crosscheck["fired"][probe]
    assert fired[0][LOHI.index("int64") if probe == "lohi" else 0] == -2**63
    assert ours_by_probe(crosscheck)[f"xprov:{probe}"] == fired
    assert crosscheck["theirs"][probe] == fired


def test_strings_registers_and_stack(bpf, crosscheck):
    """Empty, non-ASCII ("héllo ✓") and 60-byte strings, in registers and on
    the stack, between integers at their limits."""
    fired = crosscheck["fired"]["strs"]
    assert ours_by_probe(crosscheck)["xprov:strs"] == fired
    assert crosscheck["theirs"]["strs"] == fired
    st = crosscheck["stats"]["xprov:strs"]
    assert (st.hits, st.events, st.str_fail, st.arg_fail, st.lost_ringbuf) == (2, 2, 0, 0, 0)


def test_bytes_read_as_strings_up_to_nul(bpf, crosscheck):
    """A bytes argument passes a pointer to the bytes (provider_elf.h: "pointer
    to the bytes, their length is usually passed too"): read as a string,
    pyusdt and bpftrace both get the bytes up to the first NUL."""
    fired = crosscheck["fired"]["blob"]
    theirs = crosscheck["theirs"]["blob"]
    assert [r[:3] for r in theirs] == [[blob_read(a), n, blob_read(b)] for a, n, b in fired]
    assert all(r[3] != 0 for r in theirs)  # a real pointer, even for b""
    ours = ours_by_probe(crosscheck)["xprov:blob"]
    # pyusdt decodes a string slot as UTF-8, undecodable bytes replaced.
    assert ours == [[blob_read(a).decode(errors="replace"), n, blob_read(b).decode(errors="replace")]
                    for a, n, b in fired]
    assert ours[0][2] == "\ufffd\ufffd"


def test_enabled_follows_bpftrace_and_pyusdt(bpf, crosscheck):
    """enabled: False before any tracer, True with bpftrace attached, with
    both, with bpftrace alone again after pyusdt closed; False after."""
    e = crosscheck["enabled"]
    assert e["before"] == [False] * 4
    assert e["bpftrace"] == [True] * 4
    assert e["both"] == [True] * 4
    assert e["bpftrace_after_pyusdt"] == [True] * 4
    assert e["after"] == [False] * 4


def test_raw_bytes_slot(bpf, target):
    """The string slot of a bytes argument holds the bytes up to the first NUL, then zeros."""
    target.declare("rawb", {"blob": decl(["bytes"])})
    with Tracer(str_len=16) as t:
        t.attach_pid(target.pid, "rawb:blob", strings=[0])
        t.start()
        target.fire("rawb", "blob", [b"\x01\xff\x80ab\x00zz"], [b"0123456789abcdefXYZ"])
        slots, truncated = [], []
        deadline = time.monotonic() + 10
        while len(slots) < 2 and time.monotonic() < deadline:
            b = t.poll(0.05)
            slots += [r["strings"][:1].tobytes() for r in b.array]
            truncated += [e.truncated for e in b]
    assert slots == [b"\x01\xff\x80ab" + b"\0" * 11, b"0123456789abcde\0"]
    assert truncated == [(), (0,)]


def test_described_str_decoded_bytes_left_a_pointer(bpf, target):
    """Without `strings`, a provider's own note says which arguments are str:
    those are decoded; a bytes argument stays what is passed, a pointer."""
    target.declare("auto", {"p": decl(["str", "bytes", "int32"])})
    with Tracer() as t:
        t.attach_pid(target.pid, "auto:p")
        t.start()
        target.fire("auto", "p", ["h\u00e9llo \u2713", b"abc", -5], ["", b"", 7])
        got = pyusdt_events(t, 2)
    assert [(name, pid, a[0], a[2]) for name, pid, a in got] == [
        ("auto:p", target.pid, "h\u00e9llo \u2713", -5), ("auto:p", target.pid, "", 7)]
    assert all(isinstance(a[1], int) and a[1] > 4096 for _, _, a in got)


# -- 2: enabled with pyusdt, fire_lazy ---------------------------------------


@pytest.mark.parametrize("nop5", [True, False], ids=["nop5", "nop1"])
def test_enabled_and_fire_lazy_with_pyusdt(bpf, target, nop5):
    """enabled is per probe: False before attach, True while a pyusdt Tracer
    has it, False after close; fire_lazy builds its arguments only then.
    Both probe-site kinds (5-byte and 1-byte nop)."""
    target.declare("en", {"one": decl(["int64", "str"]), "other": decl(["int64"])}, nop5=nop5)
    assert [target.enabled("en", "one"), target.enabled("en", "other")] == [False, False]
    lazy = dict(provider="en", probe="one", args=[-5, "lazy \u2713"])
    assert target.ok("fire_lazy", **lazy) == 0  # untraced: the arguments are not even built
    with Tracer() as t:
        t.attach_pid(target.pid, "en:one", strings=[1])
        t.start()
        assert [target.enabled("en", "one"), target.enabled("en", "other")] == [True, False]
        assert target.ok("fire_lazy", **lazy) == 1
        target.fire("en", "one", [2**63 - 1, ""])
        target.fire("en", "other", [1])  # not traced: nothing
        got = pyusdt_events(t, 2)
        hits = {s.probe: s.hits for s in t.stats()}
    assert got == [("en:one", target.pid, [-5, "lazy \u2713"]), ("en:one", target.pid, [2**63 - 1, ""])]
    assert hits == {"en:one": 2}
    assert [target.enabled("en", "one"), target.enabled("en", "other")] == [False, False]
    assert target.ok("fire_lazy", **lazy) == 0


# -- 3: two providers, unload, reload, errors ----------------------------------


def test_two_providers_unload_reload(bpf, target):
    target.declare("alpha", {"a": decl(["int32", "str"])})
    target.declare("beta", {"b": decl(["str", "uint16"])})
    t1 = Tracer()
    try:
        t1.attach_pid(target.pid, "alpha:*", strings=[1])
        t1.attach_pid(target.pid, "beta:*", strings=[0])
        t1.start()
        target.fire("alpha", "a", [-7, "from alpha"])
        target.fire("beta", "b", ["from beta", 65535])
        assert sorted(pyusdt_events(t1, 2)) == [("alpha:a", target.pid, [-7, "from alpha"]),
                                                 ("beta:b", target.pid, ["from beta", 65535])]

        # load twice
        assert target.err("load", provider="beta") == (
            "ProviderError", "provider beta is already loaded (unload() first)")

        # unload alpha: its probe raises, beta keeps working
        assert target.ok("unload", provider="alpha") is False
        assert target.enabled("alpha", "a") is False
        cls, msg = target.err("fire", provider="alpha", probe="a", args=[1, "x"])
        assert (cls, msg) == ("ProviderError", "alpha:a fired after its provider was unloaded")
        target.fire("beta", "b", ["still", 1])
        assert pyusdt_events(t1, 1) == [("beta:b", target.pid, ["still", 1])]

        # add a probe while unloaded, load again: a new object, both probes live
        target.ok("probe", provider="alpha", name="c", args=decl(["uint64", "str"]))
        assert target.ok("load", provider="alpha") is True
        # The running tracer finds the new object when it rescans the mappings.
        deadline = time.monotonic() + 10
        while not (target.enabled("alpha", "a") and target.enabled("alpha", "c")):
            assert time.monotonic() < deadline, "the new alpha object was not attached"
            for _ in t1.poll(0.05):
                pytest.fail("no event expected yet")
        with Tracer() as t2:  # and a tracer started now finds it at once
            t2.attach_pid(target.pid, "alpha:c", strings=[1])
            t2.start()
            target.fire("alpha", "a", [2**31 - 1, "reloaded"])
            target.fire("alpha", "c", [2**64 - 1, "new probe"])
            fresh = pyusdt_events(t2, 1)
        assert sorted(pyusdt_events(t1, 2)) == [("alpha:a", target.pid, [2**31 - 1, "reloaded"]),
                                                 ("alpha:c", target.pid, [2**64 - 1, "new probe"])]
        assert fresh == [("alpha:c", target.pid, [2**64 - 1, "new probe"])]
    finally:
        t1.close()
    assert target.enabled("alpha", "c") is False


ARG_ERRORS = [
    # (probe args, fired, message after "errs:p ")
    (["int32"], ["1"], "argument 0: expected int"),
    (["int32"], [1.0], "argument 0: expected int"),
    (["int32"], [True], "argument 0: expected int"),
    (["str"], [5], "argument 0: expected str"),
    (["str"], [{"bytes": "6162"}], "argument 0: expected str"),
    (["bytes"], ["ab"], "argument 0: expected bytes"),
    (["int8", "int8"], [0, 128], "argument 1: integer out of range for its type"),
    (["int8"], [-129], "argument 0: integer out of range for its type"),
    (["uint8"], [256], "argument 0: integer out of range for its type"),
    (["uint8"], [-1], "argument 0: integer out of range for its type"),
    (["int16"], [2**15], "argument 0: integer out of range for its type"),
    (["uint16"], [2**16], "argument 0: integer out of range for its type"),
    (["int32"], [-2**31 - 1], "argument 0: integer out of range for its type"),
    (["uint32"], [2**32], "argument 0: integer out of range for its type"),
    (["int64"], [2**63], "argument 0: integer out of range for its type"),
    (["uint64"], [2**64], "argument 0: integer out of range for its type"),
    (["uint64"], [-1], "argument 0: integer out of range for its type"),
    (["int32", "str"], [1], "takes 2 argument(s), 1 given"),
    (["int32", "str"], [1, "a", 2], "takes 2 argument(s), 3 given"),
    ([], [1], "takes 0 argument(s), 1 given"),
]


def test_argument_errors_while_traced(bpf, target):
    """While traced, fire() checks type, range and count: ProbeArgumentError
    naming the probe and the argument, and nothing reaches the probe site.
    Untraced, fire() is only a semaphore read: nothing is checked."""
    probes = {f"p{i}": decl(types) for i, (types, _, _) in enumerate(ARG_ERRORS)}
    target.declare("errs", probes)
    for i, (_, args, _) in enumerate(ARG_ERRORS):
        assert target.ok("fire", provider="errs", probe=f"p{i}", args=args) == 1
    with Tracer() as t:
        t.attach_pid(target.pid, "errs:*")
        t.start()
        for i, (_, args, why) in enumerate(ARG_ERRORS):
            assert target.err("fire", provider="errs", probe=f"p{i}", args=args) == (
                "ProbeArgumentError", f"errs:p{i} {why}"), (i, args)
        target.fire("errs", "p6", [-128, 127])  # a good one after the bad ones
        got = pyusdt_events(t, 1)
        hits = {s.probe: s.hits for s in t.stats()}
    assert got == [("errs:p6", target.pid, [-128, 127])]
    assert sum(hits.values()) == 1


def test_traced_fire_returns_none_and_leaves_its_refcount(bpf):
    """While traced, fire() jumps to the probe function, which returns None
    for it: the result is None and None's reference count (not immortal in
    3.11) ends where it started, for register-only probes and for probes
    with stack arguments.  (In this process: the traced pid is our own.)"""
    import os

    p = Provider("rcprov")
    three = p.probe("three", ("a", "int64"), ("b", "uint8"), ("c", "str"))
    eight = p.probe("eight", *[(f"a{i}", "int32") for i in range(8)])
    p.load()
    try:
        with Tracer() as t:
            t.attach_pid(os.getpid(), "rcprov:*", aggregate=Aggregate("count"))
            t.start()
            assert three.enabled and eight.enabled
            assert three.fire(-1, 255, "x") is None and eight.fire(*range(8)) is None
            before = sys.getrefcount(None)
            for _ in range(1000):
                three.fire(-1, 255, "x")
                eight.fire(*range(8))
            after = sys.getrefcount(None)
            hits = {s.probe: s.hits for s in t.stats()}
        assert after == before
        assert hits == {"rcprov:three": 1001, "rcprov:eight": 1001}
    finally:
        p.unload()


def test_keyword_arguments_rejected_while_traced(bpf):
    """ProbeArgumentError is a TypeError; keywords are a TypeError too.
    (In this process: the traced pid is our own.)"""
    import os

    p = Provider("kwprov")
    probe = p.probe("k", ("a", "int32"))
    p.load()
    try:
        # CPython refuses keywords to the native method, traced or not.
        with pytest.raises(TypeError, match="no keyword arguments"):
            probe.fire(a=1)
        with Tracer() as t:
            t.attach_pid(os.getpid(), "kwprov:k")
            t.start()
            assert probe.enabled
            with pytest.raises(TypeError, match="no keyword arguments"):
                probe.fire(a=1)
            with pytest.raises(ProbeArgumentError) as ei:
                probe.fire("1")
            assert isinstance(ei.value, TypeError)
            probe.fire(3)
            assert pyusdt_events(t, 1) == [("kwprov:k", os.getpid(), [3])]
    finally:
        p.unload()


# -- 3: declaration errors and load/unload state (no tracing) ----------------


@pytest.mark.parametrize("name", ["", "1abc", "a-b", "a b", "a:b", "caf\u00e9", "x" * 65, "abc\n", None, 3])
def test_bad_provider_names(name):
    with pytest.raises(ProviderError, match="not a valid identifier"):
        Provider(name)


@pytest.mark.parametrize("name", ["", "9", "bad-name", "with space", "a.b", "x" * 65, "x\n"])
def test_bad_probe_and_argument_names(name):
    p = Provider("names")
    with pytest.raises(ProviderError, match="not a valid identifier"):
        p.probe(name)
    with pytest.raises(ProviderError, match="not a valid identifier"):
        p.probe("ok", ("fine", "int8"), (name, "int8"))
    assert p.probes == {}


def test_valid_names_at_the_limits():
    p = Provider("_" + "P" * 63)
    p.probe("x" * 64, ("_", "int8"), ("a" * 64, "str"))
    p.probe("_9")
    p.load()
    try:
        assert p.probes["x" * 64].fire(1, "s") is None and p.probes["_9"].fire() is None
    finally:
        p.unload()


def test_argument_declarations():
    p = Provider("decls")
    with pytest.raises(ProviderError, match=r"decls:big has 13 arguments; at most 12"):
        p.probe("big", *[(f"a{i}", "int64") for i in range(13)])
    twelve = p.probe("twelve", *[(f"a{i}", "int64") for i in range(12)])
    assert len(twelve.arg_names) == 12
    with pytest.raises(ProviderError, match="unknown type 'float'"):
        p.probe("f", ("x", "float"))
    with pytest.raises(ProviderError, match=r"each argument is \(name, type\)"):
        p.probe("g", "x")
    with pytest.raises(ProviderError, match="declared twice"):
        p.probe("twelve")
    alias = p.probe("alias", ("n", int), ("s", str), ("b", bytes))
    assert alias.arg_types == ["int64", "str", "bytes"]
    assert list(p.probes) == ["twelve", "alias"]
    with pytest.raises(ProviderError, match="has no probes"):
        Provider("empty").load()


def test_load_unload_state():
    p = Provider("state")
    a = p.probe("a", ("x", "int32"))
    with pytest.raises(ProviderError, match="state:a fired before its provider was loaded"):
        a.fire(1)
    assert not p.loaded and not a.enabled
    assert repr(a) == "<Probe state:a(x: int32)>"
    with pytest.raises(TypeError):
        type("Sub", (type(a),), {})  # not subclassable: fire's fast call needs the exact type
    p.load()
    try:
        assert p.loaded and not a.enabled
        assert a.fire(1) is None
        with pytest.raises(ProviderError, match="already loaded"):
            p.load()
        kept = a.fire
    finally:
        p.unload()
    assert not p.loaded and not a.enabled
    p.unload()  # idempotent
    with pytest.raises(ProviderError, match="state:a fired after its provider was unloaded"):
        a.fire(1)
    with pytest.raises(ProviderError, match="state:a fired after its provider was unloaded"):
        kept(1)  # a bound fire kept from before unload() never touches the unmapped object
    twin = Provider("state")  # a second provider of the same name, loaded beside it
    twin.probe("a", ("x", "int32"))
    p.load()
    try:
        with twin:
            assert twin.loaded and p.loaded
            assert a.fire(2) is None and twin.probes["a"].fire(2) is None
        assert not twin.loaded and p.loaded
        assert kept(1) is None and a.fire(3) is None  # the kept fire follows its probe's reload
    finally:
        p.unload()


def test_unload_after_adding_a_probe_while_loaded():
    """Probes added after load() appear at the next load(): the provider
    must still unload (and reload with the new probe)."""
    p = Provider("late")
    a = p.probe("a", ("x", "int32"))
    p.load()
    b = p.probe("b", ("y", "int32"))
    with pytest.raises(ProviderError, match="before its provider was loaded"):
        b.fire(1)
    p.unload()
    assert not p.loaded
    p.load()
    try:
        assert a.fire(1) is None and b.fire(2) is None
    finally:
        p.unload()


# -- 4: fork ------------------------------------------------------------------


def test_fork_child_and_parent(bpf, target):
    """After os.fork() the child's probes are its own: tracing the child's pid
    sees the child's fires, with its pid, and raises only its semaphore; the
    parent's probes still fire and are traced by their own tracer."""
    target.declare("forked", {"p": decl(["int32", "str"])})
    child = target.ok("fork")
    assert child != target.pid
    assert target.enabled("forked", "p", child=True) is False
    with Tracer() as tc:
        tc.attach_pid(child, "forked:p", strings=[1])
        tc.start()
        assert target.enabled("forked", "p", child=True) is True
        assert target.enabled("forked", "p") is False
        target.fire("forked", "p", [1, "parent, untraced"])
        assert target.fire("forked", "p", [2, "child \u2713"], child=True) == 1
        with Tracer() as tp:
            tp.attach_pid(target.pid, "forked:p", strings=[1])
            tp.start()
            assert target.enabled("forked", "p") is True
            target.fire("forked", "p", [3, "parent"])
            target.fire("forked", "p", [4, "child again"], child=True)
            in_parent = pyusdt_events(tp, 1)
        in_child = pyusdt_events(tc, 2)
        assert target.enabled("forked", "p") is False
    assert in_child == [("forked:p", child, [2, "child \u2713"]), ("forked:p", child, [4, "child again"])]
    assert in_parent == [("forked:p", target.pid, [3, "parent"])]
    assert target.enabled("forked", "p", child=True) is False
