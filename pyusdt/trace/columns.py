"""A batch's records as typed columns (numpy), and those columns as a pandas
DataFrame or an Arrow table: what batch.to_pandas(), pyusdt.to_pandas() and
the file writers (pyusdt.export.files) all build on.

pandas and pyarrow are imported only when a table is asked for (extras
``pyusdt[pandas]`` and ``pyusdt[arrow]``); each works without the other.

Columns, in this order:

- ``time``: wall-clock time of the hit, UTC, nanoseconds (pandas
  ``datetime64[ns, UTC]``, Arrow ``timestamp[ns, tz=UTC]``).  The kernel
  stamps events with CLOCK_MONOTONIC (``bpf_ktime_get_ns``); the offset to
  CLOCK_REALTIME is measured once per process (:func:`wall_clock_offset_ns`),
  so times of one process stay consistent even if the clock is stepped later.
- ``ts_ns``: the kernel's CLOCK_MONOTONIC timestamp, as recorded (uint64).
- ``probe``: ``provider:name`` (pandas category, Arrow dictionary<int32, string>).
- ``pid``, ``tid``, ``cpu``: uint32.
- with cgroup, container and object targets, and pid targets in a
  container: ``ns_pid`` (uint32, the pid in the process's own namespace),
  ``container`` (the full container id, a string; null outside one) and
  ``cgroup`` (its cgroup v2 path).
- one column per argument name, in order of first appearance: the names a
  self-describing provider gave (:attr:`pyusdt.Probe.arg_names`), otherwise
  ``arg0``..``argN``; a name clashing with the columns above gets an ``arg_``
  prefix.  Probes with an argument of the same name share its column; rows
  of probes without it hold null.
- ``<name>_truncated`` (bool) after each column holding strings: the string
  was cut at the tracer's ``str_len``.

Argument types come from the argument specs, never from the values:

- an integer column has the width and sign of its argument (int8 .. uint64;
  pandas nullable ``Int8`` .. ``UInt64``), so int64 min and uint64 max stay
  exact;
- when probes sharing a column disagree, the column widens losslessly:
  signed and unsigned mixed become the smallest signed type holding both
  (int8 and uint8 -> int16); signed mixed with uint64, which no 64-bit type
  holds, becomes Arrow ``decimal128(20, 0)`` / a pandas object column of
  Python ints; integers mixed with strings become strings (decimal text);
- strings are decoded as UTF-8 up to the first NUL, undecodable bytes
  replaced (U+FFFD): pandas ``string``, Arrow ``string``.

A value the kernel could not read (a NULL string pointer, an unmapped
address) is null; its probe, pid and the rest of the row are kept.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from pyusdt import _native
from pyusdt.extras import require
from pyusdt.trace.record_layout import decode_c_string
from pyusdt.trace.wall_clock import wall_clock_offset_ns

if TYPE_CHECKING:  # pragma: no cover - type names only
    import pandas
    import pyarrow

    from pyusdt.trace.events import EventBatch, TracedProbe

FIXED_COLUMNS = ("time", "ts_ns", "probe", "pid", "tid", "cpu")
# After the fixed columns when the batches know who their processes are.
IDENTITY_COLUMNS = ("ns_pid", "container", "cgroup")
TRUNCATED_SUFFIX = "_truncated"



_INT_DTYPES = {(True, 1): np.int8, (True, 2): np.int16, (True, 4): np.int32, (True, 8): np.int64,
               (False, 1): np.uint8, (False, 2): np.uint16, (False, 4): np.uint32, (False, 8): np.uint64}

# -- the layout: columns and how each probe fills them --------------------------


@dataclass(frozen=True)
class Source:
    """One probe argument as read: a string, or an integer of a size and sign."""

    is_str: bool
    signed: bool = False
    size: int = 8
    is_stack: bool = False  # a user stack, shown folded (a string column)


def _int_column_dtype(sources: Sequence[Source]) -> Optional[np.dtype]:
    """The narrowest numpy integer type holding every source exactly; None when
    no 64-bit type does (int64 and uint64 together)."""
    signed = max((s.size for s in sources if s.signed), default=0)
    unsigned = max((s.size for s in sources if not s.signed), default=0)
    if not signed:
        return np.dtype(_INT_DTYPES[(False, unsigned)])
    if not unsigned:
        return np.dtype(_INT_DTYPES[(True, signed)])
    size = max(signed, 2 * unsigned)
    return np.dtype(_INT_DTYPES[(True, size)]) if size <= 8 else None


@dataclass
class Column:
    """One argument column of an event table."""

    name: str
    kind: str  # "int" (numpy dtype), "bigint" (int64 and uint64 mixed) or "str"
    dtype: Optional[np.dtype] = None  # for "int"
    truncated: Optional[str] = None  # the companion bool column of a string column

    @classmethod
    def for_sources(cls, name: str, sources: Sequence[Source]) -> "Column":
        if any(s.is_str for s in sources):
            return cls(name, "str")
        dtype = _int_column_dtype(sources)
        return cls(name, "bigint") if dtype is None else cls(name, "int", dtype)

    def accepts(self, src: Source) -> bool:
        """Whether every value of `src` fits this column exactly."""
        if self.kind == "str":
            return True
        if src.is_str:
            return False
        if self.kind == "bigint":
            return True
        return _int_column_dtype([src, *self._as_sources()]) == self.dtype

    def _as_sources(self) -> list[Source]:
        assert self.dtype is not None
        return [Source(False, self.dtype.kind == "i", self.dtype.itemsize)]


@dataclass
class _Plan:
    """Where one traced probe's values go: its category code, and per argument
    (argument index, column index, source)."""

    code: int
    args: list[tuple[int, int, Source]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # argument names without a column


def _sources(tp: TracedProbe) -> list[Source]:
    return [Source(True, is_stack=True) if v.is_stack else Source(True) if v.is_str
            else Source(False, v.signed, v.size) for v in tp.values]


def _column_names(tp: TracedProbe) -> list[str]:
    return [f"arg_{n}" if n in FIXED_COLUMNS else n for n in tp.value_names]


class Layout:
    """The columns of an event table, and how each traced probe fills them.

    Built from the probes known when it is made.  It is then fixed: a probe
    met later (a library loaded during the trace) has its arguments put in
    the columns of the same name when they hold its values exactly; the rest
    of its arguments are not stored and are counted in :attr:`dropped`.
    """

    def __init__(self, probes: Iterable[TracedProbe], identities: bool = False):
        probes = list(probes)
        self.identities = identities  # the ns_pid and container columns
        sources: Dict[str, list[Source]] = {}
        self.categories: List[str] = []
        for tp in probes:
            if tp.fullname not in self.categories:
                self.categories.append(tp.fullname)
            for name, src in zip(_column_names(tp), _sources(tp)):
                sources.setdefault(name, []).append(src)
        self.columns = [Column.for_sources(name, srcs) for name, srcs in sources.items()]
        taken = set(FIXED_COLUMNS) | set(sources) | (set(IDENTITY_COLUMNS) if identities else set())
        for col in self.columns:
            if col.kind == "str":
                name = col.name + TRUNCATED_SUFFIX
                while name in taken:  # an argument already has that name
                    name += "_"
                taken.add(name)
                col.truncated = name
        self._index = {c.name: i for i, c in enumerate(self.columns)}
        self._plans: Dict[int, Tuple[TracedProbe, _Plan]] = {}
        #: (probe name, argument name) -> values not stored (no column holds them).
        self.dropped: Dict[Tuple[str, str], int] = {}

    @property
    def names(self) -> List[str]:
        """Every column name, in table order."""
        out = list(FIXED_COLUMNS) + (list(IDENTITY_COLUMNS) if self.identities else [])
        for col in self.columns:
            out.append(col.name)
            if col.truncated:
                out.append(col.truncated)
        return out

    def plan(self, tp: TracedProbe) -> _Plan:
        known = self._plans.get(id(tp))
        if known is not None and known[0] is tp:
            return known[1]
        if tp.fullname not in self.categories:
            self.categories.append(tp.fullname)
        plan = _Plan(self.categories.index(tp.fullname))
        for i, (name, src) in enumerate(zip(_column_names(tp), _sources(tp))):
            ci = self._index.get(name)
            if ci is not None and self.columns[ci].accepts(src):
                plan.args.append((i, ci, src))
            else:
                plan.dropped.append(name)
        self._plans[id(tp)] = (tp, plan)
        return plan

    def arrow_schema(self) -> "pyarrow.Schema":
        pa = require("pyarrow", "Arrow output")
        fields = [pa.field("time", pa.timestamp("ns", tz="UTC"), nullable=False),
                  pa.field("ts_ns", pa.uint64(), nullable=False),
                  pa.field("probe", pa.dictionary(pa.int32(), pa.string()), nullable=False),
                  pa.field("pid", pa.uint32(), nullable=False),
                  pa.field("tid", pa.uint32(), nullable=False),
                  pa.field("cpu", pa.uint32(), nullable=False)]
        if self.identities:
            fields += [pa.field("ns_pid", pa.uint32()), pa.field("container", pa.string()),
                       pa.field("cgroup", pa.string())]
        for col in self.columns:
            fields.append(pa.field(col.name, _arrow_type(pa, col)))
            if col.truncated:
                fields.append(pa.field(col.truncated, pa.bool_(), nullable=False))
        return pa.schema(fields, metadata={"pandas": _pandas_metadata(self.columns)})


def _pandas_metadata(columns: Sequence[Column]) -> str:
    """The schema's "pandas" metadata, naming the nullable integer type of each
    integer column: pyarrow's to_pandas(), and so pd.read_parquet(), then gives
    Int8 .. UInt64 columns with <NA> where a value was unreadable, instead of
    float64 (which cannot hold a uint64 exactly)."""
    import json

    meta = [{"name": c.name, "field_name": c.name, "pandas_type": dtype.name,
             "numpy_type": dtype.name.capitalize().replace("Uint", "UInt"), "metadata": None}
            for c in columns if c.kind == "int" and (dtype := c.dtype) is not None]
    return json.dumps({"index_columns": [], "column_indexes": [], "columns": meta,
                       "creator": {"library": "pyusdt"}})


def _arrow_type(pa: Any, col: Column) -> Any:
    if col.kind == "str":
        return pa.string()
    if col.kind == "bigint":
        return pa.decimal128(20, 0)  # 20 digits: uint64 max and int64 min both fit
    return pa.from_numpy_dtype(col.dtype)


# -- decoding: numpy columns, independent of pandas and Arrow ---------------------


@dataclass
class Decoded:
    """Batches decoded into one set of numpy columns, following a Layout.

    values[i] and valid[i] belong to layout.columns[i]: a numpy integer array
    (an "int" column) or an object array of ints / strs (None where invalid);
    truncated[i] is a bool array for string columns, else None."""

    layout: Layout
    time: np.ndarray
    ts_ns: np.ndarray
    codes: np.ndarray
    pid: np.ndarray
    tid: np.ndarray
    cpu: np.ndarray
    values: list[np.ndarray]  # per column
    valid: list[np.ndarray]
    truncated: list[Optional[np.ndarray]]  # for string columns
    # layout.identities: ns pids (valid where ns_pid_valid) and container ids (None: none)
    ns_pid: Optional[np.ndarray] = None
    ns_pid_valid: Optional[np.ndarray] = None
    container: Optional[np.ndarray] = None
    cgroup: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return len(self.ts_ns)


def layout_of(batches: Sequence[EventBatch]) -> Layout:
    """A layout with a column for every argument of every probe the batches know."""
    seen: Dict[int, TracedProbe] = {}
    for b in batches:
        for tp in b.probes:
            seen.setdefault(id(tp), tp)
    return Layout(seen.values(), identities=any(b.processes is not None for b in batches))


def decode(batches: Sequence[EventBatch], layout: Optional[Layout] = None,
           clock_offset_ns: Optional[int] = None) -> Decoded:
    """Decodes batches into numpy columns (see :class:`Decoded`)."""
    if layout is None:
        layout = layout_of(batches)
    offset = wall_clock_offset_ns() if clock_offset_ns is None else clock_offset_ns
    n = sum(len(b) for b in batches)
    values, valid, truncated = [], [], []
    for col in layout.columns:
        values.append(np.zeros(n, dtype=col.dtype) if col.kind == "int" else np.full(n, None, dtype=object))
        valid.append(np.zeros(n, dtype=bool))
        truncated.append(np.zeros(n, dtype=bool) if col.kind == "str" else None)
    ts = np.zeros(n, dtype=np.uint64)
    codes = np.zeros(n, dtype=np.int32)
    ids3 = {k: np.zeros(n, dtype=np.uint32) for k in ("pid", "tid", "cpu")}
    start = 0
    for batch in batches:
        arr = batch.array
        m = len(arr)
        if not m:
            continue
        ts[start:start + m] = arr["ts_ns"]
        for k, dest in ids3.items():
            dest[start:start + m] = arr[k]
        probe_ids = arr["probe_id"]
        for probe_id in np.unique(probe_ids):
            tp = batch.probes[int(probe_id)]
            plan = layout.plan(tp)
            local = np.flatnonzero(probe_ids == probe_id)
            count = len(local)
            where: Union[np.ndarray, slice] = local
            rows: Union[np.ndarray, slice] = local + start
            if count == m:  # one probe in the batch (the usual case): slices, not gathers
                where, rows = slice(None), slice(start, start + m)
            codes[rows] = plan.code
            for name in plan.dropped:
                key = (tp.fullname, name)
                layout.dropped[key] = layout.dropped.get(key, 0) + count
            flags = arr["flags"][where]
            for i, ci, src in plan.args:
                if src.is_stack:
                    _fill_stacks(batch, arr, where, rows, flags, i, values[ci], valid[ci], truncated[ci])
                    continue
                _fill(layout.columns[ci], src, tp, arr, where, rows, flags, i,
                      values[ci], valid[ci], truncated[ci])
        start += m
    wall = ts.astype(np.int64) + np.int64(offset)
    out = Decoded(layout, wall, ts, codes, ids3["pid"], ids3["tid"], ids3["cpu"], values, valid, truncated)
    if layout.identities:
        _fill_identities(out, batches)
    return out


def _fill_identities(d: Decoded, batches: Sequence[EventBatch]) -> None:
    """The ns_pid and container columns, from each batch's process table."""
    n = len(d)
    d.ns_pid = np.zeros(n, dtype=np.uint32)
    d.ns_pid_valid = np.zeros(n, dtype=bool)
    d.container = np.full(n, None, dtype=object)
    d.cgroup = np.full(n, None, dtype=object)
    start = 0
    for batch in batches:
        m = len(batch)
        table = batch.processes
        if table is not None and m:
            for pid in np.unique(batch.array["pid"]):
                who = table.identity(int(pid))
                rows = start + np.flatnonzero(batch.array["pid"] == pid)
                if who.ns_pid is not None:
                    d.ns_pid[rows] = who.ns_pid
                    d.ns_pid_valid[rows] = True
                d.container[rows] = who.container
                d.cgroup[rows] = who.cgroup
        start += m


def _fill(col: Column, src: Source, tp: TracedProbe, arr: np.ndarray, local: Union[np.ndarray, slice],
          rows: Union[np.ndarray, slice], flags: np.ndarray,
          i: int, values: np.ndarray, valid: np.ndarray, truncated: Optional[np.ndarray]) -> None:
    """Writes argument `i` of one probe's records (`local` in the batch,
    `rows` in the table: index arrays or slices) into its column."""
    ok = (flags >> np.uint32(_native.FLAG_READ_FAIL_SHIFT + i)) & 1 == 0
    valid[rows] = ok
    if src.is_str:
        slot = tp.strings.index(i)
        texts: list[Optional[str]] = list(_decode_slots(arr["strings"][local, slot].tolist()))
        if not ok.all():
            texts = [t if good else None for t, good in zip(texts, ok.tolist())]
        values[rows] = _objects(texts)
        assert truncated is not None  # a string column has its truncated flags
        truncated[rows] = (flags >> np.uint32(_native.FLAG_STR_TRUNC_SHIFT + i)) & 1 == 1
        return
    raw = arr["args"][local, i]
    ints = raw.view(np.int64) if src.signed else raw  # the kernel extended it by width and sign
    if col.kind == "int":
        values[rows] = np.where(ok, ints, 0)  # lossless: the column's type holds the spec's
    else:
        text = col.kind == "str"
        values[rows] = _objects([(str(v) if text else v) if good else None
                                 for v, good in zip(ints.tolist(), ok.tolist())])


def _fill_stacks(batch: EventBatch, arr: np.ndarray, local: Union[np.ndarray, slice],
                 rows: Union[np.ndarray, slice], flags: np.ndarray, i: int, values: np.ndarray,
                 valid: np.ndarray, truncated: Optional[np.ndarray]) -> None:
    """Writes user stack field `i` (ustack) as folded text, outermost frame first."""
    ok = (flags >> np.uint32(_native.FLAG_READ_FAIL_SHIFT + i)) & 1 == 0
    valid[rows] = ok
    raw = arr["args"][local, i].tolist()
    stacks = batch.stacks
    texts = [stacks.stack(int(v)).folded() if stacks is not None and good else None
             for v, good in zip(raw, ok.tolist())]
    values[rows] = _objects(texts)
    if truncated is not None:
        truncated[rows] = False


def _decode_slots(raw: List[bytes]) -> List[str]:
    """decode_c_string of every slot, in one decode when no slot has bytes
    after its NUL (numpy already dropped the NUL padding): NUL never occurs
    inside a UTF-8 sequence, so joining on it and splitting the text gives
    the same strings, replacement characters included."""
    joined = b"\0".join(raw)
    if joined.count(b"\0") != len(raw) - 1:
        return [decode_c_string(b) for b in raw]
    return joined.decode("utf-8", errors="replace").split("\0")


def _objects(items: Sequence[object]) -> np.ndarray:
    """An object array of exactly these Python objects (numpy would otherwise
    turn a list of strs into fixed-width numpy strings first)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


# -- Arrow --------------------------------------------------------------------


def decoded_to_arrow(d: Decoded) -> "pyarrow.Table":
    """The Arrow table of decoded columns (schema: Layout.arrow_schema())."""
    pa = require("pyarrow", "Arrow conversion")
    schema = d.layout.arrow_schema()
    arrays = [
        pa.array(d.time, type=pa.timestamp("ns", tz="UTC")),
        pa.array(d.ts_ns, type=pa.uint64()),
        pa.DictionaryArray.from_arrays(pa.array(d.codes, type=pa.int32()),
                                       pa.array(d.layout.categories, type=pa.string())),
        pa.array(d.pid, type=pa.uint32()),
        pa.array(d.tid, type=pa.uint32()),
        pa.array(d.cpu, type=pa.uint32()),
    ]
    if d.layout.identities:
        assert d.ns_pid is not None and d.ns_pid_valid is not None and d.container is not None
        arrays += [pa.array(d.ns_pid, type=pa.uint32(), mask=~d.ns_pid_valid),
                   pa.array(d.container, type=pa.string()), pa.array(d.cgroup, type=pa.string())]
    for col, vals, ok, trunc in zip(d.layout.columns, d.values, d.valid, d.truncated):
        if col.kind == "int":
            arrays.append(pa.array(vals, type=_arrow_type(pa, col), mask=~ok))
        else:
            arrays.append(pa.array(vals, type=_arrow_type(pa, col)))
        if trunc is not None:
            arrays.append(pa.array(trunc, type=pa.bool_()))
    return pa.Table.from_arrays(arrays, schema=schema)


# -- pandas -------------------------------------------------------------------


def decoded_to_pandas(d: Decoded) -> "pandas.DataFrame":
    pd = require("pandas", "pandas conversion")
    data = {
        "time": pd.Series(d.time.view("datetime64[ns]")).dt.tz_localize("UTC"),
        "ts_ns": d.ts_ns,
        "probe": pd.Categorical.from_codes(d.codes, categories=d.layout.categories),
        "pid": d.pid,
        "tid": d.tid,
        "cpu": d.cpu,
    }
    if d.layout.identities:
        assert d.ns_pid is not None and d.ns_pid_valid is not None and d.container is not None
        data["ns_pid"] = pd.arrays.IntegerArray(d.ns_pid, ~d.ns_pid_valid)
        data["container"] = pd.array(d.container, dtype=pd.StringDtype())
        data["cgroup"] = pd.array(d.cgroup, dtype=pd.StringDtype())
    for col, vals, ok, trunc in zip(d.layout.columns, d.values, d.valid, d.truncated):
        if col.kind == "int":
            data[col.name] = pd.arrays.IntegerArray(vals, ~ok)
        elif col.kind == "str":
            data[col.name] = pd.array(vals, dtype=pd.StringDtype())
        else:
            data[col.name] = pd.Series(vals, dtype=object)
        if trunc is not None and col.truncated is not None:
            data[col.truncated] = trunc
    return pd.DataFrame(data)


