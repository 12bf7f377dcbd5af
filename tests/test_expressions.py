"""bpftrace's expressions, evaluated in the kernel by the precompiled program:
(pointer, length) strings, dereferences and casts, arithmetic, string
predicates, several keys, and fields on trace.  Exact values on our own
program, and on real binaries side by side with bpftrace for the same
expression on the same workload: the JVM's method names, libstdc++'s
exception type names and PostgreSQL's query texts."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading

import pytest

from pyusdt import Tracer
from pyusdt.aggregate import Aggregate, Latency
from pyusdt.errors import ConfigError
from pyusdt.expr import ExpressionError

from conftest import missing
from proc_helpers import wait_until

JDK = "/usr/lib/jvm/java-17-openjdk-amd64"
LIBSTDCXX = "/usr/lib/x86_64-linux-gnu/libstdc++.so.6"
ROUNDS = 3
METHODS = ["GET", "POST", "GET", "PUT", "GET"]
STATUS = [200, 500, 503, 201, 404]
ITEMS = [(1, 7, 1000000007, "alpha"), (2, -14, 2000000014, "beta"), (3, 21, 3000000021, "gamma")]
MAP_LINE = re.compile(r"^@\w*\[(.*)\]: (-?\d+)$")


@pytest.fixture(scope="module")
def targets(build):
    return build("expr_targets.c", "expr_targets")


def maps(stdout: str) -> dict[str, int]:
    """bpftrace's (and pyusdt's) map lines: {key text: value}."""
    out = {}
    for line in stdout.splitlines():
        m = MAP_LINE.match(line.strip())
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def bpftrace_ready(bpftrace: str, program: str, pid: int) -> tuple[subprocess.Popen, list[str]]:
    """bpftrace -p PID running `program`, once its probes are attached (its
    BEGIN runs after them); its stdout lines are collected as they come."""
    bt = subprocess.Popen([bpftrace, "-p", str(pid), "-e", 'BEGIN { printf("ready\\n"); } ' + program],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(bt.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    bt.reader = reader  # type: ignore[attr-defined]
    wait_until(lambda: "ready\n" in lines or bt.poll() is not None, 60, "bpftrace attached")
    assert bt.poll() is None, bt.stderr.read() if bt.stderr else ""
    return bt, lines


def bpftrace_end(bt: subprocess.Popen, lines: list[str]) -> str:
    """Waits for bpftrace to end (its -p target exited, or a SIGINT) and
    gives its stdout, read to the end by the reader thread alone."""
    bt.wait(timeout=120)
    bt.reader.join(30)  # type: ignore[attr-defined]
    err = bt.stderr.read() if bt.stderr else ""
    assert bt.returncode == 0, err
    return "".join(lines)


class Waiting:
    """A program that says "ready" and waits for a line on stdin before its work."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline() == "ready\n"
        self.pid = self.proc.pid

    def go(self) -> str:
        out, _ = self.proc.communicate("go\n", timeout=120)
        assert self.proc.returncode == 0
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# -- our own program: every form, exact values --------------------------------


def test_fields_with_dereferences_casts_and_pointer_length_strings(bpf, targets):
    with Tracer() as t:
        held = t.attach_command([str(targets), str(ROUNDS)], "expr:item",
                                fields="*(int32 *)arg0, *(int32 *)(arg0 + 4), *(int64 *)(arg0 + 8), "
                                       "str(*(uint64 *)(arg0 + 16)), (uint8)(*(int32 *)(arg0 + 4)), arg1 * -3")
        t.attach_command(held, "expr:name", fields="arg0, str(arg1, arg2), str(arg1)")
        t.start()
        events = [e for b in t.batches(timeout=0.1, duration=30) for e in b]
        stats = {s.probe: s for s in t.stats()}
    items = [e.args for e in events if e.probe.fullname == "expr:item"]
    assert items == [(i, d, w, n, d & 0xFF, -3 * k) for k, (i, d, w, n) in enumerate(ITEMS)] * ROUNDS
    names = [e.args for e in events if e.probe.fullname == "expr:name"]
    # Without a length the string runs on to the buffer's NUL, as in C.
    assert names == [(0, "getRuntime", "getRuntimeexitmain"), (1, "exit", "exitmain"), (2, "main", "main")] * ROUNDS
    item = next(e for e in events if e.probe.fullname == "expr:item")
    assert item.probe.value_names == ["*(int32 *)arg0", "*(int32 *)(arg0 + 4)", "*(int64 *)(arg0 + 8)",
                                      "str(*(uint64 *)(arg0 + 16))", "(uint8)(*(int32 *)(arg0 + 4))", "arg1 * -3"]
    for s in stats.values():
        assert (s.hits, s.events, s.lost_ringbuf, s.str_fail, s.arg_fail, s.filtered) == (
            3 * ROUNDS, 3 * ROUNDS, 0, 0, 0, 0), s


def test_trace_where_and_printf_cli(bpf, cli, targets):
    res = cli("trace", "-c", f"{targets} {ROUNDS}", "expr:request",
              "--where", 'str(arg0) == "GET" && (arg2 >= 500 || arg1 % 5 == 0)',
              "--fields", "str(arg0), arg1, arg2, arg3 / 1000",
              "--printf", "%s #%d -> %d (%d KiB)\\n")
    assert res.returncode == 0, res.stderr
    expected = []
    for r in range(ROUNDS):
        for i, (m, st) in enumerate(zip(METHODS, STATUS)):
            n = r * 5 + i
            if m == "GET" and (st >= 500 or n % 5 == 0):
                expected.append(f"{m} #{n} -> {st} ({1 + i + 0} KiB)")
    assert res.stdout.splitlines() == expected
    assert f"{3 * ROUNDS} filtered out (--where)" in res.stderr


def test_trace_fields_as_json_and_to_a_table(bpf, cli, targets, tmp_path):
    res = cli("trace", "-c", f"{targets} 1", "expr:request", "--format", "json",
              "--fields", "str(arg0), arg2 - 300", "--where", "arg2 != 201")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(r["args"], r["arg_names"]) for r in rows] == [
        ([m, s - 300], ["str(arg0)", "arg2 - 300"]) for m, s in zip(METHODS, STATUS) if s != 201]
    out = tmp_path / "fields.csv"
    res = cli("trace", "-c", f"{targets} 1", "expr:request", "-o", str(out), "--fields", "str(arg0), arg2")
    assert res.returncode == 0, res.stderr
    header, *lines = out.read_text().splitlines()
    assert header.split(",")[-3:] == ["str(arg0)", "str(arg0)_truncated", "arg2"]
    assert [line.split(",")[-3:] for line in lines] == [[f'"{m}"', "false", str(s)] for m, s in zip(METHODS, STATUS)]


def test_several_probe_specs_each_with_its_own_fields(bpf, cli, targets):
    """One command, three probe specs: a predicate and string fields on one,
    (pointer, length) strings on another, the plain arguments of the third.
    No spec's strings reach another's integers (no unreadable strings)."""
    res = cli("trace", "-c", f"{targets} 1", 'expr:request /arg2 >= 500/ { str(arg0), arg2 }',
              "expr:name { str(arg1, arg2) }", "expr:item")
    assert res.returncode == 0, res.stderr
    lines = [line.split(" ", 3)[3] for line in res.stdout.splitlines()]
    assert lines[:5] == ['expr:request str(arg0)="POST" arg2=500', 'expr:request str(arg0)="GET" arg2=503',
                         'expr:name str(arg1, arg2)="getRuntime"', 'expr:name str(arg1, arg2)="exit"',
                         'expr:name str(arg1, arg2)="main"']
    assert [line.split()[1] for line in lines[5:]] == ["arg0=" + line.split("arg0=")[1].split()[0]
                                                       for line in lines[5:]]
    assert [line.split()[-1] for line in lines[5:]] == ["arg1=0", "arg1=1", "arg1=2"]
    assert res.stderr.splitlines()[1] == ("pyusdt: 8 events, 0 lost (ring buffer full), 0 unreadable strings, "
                                          "0 unreadable arguments, 3 filtered out (--where)")


@pytest.mark.parametrize("spec, message", [
    ("expr:request /arg2 >= 500 { str(arg0) }", "no '/' closes the predicate at column 14"),
    ("expr:request { str(arg0) ", "no '}' closes the '{' at column 14"),
    ("expr:request arg2 > 1", "expected /PREDICATE/ or { FIELDS } at column 14"),
    ("expr:request { }", "empty '{ }' at column 14"),
    ("expr:request { str(arg0) } x", "unexpected text after '}' at column 28"),
])
def test_bad_probe_specs(bpf, cli, targets, spec, message):
    res = cli("trace", "-c", f"{targets} 1", spec)
    assert res.returncode == 1
    assert res.stderr == f"pyusdt: probe spec: {message} of '{spec}'\n"


def test_several_keys_value_expression_and_string_predicate(bpf, cli, targets):
    res = cli("sum", "-c", f"{targets} {ROUNDS}", "expr:request", "-v", "arg3 / 1000 + arg2 * 0",
              "--by", "str(arg0), arg2", "--where", 'str(arg0) == "GET" && arg2 >= 500')
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["@[GET, 503]: 9"]
    assert f"pyusdt: {ROUNDS} aggregated, {4 * ROUNDS} filtered out" in res.stderr

    res = cli("count", "-c", f"{targets} {ROUNDS}", "expr:name", "--by", "str(arg1, arg2), comm, arg0 * 2",
              "--format", "bpftrace-json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"type": "map", "data": {"@": {
        "exit,expr_targets,2": ROUNDS, "getRuntime,expr_targets,0": ROUNDS, "main,expr_targets,4": ROUNDS}}}


def test_api_aggregate_with_expressions_and_latency_key(bpf, targets):
    hist = Aggregate("hist", value="*(int64 *)(arg0 + 8) / 1000000000", key="str(*(uint64 *)(arg0 + 16))")
    by_status = Aggregate("count", key="arg2 / 100", where='str(arg0) != "PUT"')
    lat = Latency("expr:request", "expr:name", key="str(arg1, arg2)", unit="ns", kind="count")
    with Tracer() as t:
        held = t.attach_command([str(targets), str(ROUNDS)], "expr:item", aggregate=hist)
        t.attach_command(held, "expr:request", aggregate=by_status)
        t.attach_latency(lat, command=held)
        t.start()
        list(t.batches(timeout=0.1, duration=30))
        h = t.aggregation(hist)
        s = t.aggregation(by_status)
        lt = t.aggregation(lat)
    # weight / 10^9: alpha 1 (bucket [1]), beta 2 and gamma 3 (bucket [2, 4)).
    assert {k: (h.hist(k).total, h.hist(k).labels[int(h.hist(k).counts.argmax())]) for k in h.keys} == {
        "alpha": (ROUNDS, "[1]"), "beta": (ROUNDS, "[2, 4)"), "gamma": (ROUNDS, "[2, 4)")}
    assert {k: s.value(k) for k in s.keys} == {2: ROUNDS, 4: ROUNDS, 5: 2 * ROUNDS}
    assert s.counters.filtered == ROUNDS
    # Each request starts a latency on the thread; each name ends one: the
    # three names of a round find starts (the last request's, then none).
    assert lt.counters.matched == ROUNDS and lt.counters.unmatched == 2 * ROUNDS
    assert {k: lt.value(k) for k in lt.keys} == {"getRuntime": ROUNDS}


def test_unreadable_memory_is_counted_and_the_hit_kept(bpf, targets):
    """A dereference of a bad address reads 0 and marks the field, as bpftrace
    reads 0; the record is kept and the failure counted."""
    with Tracer() as t:
        t.attach_command([str(targets), "1"], "expr:name", fields="arg0, *(int64 *)(arg0 + 8), str(arg0)")
        t.start()
        events = [e for b in t.batches(timeout=0.1, duration=30) for e in b]
        stats = t.stats()[0]
    assert [(e.args[0], e.read_failed) for e in events] == [(0, (1, 2)), (1, (1, 2)), (2, (1, 2))]
    assert (stats.events, stats.arg_fail, stats.str_fail) == (3, 3, 3)


# -- errors -----------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["trace", "--where", "str(arg0"], "expected ')' at column 9 of 'str(arg0'"),
    (["count", "--by", "arg0 +"], "expected an expression at column 7 of 'arg0 +'"),
    (["sum", "-v", "str(arg0)"], "the aggregated value must be a number, not a string at column 1 of 'str(arg0)'"),
    (["trace", "--fields", "arg1, arg9"],
     "arg9 out of range: probe expr:request has 4 arguments (arg0 to arg3) at column 7 of 'arg1, arg9'"),
    (["count", "--where", 'str(arg0) == 5'], None),
    (["trace", "--fields", "arg0", "--printf", "%d %d"], "--printf: '%d %d' has 2 conversion(s) for 1 field(s)"),
])
def test_bad_expressions_are_one_line(bpf, cli, targets, argv, message):
    """One line naming the column, exit 1, nothing attached or run."""
    res = cli(argv[0], "-c", f"{targets} 1", "expr:request", *argv[1:])
    assert res.returncode == 1, res.stderr
    assert len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith("pyusdt: "), res.stderr
    if message is not None:
        assert res.stderr == f"pyusdt: {message}\n"
    assert "column" in res.stderr or "printf" in res.stderr


def test_api_errors_are_specific(bpf, targets):
    with Tracer() as t:
        with pytest.raises(ExpressionError) as e:
            t.attach_path(targets, "expr:request", where="arg0 == ")
        assert e.value.position == 8
        with pytest.raises(ConfigError):
            t.attach_path(targets, "expr:request", fields="arg0", strings=[0])
        with pytest.raises(ExpressionError):
            Aggregate("sum", value="arg0 +")


# -- real binaries, side by side with bpftrace -------------------------------------


def test_jvm_method_names_by_pointer_and_length(bpf, bpftrace, tmp_path):
    """hotspot:method__entry passes class and method names as (pointer,
    length), not NUL-terminated: keyed by str(arg1, arg2), str(arg3, arg4)
    and filtered by a string predicate, pyusdt and bpftrace count the same."""
    if not os.path.exists(f"{JDK}/bin/javac"):
        missing(f"{JDK}/bin/javac is not installed (openjdk-17-jdk-headless)")
    (tmp_path / "Expr.java").write_text(EXPR_JAVA)
    subprocess.run([f"{JDK}/bin/javac", "Expr.java"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    java = [f"{JDK}/bin/java", "-XX:+ExtendedDTraceProbes", "-Xint", "-Xmx64m", "-cp", str(tmp_path), "Expr", "40"]
    key = "str(arg1, arg2), str(arg3, arg4)"
    where = 'str(arg1, arg2) == "Expr"'
    expected = {"Expr, work": 40, "Expr, finish": 1}

    target = Waiting(java)
    try:
        bt, lines = bpftrace_ready(bpftrace, f"usdt:{JDK}/lib/server/libjvm.so:hotspot:method__entry "
                                             f"/{where}/ {{ @[{key}] = count(); }}", target.pid)
        target.go()
        assert maps(bpftrace_end(bt, lines)) == expected
    finally:
        target.kill()

    target = Waiting(java)
    try:
        spec = Aggregate("count", key=key, where=where)
        with Tracer() as t:
            t.attach_pid(target.pid, "hotspot:method__entry", aggregate=spec)
            t.start()
            target.go()
            wait_until(lambda: t.poll(0.05) is not None and t.done, 60, "the JVM's exit")
            result = t.aggregation(spec)
        assert maps(result.render()) == expected
        assert result.counters.read_fail == 0 and result.counters.map_full == 0
    finally:
        target.kill()


def test_libstdcxx_exception_type_names(bpf, bpftrace, build):
    """libstdcxx:throw's second argument is the std::type_info, whose name
    pointer is 8 bytes in: str(*(uint64 *)(arg1 + 8)) is the mangled type."""
    prog = build("cxx_throw_types.cc", "cxx_throw_types", "-lstdc++")
    key = "str(*(uint64 *)(arg1 + 8))"
    expected = {"St13runtime_error": 3 * ROUNDS, "i": 2 * ROUNDS, "St12out_of_range": ROUNDS}

    target = Waiting([str(prog), str(ROUNDS), "wait"])
    try:
        bt, lines = bpftrace_ready(bpftrace, f'usdt:"{LIBSTDCXX}":libstdcxx:throw {{ @[{key}] = count(); }}',
                                   target.pid)
        assert target.go() == f"caught {6 * ROUNDS}\n"
        assert maps(bpftrace_end(bt, lines)) == expected
    finally:
        target.kill()

    target = Waiting([str(prog), str(ROUNDS), "wait"])
    try:
        spec = Aggregate("count", key=key)
        with Tracer() as t:
            t.attach_pid(target.pid, "libstdcxx:throw", aggregate=spec)
            t.start()
            target.go()
            result = t.aggregation(spec)
        assert maps(result.render()) == expected
    finally:
        target.kill()


@pytest.fixture(scope="module")
def stacks_prog(build):
    return build("expr_stacks.c", "expr_stacks", "-fno-omit-frame-pointer")


def own_frames(key: str) -> tuple[str, ...]:
    """A printed ustack key's frames up to main's (the C library's below it
    are named only where its debug symbols are installed)."""
    frames = [f.strip() for f in key.strip().splitlines()]
    end = next(i for i, f in enumerate(frames) if f.startswith("main+"))
    return tuple(frames[:end + 1])


def test_ustack_keys_as_bpftrace_names_them(bpf, bpftrace, stacks_prog):
    """@[ustack] = count(): the same stacks, named the same, as bpftrace's
    (both read while the process is there: bpftrace names frames only then)."""
    target = Waiting([str(stacks_prog), str(ROUNDS), "wait"])
    try:
        bt, lines = bpftrace_ready(bpftrace, f"usdt:{stacks_prog}:stk:leaf {{ @[ustack] = count(); }}", target.pid)
        target.proc.stdin.write("go\n")
        target.proc.stdin.flush()
        assert target.proc.stdout.readline() == "done\n"
        bt.send_signal(signal.SIGINT)
        theirs_text = bpftrace_end(bt, lines)
        target.go()
    finally:
        target.kill()
    theirs = {own_frames(k): int(v) for k, v in re.findall(r"^@\[(.*?)\]: (\d+)$", theirs_text, re.M | re.S)}
    assert sorted(theirs.values()) == [ROUNDS, 2 * ROUNDS], theirs_text

    spec = Aggregate("count", key="ustack")
    with Tracer() as t:
        t.attach_command([str(stacks_prog), str(ROUNDS)], "stk:leaf", aggregate=spec)
        t.start()
        list(t.batches(timeout=0.1, duration=30))
        result = t.aggregation(spec)
    ours = {own_frames(str(k)): result.value(k) for k in result.keys}
    assert ours == theirs
    # Frames: inner, the caller that called it (outer's call to middle is a
    # tail call, so middle is not on the stack), main; each with its file and build-id.
    assert {k[0].split("+")[0] for k in ours} == {"inner"} and {k[-1].split("+")[0] for k in ours} == {"main"}
    stack = next(k for k in result.keys if result.value(k) == ROUNDS)
    assert stack.frames[0].path == str(stacks_prog) and len(stack.frames[0].build_id) == 40
    assert result.render().startswith("@[\n    inner+")


def test_ustack_folded_and_as_a_field(bpf, cli, stacks_prog):
    res = cli("count", "-c", f"{stacks_prog} {ROUNDS}", "stk:leaf", "--by", "comm, ustack", "--format", "folded")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in lines) == [ROUNDS, 2 * ROUNDS]
    for line in lines:
        frames = line.rsplit(" ", 1)[0].split(";")
        assert frames[0] == "expr_stacks" and frames[-1].startswith("inner+"), line
        assert any(f.startswith("main+") for f in frames), line
    res = cli("trace", "-c", f"{stacks_prog} 1", "stk:leaf", "--fields", "arg0, ustack", "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["args"][0] for r in rows] == [0, 0, 1]
    assert all(r["args"][1].split(";")[-1].startswith("inner+") for r in rows)
    assert [";outer+" in r["args"][1] for r in rows] == [True, False, False]


EXPR_JAVA = """
public class Expr {
    static long total;
    static long work(long i) { return i * 3 + 1; }
    static void finish() { System.out.println("total " + total); }
    public static void main(String[] args) throws Exception {
        int n = Integer.parseInt(args[0]);
        System.out.println("ready");
        System.out.flush();
        new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        for (int i = 0; i < n; i++) total += work(i);
        finish();
    }
}
"""
