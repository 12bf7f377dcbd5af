"""Event batches: numpy structured arrays straight from the ring buffer, plus
the probe table needed to read them (names, argument signs, string slots)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np

from pyusdt import _native
from pyusdt.discover.probes import Probe
from pyusdt.errors import ArgumentIndexError
from pyusdt.trace.columns import decode, decode_c_string, decoded_to_arrow, decoded_to_pandas
from pyusdt.trace.process_table import ProcessIdentity, ProcessTable

if TYPE_CHECKING:  # pragma: no cover - type names only
    import pandas
    import pyarrow

    from pyusdt.trace.stacks import StackSymbolizer

ArgValue = Union[int, str]


@dataclass(frozen=True)
class RecordValue:
    """One value a record holds: an argument of the probe, or a field the
    trace computed (--fields).  `size` is the bytes the integer holds."""

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

    @property
    def values(self) -> tuple[RecordValue, ...]:
        """What each record of this probe holds, in args[] order."""
        if self.fields is not None:
            return self.fields
        return tuple(RecordValue(name, i in self.strings, spec.signed, spec.bytes_read)
                     for i, (name, spec) in enumerate(zip(self.probe.arg_names, self.probe.args)))

    @property
    def value_names(self) -> list[str]:
        return [v.name for v in self.values]

    def decode_args(self, raw: np.ndarray, strings: Sequence[bytes],
                    stacks: Optional[StackSymbolizer] = None) -> tuple[Union[int, str], ...]:
        """Typed values of one record: ints with their sign, strs; a user
        stack as its folded text (outermost frame first)."""
        out: list[ArgValue] = []
        for i, v in enumerate(self.values):
            if v.is_stack:
                out.append(stacks.stack(int(raw[i])).folded() if stacks is not None else int(raw[i]))
            elif v.is_str:
                out.append(decode_c_string(strings[self.strings.index(i)]))
            elif v.signed:
                out.append(int(raw[i].astype(np.int64)))
            else:
                out.append(int(raw[i]))
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

    def __init__(self, array: np.ndarray, probes: Sequence[TracedProbe],
                 stacks: Optional[StackSymbolizer] = None, processes: Optional[ProcessTable] = None):
        self.array = array
        self.probes = probes
        self.stacks = stacks  # names the user stacks of fields (ustack)
        self.processes = processes  # who each pid is (ns pid, container), when the trace tells

    def __len__(self) -> int:
        return len(self.array)

    def probe_of(self, index: int) -> TracedProbe:
        return self.probes[int(self.array["probe_id"][index])]

    def __iter__(self) -> Iterator[Event]:
        has_strings = "strings" in (self.array.dtype.names or ())
        trunc_shift = _native.FLAG_STR_TRUNC_SHIFT
        fail_shift = _native.FLAG_READ_FAIL_SHIFT
        table = self.processes
        for rec in self.array:
            tp = self.probes[int(rec["probe_id"])]
            flags = int(rec["flags"])
            strings = rec["strings"] if has_strings else ()
            n = len(tp.values)
            yield Event(
                int(rec["ts_ns"]),
                int(rec["pid"]),
                int(rec["tid"]),
                int(rec["cpu"]),
                tp,
                tp.decode_args(rec["args"], strings, self.stacks),
                tuple(i for i in range(n) if flags >> (trunc_shift + i) & 1),
                tuple(i for i in range(n) if flags >> (fail_shift + i) & 1),
                table.identity(int(rec["pid"])) if table is not None else None,
            )

    def for_probe(self, fullname: str) -> np.ndarray:
        """The records of every traced probe named provider:name."""
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
        recs = self.array[np.isin(self.array["probe_id"], list(slots))]
        return [decode_c_string(r["strings"][slots[int(r["probe_id"])]]) for r in recs]

    def to_pandas(self) -> "pandas.DataFrame":
        """This batch as a DataFrame (columns: pyusdt.trace.columns); needs pandas."""
        return decoded_to_pandas(decode([self]))

    def to_arrow(self) -> "pyarrow.Table":
        """This batch as an Arrow table (columns: pyusdt.trace.columns); needs pyarrow."""
        return decoded_to_arrow(decode([self]))
