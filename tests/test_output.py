"""`pyusdt trace --output FILE`: events written to Parquet, Arrow IPC, CSV and
JSON lines files as they arrive, and every file complete and readable however
the trace ends (SIGINT, SIGTERM, --duration, the -p target exiting, the -c
command exiting), with exact values: tests/programs/seq_events.c fires
numbered events (seq 0..N-1, int64 min + seq, uint64 max - seq, a string,
an int8), and the file must hold exactly those, in order.  Bad output paths
fail with one line before anything is attached."""
from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from pyusdt import Tracer
from pyusdt.export.files import EventWriter

from conftest import PYUSDT
from proc_helpers import Child, Cli

STR_LEN = 16
COLUMNS = ["time", "ts_ns", "probe", "pid", "tid", "cpu", "arg0", "arg1", "arg2", "arg3", "arg3_truncated",
           "arg4"]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


@pytest.fixture(scope="module")
def prog(build):
    return build("seq_events.c", "seq_events")


def label(s: int) -> str:
    return [f"ev-{s}", "", f"h\u00e9llo \u2713 {s}", f"long label \u2713\u2713\u2713 {s}"][s % 4]


def expected(n: int, start: int = 0) -> list:
    """(probe, arg0 .. arg4 with arg3_truncated) of events start..n-1, as read with str_len 16."""
    rows = []
    for s in range(start, n):
        raw = label(s).encode()
        rows.append(("seq:event", s, -(2**63) + s, 2**64 - 1 - s,
                     raw[:STR_LEN - 1].decode("utf-8", "replace"), len(raw) > STR_LEN - 1, -(s % 128)))
    return rows


def test_expected_values_cover_the_edges():
    rows = expected(4)
    assert rows[0][1:4] == (0, -(2**63), 2**64 - 1)
    # The 15 bytes of label 3 end inside a check mark: the partial character
    # reads as U+FFFD, as decode_c_string decodes it.
    assert [r[4] for r in rows] == ["ev-0", "", "h\u00e9llo \u2713 2", "long label \u2713\ufffd"]
    assert [r[5] for r in rows] == [False, False, False, True]


VALUE_COLUMNS = ["probe", "arg0", "arg1", "arg2", "arg3", "arg3_truncated", "arg4"]


def table_rows(tbl: pa.Table) -> list:
    assert tbl.column_names == COLUMNS
    return list(zip(*(tbl.column(c).to_pylist() for c in VALUE_COLUMNS)))


def csv_rows(path: Path) -> list:
    """Typed rows of a CSV file: ints, strings (quoted), booleans true/false."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        assert next(reader) == COLUMNS
        rows = []
        for r in reader:
            assert ISO.match(r[0]), r[0]
            rows.append((r[2], int(r[6]), int(r[7]), int(r[8]), r[9], {"true": True, "false": False}[r[10]],
                         int(r[11])))
    return rows


def jsonl_rows(path: Path) -> list:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        assert list(obj) == COLUMNS
        assert ISO.match(obj["time"])
        rows.append(tuple(obj[c] for c in VALUE_COLUMNS))
    return rows


def wait_for_line(cli: Cli, pattern: str, timeout: float = 20.0, running: bool = True) -> str:
    """The first stdout line of the traced command matching `pattern`
    (with `running`, while pyusdt still runs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(cli.out):
            if re.fullmatch(pattern, line):
                return line
        assert not running or cli.p.poll() is None, f"pyusdt exited early: {cli.err}"
        time.sleep(0.02)
    pytest.fail(f"no line {pattern!r} within {timeout}s: {cli.out} {cli.err}")


def finish(cli: Cli, rc: int = 0) -> list:
    """Waits for pyusdt; checks the exit code and that stderr has no traceback."""
    assert cli.wait() == rc, cli.err
    assert not any("Traceback" in line for line in cli.err), cli.err
    return cli.err


def trace_pid(prog, out: Path, *extra: str):
    """seq_events as a -p target: (child, pyusdt) once pyusdt is tracing."""
    child = Child([prog, "0"])
    assert child.readline() == str(child.pid)
    assert child.readline() == "fired 0"
    cli = Cli("trace", "-p", child.pid, "seq:event", "--output", out, "-s", 3, "--str-len", STR_LEN, *extra)
    try:
        cli.wait_tracing()
    except BaseException:
        child.kill()
        cli.kill()
        raise
    return child, cli


def fire(child: Child, n: int, total: int) -> None:
    child.send(str(n))
    assert child.readline() == f"fired {total}"


# -- how a trace ends ----------------------------------------------------------


def test_parquet_command_interrupted(bpf, prog, tmp_path):
    """-c: the command fires 1000 events and waits; SIGINT (Ctrl-C) ends the
    trace, and the Parquet file holds the 1000 events exactly."""
    out = tmp_path / "trace.parquet"
    cli = Cli("trace", "--output", out, "-s", 3, "--str-len", STR_LEN, "-c", f"{prog} 1000 hold", "seq:event")
    child_pid = None
    try:
        cli.wait_tracing()
        child_pid = int(wait_for_line(cli, r"\d+"))
        wait_for_line(cli, "fired 1000")
        cli.p.send_signal(signal.SIGINT)
        cli.p.wait(20)
    finally:
        if child_pid:
            os.kill(child_pid, signal.SIGKILL)
        cli.kill()
    err = finish(cli)
    assert "pyusdt: 1000 events written to " + str(out) in err
    assert "pyusdt: 1000 events, 0 lost (ring buffer full), 0 unreadable strings, 0 unreadable arguments" in err

    tbl = pq.read_table(out)
    assert table_rows(tbl) == expected(1000)
    assert set(tbl.column("pid").to_pylist()) == {child_pid}
    types = {f.name: f.type for f in tbl.schema}
    assert [types[c] for c in ("arg0", "arg1", "arg2", "arg3", "arg3_truncated", "arg4")] == [
        pa.uint64(), pa.int64(), pa.uint64(), pa.string(), pa.bool_(), pa.int8()]
    assert types["time"] == pa.timestamp("ns", tz="UTC")
    # pandas reads the same values back.
    df = pd.read_parquet(out)
    assert df["arg2"].tolist() == [2**64 - 1 - s for s in range(1000)]
    assert df["arg1"].tolist() == [-(2**63) + s for s in range(1000)]
    ts = tbl.column("ts_ns").to_pylist()
    assert ts == sorted(ts)


def test_arrow_pid_terminated(bpf, prog, tmp_path):
    """-p: events fired in two rounds; SIGTERM; the Arrow IPC file holds all."""
    out = tmp_path / "trace.arrow"
    child, cli = trace_pid(prog, out)
    try:
        fire(child, 300, 300)
        fire(child, 200, 500)
        cli.p.send_signal(signal.SIGTERM)
        cli.p.wait(20)
    finally:
        child.kill()
        cli.kill()
    err = finish(cli)
    assert f"pyusdt: 500 events written to {out}" in err
    with ipc.open_file(out) as f:
        tbl = f.read_all()
    assert table_rows(tbl) == expected(500)
    assert set(tbl.column("pid").to_pylist()) == {child.pid}


def test_csv_duration(bpf, prog, tmp_path):
    """--duration ends the trace by itself; the CSV file holds every event
    fired before, text quoted (so the empty label is "").  The -c target
    stops pyusdt while it fires its 400 events (seq_events stop-parent), so
    they are all fired before the trace can end, however slow the machine."""
    out = tmp_path / "trace.csv"
    cli = Cli("trace", "--output", out, "-s", 3, "--str-len", STR_LEN, "--duration", 1,
              "-c", f"{prog} 400 hold stop-parent", "seq:event")
    try:
        cli.p.wait(60)  # a hang fails here; the duration ends the trace
        # The command holds on after the trace, writing to pyusdt's stdout:
        # its pid is its first line.  Killed, it closes the pipes, so every
        # line pyusdt wrote is read before the checks.
        child_pid = int(wait_for_line(cli, r"\d+", running=False))
        os.kill(child_pid, signal.SIGKILL)
    finally:
        cli.kill()
    err = finish(cli)
    assert "fired 400" in cli.out
    err = finish(cli)
    assert f"pyusdt: 400 events written to {out}" in err
    assert csv_rows(out) == expected(400)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[2].split(",")[9] == '""'  # seq 1: the empty label, not a null


def test_jsonl_pid_exits(bpf, prog, tmp_path):
    """Rows reach the file while the trace goes on (flushed at least every
    second); the -p target exiting ends the trace with the file complete."""
    out = tmp_path / "trace.jsonl"
    child, cli = trace_pid(prog, out)
    try:
        fire(child, 250, 250)
        deadline = time.monotonic() + 20
        while len(out.read_text(encoding="utf-8").splitlines()) < 250:
            assert time.monotonic() < deadline, "the rows did not reach the file while tracing"
            time.sleep(0.05)
        assert cli.p.poll() is None
        assert jsonl_rows(out) == expected(250)
        fire(child, 50, 300)
        child.p.stdin.close()  # EOF: the target exits
        assert child.wait() == 0
        cli.p.wait(20)
    finally:
        child.kill()
        cli.kill()
    err = finish(cli, rc=0)
    assert f"pyusdt: process {child.pid} exited during the trace" in err
    assert f"pyusdt: 300 events written to {out}" in err
    assert jsonl_rows(out) == expected(300)


# -- the Python API ------------------------------------------------------------------


def test_writer_flushes_row_groups(bpf, prog, tmp_path):
    """EventWriter(flush_events=100): ten rounds of 100 events, ten row groups."""
    out = tmp_path / "api.parquet"
    child = Child([prog, "0"])
    try:
        assert child.readline() == str(child.pid)
        assert child.readline() == "fired 0"
        with Tracer(str_len=STR_LEN) as t, EventWriter(out, flush_events=100) as w:
            t.attach_pid(child.pid, "seq:event", strings=[3])
            t.start()
            w.begin(t.probes)
            for k in range(10):
                fire(child, 100, 100 * (k + 1))
                for batch in t.drain():
                    w.write(batch)
                assert w.events_written == 100 * (k + 1)
    finally:
        child.kill()
    assert pq.ParquetFile(out).num_row_groups == 10
    assert table_rows(pq.read_table(out)) == expected(1000)


# -- probes found after the file was begun ---------------------------------------------


def test_library_loaded_later(bpf, lib, dlopener, tmp_path):
    """The columns are fixed at the start, from proclib:loaded(int, int, str)
    and proclib:done(int).  proclib:fire(int, long, str), dlopen'ed later, is
    written too: i and label into the columns of the same name; its long
    value fits no int32 column, so it is not written, and a warning says how
    many values were left out."""
    out = tmp_path / "late.jsonl"
    res = subprocess.run([PYUSDT, "trace", "--output", str(out), "-s", "2", "-c",
                          f"{dlopener} {lib} file 0 1000 5 exit", "proclib:*"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    got = [(r["probe"], r["arg0"], r["arg1"], r["arg2"]) for r in rows]
    assert got == ([("proclib:loaded", 1, 5, str(lib))]
                   + [("proclib:fire", i, None, f"dl-{i}") for i in range(5)]
                   + [("proclib:done", 5, None, None)])
    assert list(rows[0]) == ["time", "ts_ns", "probe", "pid", "tid", "cpu", "arg0", "arg1", "arg2",
                             "arg2_truncated"]
    assert ("pyusdt: warning: 5 value(s) of proclib:fire argument arg1 not written to "
            f"{out}: its columns were fixed when the trace began and none holds them") in res.stderr
    assert f"pyusdt: 7 events written to {out}" in res.stderr


# -- bad output ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, message", [
    ("trace.txt", "cannot tell the format of '{path}': name it .parquet, .arrow, .csv or .jsonl"),
    ("trace", "cannot tell the format of '{path}': name it .parquet, .arrow, .csv or .jsonl"),
    ("missing/trace.parquet", "cannot write {path}: No such file or directory"),
    ("adir.csv", "cannot write {path}: it is a directory"),
])
def test_bad_output_path(cli, prog, tmp_path, name, message):
    """One line, exit 1, before anything is attached (the -c command never runs)."""
    path = tmp_path / name
    if name == "adir.csv":
        path.mkdir()
    res = cli("trace", "--output", str(path), "-c", f"{prog} 10 hold", "seq:event")
    assert res.returncode == 1
    assert res.stderr.splitlines() == ["pyusdt: " + message.format(path=path)]
    assert res.stdout == ""  # the command (which prints its pid first) never ran


def test_format_and_output_conflict(cli, prog, tmp_path):
    res = cli("trace", "--output", str(tmp_path / "t.csv"), "--format", "jsonl", "-c", f"{prog} 1 hold")
    assert res.returncode == 2
    assert "--format is for stdout" in res.stderr
    assert not (tmp_path / "t.csv").exists()


def test_attach_failure_leaves_no_file(cli, prog, tmp_path):
    """The file is created before attaching, and removed when the trace never starts."""
    path = tmp_path / "t.parquet"
    res = cli("trace", "--output", str(path), str(prog), "seq:nope")
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"pyusdt: {prog}: no probe matches 'seq:nope'"]
    assert not path.exists()


@pytest.mark.parametrize("ext", ["parquet", "arrow"])
def test_without_pyarrow(prog, tmp_path, ext):
    """pyarrow missing: Parquet and Arrow output fail with one line naming
    the extra (CSV and JSON lines do not need it)."""
    code = ("import sys; sys.modules['pyarrow'] = None\n"
            "from pyusdt.cli.main import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    path = tmp_path / f"t.{ext}"
    res = subprocess.run([sys.executable, "-c", code, "trace", "--output", str(path), "-c",
                          f"{prog} 1 hold", "seq:event"], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 1
    kind = {"parquet": "Parquet", "arrow": "Arrow"}[ext]
    assert res.stderr.splitlines() == [
        f"pyusdt: {kind} output needs pyarrow, which is not installed: pip install 'pyusdt[arrow]'"]
    assert not path.exists()


@pytest.mark.parametrize("ext", ["parquet", "arrow"])
def test_nulls_read_back_as_nullable_integers(bpf, build, cli, tmp_path, ext):
    """multisite:done has no arguments, so its row holds nulls in the int64
    columns arg0 and arg1 that multisite:hit fills.  The schema's pandas
    metadata names their nullable type: plain pd.read_parquet (and Arrow's
    to_pandas) give Int64 with <NA>, not float64."""
    prog = build("args_multisite.c", "args_multisite")
    out = tmp_path / f"t.{ext}"
    res = cli("trace", "--output", str(out), "-c", f"{prog} 2")
    assert res.returncode == 0, res.stderr
    if ext == "parquet":
        df = pd.read_parquet(out)
    else:
        with pa.memory_map(str(out)) as src:
            df = ipc.open_file(src).read_all().to_pandas()
    assert str(df["arg0"].dtype) == "Int64" and str(df["arg1"].dtype) == "Int64"
    rows = [(p, None if pd.isna(a) else int(a), None if pd.isna(b) else int(b))
            for p, a, b in zip(df["probe"], df["arg0"], df["arg1"])]
    assert rows == [("multisite:hit", 1, 0), ("multisite:hit", 2, 0), ("multisite:hit", 2, 1000),
                    ("multisite:hit", 1, 1), ("multisite:hit", 2, 1), ("multisite:hit", 2, 1001),
                    ("multisite:done", None, None)]
