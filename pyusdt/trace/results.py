"""Reading a session's counters and aggregations into Python objects: per
probe, what happened to its hits (ProbeStats); per aggregation, its rows and
counters (AggregationResult)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from pyusdt import _native
from pyusdt.aggregate.histogram import Key
from pyusdt.aggregate.results import AggregationResult, Counters
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.expr import OutField
from pyusdt.trace.columns import decode_c_string
from pyusdt.trace.events import TracedProbe
from pyusdt.trace.stacks import StackSymbolizer, UserStack


@dataclass
class ProbeStats:
    """What happened to one probe's hits, from the kernel's counters and ours."""

    probe: str
    path: str
    # The kernel's counters are filled in by their names in bpf/pyusdt_abi.h
    # (PYUSDT_PROBE_STATS): a counter added there must be added here.
    events: int  # records delivered to Python
    hits: int  # times the probe fired in a traced process
    lost_ringbuf: int  # records dropped because the ring buffer was full
    str_fail: int  # string arguments that could not be read (record kept, flagged)
    arg_fail: int  # memory arguments that could not be read (record kept, flagged)
    filtered: int = 0  # hits a --where predicate rejected (no record, not a loss)
    busy: int = 0  # hits not evaluated: the CPU's expression scratch was in use (lost)


def read_stats(session: _native.Session, probes: Sequence[TracedProbe], events: np.ndarray) -> list[ProbeStats]:
    """One ProbeStats per probe: the kernel's per-CPU counters summed (named
    as bpf/pyusdt_abi.h names them), and `events`, the records delivered per
    probe id.  The ids of one probe's argument layouts are added up into one
    line."""
    raw = session.stats()
    names = ("events", *_native.PROBE_STATS_NAMES)
    totals: dict[tuple[str, str], list[int]] = {}  # (path, provider:name) -> counts, as `names`
    for tp in probes:
        k = raw[tp.probe_id] if tp.probe_id < len(raw) else None
        ev = int(events[tp.probe_id]) if tp.probe_id < len(events) else 0
        counts = [ev] + [int(k[f]) if k is not None else 0 for f in _native.PROBE_STATS_NAMES]
        key = (tp.probe.path, tp.fullname)
        totals[key] = [a + b for a, b in zip(totals.get(key, [0] * len(counts)), counts)]
    return [ProbeStats(name, path, **dict(zip(names, counts))) for (path, name), counts in totals.items()]


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
