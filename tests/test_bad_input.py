"""Bad input, case by case: every numeric option of every command at and past
its limit, odd files, odd names, targets that vanish, missing privileges,
through the CLI and through the API.

What every CLI case asserts:

- stderr is exactly one line, the one named in the case, starting "pyusdt: ";
- stdout is empty;
- the exit code is the one named: 2 for a usage error (what argparse finds:
  an unknown option, a value that is not a number, a missing operand; these
  are one "pyusdt: CMD: ... (see pyusdt CMD --help)" line too, not
  argparse's usage text), 1 for everything pyusdt finds (a number out of
  range, a file or process that cannot be traced, no permission);
- no traceback, and it ends within a timeout (a hang is a failure, not a
  stuck test run);
- nothing is left behind.  Cases run in this process (pyusdt.cli.main, a
  few milliseconds each) count the BPF links, programs and maps this process
  holds, and its child processes, before and after: a case that attached
  must have detached, a command it started must be gone.  Cases that need a
  process of their own (another user, dropped capabilities, inputs that
  used to hang with the GIL held) run the console script, which the
  timeout kills; the kernel then drops whatever it held.

What every API case asserts: the exact pyusdt exception class and message.
Numbers are checked before anything is opened or loaded, so most cases cost
no BPF session at all; those that reach attach say so in their name.
"""
from __future__ import annotations

import io
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple, Optional

import pytest

import pyusdt.trace.requests
from pyusdt import Tracer
from pyusdt.aggregate.specs import Aggregate, Arg, Latency, StrArg, Where
from pyusdt.cli.main import main
from pyusdt.errors import (
    AttachError,
    ConfigError,
    ConfigTypeError,
    ELFNotFoundError,
    NoSuchProcessError,
    NotELFError,
    SessionClosedError,
    TargetError,
)
from pyusdt.expr import ExpressionError

from conftest import PYUSDT, missing

U64 = 1 << 64
PID_LIMIT = 1 << 22  # the kernel's PID_MAX_LIMIT
MAP_LIMIT = 1 << 22  # _native.MAX_MAP_ENTRIES
RING_LIMIT = 1 << 31  # _native.MAX_RINGBUF_BYTES
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
NO_CAPS = ["setpriv", "--bounding-set=-bpf,-perfmon,-sys_admin,-checkpoint_restore"]
CASE_TIMEOUT = 20.0

# ---------------------------------------------------------------------------
# Running the CLI


class Run(NamedTuple):
    code: Optional[int]
    out: str
    err: str
    timed_out: bool = False
    left: str = ""  # what the case left behind (BPF objects, child processes)


class CaseTimeout(BaseException):
    """Raised by SIGALRM in a case run in this process (not an Exception:
    main() must not catch it)."""


def _bpf_fds() -> set:
    """This process's fds of BPF links, programs and maps."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            info = Path(f"/proc/self/fdinfo/{fd}").read_text()
        except OSError:
            continue
        if any(k in info for k in ("link_type:", "prog_type:", "map_type:")):
            found.add(int(fd))
    return found


def _children() -> set:
    kids = set()
    for task in os.listdir("/proc/self/task"):
        try:
            kids.update(Path(f"/proc/self/task/{task}/children").read_text().split())
        except OSError:
            pass
    return kids


def _stream() -> io.TextIOWrapper:
    # Output may hold file names that are not UTF-8 (written back as bytes).
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="surrogateescape", newline="",
                            write_through=True)


def _text(stream: io.TextIOWrapper) -> str:
    return stream.buffer.getvalue().decode("utf-8", errors="surrogateescape")


@contextmanager
def deadline(timeout: float = CASE_TIMEOUT):
    """CaseTimeout if the block runs longer than `timeout` seconds."""

    def alarm(signum, frame):
        raise CaseTimeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_main(argv: list, timeout: float = CASE_TIMEOUT) -> Run:
    """pyusdt.cli.main(argv) in this process, as the console script would
    end: an exception escaping main() is the traceback it would print."""
    bpf_before, kids_before = _bpf_fds(), _children()
    out, err = _stream(), _stream()
    saved = (sys.stdout, sys.stderr, signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT))
    code: Optional[int] = None
    tb = ""
    timed_out = False
    with warnings.catch_warnings(), deadline(timeout):  # main() sets how warnings print
        sys.stdout, sys.stderr = out, err
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except CaseTimeout:
            timed_out = True
        except BaseException:  # noqa: BLE001 - what the console script would print
            code = 1
            tb = traceback.format_exc()
        finally:
            sys.stdout, sys.stderr = saved[0], saved[1]
            signal.signal(signal.SIGTERM, saved[2])
            signal.signal(signal.SIGINT, saved[3])
    left = []
    if _bpf_fds() - bpf_before:
        left.append(f"BPF fds {sorted(_bpf_fds() - bpf_before)}")
    if _children() - kids_before:
        left.append(f"child processes {sorted(_children() - kids_before)}")
    return Run(code, _text(out), _text(err) + tb, timed_out, "; ".join(left))


def run_cli(argv: list, prefix: tuple = (), timeout: float = CASE_TIMEOUT, cwd: str = "/") -> Run:
    """The console script in a process of its own (killed at the timeout)."""
    cmd = [*prefix, PYUSDT, *[os.fsencode(str(a)) for a in argv]]
    try:
        res = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as e:
        return Run(None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace"),
                   True)
    dec = lambda b: b.decode("utf-8", errors="surrogateescape")  # noqa: E731
    return Run(res.returncode, dec(res.stdout), dec(res.stderr))


def assert_one_line(run: Run, line: str, code: int) -> None:
    assert not run.timed_out, f"did not end within {CASE_TIMEOUT} s; stderr so far: {run.err!r}"
    assert "Traceback" not in run.err, run.err
    assert run.err.splitlines() == [line], run.err
    assert run.code == code, (run.code, run.err)
    assert run.out == "", run.out
    assert run.left == "", run.left


def usage(cmd: str, message: str) -> tuple:
    return f"pyusdt: {cmd}: {message} (see pyusdt {cmd} --help)", 2


def err(message: str) -> tuple:
    return f"pyusdt: {message}", 1


# ---------------------------------------------------------------------------
# Files the cases use


@pytest.fixture(scope="module")
def files(build, tmp_path_factory) -> dict:
    """Programs and odd files, by the names the case tables use in {braces}."""
    d = tmp_path_factory.mktemp("odd")
    values = build("agg_values.c", "agg_values")
    elf = values.read_bytes()
    f = {"V": str(values), "L": str(build("agg_latency.c", "agg_latency", "-pthread")),
         "S": str(build("seq_events.c", "seq_events")), "dir": str(d)}

    def put(name: str, data: bytes, mode: int = 0o644) -> str:
        p = d / name
        p.write_bytes(data)
        p.chmod(mode)
        return str(p)

    def patched(offset: int, value: bytes) -> bytes:
        return elf[:offset] + value + elf[offset + len(value):]

    f["empty"] = put("empty", b"")
    f["trunc40"] = put("trunc40", elf[:40])
    f["trunc2000"] = put("trunc2000", elf[:2000])
    f["aarch64"] = put("aarch64", patched(18, (183).to_bytes(2, "little")), 0o755)  # e_machine EM_AARCH64
    f["elf32"] = put("elf32", patched(4, b"\x01"))  # EI_CLASS ELFCLASS32
    f["bigendian"] = put("bigendian", patched(5, b"\x02"))  # EI_DATA ELFDATA2MSB
    f["text"] = put("text.txt", b"hello\n")
    f["script"] = put("script.sh", b"#!/bin/sh\nexit 0\n", 0o755)
    f["noexec"] = put("noexec", elf, 0o644)
    malformed = build("notes_malformed.c", "notes_malformed").read_bytes()
    for name in (b"mangled\0", b"intact\0"):
        assert malformed.count(name) == 1, name
    f["malformed"] = put("malformed", malformed.replace(b"mangled\0", b"mang\xffed\0")
                         .replace(b"intact\0", b"int\xffct\0"), 0o755)
    f["true"] = os.path.realpath(shutil.which("true"))
    f["missing"] = str(d / "does-not-exist")
    f["missing_bytes"] = os.fsdecode(os.fsencode(str(d)) + b"/\xff\xfe")
    f["long_name"] = str(d / ("a" * 256))
    f["long_path"] = str(d) + "/a" * 2500
    f["newline"] = str(d / "a\nb")
    f["fifo"] = str(d / "fifo")
    os.mkfifo(f["fifo"])
    f["fifo_x"] = str(d / "fifo_x")
    os.mkfifo(f["fifo_x"])
    os.chmod(f["fifo_x"], 0o755)
    f["sock"] = str(d / "sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(f["sock"])
    s.close()
    # Scripts: one naming itself, two naming each other, a chain deeper than the kernel runs.
    f["self_sh"] = put("self.sh", f"#!{d}/self.sh\n".encode(), 0o755)
    f["loop_a"] = put("loop_a.sh", f"#!{d}/loop_b.sh\n".encode(), 0o755)
    f["loop_b"] = put("loop_b.sh", f"#!{d}/loop_a.sh\n".encode(), 0o755)
    for i in range(6):
        put(f"chain{i}.sh", (f"#!{d}/chain{i + 1}.sh\n" if i < 5 else "#!/bin/sh\n").encode(), 0o755)
    f["chain"] = str(d / "chain0.sh")
    f["bad_interp"] = put("bad_interp.sh", b"#!" + os.fsencode(str(d)) + b"/\xff/python3\n", 0o755)
    f["bad_interp_target"] = os.fsdecode(os.fsencode(str(d)) + b"/\xff/python3")
    f["dir_interp"] = put("dir_interp.sh", f"#!{d}\n".encode(), 0o755)
    f["empty_shebang"] = put("empty_shebang.sh", b"#!\n", 0o755)
    return f


def fill(items, files: dict) -> list:
    return [str(a).format_map(files) for a in items]


# ---------------------------------------------------------------------------
# Numbers: every numeric option of every command, at and past its limits

AGG_BASE = {
    "count": ("{V}", "agg:value"),
    **{k: ("{V}", "agg:value", "-v", "1") for k in ("sum", "min", "max", "avg", "stats", "hist")},
    "lhist": ("{V}", "agg:value", "-v", "1", "--min", "0", "--max", "100", "--step", "10"),
    "latency": ("{L}", "--start", "lat:start", "--done", "lat:done"),
}
VALUE_KINDS = ("sum", "min", "max", "avg", "stats", "hist", "lhist")


def _seconds(option: str, long: str, cmd: str) -> list:
    return [
        ((option, "0"), err(f"{long} must be positive and finite (got 0.0)")),
        ((option, "-1"), err(f"{long} must be positive and finite (got -1.0)")),
        ((option, "nan"), err(f"{long} must be positive and finite (got nan)")),
        ((f"{long}=-inf",), err(f"{long} must be positive and finite (got -inf)")),  # argparse: "-inf" is no number
        ((option, "inf"), err(f"{long} must be at most 9.22337e+09 seconds (got inf)")),
        ((option, "1e400"), err(f"{long} must be at most 9.22337e+09 seconds (got inf)")),
        ((option, "x"), usage(cmd, f"argument {option}/{long}: invalid float value: 'x'")),
    ]


def _pid_target(cmd: str) -> list:
    return [
        (("-p", "0"), err("no such process: 0")),
        (("-p", "-1"), err("no such process: -1")),
        (("-p", str(PID_LIMIT + 1)), err(f"no such process: {PID_LIMIT + 1}")),
        (("-p", str(U64)), err(f"no such process: {U64}")),
        (("-p", "1x"), usage(cmd, "argument -p/--pid: invalid int value: '1x'")),
    ]


def _agg_cases(cmd: str) -> list:
    c = [
        (("--filter-pid", "0"), err("--filter-pid must be at least 1 (got 0)")),
        (("--filter-pid", "-1"), err("--filter-pid must be at least 1 (got -1)")),
        (("--filter-pid", str(PID_LIMIT + 1)), err(f"--filter-pid must be at most {PID_LIMIT} (got {PID_LIMIT + 1})")),
        (("--filter-pid", str(U64)), err(f"--filter-pid must be at most {PID_LIMIT} (got {U64})")),
        (("--filter-pid", "1.5"), usage(cmd, "argument --filter-pid: invalid int value: '1.5'")),
        (("--max-keys", "0"), err("--max-keys must be at least 1 (got 0)")),
        (("--max-keys", "-1"), err("--max-keys must be at least 1 (got -1)")),
        (("--max-keys", str(MAP_LIMIT + 1)), err(f"--max-keys must be at most {MAP_LIMIT} (got {MAP_LIMIT + 1})")),
        (("--max-keys", str(1 << 32)), err(f"--max-keys must be at most {MAP_LIMIT} (got {1 << 32})")),
        (("--max-keys", "many"), usage(cmd, "argument --max-keys: invalid int value: 'many'")),
        (("--where", "arg12 > 1"), err("filter argument 12 out of range: arguments are numbered 0 to 11")),
        (("--where", f"arg1 > {U64}"), err(f"comparison value {U64} does not fit in 64 bits")),
        (("--where", f"arg1 > -{(1 << 63) + 1}"), err(f"comparison value -{(1 << 63) + 1} does not fit in 64 bits")),
        (("--where", "arg1 > 0x10000000000000000"), err(f"comparison value {U64} does not fit in 64 bits")),
        (("--by", "arg12"), err("key argument 12 out of range: arguments are numbered 0 to 11")),
        (("--by", f"str{U64}"), err(f"key argument {U64} out of range: arguments are numbered 0 to 11")),
        *_seconds("-i", "--interval", cmd),
        *_seconds("-d", "--duration", cmd),
        *_pid_target(cmd),
    ]
    if cmd in VALUE_KINDS:
        c += [
            (("-v", "-1"), err("value argument -1 out of range: arguments are numbered 0 to 11")),
            (("-v", "12"), err("value argument 12 out of range: arguments are numbered 0 to 11")),
            (("-v", str(U64)), err(f"value argument {U64} out of range: arguments are numbered 0 to 11")),
            (("-v", "arg1 +"), err("expected an expression at column 7 of 'arg1 +'")),
            (("-v", "str(arg1)"), err("the aggregated value must be a number, not a string at column 1 of "
                                      "'str(arg1)'")),
        ]
    if cmd != "latency":
        c += [
            (("--divisor", "0"), err("--divisor must be at least 1 (got 0)")),
            (("--divisor", "-1"), err("--divisor must be at least 1 (got -1)")),
            (("--divisor", str(U64)), err(f"--divisor must be at most {U64 - 1} (got {U64})")),
            (("--divisor", "1k"), usage(cmd, "argument --divisor: invalid int value: '1k'")),
        ]
    return c


LHIST = [
    (("--step", "0"), err("lhist step must be positive (got 0)")),
    (("--step", "-1"), err("lhist step must be positive (got -1)")),
    (("--min", "100"), err("lhist min must be below max (got min 100, max 100)")),
    (("--min", "200"), err("lhist min must be below max (got min 200, max 100)")),
    (("--step", "101"), err("lhist step 101 is larger than max - min (100)")),
    (("--step", str(U64)), err(f"lhist step {U64} is larger than max - min (100)")),
    (("--max", str(10 ** 12), "--step", "1"),
     err("lhist has 1000000000000 buckets ((max - min) / step); at most 100000 are allowed: use a larger step")),
    (("--max", "100001", "--step", "1"),
     err("lhist has 100001 buckets ((max - min) / step); at most 100000 are allowed: use a larger step")),
    (("--min", str(-(1 << 63) - 1)), err(f"lhist min must be at least {-(1 << 63)} (got {-(1 << 63) - 1})")),
    (("--max", str(1 << 63)), err(f"lhist max must be at most {(1 << 63) - 1} (got {1 << 63})")),
    (("--min", "zero"), usage("lhist", "argument --min: invalid int value: 'zero'")),
]

LATENCY = [
    (("--max-pending", "0"), err("--max-pending must be at least 1 (got 0)")),
    (("--max-pending", "-1"), err("--max-pending must be at least 1 (got -1)")),
    (("--max-pending", str(MAP_LIMIT + 1)), err(f"--max-pending must be at most {MAP_LIMIT} (got {MAP_LIMIT + 1})")),
    (("--max-pending", str(U64)), err(f"--max-pending must be at most {MAP_LIMIT} (got {U64})")),
    (("--max-pending", "lots"), usage("latency", "argument --max-pending: invalid int value: 'lots'")),
    (("--pair-by", "-1"), err("pairing argument -1 out of range: arguments are numbered 0 to 11")),
    (("--pair-by", "12"), err("pairing argument 12 out of range: arguments are numbered 0 to 11")),
    (("--pair-by", f"0,{U64}"), err(f"pairing argument {U64} out of range: arguments are numbered 0 to 11")),
    (("--pair-by", "1,2,3"), err("--pair-by must be N or S,D (got '1,2,3')")),
    (("--pair-by", "x"), err("--pair-by must be N or S,D (got 'x')")),
    (("--lhist", f"0,{10 ** 12},1"),
     err("lhist has 1000000000000 buckets ((max - min) / step); at most 100000 are allowed: use a larger step")),
    (("--lhist", "0,0,1"), err("lhist min must be below max (got min 0, max 0)")),
    (("--lhist", "0,10,0"), err("lhist step must be positive (got 0)")),
    (("--lhist", f"0,{1 << 63},1"), err(f"lhist max must be at most {(1 << 63) - 1} (got {1 << 63})")),
    (("--lhist", "a,b,c"), err("--lhist must be MIN,MAX,STEP (got 'a,b,c')")),
    (("--lhist", "1,2"), err("--lhist must be MIN,MAX,STEP (got '1,2')")),
]

TRACE = [
    (("--str-len", "0"), err("--str-len must be at least 1 (got 0)")),
    (("--str-len", "-1"), err("--str-len must be at least 1 (got -1)")),
    (("--str-len", "2049"), err("--str-len must be at most 2048 (got 2049)")),
    (("--str-len", str(U64)), err(f"--str-len must be at most 2048 (got {U64})")),
    (("--str-len", "64b"), usage("trace", "argument --str-len: invalid int value: '64b'")),
    (("--ringbuf-size", "0"), err("--ringbuf-size must be at least 4096 (got 0)")),
    (("--ringbuf-size", "4095"), err("--ringbuf-size must be at least 4096 (got 4095)")),
    (("--ringbuf-size", "-4096"), err("--ringbuf-size must be at least 4096 (got -4096)")),
    (("--ringbuf-size", str(RING_LIMIT + 1)),
     err(f"--ringbuf-size must be at most {RING_LIMIT} (got {RING_LIMIT + 1})")),
    (("--ringbuf-size", str(U64)), err(f"--ringbuf-size must be at most {RING_LIMIT} (got {U64})")),
    (("--ringbuf-size", "16M"), usage("trace", "argument --ringbuf-size: invalid int value: '16M'")),
    (("-s", "-1"), err("string argument -1 out of range: arguments are numbered 0 to 11")),
    (("-s", "12"), err("string argument 12 out of range: arguments are numbered 0 to 11")),
    (("-s", str(U64)), err(f"string argument {U64} out of range: arguments are numbered 0 to 11")),
    (("-s", "0", "-s", "99"), err("string argument 99 out of range: arguments are numbered 0 to 11")),
    (("-s", "arg0"), usage("trace", "argument -s/--string: invalid int value: 'arg0'")),
    *_seconds("-d", "--duration", "trace"),
    *_pid_target("trace"),
    (("-o", "{dir}/t.csv", "--format", "jsonl"),
     usage("trace", "--format is for stdout: with --output the file's extension gives the format")),
    (("-o", "{dir}/t.csv", "-T"), usage("trace", "--wall-time is for stdout: a file has a time column")),
]

NUMBER_CASES = (
    [(("list", "{V}", *a), e) for a, e in _pid_target("list")]
    + [(("trace", "{V}", "agg:value", *a), e) for a, e in TRACE]
    + [((cmd, *AGG_BASE[cmd], *a), e) for cmd in AGG_BASE for a, e in _agg_cases(cmd)]
    + [(("lhist", *AGG_BASE["lhist"], *a), e) for a, e in LHIST]
    + [(("latency", *AGG_BASE["latency"], *a), e) for a, e in LATENCY]
)


def _drop_path_for_pid(argv: tuple) -> tuple:
    """-p takes the place of PATH: the argv without the program path."""
    if "-p" in argv:
        return tuple(a for a in argv if a not in ("{V}", "{L}"))
    return argv


@pytest.mark.parametrize("argv,expected", [(_drop_path_for_pid(a), e) for a, e in NUMBER_CASES],
                         ids=[" ".join(_drop_path_for_pid(a)) for a, _ in NUMBER_CASES])
def test_number(files, argv, expected):
    assert_one_line(run_main(fill(argv, files)), *expected)


# ---------------------------------------------------------------------------
# Odd files and odd names, for every command that takes a PATH

ODD_FILES = [
    ("/dev/null", "/dev/null: is a character device, not an ELF file"),
    ("/dev/zero", "/dev/zero: is a character device, not an ELF file"),
    ("{dir}", "{dir}: is a directory, not an ELF file"),
    ("{sock}", "{sock}: is a socket, not an ELF file"),
    ("{fifo}", "{fifo}: is a FIFO, not an ELF file"),
    ("{empty}", "{empty}: not an ELF file"),
    ("{trunc40}", "{trunc40}: not an ELF file"),
    ("{trunc2000}", "{trunc2000}: truncated ELF headers"),
    ("{aarch64}", "{aarch64}: not an x86-64 ELF file"),
    ("{elf32}", "{elf32}: not a 64-bit little-endian ELF file"),
    ("{bigendian}", "{bigendian}: not a 64-bit little-endian ELF file"),
    ("{text}", "{text}: not an ELF file"),
    ("{script}", "{script}: not an ELF file"),
    ("{malformed}", "{malformed}: no USDT probes: its 2 USDT note(s) are malformed (truncated, or names that "
                    "are not UTF-8)"),
    ("{true}", "{true}: no USDT probes"),
    ("{missing}", "no such file: {missing}"),
    ("{missing_bytes}", "no such file: {missing_bytes}"),
    ("{long_name}", "{long_name}: File name too long"),
    ("{long_path}", "{long_path}: File name too long"),
    ("{newline}", "no such file: {dir}/a\\nb"),
    ("relative/missing", "no such file: relative/missing"),
]
PATH_COMMANDS = {
    "list": (),
    "trace": (),
    "count": (),
    "hist": ("-v", "0"),
    "latency": ("--start", "lat:start", "--done", "lat:done"),
}


@pytest.mark.parametrize("cmd", PATH_COMMANDS)
@pytest.mark.parametrize("path,message", ODD_FILES, ids=[p.strip("{}") for p, _ in ODD_FILES])
def test_odd_file(files, cmd, path, message):
    assert_one_line(run_main(fill((cmd, path, *PATH_COMMANDS[cmd]), files)), *err(message.format_map(files)))


def test_empty_path(files):
    assert_one_line(run_main(["list", ""]), *err("no such file: "))


PATTERNS = [
    "nosuch", "[", "*:*:*", ":", "agg:", "[!a-z]*", "agg:value\\", "a\udcffb", "x" * 5000, "agg:val?e?",
]


@pytest.mark.parametrize("cmd", ["list", "trace", "count"])
@pytest.mark.parametrize("pattern", PATTERNS, ids=[p[:12].encode("utf-8", "backslashreplace").decode()
                                                   for p in PATTERNS])
def test_pattern_matches_nothing(files, cmd, pattern):
    assert_one_line(run_main([cmd, files["V"], pattern]),
                    *err(f"{files['V']}: no probe matches '{pattern}'"))


def test_pattern_with_newline(files):
    assert_one_line(run_main(["list", files["V"], "a\nb"]), *err(f"{files['V']}: no probe matches 'a\\nb'"))


@pytest.mark.parametrize("which", ["--start", "--done"])
def test_latency_pattern_matches_nothing(files, which):
    argv = ["latency", files["L"], "--start", "lat:start", "--done", "lat:done", which, "lat:["]
    assert_one_line(run_main(argv), *err(f"{files['L']}: no probe matches 'lat:['"))


# ---------------------------------------------------------------------------
# Commands: missing, not runnable, scripts that loop, quotes left open

COMMANDS = [
    ("{missing}", "command not found: {missing}"),
    ("no-such-command-pyusdt", "command not found: no-such-command-pyusdt"),
    ("{missing_bytes}", "command not found: {missing_bytes}"),
    ("{dir}", "not executable: {dir}"),
    ("{noexec}", "not executable: {noexec}"),
    ("{fifo_x}", "not executable: {fifo_x}: not a regular file"),
    ("/dev/null", "not executable: /dev/null"),
    ("{self_sh}", "{self_sh}: its #! line leads back to itself"),
    ("{loop_a}", "{loop_a}: its #! line leads back to itself"),
    ("{chain}", "{dir}/chain4.sh: #! interpreters nested more than 4 deep"),
    ("{bad_interp}", "command not found: {bad_interp_target}"),
    ("{dir_interp}", "not executable: {dir}"),
    ("{empty_shebang}", "{empty_shebang}: not an ELF file"),
    ("{aarch64}", "{aarch64}: not an x86-64 ELF file"),
    ("foo 'bar", "-c: No closing quotation: foo 'bar"),
    ('foo "bar', "-c: No closing quotation: foo \"bar"),
    ("foo\\", "-c: No escaped character: foo\\"),
]


@pytest.mark.parametrize("cmd", ["trace", "count", "latency"])
@pytest.mark.parametrize("command,message", COMMANDS, ids=[c[:20] for c, _ in COMMANDS])
def test_command(files, cmd, command, message):
    pattern = "nope:nope" if "-r 1" in command else "*"
    extra = ["--start", pattern, "--done", pattern] if cmd == "latency" else [pattern]
    assert_one_line(run_main([cmd, "-c", command.format_map(files), *extra]), *err(message.format_map(files)))


NOTHING_YET = [("true", "command true: no USDT probes"), ("{V} -r 1", "command {V}: no probe matches 'nope:nope'")]


@pytest.mark.parametrize("cmd", ["trace", "count", "latency"])
@pytest.mark.parametrize("command,message", NOTHING_YET, ids=["true", "V"])
def test_command_matching_nothing(files, cmd, command, message):
    """trace and count wait for objects the command loads later (dlopen),
    say so, and fail at the end when none matched; latency pairs probes
    known at the start, so it fails at once."""
    pattern = "nope:nope" if "-r 1" in command else "*"
    extra = ["--start", pattern, "--done", pattern] if cmd == "latency" else [pattern]
    run = run_main([cmd, "-c", command.format_map(files), *extra])
    message = message.format_map(files)
    if cmd == "latency":
        assert_one_line(run, *err(message))
        return
    assert not run.timed_out and "Traceback" not in run.err
    lines = run.err.splitlines()
    assert lines[0] == f"pyusdt: {message} yet; waiting for the objects it loads"
    assert lines[-1] == f"pyusdt: {message}: none appeared during the trace"
    assert run.code == 1


@pytest.mark.parametrize("argv,expected", [
    (("trace", "-c", ""), usage("trace", "-c needs a command")),
    (("trace", "-c", "   "), usage("trace", "-c needs a command")),
    (("count", "-c", ""), usage("count", "-c needs a command")),
    (("trace", "-p", "1", "-c", "true"), usage("trace", "give one target: -p and -c together")),
    (("count", "-p", "1", "x:y", "z"), usage("count", "with -p or -c, give only a PATTERN")),
    (("trace",), usage("trace", "give a PATH, or -p PID or -c CMD, or --cgroup, --container or --object")),
    (("list",), usage("list", "give a PATH, or -p PID, or --cgroup, --container or --object")),
    (("list", "a", "b", "c"), usage("list", "give PATH and at most one PATTERN")),
    (("latency", "{L}", "x", "--start", "a", "--done", "b"), usage("latency", "latency takes --start and --done, "
                                                                            "not a PATTERN")),
    (("trace", "--bogus"), usage("trace", "unrecognized arguments: --bogus")),
    (("hist", "{V}"), usage("hist", "the following arguments are required: -v/--value")),
    (("lhist", "{V}", "-v", "1", "--min", "0", "--max", "9"), usage("lhist", "the following arguments are "
                                                                            "required: --step")),
])
def test_usage(files, argv, expected):
    assert_one_line(run_main(fill(argv, files)), *expected)


# ---------------------------------------------------------------------------
# Targets that vanish


def _zombie() -> int:
    """A child that has exited and is not reaped yet: its pid exists, its process does not run."""
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    for _ in range(500):
        if Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
            return pid
        time.sleep(0.01)
    raise AssertionError("the child did not exit")


@pytest.mark.parametrize("cmd", ["list", "trace", "count", "latency"])
def test_pid_of_exited_process(files, cmd):
    pid = _zombie()
    try:
        extra = ["--start", "a", "--done", "b"] if cmd == "latency" else []
        assert_one_line(run_main([cmd, "-p", str(pid), *extra]), *err(f"no such process: {pid}"))
    finally:
        os.waitpid(pid, 0)


def _held_target(files):
    child = subprocess.Popen([files["S"], "1", "hold"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == str(child.pid)
    return child


@pytest.mark.parametrize("cmd", ["list", "trace", "count"])
def test_pid_exits_while_its_objects_are_read(files, monkeypatch, cmd):
    """The target exits after its maps were found and before its files were
    read (killed, not yet reaped): it is named as gone, not as "no probes"."""
    child = _held_target(files)
    real = pyusdt.trace.requests.probes_in_process

    def reading(pid):
        child.kill()
        while Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
            time.sleep(0.005)
        return real(pid)

    monkeypatch.setattr(pyusdt.trace.requests, "probes_in_process", reading)
    try:
        assert_one_line(run_main([cmd, "-p", str(child.pid)]),
                        *err(f"process {child.pid} exited before its probes were read"))
    finally:
        child.wait()


@pytest.mark.parametrize("cmd", ["trace", "count", "latency"])
def test_pid_exits_between_discovery_and_attach(bpf, files, monkeypatch, cmd):
    """Reaches attach: the process is gone (and reaped) when start() links
    its probes; one line, nothing attached is left."""
    child = _held_target(files)
    real = Tracer.start

    def start(self):
        child.kill()
        child.wait()
        return real(self)

    monkeypatch.setattr(Tracer, "start", start)
    extra = ["--start", "seq:event", "--done", "seq:event"] if cmd == "latency" else ["seq:event"]
    assert_one_line(run_main([cmd, "-p", str(child.pid), *extra]),
                    *err(f"process {child.pid} exited before its probes were attached"))


# ---------------------------------------------------------------------------
# Inputs that used to hang, in processes of their own (a hang holding the
# GIL cannot be interrupted from inside)

HANGS = [
    (("list", "{fifo}"), err("{fifo}: is a FIFO, not an ELF file")),
    (("trace", "{fifo}"), err("{fifo}: is a FIFO, not an ELF file")),
    (("trace", "-c", "{fifo_x}"), err("not executable: {fifo_x}: not a regular file")),
    (("trace", "{V}", "--ringbuf-size", str((1 << 63) + 1)),
     err(f"--ringbuf-size must be at most {RING_LIMIT} (got {(1 << 63) + 1})")),
    (("trace", "{V}", "-d", "nan"), err("--duration must be positive and finite (got nan)")),
    (("count", "{V}", "-d", "inf"), err("--duration must be at most 9.22337e+09 seconds (got inf)")),
    (("count", "{V}", "-i", "nan", "-d", "1"), err("--interval must be positive and finite (got nan)")),
]


@pytest.mark.parametrize("argv,expected", HANGS, ids=[" ".join(a) for a, _ in HANGS])
def test_used_to_hang(files, argv, expected):
    line, code = expected
    assert_one_line(run_cli(fill(argv, files), timeout=15), line.format_map(files), code)


# ---------------------------------------------------------------------------
# Privileges: another user, and root without the capabilities


@pytest.fixture(scope="module")
def public(files):
    """Copies user nobody can reach (pytest's temporary directories are 0700)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        missing("running as another user needs root and setpriv")
    d = tempfile.mkdtemp(prefix="pyusdt-bad-")
    os.chmod(d, 0o755)
    out = {"pub": d}
    for name in ("V", "L", "S"):
        out[name] = shutil.copy(files[name], d)
        os.chmod(out[name], 0o755)
    out["secret"] = shutil.copy(files["V"], os.path.join(d, "secret"))
    os.chmod(out["secret"], 0o600)
    yield out
    shutil.rmtree(d)


LOAD_DENIED = "permission denied loading BPF: this process lacks CAP_BPF and CAP_PERFMON (run as root, or grant them)"
MAPS_OF_1_DENIED = ("cannot read /proc/1/maps: permission denied: process 1 has capabilities this one lacks, or "
                    "another user: that needs CAP_SYS_PTRACE")
NOBODY_CASES = [
    (("list", "{secret}"), "{secret}: Permission denied"),
    (("trace", "{secret}"), "{secret}: Permission denied"),
    (("trace", "{V}", "agg:value"), LOAD_DENIED),
    (("count", "{V}"), LOAD_DENIED),
    (("hist", "{V}", "agg:value", "-v", "1"), LOAD_DENIED),
    (("latency", "{L}", "--start", "lat:start", "--done", "lat:done"), LOAD_DENIED),
    (("trace", "-c", "{S} 1"), LOAD_DENIED),
    (("list", "-p", "1"), MAPS_OF_1_DENIED),
    (("trace", "-p", "1"), MAPS_OF_1_DENIED),
]


@pytest.mark.parametrize("argv,message", NOBODY_CASES, ids=[" ".join(a) for a, _ in NOBODY_CASES])
def test_as_nobody(public, argv, message):
    assert_one_line(run_cli(fill(argv, public), prefix=tuple(NOBODY)), *err(message.format_map(public)))


def _map_files_denied(pid: int) -> str:
    return (f"cannot read the files process {pid} maps (/proc/{pid}/map_files): permission denied: this "
            "process lacks CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN)")


@pytest.mark.parametrize("cmd", ["list", "trace", "count"])
def test_own_process_as_nobody(public, cmd):
    """nobody may read its own process's maps, but not the files behind them."""
    child = subprocess.Popen([*NOBODY, public["S"], "1", "hold"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == str(child.pid)
        assert_one_line(run_cli([cmd, "-p", child.pid], prefix=tuple(NOBODY)), *err(_map_files_denied(child.pid)))
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("argv,message", [
    (("count", "{V}"), LOAD_DENIED),
    (("trace", "{V}"), LOAD_DENIED),
    (("list", "-p", "{pid}"), "map_files"),
], ids=["count", "trace", "list -p"])
def test_root_without_capabilities(public, argv, message):
    child = subprocess.Popen([public["S"], "1", "hold"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == str(child.pid)
        if message == "map_files":
            message = _map_files_denied(child.pid)
        res = run_cli(fill(argv, {**public, "pid": child.pid}), prefix=tuple(NO_CAPS))
        assert_one_line(res, *err(message))
    finally:
        child.kill()
        child.wait()


# ---------------------------------------------------------------------------
# At the limits: accepted, and nothing left after


def test_limits_are_accepted(bpf, files):
    """The largest (or smallest) value of each limit reaches the kernel and works."""
    v = files["V"]
    runs = [
        ["trace", v, "agg:value", "--str-len", "2048", "--ringbuf-size", "4096", "-s", "2", "-d", "0.05"],
        ["count", v, "agg:value", "--max-keys", str(MAP_LIMIT), "--filter-pid", str(PID_LIMIT),
         "--divisor", str(U64 - 1), "--where", f"arg1 <= {U64 - 1}", "-d", "0.05"],
        ["lhist", v, "agg:value", "-v", "1", "--min", str(-(1 << 63)), "--max", str(-(1 << 63) + 100000),
         "--step", "1", "--where", f"arg1 >= {-(1 << 63)}", "-d", "0.05"],
    ]
    for argv in runs:
        res = run_main(argv)
        assert res.code == 0 and not res.timed_out, (argv, res.err)
        assert "Traceback" not in res.err and res.left == "", (argv, res.err, res.left)
        verb = "tracing" if argv[0] == "trace" else "aggregating"
        assert res.err.splitlines()[0].startswith(f"pyusdt: {verb} "), res.err
    # An index at the limit passes pyusdt's check; the probe's own count speaks then.
    assert_one_line(run_main(["hist", v, "agg:value", "-v", "11"]),
                    *err("value argument 11 out of range: agg:value has 5 argument(s)"))
    assert_one_line(run_main(["trace", v, "agg:value", "-s", "11"]),
                    *err("argument 11 out of range: the matched probes have at most 5 argument(s)"))


def test_repeated_string_index_reads_the_string_once(bpf, files):
    """-s 2 -s 2 is -s 2 (a repeated index used to leave its string empty)."""
    outs = []
    for strings in (["-s", "2"], ["-s", "2", "-s", "2"]):
        res = run_cli(["trace", "-c", f"{files['V']} -r 1", "agg:value", *strings])
        assert res.code == 0, res.err
        outs.append([line.split(" ", 3)[3] for line in res.out.splitlines()])
    assert outs[0] == outs[1]
    assert outs[0][0] == 'agg:value arg0=0 arg1=-1000000 arg2="alpha" arg3=4293967296 arg4=-1'


# ---------------------------------------------------------------------------
# File names that are not UTF-8: listed and traced


@pytest.fixture(scope="module")
def odd_named(files):
    """agg_values at a path whose name holds bytes that are not UTF-8."""
    d = os.fsencode(files["dir"])
    path = d + b"/values-\xff\xfe"
    shutil.copy(files["V"], path)
    os.chmod(path, 0o755)
    return os.fsdecode(path)


def test_list_a_name_that_is_not_utf8(files, odd_named):
    res = run_cli(["list", odd_named])
    assert res.code == 0 and res.err == "", res.err
    mine = run_main(["list", files["V"]])
    assert res.out == mine.out.replace(files["V"], odd_named)
    assert os.fsencode(odd_named) in os.fsencode(res.out)  # the same bytes, not escapes
    # The JSON listing escapes what is not UTF-8 (JSON text must be Unicode).
    res = run_main(["list", "--json", odd_named])
    assert res.code == 0 and res.err == "" and len(res.out.splitlines()) == 2, res.err


def test_trace_a_command_whose_name_is_not_utf8(bpf, odd_named):
    res = run_cli(["count", "-c", f"{odd_named} -r 1", "agg:other"])
    assert res.code == 0, res.err
    assert res.out == "@[agg:other]: 5\n"
    res = run_cli(["trace", "-c", f"{odd_named} -r 1", "agg:other"])
    assert res.code == 0, res.err
    assert [line.split(" ", 3)[3] for line in res.out.splitlines()] == [f"agg:other arg0={k}" for k in range(5)]
    assert re.search(rf"^  agg:other +5 events  {re.escape(odd_named)}$", res.err, re.M), res.err


@pytest.mark.parametrize("kind", ["str", "bytes", "Path"])
def test_api_traces_a_path_that_is_not_utf8(bpf, odd_named, kind):
    path = {"str": odd_named, "bytes": os.fsencode(odd_named), "Path": Path(odd_named)}[kind]
    with Tracer() as t:
        probes = t.attach_path(path, "agg:other")
        assert [p.path for p in probes] == [odd_named]
        t.start()
        child = subprocess.run([os.fsencode(odd_named), "-r", "1"], timeout=10)
        assert child.returncode == 0
        events = [e for b in t.batches(timeout=0.05, duration=0.3) for e in b]
    assert [e.args for e in events] == [(k,) for k in range(5)]


def test_script_whose_interpreter_name_is_not_utf8(bpf, files):
    """#!/.../\\xff/python3 runs python3.11: its probes are found and traced."""
    python = "/usr/bin/python3.11"  # Debian's, built with USDT probes (not a pyenv shim)
    if not os.path.exists(python):
        missing("Debian's python3.11 (the USDT-enabled interpreter) is not installed")
    d = os.fsencode(files["dir"]) + b"/py-\xff"
    os.makedirs(d, exist_ok=True)
    link = d + b"/python3"
    if not os.path.lexists(link):
        os.symlink(python, link)
    script = d + b"/gc.py"
    # -x: Python itself skips the #! line, which it would refuse as not UTF-8.
    Path(os.fsdecode(script)).write_bytes(b"#!" + link + b" -x\nimport gc\ngc.collect(1)\ngc.collect(1)\n")
    os.chmod(script, 0o755)
    # Python's start-up and exit collect generations 0 and 2 on their own; 1 only when asked.
    res = run_cli(["count", "-c", os.fsdecode(script), "python:gc__start", "--where", "arg0 == 1"])
    assert res.code == 0, res.err
    assert res.out == "@[python:gc__start]: 2\n"


# ---------------------------------------------------------------------------
# The API: every number checked where it enters, the exact exception


def _mutated(obj, **changes):
    for k, v in changes.items():
        setattr(obj, k, v)
    return obj


API = [
    # Tracer(...)
    ("str_len=0", lambda f: Tracer(str_len=0), ConfigError, "str_len must be at least 1 (got 0)"),
    ("str_len=-1", lambda f: Tracer(str_len=-1), ConfigError, "str_len must be at least 1 (got -1)"),
    ("str_len=2049", lambda f: Tracer(str_len=2049), ConfigError, "str_len must be at most 2048 (got 2049)"),
    ("str_len=2**64", lambda f: Tracer(str_len=U64), ConfigError, f"str_len must be at most 2048 (got {U64})"),
    ("str_len=1.5", lambda f: Tracer(str_len=1.5), ConfigTypeError, "str_len must be an integer (got 1.5)"),
    ("str_len='64'", lambda f: Tracer(str_len="64"), ConfigTypeError, "str_len must be an integer (got '64')"),
    ("str_len=None", lambda f: Tracer(str_len=None), ConfigTypeError, "str_len must be an integer (got None)"),
    ("ringbuf=0", lambda f: Tracer(ringbuf_bytes=0), ConfigError, "ringbuf_bytes must be at least 4096 (got 0)"),
    ("ringbuf=4095", lambda f: Tracer(ringbuf_bytes=4095), ConfigError,
     "ringbuf_bytes must be at least 4096 (got 4095)"),
    ("ringbuf=-1", lambda f: Tracer(ringbuf_bytes=-1), ConfigError, "ringbuf_bytes must be at least 4096 (got -1)"),
    ("ringbuf=2**31+1", lambda f: Tracer(ringbuf_bytes=RING_LIMIT + 1), ConfigError,
     f"ringbuf_bytes must be at most {RING_LIMIT} (got {RING_LIMIT + 1})"),
    ("ringbuf=2**70", lambda f: Tracer(ringbuf_bytes=1 << 70), ConfigError,
     f"ringbuf_bytes must be at most {RING_LIMIT} (got {1 << 70})"),
    ("ringbuf=4096.0", lambda f: Tracer(ringbuf_bytes=4096.0), ConfigTypeError,
     "ringbuf_bytes must be an integer (got 4096.0)"),
    ("max_sites=0", lambda f: Tracer(max_sites=0), ConfigError, "max_sites must be at least 1 (got 0)"),
    ("max_sites=-1", lambda f: Tracer(max_sites=-1), ConfigError, "max_sites must be at least 1 (got -1)"),
    ("max_sites=16385", lambda f: Tracer(max_sites=16385), ConfigError, "max_sites must be at most 16384 (got 16385)"),
    ("max_sites=2**40", lambda f: Tracer(max_sites=1 << 40), ConfigError,
     f"max_sites must be at most 16384 (got {1 << 40})"),
    ("max_sites='1'", lambda f: Tracer(max_sites="1"), ConfigTypeError, "max_sites must be an integer (got '1')"),
    ("max_agg_keys=0", lambda f: Tracer(max_agg_keys=0), ConfigError, "max_agg_keys must be at least 1 (got 0)"),
    ("max_agg_keys=2**22+1", lambda f: Tracer(max_agg_keys=MAP_LIMIT + 1), ConfigError,
     f"max_agg_keys must be at most {MAP_LIMIT} (got {MAP_LIMIT + 1})"),
    ("max_agg_keys=2**40", lambda f: Tracer(max_agg_keys=1 << 40), ConfigError,
     f"max_agg_keys must be at most {MAP_LIMIT} (got {1 << 40})"),
    ("wakeup_bytes=-1", lambda f: Tracer(wakeup_bytes=-1), ConfigError, "wakeup_bytes must be at least 0 (got -1)"),
    ("wakeup_bytes=2**40", lambda f: Tracer(wakeup_bytes=1 << 40), ConfigError,
     f"wakeup_bytes must be at most {RING_LIMIT} (got {1 << 40})"),
    ("wakeup_interval=nan", lambda f: Tracer(wakeup_interval=math.nan), ConfigError,
     "wakeup_interval must be zero or positive and finite (got nan)"),
    ("wakeup_interval=-1", lambda f: Tracer(wakeup_interval=-1), ConfigError,
     "wakeup_interval must be zero or positive and finite (got -1)"),
    ("wakeup_interval=inf", lambda f: Tracer(wakeup_interval=math.inf), ConfigError,
     "wakeup_interval must be at most 9.22337e+09 seconds (got inf)"),
    ("wakeup_interval='1'", lambda f: Tracer(wakeup_interval="1"), ConfigTypeError,
     "wakeup_interval must be a number of seconds (got '1')"),
    # poll and batches, before start()
    ("poll(nan)", lambda f: Tracer().poll(timeout=math.nan), ConfigError,
     "timeout must be zero or positive and finite (got nan)"),
    ("poll(-1)", lambda f: Tracer().poll(timeout=-1), ConfigError,
     "timeout must be zero or positive and finite (got -1)"),
    ("poll(inf)", lambda f: Tracer().poll(timeout=math.inf), ConfigError,
     "timeout must be at most 2.14748e+06 seconds (got inf)"),
    ("poll(1e10)", lambda f: Tracer().poll(timeout=1e10), ConfigError,
     "timeout must be at most 2.14748e+06 seconds (got 10000000000.0)"),
    ("poll('1')", lambda f: Tracer().poll(timeout="1"), ConfigTypeError,
     "timeout must be a number of seconds (got '1')"),
    ("poll(True)", lambda f: Tracer().poll(timeout=True), ConfigTypeError,
     "timeout must be a number of seconds (got True)"),
    ("poll(max_events=0)", lambda f: Tracer().poll(max_events=0), ConfigError,
     "max_events must be at least 1 (got 0)"),
    ("poll(max_events=-1)", lambda f: Tracer().poll(max_events=-1), ConfigError,
     "max_events must be at least 1 (got -1)"),
    ("poll(max_events=2**70)", lambda f: Tracer().poll(max_events=1 << 70), ConfigError,
     f"max_events must be at most {1 << 32} (got {1 << 70})"),
    ("poll unstarted", lambda f: Tracer().poll(), SessionClosedError,
     "the tracer is not started: call start() first"),
    ("batches(duration=nan)", lambda f: Tracer().batches(duration=math.nan), ConfigError,
     "duration must be zero or positive and finite (got nan)"),
    ("batches(duration=-1)", lambda f: Tracer().batches(duration=-1), ConfigError,
     "duration must be zero or positive and finite (got -1)"),
    ("batches(duration=inf)", lambda f: Tracer().batches(duration=math.inf), ConfigError,
     "duration must be at most 9.22337e+09 seconds (got inf)"),
    ("batches(timeout=nan)", lambda f: Tracer().batches(timeout=math.nan), ConfigError,
     "timeout must be zero or positive and finite (got nan)"),
    # Aggregate
    ("Aggregate pid=-1", lambda f: Aggregate("count", pid=-1), ConfigError, "pid must be at least 1 (got -1)"),
    ("Aggregate pid=0", lambda f: Aggregate("count", pid=0), ConfigError, "pid must be at least 1 (got 0)"),
    ("Aggregate pid=2**64", lambda f: Aggregate("count", pid=U64), ConfigError,
     f"pid must be at most {PID_LIMIT} (got {U64})"),
    ("Aggregate pid='1'", lambda f: Aggregate("count", pid="1"), ConfigTypeError, "pid must be an integer (got '1')"),
    ("Aggregate divisor=0", lambda f: Aggregate("sum", value=1, divisor=0), ConfigError,
     "divisor must be at least 1 (got 0)"),
    ("Aggregate divisor=2**64", lambda f: Aggregate("sum", value=1, divisor=U64), ConfigError,
     f"divisor must be at most {U64 - 1} (got {U64})"),
    ("Aggregate divisor=1.5", lambda f: Aggregate("sum", value=1, divisor=1.5), ConfigTypeError,
     "divisor must be an integer (got 1.5)"),
    ("Aggregate value=-1", lambda f: Aggregate("sum", value=-1), ConfigError,
     "value argument -1 out of range: arguments are numbered 0 to 11"),
    ("Aggregate value=12", lambda f: Aggregate("sum", value=12), ConfigError,
     "value argument 12 out of range: arguments are numbered 0 to 11"),
    ("Aggregate value=2**64", lambda f: Aggregate("sum", value=U64), ConfigError,
     f"value argument {U64} out of range: arguments are numbered 0 to 11"),
    ("Aggregate value='1 +'", lambda f: Aggregate("sum", value="1 +"), ExpressionError,
     "expected an expression at column 4 of '1 +'"),
    ("Aggregate value=1.5", lambda f: Aggregate("sum", value=1.5), ConfigTypeError,
     "value argument must be an integer (got 1.5)"),
    ("Aggregate kind=5", lambda f: Aggregate(5), ConfigError,
     "aggregation must be one of count, sum, min, max, avg, stats, hist, lhist (got 5)"),
    ("Aggregate kind=[]", lambda f: Aggregate([]), ConfigError,
     "aggregation must be one of count, sum, min, max, avg, stats, hist, lhist (got [])"),
    ("lhist step 0", lambda f: Aggregate("lhist", value=1, lhist=(0, 100, 0)), ConfigError,
     "lhist step must be positive (got 0)"),
    ("lhist 10**12 buckets", lambda f: Aggregate("lhist", value=1, lhist=(0, 10 ** 12, 1)), ConfigError,
     "lhist has 1000000000000 buckets ((max - min) / step); at most 100000 are allowed: use a larger step"),
    ("lhist min < s64", lambda f: Aggregate("lhist", value=1, lhist=(-(1 << 63) - 1, 0, 1 << 62)), ConfigError,
     f"lhist min must be at least {-(1 << 63)} (got {-(1 << 63) - 1})"),
    ("lhist max > s64", lambda f: Aggregate("lhist", value=1, lhist=(0, 1 << 63, 1 << 62)), ConfigError,
     f"lhist max must be at most {(1 << 63) - 1} (got {1 << 63})"),
    ("lhist pair", lambda f: Aggregate("lhist", value=1, lhist=(0, 100)), ConfigTypeError,
     "lhist must be (min, max, step) (got (0, 100))"),
    ("lhist str", lambda f: Aggregate("lhist", value=1, lhist="abc"), ConfigTypeError,
     "lhist min must be an integer (got 'a')"),
    ("lhist step 1.5", lambda f: Aggregate("lhist", value=1, lhist=(0, 100, 1.5)), ConfigTypeError,
     "lhist step must be an integer (got 1.5)"),
    ("lhist None", lambda f: Aggregate("lhist", value=1, lhist=None), ConfigError, "lhist needs (min, max, step)"),
    ("Arg(-1)", lambda f: Arg(-1), ConfigError, "key argument -1 out of range: arguments are numbered 0 to 11"),
    ("Arg(12)", lambda f: Arg(12), ConfigError, "key argument 12 out of range: arguments are numbered 0 to 11"),
    ("StrArg(2**64)", lambda f: StrArg(U64), ConfigError,
     f"key argument {U64} out of range: arguments are numbered 0 to 11"),
    ("Arg('1')", lambda f: Arg("1"), ConfigTypeError, "key argument must be an integer (got '1')"),
    ("key=5", lambda f: Aggregate("count", key=5), ConfigTypeError,
     "key must be Arg(i), StrArg(i), one of pid, tid, comm, probe or expressions (got 5)"),
    ("key='uid'", lambda f: Aggregate("count", key="uid"), ExpressionError,
     "'uid' is not supported in expressions at column 1 of 'uid'"),
    ("where=5", lambda f: Aggregate("count", where=5), ConfigTypeError,
     "where must be a Where or a predicate (got 5)"),
    ("where='x'", lambda f: Aggregate("count", where="x"), ExpressionError,
     "unknown identifier 'x' at column 1 of 'x'"),
    # Where
    ("Where(-1)", lambda f: Where(-1, "==", 1), ConfigError,
     "filter argument -1 out of range: arguments are numbered 0 to 11"),
    ("Where(12)", lambda f: Where(12, "==", 1), ConfigError,
     "filter argument 12 out of range: arguments are numbered 0 to 11"),
    ("Where op '='", lambda f: Where(0, "=", 1), ConfigError, "comparison must be one of == != < <= > >= (got '=')"),
    ("Where op None", lambda f: Where(0, None, 1), ConfigError,
     "comparison must be one of == != < <= > >= (got None)"),
    ("Where 2**64", lambda f: Where(0, "==", U64), ConfigError, f"comparison value {U64} does not fit in 64 bits"),
    ("Where -2**63-1", lambda f: Where(0, "<", -(1 << 63) - 1), ConfigError,
     f"comparison value {-(1 << 63) - 1} does not fit in 64 bits"),
    ("Where '1'", lambda f: Where(0, "==", "1"), ConfigTypeError, "comparison value must be an integer (got '1')"),
    ("Where 1.0", lambda f: Where(0, "==", 1.0), ConfigTypeError, "comparison value must be an integer (got 1.0)"),
    # Latency
    ("max_pending=0", lambda f: Latency("a", "b", max_pending=0), ConfigError,
     "max_pending must be at least 1 (got 0)"),
    ("max_pending=2**22+1", lambda f: Latency("a", "b", max_pending=MAP_LIMIT + 1), ConfigError,
     f"max_pending must be at most {MAP_LIMIT} (got {MAP_LIMIT + 1})"),
    ("max_pending=2**40", lambda f: Latency("a", "b", max_pending=1 << 40), ConfigError,
     f"max_pending must be at most {MAP_LIMIT} (got {1 << 40})"),
    ("max_pending=1.5", lambda f: Latency("a", "b", max_pending=1.5), ConfigTypeError,
     "max_pending must be an integer (got 1.5)"),
    ("pair_by=-1", lambda f: Latency("a", "b", pair_by=-1), ConfigError,
     "pairing argument -1 out of range: arguments are numbered 0 to 11"),
    ("pair_by=12", lambda f: Latency("a", "b", pair_by=12), ConfigError,
     "pairing argument 12 out of range: arguments are numbered 0 to 11"),
    ("pair_by=(0,2**64)", lambda f: Latency("a", "b", pair_by=(0, U64)), ConfigError,
     f"pairing argument {U64} out of range: arguments are numbered 0 to 11"),
    ("pair_by=(0,)", lambda f: Latency("a", "b", pair_by=(0,)), ConfigError,
     "pair_by must be an argument index or (start index, done index) (got (0,))"),
    ("pair_by=(0,1,2)", lambda f: Latency("a", "b", pair_by=(0, 1, 2)), ConfigError,
     "pair_by must be an argument index or (start index, done index) (got (0, 1, 2))"),
    ("pair_by='x'", lambda f: Latency("a", "b", pair_by="x"), ConfigError,
     "pair_by must be an argument index or (start index, done index) (got 'x')"),
    ("unit='x'", lambda f: Latency("a", "b", unit="x"), ConfigError, "unit must be one of ns, us, ms, s (got 'x')"),
    ("unit=[]", lambda f: Latency("a", "b", unit=[]), ConfigError, "unit must be one of ns, us, ms, s (got [])"),
    ("key_from='x'", lambda f: Latency("a", "b", key_from="x"), ConfigError, "key_from must be 'start' or 'done'"),
    ("start=5", lambda f: Latency(5, "b"), ConfigTypeError, "start and done must be patterns (str) (got 5, 'b')"),
    ("latency lhist", lambda f: Latency("a", "b", kind="lhist", lhist=(0, 10 ** 12, 1)), ConfigError,
     "lhist has 1000000000000 buckets ((max - min) / step); at most 100000 are allowed: use a larger step"),
    ("latency pid=-5", lambda f: Latency("a", "b", pid=-5), ConfigError, "pid must be at least 1 (got -5)"),
    # attach_*: targets and what is asked of them (no BPF: all fail before start)
    ("attach_pid(-1)", lambda f: Tracer().attach_pid(-1), NoSuchProcessError, "no such process: -1"),
    ("attach_pid(0)", lambda f: Tracer().attach_pid(0), NoSuchProcessError, "no such process: 0"),
    ("attach_pid(2**64)", lambda f: Tracer().attach_pid(U64), NoSuchProcessError, f"no such process: {U64}"),
    ("attach_pid('1')", lambda f: Tracer().attach_pid("1"), ConfigTypeError, "pid must be an integer (got '1')"),
    ("attach_pid(1.0)", lambda f: Tracer().attach_pid(1.0), ConfigTypeError, "pid must be an integer (got 1.0)"),
    ("attach_path(5)", lambda f: Tracer().attach_path(5), ConfigTypeError,
     "a path must be str, bytes or os.PathLike (got 5)"),
    ("attach_path(None)", lambda f: Tracer().attach_path(None), ConfigTypeError,
     "a path must be str, bytes or os.PathLike (got None)"),
    ("attach_path(bytes missing)", lambda f: Tracer().attach_path(os.fsencode(f["missing"])), ELFNotFoundError,
     "no such file: {missing}"),
    ("attach_path(bytes not UTF-8)", lambda f: Tracer().attach_path(os.fsencode(f["missing_bytes"])),
     ELFNotFoundError, "no such file: {missing_bytes}"),
    ("attach_path(Path fifo)", lambda f: Tracer().attach_path(Path(f["fifo"])), NotELFError,
     "{fifo}: is a FIFO, not an ELF file"),
    ("attach_path(/dev/zero)", lambda f: Tracer().attach_path("/dev/zero"), NotELFError,
     "/dev/zero: is a character device, not an ELF file"),
    ("attach_path(NUL)", lambda f: Tracer().attach_path("a\0b"), ELFNotFoundError, "no such file: 'a\\x00b'"),
    ("attach_path(pattern=5)", lambda f: Tracer().attach_path(f["V"], 5), ConfigTypeError,
     "a probe pattern must be a str (got 5)"),
    ("attach_path(strings=(12,))", lambda f: Tracer().attach_path(f["V"], strings=(12,)), ConfigError,
     "string argument 12 out of range: arguments are numbered 0 to 11"),
    ("attach_path(strings=('a',))", lambda f: Tracer().attach_path(f["V"], strings=("a",)), ConfigTypeError,
     "string argument must be an integer (got 'a')"),
    ("attach_path(aggregate='count')", lambda f: Tracer().attach_path(f["V"], aggregate="count"), ConfigTypeError,
     "aggregate must be an Aggregate (got 'count')"),
    ("attach_path(changed Aggregate)",
     lambda f: Tracer().attach_path(f["V"], aggregate=_mutated(Aggregate("sum", value=1), divisor=-1)),
     ConfigError, "divisor must be at least 1 (got -1)"),
    ("attach_latency(str)", lambda f: Tracer().attach_latency("lat:start", path=f["L"]), ConfigTypeError,
     "attach_latency takes a Latency (got 'lat:start')"),
    ("attach_latency(changed Latency)",
     lambda f: Tracer().attach_latency(_mutated(Latency("lat:start", "lat:done"), max_pending=0), path=f["L"]),
     ConfigError, "max_pending must be at least 1 (got 0)"),
    ("attach_latency(two targets)", lambda f: Tracer().attach_latency(Latency("a", "b"), path=f["L"], pid=1),
     ConfigError, "attach_latency needs exactly one target: path, pid, command, cgroup, container, or objects "
     "(which may narrow a cgroup or container)"),
    ("attach_command('ls')", lambda f: Tracer().attach_command("ls"), ConfigTypeError,
     "a command is a list of arguments, not one string (got 'ls')"),
    ("attach_command([5])", lambda f: Tracer().attach_command([5]), ConfigTypeError,
     "a command's arguments must be str, bytes or os.PathLike (got [5])"),
    ("attach_command([])", lambda f: Tracer().attach_command([]), TargetError, "empty command"),
    ("attach_command(missing)", lambda f: Tracer().attach_command([f["missing"]]), TargetError,
     "command not found: {missing}"),
    ("attach_command(fifo)", lambda f: Tracer().attach_command([f["fifo_x"]]), TargetError,
     "not executable: {fifo_x}: not a regular file"),
    ("attach_command(bytes loop)", lambda f: Tracer().attach_command([os.fsencode(f["self_sh"])]), TargetError,
     "{self_sh}: its #! line leads back to itself"),
    ("attach_command(aarch64)", lambda f: Tracer().attach_command([f["aarch64"]]), NotELFError,
     "{aarch64}: not an x86-64 ELF file"),
]


@pytest.mark.parametrize("call,exc,message", [a[1:] for a in API], ids=[a[0] for a in API])
def test_api(files, call, exc, message):
    kids, bpf_fds = _children(), _bpf_fds()
    with deadline():
        with pytest.raises(exc) as info:
            call(files)
    assert type(info.value) is exc
    assert str(info.value) == message.format_map(files)
    assert _children() == kids  # a held command was ended
    assert _bpf_fds() == bpf_fds


def test_api_too_many_sites_reaches_attach(bpf, files):
    """Past max_sites at attach: an AttachError, and nothing stays attached."""
    before = _bpf_fds()
    t = Tracer(max_sites=1)
    try:
        t.attach_path(files["V"])  # agg:value and agg:other: two sites
        with pytest.raises(AttachError, match=r"^agg:other in .*/agg_values: too many probe sites \(limit 1\)$"):
            t.start()
    finally:
        t.close()
    assert _bpf_fds() == before


def test_api_limits_are_accepted(bpf, files):
    """The largest values pass the checks and fit their C fields."""
    from pyusdt import _native

    agg = Aggregate("lhist", value=11, key=StrArg(11), divisor=U64 - 1, pid=PID_LIMIT,
                    lhist=(-(1 << 63), -(1 << 63) + 100000, 1), where=Where(11, "<=", U64 - 1))
    agg.native_spec(_native.Role.AGG, 0)
    Latency("a", "b", pair_by=(11, 0), max_pending=MAP_LIMIT, kind="lhist",
            lhist=((1 << 63) - 100001, (1 << 63) - 1, 1)).native_spec(_native.Role.START, 0)
    before = _bpf_fds()
    with Tracer(str_len=2048, ringbuf_bytes=4096, max_sites=16384, max_agg_keys=MAP_LIMIT,
                wakeup_bytes=0, wakeup_interval=0) as t:
        t.attach_path(files["V"], "agg:value", strings=(2,))
        t.attach_path(files["V"], "agg:other", aggregate=Aggregate("count", divisor=U64 - 1, pid=PID_LIMIT))
        t.start()
        assert len(t.poll(timeout=0, max_events=1 << 32)) == 0
        assert t.attached_sites == 2
    assert _bpf_fds() == before
