"""Writing events to a file as they arrive: Parquet, Arrow IPC, CSV, JSON lines.

    with EventWriter("trace.parquet") as w:   # the format is the extension's
        t.start()
        w.begin(t.probes)                      # the columns are fixed here
        for batch in t.batches():
            w.write(batch)

or ``record(tracer, writer)``, which also stops cleanly on SIGINT/SIGTERM
(what ``pyusdt trace --output FILE`` runs).

Rows are the columns of :mod:`pyusdt.trace.columns`.  They are buffered and written
every ``flush_events`` events or ``flush_seconds`` seconds, whichever comes
first (a Parquet row group, an Arrow record batch, or lines of text), and the
file is completed on close().  Only a SIGKILL (or a crash) leaves a Parquet
or Arrow file without its footer; CSV and JSON lines files hold every row
flushed before.

The columns are fixed when the writer begins, from the probes attached then.
A probe found later (a library the target loads during the trace) is written
with the others: its name joins the ``probe`` column, and its arguments go
into the columns of the same name when those hold them exactly.  Arguments
without such a column are not written; they are counted in
:attr:`EventWriter.dropped` (``pyusdt trace`` prints a warning).

Formats:

- ``.parquet``: one row group per flush; the Arrow schema is stored with it,
  so pandas and pyarrow read back the same types (needs pyarrow).
- ``.arrow``: an Arrow IPC *file* (random access; ``pyarrow.ipc.open_file``),
  one record batch per flush, new probe names as dictionary deltas (needs
  pyarrow).
- ``.csv``: a header line, then one line per event, UTF-8.  Text (times,
  probe names, strings) is always quoted, so an empty field is a null value
  and ``""`` an empty string; booleans are ``true``/``false``; times are
  ISO 8601 UTC with nanoseconds (``2024-05-01T12:00:00.123456789Z``).
- ``.jsonl``: one JSON object per event with every column as a key (null
  where there is no value); integers exact, times as in CSV.  (The stdout
  ``--format jsonl`` of ``pyusdt trace`` keeps its own shape: args as a list.)
"""
from __future__ import annotations

import json
import os
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar

from pyusdt.errors import OutputError
from pyusdt.export.paths import OutputPath
from pyusdt.export.text import iso_times
from pyusdt.extras import require
from pyusdt.trace.columns import Decoded, Layout, decode, decoded_to_arrow
from pyusdt.trace.events import EventBatch, TracedProbe
from pyusdt.trace.loop import stream
from pyusdt.trace.loss_report import LossReport
from pyusdt.trace.stop_signals import StopSignals

if TYPE_CHECKING:  # pragma: no cover - type names only
    from pyusdt.trace.tracer import Tracer

_T = TypeVar("_T")
FORMATS = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".jsonl": "jsonl"}
NEEDS_PYARROW = ("parquet", "arrow")
FLUSH_EVENTS = 65536
FLUSH_SECONDS = 1.0


def format_of(path: OutputPath) -> str:
    """The output format of a file name, from its extension."""
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in FORMATS:
        raise OutputError(f"cannot tell the format of {os.fspath(path)!r}: "
                          f"name it .parquet, .arrow, .csv or .jsonl")
    return FORMATS[ext]



def _rows(d: Decoded) -> Tuple[List[str], Iterable[Tuple[object, ...]]]:
    """Column names and row tuples of plain Python values (None for null)."""
    cats = d.layout.categories
    cols: List[List[Any]] = [iso_times(d.time.tolist()), d.ts_ns.tolist(), [cats[c] for c in d.codes.tolist()],
                  d.pid.tolist(), d.tid.tolist(), d.cpu.tolist()]
    if d.layout.identities:
        assert d.ns_pid is not None and d.ns_pid_valid is not None and d.container is not None
        cols.append([v if good else None for v, good in zip(d.ns_pid.tolist(), d.ns_pid_valid.tolist())])
        cols.append(d.container.tolist())
        cols.append(d.cgroup.tolist() if d.cgroup is not None else [None] * len(d))
    for _col, vals, ok, trunc in zip(d.layout.columns, d.values, d.valid, d.truncated):
        cols.append([v if good else None for v, good in zip(vals.tolist(), ok.tolist())])
        if trunc is not None:
            cols.append(trunc.tolist())
    return d.layout.names, zip(*cols)


# -- one writer per format ------------------------------------------------------


class _Sink:
    def __init__(self, path: str, layout: Layout):
        self.path = path
        self.layout = layout

    def write(self, d: Decoded) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _ParquetSink(_Sink):
    def __init__(self, path: str, layout: Layout):
        super().__init__(path, layout)
        pq = require("pyarrow.parquet", "Parquet output")
        self._writer = pq.ParquetWriter(path, layout.arrow_schema())

    def write(self, d: Decoded) -> None:
        self._writer.write_table(decoded_to_arrow(d), row_group_size=max(len(d), 1))

    def close(self) -> None:
        self._writer.close()


class _ArrowSink(_Sink):
    def __init__(self, path: str, layout: Layout):
        super().__init__(path, layout)
        pa = require("pyarrow", "Arrow output")
        ipc = require("pyarrow.ipc", "Arrow output")
        self._file = pa.OSFile(path, "wb")
        # Probe names found later extend the dictionary: deltas keep it one
        # dictionary, which is what the IPC file format allows.
        options = ipc.IpcWriteOptions(emit_dictionary_deltas=True)
        self._writer = ipc.new_file(self._file, layout.arrow_schema(), options=options)

    def write(self, d: Decoded) -> None:
        for rb in decoded_to_arrow(d).to_batches():
            self._writer.write_batch(rb)

    def close(self) -> None:
        try:
            self._writer.close()
        finally:
            self._file.close()


def _csv_field(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return '"' + str(v).replace('"', '""') + '"'


class _CsvSink(_Sink):
    def __init__(self, path: str, layout: Layout):
        super().__init__(path, layout)
        self._file = open(path, "w", encoding="utf-8", newline="")
        self._file.write(",".join(layout.names) + "\n")
        self._file.flush()

    def write(self, d: Decoded) -> None:
        _, rows = _rows(d)
        self._file.write("".join(",".join(map(_csv_field, row)) + "\n" for row in rows))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class _JsonlSink(_Sink):
    def __init__(self, path: str, layout: Layout):
        super().__init__(path, layout)
        self._file = open(path, "w", encoding="utf-8")

    def write(self, d: Decoded) -> None:
        names, rows = _rows(d)
        self._file.write("".join(json.dumps(dict(zip(names, row)), ensure_ascii=False) + "\n"
                                 for row in rows))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


_SINKS = {"parquet": _ParquetSink, "arrow": _ArrowSink, "csv": _CsvSink, "jsonl": _JsonlSink}


# -- the writer ---------------------------------------------------------------


class EventWriter:
    """Writes event batches to `path` as they arrive; the format is the extension's.

    The constructor checks everything that can be checked before tracing: the
    extension, pyarrow for .parquet/.arrow (MissingExtraError), and that the
    file can be created (OutputError); it creates the file.  begin(probes)
    fixes the columns; write(batch) buffers; close() writes what is left and
    completes the file.  Used as a context manager it closes on exit.
    """

    def __init__(self, path: OutputPath, *, flush_events: int = FLUSH_EVENTS,
                 flush_seconds: float = FLUSH_SECONDS):
        self.path = os.fspath(path)
        self.format = format_of(self.path)
        if self.format in NEEDS_PYARROW:
            require("pyarrow", f"{self.format.capitalize()} output")
        if flush_events < 1 or flush_seconds <= 0:
            raise OutputError("flush_events must be at least 1 and flush_seconds positive")
        self.flush_events = flush_events
        self.flush_seconds = flush_seconds
        if os.path.isdir(self.path):
            raise OutputError(f"cannot write {self.path}: it is a directory")
        self._created = not os.path.exists(self.path)
        try:
            # "a": create it if need be without truncating, until begin() writes.
            with open(self.path, "ab"):
                pass
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror}") from None
        self.layout: Optional[Layout] = None
        self._sink: Optional[_Sink] = None
        self._buffer: List[EventBatch] = []
        self._buffered = 0
        self._last_flush = time.monotonic()
        self._closed = False
        #: Events written to the file so far.
        self.events_written = 0

    def begin(self, probes: Iterable[TracedProbe], identities: bool = False) -> None:
        """Fixes the columns from these probes (and the ns_pid and container
        columns, with `identities`) and writes the file's header."""
        if self._sink is not None:
            return
        if self._closed:
            raise OutputError(f"{self.path} is already closed")
        layout = self.layout = Layout(probes, identities)
        self._sink = self._guard(lambda: _SINKS[self.format](self.path, layout))
        self._last_flush = time.monotonic()

    def write(self, batch: EventBatch) -> None:
        """Buffers a batch (beginning with its probes if begin() was not
        called); writes when the buffer is full or the last write is
        flush_seconds old.  An empty batch only does the time check."""
        if self._sink is None:
            self.begin(batch.probes, batch.processes is not None)
        if len(batch):
            self._buffer.append(batch)
            self._buffered += len(batch)
        if self._buffered >= self.flush_events or (
                self._buffered and time.monotonic() - self._last_flush >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        """Writes every buffered event now."""
        self._last_flush = time.monotonic()
        if not self._buffered:
            return
        pending, self._buffer, self._buffered = self._buffer, [], 0
        decoded = decode(pending, self.layout)
        sink = self._sink
        assert sink is not None  # begun: there is something buffered
        self._guard(lambda: sink.write(decoded))
        self.events_written += len(decoded)

    def close(self) -> None:
        """Writes what is buffered and completes the file; idempotent."""
        if self._closed:
            return
        if self._sink is None:
            self.begin([])
        try:
            self.flush()
        finally:
            self._closed = True
            sink = self._sink
            assert sink is not None  # begun above
            self._guard(sink.close)

    def abort(self) -> None:
        """For a trace that never started: removes the file if this writer
        created it; once begun, the same as close()."""
        if self._sink is not None:
            self.close()
            return
        self._closed = True
        if self._created:
            try:
                os.unlink(self.path)
            except OSError:
                pass

    @property
    def dropped(self) -> Dict[Tuple[str, str], int]:
        """(probe, argument) -> values not written: the probe was found after
        the columns were fixed and no column of that name holds its values."""
        return dict(self.layout.dropped) if self.layout is not None else {}

    def _guard(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except OSError as e:
            raise OutputError(f"cannot write {self.path}: {e.strerror or e}") from None

    def __enter__(self) -> "EventWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- recording a trace ------------------------------------------------------------


def record(tracer: Tracer, writer: EventWriter, duration: Optional[float] = None,
           timeout: float = 0.1, on_start: Optional[Callable[[], None]] = None,
           on_loss: Optional[Callable[[LossReport], None]] = None) -> int:
    """Starts the tracer (if it is not yet) and writes its events to `writer`
    until its targets exit, `duration` seconds pass, or SIGINT/SIGTERM
    arrives; then stops streaming, drains the ring buffer and closes the
    file.  `on_start` runs once the probes are attached; `on_loss` gets each
    report of records the kernel dropped, as they happen.  Returns the
    events written."""
    with StopSignals() as stop:
        # Signals are caught from here on: one during start() ends the trace
        # right after it, with a complete (maybe empty) file.
        tracer.start()
        if on_start is not None:
            on_start()
        writer.begin(tracer.probes, tracer.identifies_processes)
        try:
            stream(tracer, writer.write, stop, duration=duration, timeout=timeout, on_loss=on_loss)
        finally:
            writer.close()
    return writer.events_written


def dropped_warnings(writer: EventWriter) -> List[str]:
    """One line per argument of a late probe that had no column in the file."""
    return [f"{n} value(s) of {probe} argument {arg} not written to {writer.path}: its columns "
            f"were fixed when the trace began and none holds them"
            for (probe, arg), n in sorted(writer.dropped.items())]
