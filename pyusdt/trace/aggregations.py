"""Reading a session's aggregations into Python objects: per aggregation,
its rows and counters (AggregationResult), keys of expressions decoded."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Optional, Sequence, Union

from pyusdt import _native
from pyusdt.aggregate.histogram import Key
from pyusdt.aggregate.results import AggregationResult, Counters
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.expr import OutField
from pyusdt.trace.events import TracedProbe
from pyusdt.trace.record_layout import decode_c_string
from pyusdt.trace.stacks import StackSymbolizer, UserStack

if TYPE_CHECKING:  # pragma: no cover - type names only
    import numpy as np


def read_aggregations(session: _native.Session, specs: Sequence[Union[Aggregate, Latency]],
                      probes: Sequence[TracedProbe],
                      key_fields: Mapping[int, Sequence[OutField]],
                      stacks: Optional[StackSymbolizer] = None) -> list[AggregationResult]:
    """Every aggregation's rows and counters, in agg_id order (the index in
    `specs`).  The rows of an aggregation keyed by expressions are in their
    own map, their keys packed as `key_fields[agg_id]` says."""
    n = len(specs)
    rows = session.agg_rows()
    tuple_rows = session.agg_tuple_rows() if session.expressions else None
    counters = session.agg_counters(n)
    pending = session.pending_starts(n)
    names = [tp.fullname for tp in probes]
    out = []
    for i, spec in enumerate(specs):
        c = counters[i]
        cnt = Counters(**{f: int(c[f]) for f in _native.AGG_COUNTER_NAMES}, pending=int(pending[i]))
        agg = spec.aggregate() if isinstance(spec, Latency) else spec
        if tuple_rows is not None and agg.uses_expressions:
            decoder = TupleKeyDecoder(tuple(key_fields.get(i, ())), names, stacks)
            out.append(AggregationResult(spec, tuple_rows[tuple_rows["agg_id"] == i], cnt, names, decoder))
        else:
            out.append(AggregationResult(spec, rows[rows["agg_id"] == i], cnt, names))
    return out


class TupleKeyDecoder:
    """A key of expressions from its packed bytes: one value, or a tuple of
    them (bpftrace's @[a, b]); integers by their sign, strings up to their
    NUL, a probe id as the probe's name."""

    def __init__(self, fields: Sequence[OutField], probe_names: Sequence[str],
                 stacks: Optional[StackSymbolizer] = None) -> None:
        self.fields = fields
        self.probe_names = probe_names
        self.stacks = stacks

    def __call__(self, row: np.void) -> Key:
        raw = bytes(row["key"])
        parts: list[Union[int, str, UserStack]] = []
        for f in self.fields:
            chunk = raw[f.offset:f.offset + f.size]
            if f.kind == "str":
                parts.append(decode_c_string(chunk))
            elif f.kind == "ustack" and self.stacks is not None:
                parts.append(self.stacks.stack(int.from_bytes(chunk[:8], "little")))
            elif f.kind == "probe":
                v = int.from_bytes(chunk[:8], "little")
                parts.append(self.probe_names[v] if v < len(self.probe_names) else str(v))
            else:
                parts.append(int.from_bytes(chunk[:8], "little", signed=f.signed))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else tuple(parts)
