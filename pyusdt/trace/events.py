"""Event batches: the rows straight from the ring buffer, as a numpy
structured array, plus the probe table needed to read them (names, argument
signs, string slots).  The array is made when first asked for: iterating
Events unpacks the rows with struct, so printing a trace needs no numpy."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple, Optional, Sequence, Union

from pyusdt import _native
from pyusdt.discover.probes import Probe
from pyusdt.errors import ArgumentIndexError
from pyusdt.trace.record_layout import RecordLayout, decode_c_string

if TYPE_CHECKING:  # pragma: no cover - type names only
    import numpy as np
    import pandas
    import pyarrow

    from pyusdt.trace.process_table import ProcessIdentity, ProcessTable
    from pyusdt.trace.stacks import StackSymbolizer

ArgValue = Union[int, str]
_SIGN_BIT = 1 << 63
_WRAP = 1 << 64
_UNSIGNED, _SIGNED, _STR, _STACK = range(4)  # how TracedProbe decodes a value


class RecordValue(NamedTuple):
    """One value a record holds: an argument of the probe, or a field the
    trace computed (--fields).  `size` is the bytes the integer holds.
    (A NamedTuple, not a dataclass: this module is on `pyusdt trace`'s
    start-up path, where each dataclass costs ~1 ms to create.)"""

    name: str
    is_str: bool
    signed: bool = False
    size: int = 8
    is_stack: bool = False  # a user stack (ustack): its process id << 32 | its stack id


@dataclass
class TracedProbe:
    """A probe as a trace sees it: its id in records and how to decode its
    values: its arguments, or the fields an expression program computed."""

    probe_id: int
    probe: Probe
    strings: tuple[int, ...]  # indices of the values read as strings, in slot order
    fields: Optional[tuple[RecordValue, ...]] = None  # what records hold instead of the arguments

    @property
    def fullname(self) -> str:
        return self.probe.fullname

    # What each record holds, its names and how to decode it are the same
    # for every record of the probe: worked out at the first record, not at
    # each (a trace prints hundreds of thousands of records).  The probe and
    # its layout do not change once a trace has it.
    @cached_property
    def values(self) -> tuple[RecordValue, ...]:
        """What each record of this probe holds, in args[] order."""
        if self.fields is not None:
            return self.fields
        return tuple(RecordValue(name, i in self.strings, spec.signed, spec.bytes_read)
                     for i, (name, spec) in enumerate(zip(self.probe.arg_names, self.probe.args)))

    @cached_property
    def value_names(self) -> list[str]:
        return [v.name for v in self.values]

    @cached_property
    def _decoding(self) -> tuple[tuple[int, int], ...]:
        """(how, slot) per value: _STACK, _STR (its string slot), _SIGNED or _UNSIGNED."""
        return tuple((_STACK, 0) if v.is_stack else (_STR, self.strings.index(i)) if v.is_str
                     else (_SIGNED if v.signed else _UNSIGNED, 0) for i, v in enumerate(self.values))

    def decode_args(self, raw: Sequence[int], strings: Sequence[bytes],
                    stacks: Optional[StackSymbolizer] = None) -> tuple[Union[int, str], ...]:
        """Typed values of one record (`raw`: its args[] as unsigned ints):
        ints with their sign, strs; a user stack as its folded text
        (outermost frame first)."""
        out: list[ArgValue] = []
        for i, (how, slot) in enumerate(self._decoding):
            value = int(raw[i])
            if how == _UNSIGNED:
                out.append(value)
            elif how == _SIGNED:
                out.append(value - _WRAP if value & _SIGN_BIT else value)
            elif how == _STR:
                out.append(decode_c_string(strings[slot]))
            else:
                out.append(stacks.stack(value).folded() if stacks is not None else value)
        return tuple(out)


class Event(NamedTuple):
    """One probe hit, decoded (the slow, per-event path: for printing)."""

    ts_ns: int
    pid: int
    tid: int
    cpu: int
    probe: TracedProbe
    args: tuple[Union[int, str], ...]
    truncated: tuple[int, ...]  # argument indices whose string was cut at the slot length
    read_failed: tuple[int, ...]  # argument indices that could not be read
    # Who the process is, where the trace knows (cgroup, container and object
    # targets; a pid target in a container): see pyusdt.trace.process_table.
    identity: Optional[ProcessIdentity] = None


class EventBatch:
    """Records drained in one go; `array` is the numpy structured array itself.

    to_pandas() and to_arrow() give the batch as a table with named, typed
    columns (see pyusdt.trace.columns); pyusdt.to_pandas(batches) joins several."""

    def __init__(self, array: Any, probes: Sequence[TracedProbe],
                 stacks: Optional[StackSymbolizer] = None, processes: Optional[ProcessTable] = None,
                 layout: Optional[RecordLayout] = None):
        """`array`: a numpy structured array of event rows, or (with
        `layout`) a buffer of such rows, viewed as an array when first asked."""
        if layout is None:
            self._array: Optional[np.ndarray] = array
            self._rows: Any = None
            self._count = len(array)
        else:
            self._array, self._rows = None, array
            self._count = len(memoryview(array)) // layout.itemsize
        self._layout = layout
        self.probes = probes
        self.stacks = stacks  # names the user stacks of fields (ustack)
        self.processes = processes  # who each pid is (ns pid, container), when the trace tells

    @property
    def array(self) -> np.ndarray:
        """The rows as a numpy structured array (a view of the buffer, not a copy)."""
        if self._array is None:
            import numpy as np

            assert self._layout is not None
            self._array = np.frombuffer(self._rows, dtype=self._layout.dtype())
        return self._array

    @array.setter
    def array(self, value: np.ndarray) -> None:
        self._array, self._rows, self._layout, self._count = value, None, None, len(value)

    def __len__(self) -> int:
        return self._count

    def probe_of(self, index: int) -> TracedProbe:
        return self.probes[int(self.array["probe_id"][index])]

    def __iter__(self) -> Iterator[Event]:
        if self._rows is not None:
            assert self._layout is not None
            layout, rows = self._layout, self._rows
        else:
            layout = RecordLayout.of_dtype(self.array.dtype)
            rows = self.array.tobytes() if self._count else b""  # a copy: rare (a batch made from an array)
        ts_i = layout.span("ts_ns")[0]
        pid_i = layout.span("pid")[0]
        tid_i = layout.span("tid")[0]
        cpu_i = layout.span("cpu")[0]
        probe_i = layout.span("probe_id")[0]
        flags_i = layout.span("flags")[0]
        args_i, nargs, _ = layout.span("args")
        str_i, nstr, _ = layout.span("strings") if layout.has_strings else (0, 0, True)
        trunc_shift = _native.FLAG_STR_TRUNC_SHIFT
        fail_shift = _native.FLAG_READ_FAIL_SHIFT
        table = self.processes
        for rec in layout.unpacker.iter_unpack(rows):
            tp = self.probes[rec[probe_i]]
            flags = rec[flags_i]
            n = len(tp.values)
            pid = rec[pid_i]
            yield Event(
                rec[ts_i],
                pid,
                rec[tid_i],
                rec[cpu_i],
                tp,
                tp.decode_args(rec[args_i:args_i + nargs], rec[str_i:str_i + nstr], self.stacks),
                tuple(i for i in range(n) if flags >> (trunc_shift + i) & 1) if flags else (),
                tuple(i for i in range(n) if flags >> (fail_shift + i) & 1) if flags else (),
                table.identity(pid) if table is not None else None,
            )

    def for_probe(self, fullname: str) -> np.ndarray:
        """The records of every traced probe named provider:name."""
        import numpy as np

        ids = [tp.probe_id for tp in self.probes if tp.fullname == fullname]
        return self.array[np.isin(self.array["probe_id"], ids)]

    def _layouts_with(self, fullname: str, pred: Callable[[TracedProbe], bool]) -> list[TracedProbe]:
        """The traced layouts of probe `fullname` for which pred(tp) holds."""
        return [tp for tp in self.probes if tp.fullname == fullname and pred(tp)]

    def arg(self, index: int, fullname: str) -> np.ndarray:
        """Argument `index` of probe `fullname` across the batch: int64 when
        the argument is signed, else uint64.  Where the probe's sites differ,
        the records of the sites that have no such argument are left out."""
        tps = self._layouts_with(fullname, lambda tp: index < len(tp.values))
        if not tps:
            raise ArgumentIndexError(f"{fullname}: no traced site has argument {index}")
        import numpy as np

        recs = self.array[np.isin(self.array["probe_id"], [tp.probe_id for tp in tps])]
        col = recs["args"][:, index]
        return col.view(np.int64) if any(tp.values[index].signed for tp in tps) else col

    def strings(self, index: int, fullname: str) -> list[str]:
        """String argument `index` of probe `fullname`, decoded, across the
        batch (the records of sites that read it as a string)."""
        slots = {tp.probe_id: tp.strings.index(index)
                 for tp in self._layouts_with(fullname, lambda tp: index in tp.strings)}
        if not slots:
            raise ArgumentIndexError(f"{fullname}: argument {index} is not read as a string")
        import numpy as np

        recs = self.array[np.isin(self.array["probe_id"], list(slots))]
        return [decode_c_string(r["strings"][slots[int(r["probe_id"])]]) for r in recs]

    def to_pandas(self) -> "pandas.DataFrame":
        """This batch as a DataFrame (columns: pyusdt.trace.columns); needs pandas."""
        from pyusdt.trace.columns import decode, decoded_to_pandas

        return decoded_to_pandas(decode([self]))

    def to_arrow(self) -> "pyarrow.Table":
        """This batch as an Arrow table (columns: pyusdt.trace.columns); needs pyarrow."""
        from pyusdt.trace.columns import decode, decoded_to_arrow

        return decoded_to_arrow(decode([self]))
