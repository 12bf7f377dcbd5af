"""Reading a session's counters and aggregations into Python objects: per
probe, what happened to its hits (ProbeStats); per aggregation, its rows and
counters (AggregationResult)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Union

import numpy as np

from pyusdt import _native
from pyusdt.aggregate.results import AggregationResult, Counters
from pyusdt.aggregate.specs import Aggregate, Latency
from pyusdt.trace.events import TracedProbe


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
                      probes: Sequence[TracedProbe]) -> list[AggregationResult]:
    """Every aggregation's rows and counters, in agg_id order (the index in `specs`)."""
    n = len(specs)
    rows = session.agg_rows()
    counters = session.agg_counters(n)
    pending = session.pending_starts(n)
    names = [tp.fullname for tp in probes]
    out = []
    for i, spec in enumerate(specs):
        c = counters[i]
        cnt = Counters(**{f: int(c[f]) for f in _native.AGG_COUNTER_NAMES}, pending=int(pending[i]))
        out.append(AggregationResult(spec, rows[rows["agg_id"] == i], cnt, names))
    return out
