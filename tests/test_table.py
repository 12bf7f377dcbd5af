"""Events as pandas DataFrames and Arrow tables (pyusdt.export.table): every value
exact, whatever its width and sign (int64 min, uint64 max), strings exact
(empty, non-ASCII, cut at str_len, unreadable -> null), column types from the
argument specs, the provider's argument names, wall-clock times, several
batches and several tracers in one table, and aggregations as DataFrames.

The programs are the ones of test_args (args_widths), test_strings
(args_strings), test_provider_described (described_provider.py) and
test_aggregate (agg_values)."""
from __future__ import annotations

import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import pyusdt
from pyusdt import HeldProcess, Tracer
from pyusdt.aggregate.specs import Aggregate, StrArg
from pyusdt.errors import MissingExtraError
from pyusdt.trace.columns import wall_clock_offset_ns
from test_args import ROUNDS, SIGNED_ROWS, UNSIGNED_ROWS, expected_hits
from test_strings import READ, STR_LEN, STRINGS, TRUNCATED

from proc_helpers import Child
from test_aggregate import LABELS, PER_ROUND, read_report, wait_done

FIXED = ["time", "ts_ns", "probe", "pid", "tid", "cpu"]


@pytest.fixture(scope="module")
def widths(build):
    return build("args_widths.c", "args_widths")


@pytest.fixture(scope="module")
def strings_prog(build):
    return build("args_strings.c", "args_strings")


def exact(v):
    """A cell as a plain Python value: int (from numpy, pandas or Decimal), str, None."""
    if v is None or v is pd.NA:
        return None
    if isinstance(v, Decimal):
        assert v == v.to_integral_value()
        return int(v)
    if isinstance(v, (str, bool, np.bool_)):
        return v if isinstance(v, str) else bool(v)
    return int(v)


def pandas_rows(df: pd.DataFrame, columns: list) -> list:
    return [tuple(exact(v) for v in row) for row in zip(*(df[c].tolist() for c in columns))]


def arrow_rows(tbl: pa.Table, columns: list) -> list:
    return [tuple(exact(v) for v in row) for row in zip(*(tbl.column(c).to_pylist() for c in columns))]


def expected_rows(hits: list, ncols: int) -> list:
    """(probe, arg0 .. arg{ncols-1}) with None for the arguments a probe lacks."""
    return [(name, *args, *[None] * (ncols - len(args))) for name, args in hits]


# -- every width and sign ----------------------------------------------------


def test_every_width_and_form_exact(bpf, widths, tmp_path):
    """args_widths, all six probes in one table: values exact in pandas and
    Arrow; each column's type is the narrowest one holding every probe's
    argument (signed and unsigned mixed widen; int64 with uint64 is decimal)."""
    before = time.time_ns()
    with Tracer() as t:
        t.attach_command([str(widths), str(ROUNDS), str(tmp_path / "out")], "args:*")
        t.start()
        batches = list(t.batches(timeout=0.1, duration=20))
    after = time.time_ns()
    df = pyusdt.to_pandas(batches)
    tbl = pyusdt.to_arrow(batches)

    args = [f"arg{i}" for i in range(5)]
    assert list(df.columns) == FIXED + args
    assert tbl.column_names == FIXED + args
    expected = expected_rows(expected_hits(ROUNDS), 5)
    assert pandas_rows(df, ["probe", *args]) == expected
    assert arrow_rows(tbl, ["probe", *args]) == expected
    # Any iterable of batches (a generator, as t.batches() is), or one batch.
    assert pandas_rows(pyusdt.to_pandas(b for b in batches), ["probe", *args]) == expected
    assert arrow_rows(pyusdt.to_arrow(iter(batches)), ["probe", *args]) == expected
    one = batches[0]
    assert pandas_rows(pyusdt.to_pandas(one), ["probe", *args]) == pandas_rows(one.to_pandas(), ["probe", *args])

    # arg0: int8/uint8/int32 (consts)/int64 (indexed) -> int64; arg3: int64 and
    # uint64 -> decimal; arg4: only consts' uint64.
    assert [str(df[c].dtype) for c in args] == ["Int64", "Int64", "Int64", "object", "UInt64"]
    assert [tbl.schema.field(c).type for c in args] == [
        pa.int64(), pa.int64(), pa.int64(), pa.decimal128(20, 0), pa.uint64()]
    assert all(type(v) is int for v in df["arg3"] if v is not None)
    assert str(df["probe"].dtype) == "category"
    assert tbl.schema.field("probe").type == pa.dictionary(pa.int32(), pa.string())
    assert list(df["probe"].cat.categories) == [
        "args:reg_signed", "args:reg_unsigned", "args:mem_signed", "args:mem_unsigned",
        "args:consts", "args:indexed"]

    # pid/tid/cpu/ts_ns as recorded, times on the wall clock.
    raw = np.concatenate([b.array for b in batches])
    for c in ("ts_ns", "pid", "tid", "cpu"):
        assert df[c].dtype == raw.dtype[c]
        assert df[c].tolist() == raw[c].tolist() == tbl.column(c).to_pylist()
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    wall = df["time"].dt.tz_convert(None).to_numpy().astype("datetime64[ns]").astype(np.int64)
    assert (wall - raw["ts_ns"].astype(np.int64) == wall_clock_offset_ns()).all()
    assert before < wall.min() and wall.max() < after
    assert tbl.column("time").cast(pa.int64()).to_pylist() == wall.tolist()


def _path_run(widths, tmp_path, patterns: list) -> list:
    """One Tracer per pattern on the args_widths file; one run; every batch
    of each tracer (the run is over, so drain() holds all)."""
    tracers = [Tracer() for _ in patterns]
    try:
        for t, pattern in zip(tracers, patterns):
            t.attach_path(str(widths), pattern)
            t.start()
        res = subprocess.run([str(widths), str(ROUNDS), str(tmp_path / "out")], timeout=20)
        assert res.returncode == 0
        return [list(t.drain()) for t in tracers]
    finally:
        for t in tracers:
            t.close()


def test_types_follow_the_spec_and_tables_join(bpf, widths, tmp_path):
    """A probe alone: int8..int64 or uint8..uint64 as its spec says, boundary
    values exact.  Batches of two tracers in one table: the columns widen
    without loss (int8+uint8 -> int16, ..., int64+uint64 -> decimal)."""
    signed, unsigned = _path_run(widths, tmp_path, ["args:reg_signed", "args:reg_unsigned"])
    args = [f"arg{i}" for i in range(4)]

    s = pyusdt.to_pandas(signed)
    assert [str(s[c].dtype) for c in args] == ["Int8", "Int16", "Int32", "Int64"]
    assert pandas_rows(s, args) == SIGNED_ROWS * ROUNDS
    u = pyusdt.to_arrow(unsigned)
    assert [u.schema.field(c).type for c in args] == [pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()]
    assert arrow_rows(u, args) == UNSIGNED_ROWS * ROUNDS
    assert pandas_rows(pyusdt.to_pandas(unsigned), args) == UNSIGNED_ROWS * ROUNDS

    both = signed + unsigned
    df = pyusdt.to_pandas(both)
    tbl = pyusdt.to_arrow(both)
    assert [str(df[c].dtype) for c in args] == ["Int16", "Int32", "Int64", "object"]
    assert [tbl.schema.field(c).type for c in args] == [pa.int16(), pa.int32(), pa.int64(),
                                                        pa.decimal128(20, 0)]
    expected = [("args:reg_signed", *r) for r in SIGNED_ROWS * ROUNDS] + \
               [("args:reg_unsigned", *r) for r in UNSIGNED_ROWS * ROUNDS]
    assert pandas_rows(df, ["probe", *args]) == expected
    assert arrow_rows(tbl, ["probe", *args]) == expected
    # One batch alone, through its own methods.
    assert pandas_rows(signed[0].to_pandas(), args) == SIGNED_ROWS * ROUNDS
    assert arrow_rows(unsigned[0].to_arrow(), args) == UNSIGNED_ROWS * ROUNDS


# -- strings -------------------------------------------------------------------


def test_strings_exact(bpf, strings_prog):
    """Empty, plain, non-ASCII, 15- and 16-byte and long strings read with
    str_len=16: the text as read, <col>_truncated where it was cut, null
    (not "") for the NULL pointer of strs:bad."""
    with Tracer(str_len=STR_LEN) as t:
        held = t.attach_command([str(strings_prog), str(ROUNDS)], "strs:all", strings=[1, 2, 3, 4, 5, 6])
        t.attach_command(held, "strs:one", strings=[1])
        t.attach_command(held, "strs:bad", strings=[1])
        t.start()
        batches = list(t.batches(timeout=0.1, duration=20))
    df = pyusdt.to_pandas(batches)
    tbl = pyusdt.to_arrow(batches)

    strs = [f"arg{i}" for i in range(1, 7)]
    assert list(df.columns) == FIXED + ["arg0"] + [x for c in strs for x in (c, c + "_truncated")]
    assert tbl.column_names == list(df.columns)
    assert all(str(df[c].dtype) == "string" and tbl.schema.field(c).type == pa.string() for c in strs)
    assert all(df[c + "_truncated"].dtype == bool for c in strs)

    cols = ["probe", "arg0", "arg1", "arg1_truncated", *strs[1:]] + [c + "_truncated" for c in strs[1:]]
    expected = []
    for r in range(ROUNDS):
        expected.append(("strs:all", r, READ[0], False, *READ[1:], *[i in TRUNCATED for i in range(1, 6)]))
        for i in range(len(STRINGS)):
            expected.append(("strs:one", i, READ[i], i in TRUNCATED, *[None] * 5, *[False] * 5))
        expected.append(("strs:bad", r, None, False, *[None] * 5, *[False] * 5))
    assert pandas_rows(df, cols) == expected
    assert arrow_rows(tbl, cols) == expected
    assert READ[0] == "" and READ[2] == "h\u00e9llo \u2713" and TRUNCATED == [4, 5]
    # arg0 is a long in strs:all and strs:bad, a size_t in strs:one: no 64-bit
    # integer type holds both, so the column is exact decimal / Python ints.
    assert tbl.schema.field("arg0").type == pa.decimal128(20, 0)


# -- a provider's argument names ---------------------------------------------------

PROVIDER = Path(__file__).parent / "programs" / "described_provider.py"


def test_provider_argument_names(bpf):
    """A self-describing provider names the columns and types them:
    count int32, msg string (decoded without being asked), big uint64."""
    app = Child([sys.executable, PROVIDER])
    try:
        pid = int(app.readline())
        assert app.readline() == "ready"
        with Tracer() as t:
            t.attach_pid(pid, "describedapp:*")
            t.start()
            app.send("5")
            assert app.readline() == "fired 5"
            batches = []
            deadline = time.monotonic() + 10
            while sum(len(b) for b in batches) < 5 and time.monotonic() < deadline:
                batches.append(t.poll(0.1))
            batches += list(t.drain())
    finally:
        app.kill()
    df = pyusdt.to_pandas(batches)
    tbl = pyusdt.to_arrow(batches)
    assert list(df.columns) == FIXED + ["count", "msg", "msg_truncated", "big"]
    assert [str(df[c].dtype) for c in ("count", "msg", "big")] == ["Int32", "string", "UInt64"]
    assert [tbl.schema.field(c).type for c in ("count", "msg", "big")] == [pa.int32(), pa.string(), pa.uint64()]
    expected = [("describedapp:hello", -i, f"héllo {i}", False, 2**64 - 1 - i) for i in range(5)]
    cols = ["probe", "count", "msg", "msg_truncated", "big"]
    assert pandas_rows(df, cols) == expected
    assert arrow_rows(tbl, cols) == expected
    assert set(df["pid"]) == {pid}


# -- edge cases -----------------------------------------------------------------


def test_empty_and_zero_row_batches(bpf, widths, tmp_path):
    """No batches: the fixed columns, no rows.  A batch without rows: the
    columns of every probe its tracer knows."""
    assert list(pyusdt.to_pandas([]).columns) == FIXED
    assert pyusdt.to_arrow([]).num_rows == 0
    with Tracer() as t:
        t.attach_path(str(widths), "args:consts")
        t.start()
        empty = t.poll(0)
        assert len(empty) == 0
        df = empty.to_pandas()
        tbl = empty.to_arrow()
    assert len(df) == 0 and list(df.columns) == FIXED + [f"arg{i}" for i in range(5)]
    assert [str(df[f"arg{i}"].dtype) for i in range(5)] == ["Int32"] * 3 + ["Int64", "UInt64"]
    assert tbl.num_rows == 0 and tbl.column_names == list(df.columns)


# -- aggregations -----------------------------------------------------------------


@pytest.fixture(scope="module")
def values_prog(build):
    return build("agg_values.c", "agg_values")


def test_aggregation_to_pandas(bpf, values_prog, tmp_path):
    """hist per string key: one row per non-empty bucket with bpftrace's
    label and exact counts; count per probe; stats: value, count, sum, min,
    max, avg as the workload computed them."""
    report_path = tmp_path / "report.txt"
    hist = Aggregate("hist", value=1, key=StrArg(2))
    count = Aggregate("count", key="probe")
    stats = Aggregate("stats", value=1, key=StrArg(2))
    held = HeldProcess([str(values_prog), "-r", "2", "-o", str(report_path)])
    with Tracer() as t:
        t.attach_command(held, "agg:value", aggregate=hist)
        t.attach_command(held, "agg:*", aggregate=count)
        t.attach_command(held, "agg:value", aggregate=stats)
        t.start()
        wait_done(t)
        results = [t.aggregation(a) for a in (hist, count, stats)]
    report = read_report(report_path)

    h = results[0].to_pandas()
    assert list(h.columns) == ["key", "bucket", "label", "lower", "upper", "count"]
    assert h["count"].dtype == np.int64
    assert h["count"].sum() == 2 * PER_ROUND
    for label in LABELS:
        mine = h[h["key"] == label]
        hist_k = results[0].hist(label)
        nz = np.flatnonzero(hist_k.counts)
        assert mine["bucket"].tolist() == nz.tolist()
        assert mine["count"].tolist() == hist_k.counts[nz].tolist()
        assert mine["label"].tolist() == [hist_k.labels[i] for i in nz]
        assert mine["lower"].tolist() == hist_k.lower[nz].tolist()
        assert mine["count"].sum() == report.labels[label][0]
    assert h.attrs["counters"]["hits"] == 2 * PER_ROUND

    c = results[1].to_pandas()
    assert list(c.columns) == ["key", "count"]
    assert dict(zip(c["key"], c["count"])) == {"agg:value": 2 * PER_ROUND, "agg:other": report.other}

    s = results[2].to_pandas()
    assert list(s.columns) == ["key", "value", "count", "sum", "min", "max", "avg"]
    got = {k: tuple(int(x) for x in row) for k, *row in
           zip(s["key"], s["count"], s["sum"], s["min"], s["max"], s["avg"])}
    assert got == {label: report.labels[label] for label in LABELS}
    assert s["value"].tolist() == s["avg"].tolist()


# -- without the extras -----------------------------------------------------------


@pytest.mark.parametrize("blocked, call, extra", [
    ("pandas", "pyusdt.to_pandas([])", "pandas"),
    ("pyarrow", "pyusdt.to_arrow([])", "arrow"),
])
def test_missing_package_is_one_clear_error(blocked, call, extra, tmp_path):
    """pyusdt imports without pandas and pyarrow; converting then raises
    MissingExtraError naming the pip command."""
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"
            "import pyusdt\n"
            "from pyusdt.errors import MissingExtraError\n"
            f"try:\n    {call}\nexcept MissingExtraError as e:\n    print(e)\n")
    # From another directory: the installed package, not the source tree.
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().endswith(f"pip install 'pyusdt[{extra}]'"), res.stdout
    assert len(res.stdout.strip().splitlines()) == 1
    assert issubclass(MissingExtraError, ImportError)


# -- the type rules, without BPF ------------------------------------------------------


def test_column_type_rules():
    """The lossless widening rules of pyusdt.trace.columns, and which values a
    column fixed earlier can take (a probe found later)."""
    from pyusdt.trace.columns import Column, Source

    def kind(*sources):
        col = Column.for_sources("c", [Source(False, signed, size) if size else Source(True)
                                       for signed, size in sources])
        return col.kind if col.kind != "int" else str(col.dtype)

    assert kind((True, 1)) == "int8" and kind((False, 8)) == "uint64"
    assert kind((True, 1), (True, 4)) == "int32"
    assert kind((True, 1), (False, 1)) == "int16"
    assert kind((True, 2), (False, 4)) == "int64"
    assert kind((True, 8), (False, 1)) == "int64"
    assert kind((True, 1), (False, 8)) == "bigint"
    assert kind((True, 4), (False, 0)) == "str"  # a string and an integer: text

    int32 = Column.for_sources("c", [Source(False, True, 4)])
    assert int32.accepts(Source(False, True, 2)) and int32.accepts(Source(False, False, 2))
    assert not int32.accepts(Source(False, False, 4)) and not int32.accepts(Source(False, True, 8))
    assert not int32.accepts(Source(True))
    assert Column("c", "str").accepts(Source(False, False, 8))
    assert Column("c", "bigint").accepts(Source(False, False, 8))


def test_string_slot_decoding():
    """One decode for NUL-padded slots; slot by slot when one holds bytes
    after its NUL; invalid UTF-8 becomes U+FFFD either way."""
    from pyusdt.trace.columns import _decode_slots
    from pyusdt.trace.events import decode_c_string

    clean = [b"", b"abc", "h\u00e9".encode(), b"cut\xe2\x9c"]
    assert _decode_slots(clean) == ["", "abc", "h\u00e9", "cut\ufffd"] == [decode_c_string(b) for b in clean]
    dirty = [b"ab\0old", b"x", b"\xff"]
    assert _decode_slots(dirty) == ["ab", "x", "\ufffd"]
    assert _decode_slots([]) == []
